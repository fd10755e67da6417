// A WHEP client (IETF WebRTC-HTTP Egress Protocol): POST an SDP offer, set
// the answer, DELETE the session's Location to leave.
import { csrf } from './app.js';

export class WHEPViewer {
  constructor(url, video) { this.url = url; this.video = video; this.pc = null; this.location = null; }

  async start() {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.ontrack = (ev) => {
      if (!this.video.srcObject) this.video.srcObject = new MediaStream();
      this.video.srcObject.addTrack(ev.track);
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await gatheringDone(pc, 2000);
    const res = await fetch(this.url, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/sdp', 'X-CSRF-Token': csrf() },
      body: pc.localDescription.sdp,
    });
    if (!res.ok) throw new Error(`WHEP ${res.status}: ${await res.text()}`);
    const loc = res.headers.get('Location');
    this.location = loc ? new URL(loc, new URL(this.url, location.href)).href : null;
    this.audioNote = res.headers.get('X-BWC-Audio');
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    return this;
  }

  async stats() {
    if (!this.pc) return null;
    let out = null;
    (await this.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') out = r;
    });
    return out;
  }

  async stop() {
    if (this.pc) this.pc.close();
    this.pc = null;
    if (this.location) {
      await fetch(this.location, { method: 'DELETE', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf() } }).catch(() => {});
    }
  }
}

function gatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
    });
  });
}
