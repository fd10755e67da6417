package upload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	mp4 "github.com/abema/go-mp4"
)

// mp4box builds a box.
func mp4box(typ string, payload ...[]byte) []byte {
	b := make([]byte, 8)
	copy(b[4:], typ)
	for _, p := range payload {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func u32s(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// movie is the sample table of a synthetic one-track H.264 MP4; each field
// is a box's payload after its version and flags, nil for the default
// (samples of 100 bytes, one chunk). Crafted files set counts that do not
// match their bytes.
type movie struct {
	samples          uint32
	stts, stsc, stsz []byte
	stco, ctts       []byte
	mdatSize         int // bytes of media actually present
	extraTrak        []byte
}

func (m movie) build() []byte {
	if m.samples == 0 {
		m.samples = 10
	}
	if m.mdatSize == 0 && m.stsz == nil {
		m.mdatSize = int(m.samples) * 100
	}
	vf := []byte{0, 0, 0, 0}
	ftyp := mp4box("ftyp", []byte("isom"), u32s(512), []byte("isomavc1"))
	mvhd := mp4box("mvhd", vf, u32s(3786912000, 3786912000, 1000, 10000), make([]byte, 80)) // created 2024-01-01
	tkhd := mp4box("tkhd", vf, make([]byte, 80))
	mdhd := mp4box("mdhd", vf, u32s(0, 0, 90000, 900000), make([]byte, 4))
	hdlr := mp4box("hdlr", vf, u32s(0), []byte("vide"), make([]byte, 13))
	visual := make([]byte, 78)
	binary.BigEndian.PutUint16(visual[6:], 1)
	binary.BigEndian.PutUint16(visual[24:], 1280)
	binary.BigEndian.PutUint16(visual[26:], 720)
	avc1 := mp4box("avc1", visual, mp4box("avcC", []byte{1, 0x4d, 0, 0x1f, 0xff, 0xe0, 0}))
	stsd := mp4box("stsd", vf, u32s(1), avc1)
	def := func(p []byte, d []byte) []byte {
		if p != nil {
			return p
		}
		return d
	}
	var mdatOffset uint32
	build := func() []byte {
		stbl := mp4box("stbl", stsd,
			mp4box("stts", vf, def(m.stts, u32s(1, m.samples, 3000))),
			mp4box("stsc", vf, def(m.stsc, u32s(1, 1, m.samples, 1))),
			mp4box("stsz", vf, def(m.stsz, u32s(100, m.samples))),
			mp4box("stco", vf, def(m.stco, u32s(1, mdatOffset))))
		if m.ctts != nil {
			stbl = mp4box("stbl", stbl[8:], mp4box("ctts", vf, m.ctts))
		}
		trak := mp4box("trak", tkhd, mp4box("mdia", mdhd, hdlr, mp4box("minf", stbl)))
		moov := mp4box("moov", mvhd, trak, m.extraTrak)
		out := append(append([]byte{}, ftyp...), moov...)
		return append(out, mp4box("mdat", make([]byte, m.mdatSize))...)
	}
	b := build()
	mdatOffset = uint32(len(b) - m.mdatSize)
	return build()
}

// crafted are hostile files, each small, whose counts or sizes would make a
// naive parser allocate gigabytes (or read past the end).
func crafted() map[string][]byte {
	const huge = 100_000_000
	files := map[string][]byte{
		// the file of issue 12: stts declares 100M samples (of 1 byte each)
		"stts-100M-samples": movie{samples: huge, stsz: u32s(1, huge), mdatSize: 16}.build(),
		// 4 stts entries of 2^32-1 samples each (4×2^32)
		"stts-4x2^32-samples": movie{stts: u32s(4, ^uint32(0), 1, ^uint32(0), 1, ^uint32(0), 1, ^uint32(0), 1)}.build(),
		"stts-4x2^32-const-size": movie{stts: u32s(4, ^uint32(0), 1, ^uint32(0), 1, ^uint32(0), 1, ^uint32(0), 1),
			stsz: u32s(7, ^uint32(0)), stsc: u32s(1, 1, ^uint32(0), 1)}.build(),
		"stts-entries-huge":     movie{stts: u32s(^uint32(0), 1, 1)}.build(),
		"stsz-huge-count":       movie{samples: ^uint32(0), stsz: u32s(0, ^uint32(0), 100)}.build(),
		"stsz-huge-const":       movie{samples: huge, stsz: u32s(^uint32(0), huge), stsc: u32s(1, 1, ^uint32(0), 1)}.build(),
		"stco-huge-count":       movie{stco: u32s(^uint32(0), 0)}.build(),
		"stco-offset-past-end":  movie{stco: u32s(1, ^uint32(0))}.build(),
		"stsc-huge-count":       movie{stsc: u32s(^uint32(0), 1, 1, 1)}.build(),
		"stsc-first-chunk-zero": movie{stsc: u32s(1, 0, ^uint32(0), 1)}.build(),
		"ctts-huge-count":       movie{ctts: u32s(^uint32(0), 1, 0)}.build(),
		"many-traks":            movie{extraTrak: bytes.Repeat(mp4box("trak"), 200)}.build(),
		"moov-size-4G":          append(mp4box("ftyp", []byte("isom")), 0xff, 0xff, 0xff, 0xff, 'm', 'o', 'o', 'v', 0, 0, 0, 8, 'm', 'v', 'h', 'd'),
		"moov-largesize-2^62":   append(mp4box("ftyp", []byte("isom")), append(u32s(1), append([]byte("moov"), 0x40, 0, 0, 0, 0, 0, 0, 0)...)...),
		"trak-larger-than-moov": mp4box("moov", u32s(0x7fffffff), []byte("trak"), mp4box("mdia")),
		"box-smaller-than-hdr":  mp4box("moov", u32s(3), []byte("trak")),
		"uuid-no-room":          mp4box("moov", u32s(12), []byte("uuid"), []byte("abcd")),
	}
	whole := movie{}.build()
	for _, n := range []int{7, 20, 40, len(whole) / 2, len(whole) - 1} {
		files["truncated-at-"+strconv.Itoa(n)] = whole[:n]
	}
	return files
}

// TestProbeSynthetic: the synthetic file is accepted with what it says; its
// crafted relatives are refused with ErrNotVideo and a reason.
func TestProbeSynthetic(t *testing.T) {
	b := movie{}.build()
	fi, err := probe(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("synthetic file refused: %v", err)
	}
	want := fileInfo{Container: "mp4", Video: "H264", Width: 1280, Height: 720, Duration: 10 * time.Second,
		Created: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	if fi != want {
		t.Fatalf("probe = %+v, want %+v", fi, want)
	}
	for name, b := range crafted() {
		t.Run(name, func(t *testing.T) {
			_, err := probe(bytes.NewReader(b), int64(len(b)))
			if !errors.Is(err, ErrNotVideo) {
				t.Fatalf("crafted file accepted or wrong error: %v", err)
			}
			t.Log(err)
		})
	}
}

// TestProbeAgreesWithGoMP4: on real files (the committed seed and the
// sample remuxed by ffmpeg) the bounded probe finds what go-mp4's Probe
// finds.
func TestProbeAgreesWithGoMP4(t *testing.T) {
	paths := []string{filepath.Join("testdata", "seed.mp4")}
	if _, err := os.Stat(filepath.Join("testdata", "seed.mp4")); err != nil {
		t.Fatal(err)
	}
	paths = append(paths, video(t, time.Now().Add(-time.Hour), 0))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := probe(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		info, err := mp4.Probe(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: go-mp4: %v", p, err)
		}
		var w, h int
		for _, tr := range info.Tracks {
			if tr.Codec == mp4.CodecAVC1 && tr.AVC != nil && w == 0 {
				w, h = int(tr.AVC.Width), int(tr.AVC.Height)
			}
		}
		want := time.Duration(float64(info.Duration) / float64(info.Timescale) * float64(time.Second))
		if fi.Video != "H264" || fi.Width != w || fi.Height != h || fi.Duration != want || fi.Fragmented != (len(info.Segments) > 0) {
			t.Fatalf("%s: probe = %+v; go-mp4: %dx%d %v fragmented=%v", p, fi, w, h, want, len(info.Segments) > 0)
		}
		if end := mediaEndGoMP4(info); end > uint64(len(raw)) {
			t.Fatalf("%s: go-mp4 says truncated", p)
		}
		// cut: both refuse or both see the index past the end
		cut := raw[:len(raw)*3/4]
		if _, err := probe(bytes.NewReader(cut), int64(len(cut))); !errors.Is(err, ErrNotVideo) {
			t.Fatalf("%s cut at 3/4 accepted: %v", p, err)
		}
	}
}

// mediaEndGoMP4 is the end of the last sample in go-mp4's expanded index.
func mediaEndGoMP4(info *mp4.ProbeInfo) uint64 {
	var end uint64
	for _, t := range info.Tracks {
		i := 0
		for _, c := range t.Chunks {
			off := c.DataOffset
			for k := uint32(0); k < c.SamplesPerChunk && i < len(t.Samples); k++ {
				off += uint64(t.Samples[i].Size)
				i++
			}
			end = max(end, off)
		}
	}
	return end
}

// allocated is the bytes allocated by f (TotalAlloc: every allocation,
// freed or not, so a peak is never missed).
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestProbeMemoryIsBounded: probing any crafted file allocates under 64 MB
// (go-mp4's Probe took 4.7 GB for the first one); in fact a few kB, as for
// a normal file. An allocation bound, not a time bound.
func TestProbeMemoryIsBounded(t *testing.T) {
	const limit = 64 << 20
	files := crafted()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		b := files[name]
		var err error
		n := allocated(func() { _, err = probe(bytes.NewReader(b), int64(len(b))) })
		if !errors.Is(err, ErrNotVideo) {
			t.Fatalf("%s: %v", name, err)
		}
		if n > limit {
			t.Fatalf("%s (%d bytes): the probe allocated %d bytes", name, len(b), n)
		}
		t.Logf("%-24s %6d bytes: %7d bytes allocated", name, len(b), n)
	}
}

// BenchmarkProbe reports the bytes allocated per probe of a normal file (the
// committed seed, 165 kB) and of crafted ones. Run:
// go test -run '^$' -bench Probe -benchmem ./ingest/upload/
func BenchmarkProbe(b *testing.B) {
	seed, err := os.ReadFile(filepath.Join("testdata", "seed.mp4"))
	if err != nil {
		b.Fatal(err)
	}
	files := crafted()
	cases := []struct {
		name string
		file []byte
	}{{"normal-seed.mp4", seed}, {"crafted-stts-100M-samples", files["stts-100M-samples"]},
		{"crafted-stts-4x2^32-const-size", files["stts-4x2^32-const-size"]}, {"crafted-stsz-huge-count", files["stsz-huge-count"]}}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				probe(bytes.NewReader(c.file), int64(len(c.file)))
			}
		})
	}
	// for comparison: go-mp4's Probe, which this replaced, on a file
	// declaring 1M samples (1/100 of the file)
	million := movie{samples: 1_000_000, stsz: u32s(1, 1_000_000), mdatSize: 16}.build()
	b.Run("crafted-stts-1M-samples", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			probe(bytes.NewReader(million), int64(len(million)))
		}
	})
	b.Run("go-mp4-Probe-crafted-stts-1M-samples", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			mp4.Probe(bytes.NewReader(million))
		}
	})
}

// TestWriteFuzzSeeds writes the crafted files into the fuzz corpus
// (testdata/fuzz/FuzzProbe) when BWC_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("BWC_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set BWC_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzProbe")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzProbe")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := crafted()
	files["synthetic-valid"] = movie{}.build()
	for name, b := range files {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		if err := os.WriteFile(filepath.Join(dir, strings.ReplaceAll(name, "^", "")), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzProbe: any bytes are either a video with a picture or refused with
// ErrNotVideo; never a panic, never more than 64 MB allocated. Seeds: the
// committed clip, the synthetic file and its crafted relatives
// (testdata/fuzz/FuzzProbe).
func FuzzProbe(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join("testdata", "seed.mp4"))
	if err == nil {
		f.Add(raw)
	}
	f.Add([]byte("\x00\x00\x00\x18ftypisom\x00\x00\x00\x00isomavc1"))
	f.Add(movie{}.build())
	for _, b := range crafted() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fi fileInfo
		var err error
		if n := allocated(func() { fi, err = probe(bytes.NewReader(b), int64(len(b))) }); n > 64<<20 {
			t.Fatalf("the probe of %d bytes allocated %d bytes", len(b), n)
		}
		if err != nil && !errors.Is(err, ErrNotVideo) {
			t.Fatalf("error outside ErrNotVideo: %v", err)
		}
		if err == nil && fi.Video == "" {
			t.Fatal("accepted a file without video")
		}
	})
}
