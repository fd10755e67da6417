package spool

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// The spool's parsers read what a crash, a full disk or a bad sector left on
// disk. Each fuzz target checks that its parser never panics, returns no more
// than its input holds, and either fails or returns a value that encodes
// again to data the parser reads back the same (the seeds, committed under
// testdata/fuzz, are files the Writer wrote, torn, with bad hashes...).

// reencode checks that v, returned by parse without error, encodes to data
// that parse reads back and that encodes the same again.
func reencode[T any](t *testing.T, v T, parse func([]byte) (T, error)) {
	t.Helper()
	b1, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("accepted %+v, which does not encode: %v", v, err)
	}
	v2, err := parse(b1)
	if err != nil {
		t.Fatalf("accepted %+v, but not its encoding %s: %v", v, b1, err)
	}
	b2, err := json.Marshal(v2)
	if err != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("encoding changed on a round trip:\n%s\n%s (%v)", b1, b2, err)
	}
}

// FuzzParseSegMeta also checks that ParseSegMeta agrees with the file
// parser: the same error, or the file's segment.
func FuzzParseSegMeta(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseSegFile(data)
		s, err2 := ParseSegMeta(data)
		if (err == nil) != (err2 == nil) || err == nil && !reflect.DeepEqual(s, m.segment()) {
			t.Fatalf("ParseSegMeta = %+v, %v; parseSegFile = %+v, %v", s, err2, m, err)
		}
		if err != nil {
			return
		}
		if s.Seq < 0 || uint64(s.Seq) != m.Seq {
			t.Fatalf("sequence number %d read as %d", m.Seq, s.Seq)
		}
		reencode(t, m, parseSegFile)
	})
}

func FuzzParseInitMeta(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseInitFile(data)
		s, err2 := ParseInitMeta(data)
		if (err == nil) != (err2 == nil) || err == nil && !reflect.DeepEqual(s, m.initSegment()) {
			t.Fatalf("ParseInitMeta = %+v, %v; parseInitFile = %+v, %v", s, err2, m, err)
		}
		if err != nil {
			return
		}
		reencode(t, m, parseInitFile)
	})
}

func FuzzParseState(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		parse := func(b []byte) (state, error) { return parseState(b, recID) }
		st, err := parse(data)
		if err != nil {
			return
		}
		reencode(t, st, parse)
	})
}

func FuzzParseOpenHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseOpenHeader(data)
		if err != nil {
			return
		}
		reencode(t, h, parseOpenHeader)
	})
}

func FuzzParseRecMeta(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseRecMeta(data)
		if err != nil {
			return
		}
		reencode(t, m, parseRecMeta)
	})
}

// FuzzParseFragLog: the fragments read are at most one per line, end inside
// the data file in growing offsets with non-decreasing DTS, and their records
// as the Writer writes them read back as the same fragments.
func FuzzParseFragLog(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, fileSize int64) {
		frags := ParseFragLog(data, fileSize)
		if len(frags) > bytes.Count(data, []byte("\n")) {
			t.Fatalf("%d fragments from %d lines", len(frags), bytes.Count(data, []byte("\n")))
		}
		var log strings.Builder
		var prev Frag
		for i, fr := range frags {
			if fr.EndOffset <= prev.EndOffset || fr.EndOffset > fileSize || fr.EndDTS < prev.EndDTS {
				t.Fatalf("fragment %d %+v after %+v in a file of %d bytes", i, fr, prev, fileSize)
			}
			prev = fr
			log.WriteString(fr.line())
		}
		again := ParseFragLog([]byte(log.String()), fileSize)
		if len(again) != len(frags) {
			t.Fatalf("re-encoded log reads %d fragments, want %d", len(again), len(frags))
		}
		for i := range frags {
			if again[i].EndOffset != frags[i].EndOffset || again[i].EndDTS != frags[i].EndDTS || !again[i].EndWall.Equal(frags[i].EndWall) {
				t.Fatalf("fragment %d reads back as %+v, want %+v", i, again[i], frags[i])
			}
		}
	})
}
