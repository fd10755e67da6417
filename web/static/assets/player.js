// An evidence player on Media Source Extensions: the archive's own fMP4
// init and media segments, fetched through the API (access-checked and
// audited), appended on demand around the playhead. Positions are wall-clock
// times: the recording's segments say where each second of media was
// recorded, gaps included.
export class Player {
  constructor(video, recordingID) {
    this.video = video;
    this.id = recordingID;
    this.info = null;
    this.sb = null;
    this.appended = new Set();
    this.currentInit = -1;
    this.queue = Promise.resolve();
  }

  async load() {
    const res = await fetch(`/api/recordings/${this.id}/playback`, { credentials: 'same-origin' });
    if (!res.ok) throw new Error(`playback ${res.status}`);
    this.info = await res.json();
    if (this.info.file) {
      // an uploaded file, played as it is by byte ranges: one span, no gaps
      const t0 = Date.parse(this.info.started_at);
      this.segs = [{ seq: 0, start: 0, end: this.info.duration, t0, t1: t0 + this.info.duration * 1000 }];
      this.appended.add(0);
      this.video.src = this.info.file;
      await new Promise((r, j) => { this.video.onloadedmetadata = r; this.video.onerror = () => j(new Error('the file does not play here')); });
      return this;
    }
    this.segs = this.info.segments.map((s) => ({ ...s, t0: Date.parse(s.started_at), t1: Date.parse(s.ended_at) }));
    if (!this.segs.length) throw new Error('nothing archived yet');
    const ms = new MediaSource();
    this.video.src = URL.createObjectURL(ms);
    await new Promise((r) => ms.addEventListener('sourceopen', r, { once: true }));
    const codecs = this.info.codecs[this.segs[0].init];
    this.sb = ms.addSourceBuffer(`video/mp4; codecs="${codecs}"`);
    this.video.addEventListener('timeupdate', () => this.ensure(this.video.currentTime));
    await this.ensure(this.segs[0].start);
    return this;
  }

  // audioNote is what the player gets of the recording's audio when not
  // the archived track: 'converted' (for playback only) or 'none'.
  audioNote() {
    const a = this.info?.audio || {};
    return Object.values(a).includes('none') ? 'none' : Object.values(a)[0] || '';
  }

  get start() { return this.segs[0].t0; }
  get end() { return this.segs[this.segs.length - 1].t1; }

  // wallToMedia maps a wall-clock instant (ms) to the media timeline (s);
  // an instant in a gap goes to the media after it.
  wallToMedia(t) {
    for (const s of this.segs) {
      if (t < s.t0) return s.start;
      if (t < s.t1) return s.start + (t - s.t0) / 1000;
    }
    return null; // after the end
  }

  mediaToWall(m) {
    for (const s of this.segs) if (m >= s.start && m < s.end) return s.t0 + (m - s.start) * 1000;
    const last = this.segs[this.segs.length - 1];
    return m >= last.end ? last.t1 : this.segs[0].t0;
  }

  wallNow() { return this.mediaToWall(this.video.currentTime); }

  // ensure appends the segments from a little before m to 20 s after it.
  ensure(m) {
    if (this.info?.file) return Promise.resolve();
    this.queue = this.queue.then(async () => {
      for (const s of this.segs) {
        if (s.end < m - 1 || s.start > m + 20 || this.appended.has(s.seq)) continue;
        if (s.init !== this.currentInit) {
          await this.append(await fetchBytes(this.info.inits[s.init]));
          this.currentInit = s.init;
        }
        await this.append(await fetchBytes(s.url));
        this.appended.add(s.seq);
      }
    }).catch((e) => console.error('player', this.id, e));
    return this.queue;
  }

  append(buf) {
    return new Promise((resolve, reject) => {
      this.sb.addEventListener('updateend', resolve, { once: true });
      this.sb.addEventListener('error', reject, { once: true });
      this.sb.appendBuffer(buf);
    });
  }

  // seekWall positions the player at a wall-clock instant (ms).
  async seekWall(t) {
    const m = this.wallToMedia(t);
    if (m === null) return false;
    await this.ensure(m);
    this.video.currentTime = m;
    return true;
  }
}

async function fetchBytes(url) {
  const res = await fetch(url, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.arrayBuffer();
}
