// Package gbtest is a GB/T 28181 body camera for tests: a device built on
// sipgo's client and server that registers with digest authentication,
// keeps alive, answers Catalog and INVITE, and sends an MPEG-2 program
// stream muxed by ffmpeg (H.264, -f vob) with G.711 A-law from ffmpeg
// interleaved as PES packets and a program stream map (what a device's
// muxer adds, and ffmpeg's cannot: its PS muxer takes no G.711),
// packetised into RTP over TCP (RFC 4571 framing) or UDP, paced by the
// packs' SCR.
package gbtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
)

// Chunk is a part of the PS stream to send at a time (seconds from the
// stream's start).
type Chunk struct {
	At   float64 // seconds from the stream's start
	Data []byte
}

var (
	psOnce sync.Once
	Chunks []Chunk
	psErr  error
)

// Seconds is the length of the simulated media (the acceptance:
// 20 s of H.264 + G.711).
const Seconds = 20

// testPS makes (once) the simulator's PS stream with ffmpeg.
func PS(t testing.TB) []Chunk {
	t.Helper()
	psOnce.Do(func() { Chunks, psErr = makePS() })
	if psErr != nil {
		t.Fatalf("make PS stream: %v", psErr)
	}
	return Chunks
}

func makePS() ([]Chunk, error) {
	dir, err := os.MkdirTemp("", "gbps")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	vps, araw := filepath.Join(dir, "v.ps"), filepath.Join(dir, "a.raw")
	// bounded twice: the sources' duration, and a deadline that kills
	// ffmpeg (a runaway encoder once filled a disk)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=320x240:rate=25:duration=%d", Seconds),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=1000:sample_rate=8000:duration=%d", Seconds),
		"-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p",
		"-t", strconv.Itoa(Seconds), "-f", "vob", vps, "-map", "1:a", "-t", strconv.Itoa(Seconds), "-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1", "-f", "alaw", araw).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg: %v: %s", err, out)
	}
	v, err := os.ReadFile(vps)
	if err != nil {
		return nil, err
	}
	a, err := os.ReadFile(araw)
	if err != nil {
		return nil, err
	}
	return interleave(v, a)
}

// interleave splits ffmpeg's PS into packs, adds a program stream map (at
// the start and every 25 packs) and G.711 PES packets of 40 ms.
func interleave(v, a []byte) ([]Chunk, error) {
	var packs [][]byte
	for i := 0; i < len(v); {
		j := bytes.Index(v[i+4:], []byte{0, 0, 1, 0xba})
		if j < 0 {
			packs = append(packs, v[i:])
			break
		}
		packs = append(packs, v[i:i+4+j])
		i += 4 + j
	}
	firstPTS, videoID := firstVideoPTS(v)
	if firstPTS < 0 || len(packs) < 10 {
		return nil, fmt.Errorf("ffmpeg's PS has no video PTS (%d packs)", len(packs))
	}
	psm := []byte{0, 0, 1, 0xbc, 0, 18, 0x80, 0x01, 0, 0, 0, 8,
		0x1b, videoID, 0, 0, 0x90, 0xc0, 0, 0, 0, 0, 0, 0} // H.264, G.711 A-law
	const chunk = 320 // 40 ms of 8 kHz A-law
	var out []Chunk
	ai := 0
	scr0 := -1.0
	for k, p := range packs {
		scr := float64(readSCR(p)) / 90000
		if scr0 < 0 {
			scr0 = scr
		}
		var b []byte
		hl := 14 + int(p[13]&7)
		b = append(b, p[:hl]...)
		if k%25 == 0 {
			b = append(b, psm...)
		}
		// audio due within half a second of this pack's clock
		for ; ai*chunk < len(a); ai++ {
			pts := firstPTS + int64(ai)*3600
			if float64(pts)/90000 > scr+0.5 && ai > 0 {
				break
			}
			end := min((ai+1)*chunk, len(a))
			b = append(b, AudioPES(pts, a[ai*chunk:end])...)
		}
		b = append(b, p[hl:]...)
		out = append(out, Chunk{At: scr - scr0, Data: b})
	}
	return out, nil
}

// firstVideoPTS walks the program stream's units to the first video PES
// with a PTS.
func firstVideoPTS(v []byte) (int64, byte) {
	for i := 0; i+14 <= len(v); {
		if v[i] != 0 || v[i+1] != 0 || v[i+2] != 1 {
			return -1, 0
		}
		id := v[i+3]
		switch {
		case id == 0xba:
			i += 14 + int(v[i+13]&7)
			continue
		case id >= 0xe0 && id <= 0xef && v[i+7]&0x80 != 0:
			h := v[i+9:]
			return int64(h[0]>>1&7)<<30 | int64(h[1])<<22 | int64(h[2]>>1)<<15 | int64(h[3])<<7 | int64(h[4]>>1), id
		}
		i += 6 + int(binary.BigEndian.Uint16(v[i+4:i+6]))
	}
	return -1, 0
}

// What a Device sends when INVITEd.
const (
	MediaFull      = ""
	MediaNone      = "none"
	MediaAudioOnly = "audio"
)

// audioOnly is a PS stream of G.711 alone (a program stream map and 40 ms
// PES packets), as a device whose video encoder failed sends.
func audioOnly() []Chunk {
	psm := []byte{0, 0, 1, 0xbc, 0, 14, 0x80, 0x01, 0, 0, 0, 4, 0x90, 0xc0, 0, 0, 0, 0, 0, 0}
	silence := bytes.Repeat([]byte{0xd5}, 320)
	var out []Chunk
	for i := range Seconds * 25 {
		out = append(out, Chunk{At: float64(i) * 0.04, Data: append(append([]byte(nil), psm...), AudioPES(int64(i)*3600, silence)...)})
	}
	return out
}

func readSCR(p []byte) int64 {
	if len(p) < 10 {
		return 0
	}
	return int64(p[4]>>3&7)<<30 | int64(p[4]&3)<<28 | int64(p[5])<<20 | int64(p[6]>>3)<<15 | int64(p[6]&3)<<13 | int64(p[7])<<5 | int64(p[8]>>3)
}

func AudioPES(pts int64, payload []byte) []byte {
	b := []byte{0, 0, 1, 0xc0, 0, 0, 0x80, 0x80, 5}
	b = append(b, byte(0x21|(pts>>29)&0x0e), byte(pts>>22), byte(0x01|(pts>>14)&0xfe), byte(pts>>7), byte(0x01|(pts<<1)&0xfe))
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[4:6], uint16(len(b)-6))
	return b
}

// Device is a simulated GB/T 28181 body camera.
type Device struct {
	t         testing.TB
	id        string
	secret    string
	domain    string
	platform  string // platform SIP address host:port
	serverID  string
	transport string // SIP: "TCP" or "UDP"

	ua     *sipgo.UserAgent
	client *sipgo.Client
	srv    *sipgo.Server

	mu        sync.Mutex
	dialog    *sipgo.DialogServerSession
	keepalive bool
	streams   int // media sessions started
	byes      int // BYEs received

	CatalogAsked atomic.Int32
	// Subscribes counts the MobilePosition SUBSCRIBEs answered (renewals
	// included); Notified the position NOTIFYs the platform accepted.
	Subscribes atomic.Int32
	Notified   atomic.Int32
	subGen     int // the notifying loop's generation: a new SUBSCRIBE replaces it
	// GrantExpires, when set, is the subscription time the device grants
	// (seconds; a short one makes the platform renew soon);
	// RefuseSubscribe: it answers 489 Bad Event (no MobilePosition).
	GrantExpires    int
	RefuseSubscribe bool
	stop            chan struct{}
	wg              sync.WaitGroup
	chunks          []Chunk
	// Media is what the device sends when INVITEd: MediaFull (H.264 +
	// G.711), MediaNone (it answers but never sends: a media port it
	// cannot reach) or MediaAudioOnly (a PS stream without video).
	Media string
}

func NewDevice(t testing.TB, platform, serverID, domain, id, secret, transport string) *Device {
	t.Helper()
	d := &Device{t: t, id: id, secret: secret, domain: domain, platform: platform, serverID: serverID,
		transport: transport, stop: make(chan struct{}), keepalive: true, chunks: PS(t)}
	var err error
	if d.ua, err = sipgo.NewUA(sipgo.WithUserAgent(id)); err != nil {
		t.Fatal(err)
	}
	if d.client, err = sipgo.NewClient(d.ua, sipgo.WithClientHostname("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if d.srv, err = sipgo.NewServer(d.ua); err != nil {
		t.Fatal(err)
	}
	d.srv.OnMessage(d.onMessage)
	d.srv.OnInvite(d.onInvite)
	d.srv.OnSubscribe(d.onSubscribe)
	d.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		d.mu.Lock()
		dlg := d.dialog
		d.mu.Unlock()
		if dlg != nil {
			_ = dlg.ReadAck(req, tx)
		}
	})
	d.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		d.mu.Lock()
		dlg := d.dialog
		d.byes++
		d.mu.Unlock()
		if dlg != nil {
			_ = dlg.ReadBye(req, tx)
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	t.Cleanup(d.Close)
	return d
}

func (d *Device) Close() {
	d.mu.Lock()
	select {
	case <-d.stop:
		d.mu.Unlock()
		return
	default:
	}
	close(d.stop)
	d.mu.Unlock()
	d.wg.Wait()
	_ = d.ua.Close()
}

// spawn runs f in a goroutine Close waits for; after Close, never (a
// WaitGroup's Add must not race its Wait).
func (d *Device) spawn(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.stop:
		return
	default:
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f()
	}()
}

func (d *Device) request(method sip.RequestMethod, to string, body []byte) *sip.Request {
	host, portS, _ := net.SplitHostPort(d.platform)
	port, _ := strconv.Atoi(portS)
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: to, Host: host, Port: port})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: d.id, Host: d.domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: to, Host: d.domain}, Params: sip.NewParams()})
	req.SetTransport(d.transport)
	if body != nil {
		req.AppendHeader(sip.NewHeader("Content-Type", "Application/MANSCDP+xml"))
		req.SetBody(body)
	}
	return req
}

// register sends REGISTER (answering the digest challenge with the
// device's secret) and returns the final status.
func (d *Device) Register(expires int) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := d.request(sip.REGISTER, d.id, nil)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: d.id, Host: "127.0.0.1", Port: 5060}})
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	res, err := d.client.Do(ctx, req)
	if err != nil {
		return 0, err
	}
	if res.StatusCode == sip.StatusUnauthorized {
		res, err = d.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: d.id, Password: d.secret})
		if err != nil {
			return 0, err
		}
	}
	return res.StatusCode, nil
}

// message sends a MANSCDP MESSAGE and returns the status.
func (d *Device) Message(body string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := d.client.Do(ctx, d.request(sip.MESSAGE, d.serverID, []byte(body)))
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// keepAlive sends a Keepalive every interval while d.keepalive.
func (d *Device) KeepAlive(interval time.Duration) {
	d.spawn(func() {
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for sn := 1; ; sn++ {
			select {
			case <-d.stop:
				return
			case <-tk.C:
			}
			d.mu.Lock()
			on := d.keepalive
			d.mu.Unlock()
			if on {
				_, _ = d.Message(fmt.Sprintf("<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>%d</SN>\r\n<DeviceID>%s</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n", sn, d.id))
			}
		}
	})
}

func (d *Device) SetKeepalive(on bool) {
	d.mu.Lock()
	d.keepalive = on
	d.mu.Unlock()
}

func (d *Device) Channel() string { return d.id[:10] + "131" + d.id[13:] }

// onMessage answers the platform's Catalog query with one channel.
func (d *Device) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	var m struct {
		CmdType string `xml:"CmdType"`
		SN      string `xml:"SN"`
	}
	if err := xml.Unmarshal(req.Body(), &m); err != nil || m.CmdType != "Catalog" {
		return
	}
	d.CatalogAsked.Add(1)
	body := fmt.Sprintf("<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Response>\r\n<CmdType>Catalog</CmdType>\r\n<SN>%s</SN>\r\n<DeviceID>%s</DeviceID>\r\n<SumNum>1</SumNum>\r\n<DeviceList Num=\"1\">\r\n<Item>\r\n<DeviceID>%s</DeviceID>\r\n<Name>执法记录仪</Name>\r\n<Status>ON</Status>\r\n</Item>\r\n</DeviceList>\r\n</Response>\r\n", m.SN, d.id, d.Channel())
	d.spawn(func() {
		_, _ = d.Message(body)
	})
}

// onInvite answers the platform's INVITE and, once ACKed, sends the PS
// stream where the offer says.
func (d *Device) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	offer := string(req.Body())
	var host, port string
	tcp := strings.Contains(offer, "TCP/RTP/AVP")
	for _, l := range strings.Split(offer, "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "c=IN IP4 "); ok {
			host = v
		}
		if v, ok := strings.CutPrefix(l, "m=video "); ok {
			port = strings.Fields(v)[0]
		}
	}
	var ssrc uint32
	for _, l := range strings.Split(offer, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "y="); ok {
			n, _ := strconv.ParseUint(v, 10, 32)
			ssrc = uint32(n)
		}
	}
	dua := sipgo.DialogUA{Client: d.client, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: d.id, Host: "127.0.0.1", Port: 5060}}}
	dlg, err := dua.ReadInvite(req, tx)
	if err != nil {
		d.t.Logf("device: read INVITE: %v", err)
		return
	}
	d.mu.Lock()
	d.dialog = dlg
	d.streams++
	d.mu.Unlock()
	proto := "RTP/AVP"
	if tcp {
		proto = "TCP/RTP/AVP"
	}
	answer := fmt.Sprintf("v=0\r\no=%s 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 15060 %s 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\ny=%010d\r\n", d.Channel(), proto, ssrc)
	if err := dlg.RespondSDP([]byte(answer)); err != nil {
		d.t.Logf("device: answer INVITE: %v", err)
		return
	}
	if d.Media == MediaNone {
		return
	}
	d.spawn(func() {
		if err := d.sendMedia(dlg, net.JoinHostPort(host, port), tcp, ssrc, 0); err != nil {
			d.t.Logf("device: media: %v", err)
		}
	})
}

// sendMedia sends the PS stream as RTP, paced by its clock, until it ends,
// the dialog ends or the device stops.
func (d *Device) sendMedia(dlg *sipgo.DialogServerSession, addr string, tcp bool, ssrc uint32, drop time.Duration) error {
	network := "udp"
	if tcp {
		network = "tcp"
	}
	c, err := net.Dial(network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	start := time.Now()
	seq := uint16(1)
	chunks := d.chunks
	if d.Media == MediaAudioOnly {
		chunks = audioOnly()
	}
	for _, ch := range chunks {
		if wait := time.Until(start.Add(time.Duration(ch.At * float64(time.Second)))); wait > 0 {
			select {
			case <-d.stop:
				return nil
			case <-dlg.Context().Done():
				return nil
			case <-time.After(wait):
			}
		}
		if drop > 0 && time.Since(start) > drop {
			return nil
		}
		for off := 0; off < len(ch.Data); off += 1400 {
			end := min(off+1400, len(ch.Data))
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(ch.At * 90000), SSRC: ssrc,
				Marker: end == len(ch.Data)}, Payload: ch.Data[off:end]}
			seq++
			b, _ := p.Marshal()
			if tcp {
				b = append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)
			}
			if _, err := c.Write(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// onSubscribe answers the platform's MobilePosition SUBSCRIBE (GB/T 28181
// 9.11: a MANSCDP Query with an Interval in seconds, Expires) with 200
// and NOTIFYs a position every Interval until the subscription expires,
// is replaced or ended (Expires: 0), or the device stops.
func (d *Device) onSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	var m struct {
		CmdType  string `xml:"CmdType"`
		Interval int    `xml:"Interval"`
	}
	if err := xml.Unmarshal(req.Body(), &m); err != nil || m.CmdType != "MobilePosition" || d.RefuseSubscribe {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 489, "Bad Event", nil))
		return
	}
	expires := 3600
	if h := req.GetHeader("Expires"); h != nil {
		expires, _ = strconv.Atoi(strings.TrimSpace(h.Value()))
	}
	if d.GrantExpires > 0 && expires > 0 {
		expires = min(expires, d.GrantExpires)
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if to := res.To(); to != nil {
		if _, ok := to.Params.Get("tag"); !ok {
			to.Params.Add("tag", "dev"+d.id[14:])
		}
	}
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	_ = tx.Respond(res)
	// the NOTIFYs are in the subscription's dialog
	myTag, _ := res.To().Params.Get("tag")
	peerTag, _ := req.From().Params.Get("tag")
	callID := *req.CallID()
	d.Subscribes.Add(1)
	d.mu.Lock()
	d.subGen++
	gen := d.subGen
	d.mu.Unlock()
	if expires <= 0 {
		return
	}
	interval := time.Duration(max(m.Interval, 1)) * time.Second
	until := time.Now().Add(time.Duration(expires) * time.Second)
	d.spawn(func() {
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for sn := 1; time.Now().Before(until); sn++ {
			select {
			case <-d.stop:
				return
			case <-tk.C:
			}
			d.mu.Lock()
			current := d.subGen == gen
			d.mu.Unlock()
			if !current {
				return
			}
			// a fix of now, moving a little east each time
			body := fmt.Sprintf("<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>MobilePosition</CmdType>\r\n<SN>%d</SN>\r\n<DeviceID>%s</DeviceID>\r\n<Time>%s</Time>\r\n<Longitude>%.6f</Longitude>\r\n<Latitude>31.2304</Latitude>\r\n<Speed>5</Speed>\r\n<Direction>90</Direction>\r\n<Altitude>4</Altitude>\r\n</Notify>\r\n",
				sn, d.id, time.Now().Format("2006-01-02T15:04:05"), 121.4737+float64(sn)*0.0001)
			n := d.request(sip.NOTIFY, d.serverID, []byte(body))
			n.From().Params.Add("tag", myTag)
			n.To().Params.Add("tag", peerTag)
			n.AppendHeader(&callID)
			n.AppendHeader(&sip.CSeqHeader{SeqNo: uint32(sn), MethodName: sip.NOTIFY})
			n.AppendHeader(sip.NewHeader("Event", "presence"))
			n.AppendHeader(sip.NewHeader("Subscription-State", fmt.Sprintf("active;expires=%d", int(time.Until(until).Seconds()))))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r, err := d.client.Do(ctx, n)
			cancel()
			if err == nil && r.StatusCode == 200 {
				d.Notified.Add(1)
			}
		}
	})
}
