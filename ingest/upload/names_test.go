package upload

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bwcplatform/bwc/storage/export"
)

// TestSanitizeName: the cleaning rules, one case each, with the nasty
// names uploads have been seen with.
func TestSanitizeName(t *testing.T) {
	long := strings.Repeat("证", 100) // 300 bytes
	cases := []struct {
		name, given, want string
	}{
		{"plain", "clip.mp4", "clip.mp4"},
		{"Chinese survives, Windows-refused characters replaced", "../证据 video:01?.mp4", "证据 video_01_.mp4"},
		{"Unix directories", "/etc/passwd", "passwd"},
		{"Windows directories", `C:\Users\wu\Videos\clip.MOV`, "clip.MOV"},
		{"mixed separators and dot-dot", `..\../..\evidence.mp4`, "evidence.mp4"},
		{"trailing separator", "videos/clip.mp4/", "clip.mp4"},
		{"only separators", `/\/`, "upload"},
		{"empty", "", "upload"},
		{"dot", ".", "upload"},
		{"dot-dot", "..", "upload"},
		{"only an extension", ".mp4", "upload.mp4"},
		{"leading dots", "...hidden clip.mp4", "hidden clip.mp4"},
		{"trailing dots and spaces", "clip. . .mp4", "clip.mp4"},
		{"no extension, trailing dot", "clip.", "clip"},
		{"control characters", "cl\x00ip\x07\x1b[31m.mp4", "clip[31m.mp4"},
		{"newlines and tabs are spaces, collapsed", "a\r\n\tb   c .mp4", "a b c.mp4"},
		{"bidi override (fake extension)", "clip\u202Egpj.mp4", "clipgpj.mp4"},
		{"zero-width and BOM", "\ufeffcl\u200bip\u2060.mp4", "clip.mp4"},
		{"ideographic and no-break spaces", "证据\u3000\u00a0视频.mp4", "证据 视频.mp4"},
		{"invalid UTF-8 dropped", "clip\xff\xfe.mp4", "clip.mp4"},
		{"private use dropped", "clip\ue000.mp4", "clip.mp4"},
		{"Windows refused characters", `a<b>c:d"e|f?g*h.mp4`, "a_b_c_d_e_f_g_h.mp4"},
		{"Windows device name", "CON.mp4", "_CON.mp4"},
		{"Windows device name, lower case, two dots", "nul.tar.gz", "_nul.tar.gz"},
		{"not a device name", "CONSOLE.mp4", "CONSOLE.mp4"},
		{"extension with a space is not one", "clip.m p4", "clip.m p4"},
		{"too long an extension is not one", "clip." + strings.Repeat("x", 20), "clip." + strings.Repeat("x", 20)},
		{"marks and emoji kept", "café 🎥 #3 (final).mp4", "café 🎥 #3 (final).mp4"},
		{"Arabic and Cyrillic", "دليل_видео.mp4", "دليل_видео.mp4"},
		{"long: cut at a rune boundary, extension kept", long + ".mp4", strings.Repeat("证", (MaxNameBytes-4)/3) + ".mp4"},
		{"long without extension", long, strings.Repeat("证", MaxNameBytes/3)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := SanitizeName(c.given)
			if got != c.want {
				t.Fatalf("SanitizeName(%q) = %q, want %q", c.given, got, c.want)
			}
			checkCleanName(t, c.given, got)
		})
	}
}

// checkCleanName asserts what every sanitised name must be, whatever was
// given: bounded valid UTF-8 of visible characters, no path, no leading
// dot, stable, and accepted as an entry name by the export package.
func checkCleanName(t *testing.T, given, got string) {
	t.Helper()
	switch {
	case got == "" || got == "." || got == "..":
		t.Fatalf("SanitizeName(%q) = %q", given, got)
	case !utf8.ValidString(got):
		t.Fatalf("SanitizeName(%q) = %q: invalid UTF-8", given, got)
	case len(got) > MaxNameBytes:
		t.Fatalf("SanitizeName(%q) = %d bytes, more than %d", given, len(got), MaxNameBytes)
	case strings.ContainsAny(got, `/\<>:"|?*`):
		t.Fatalf("SanitizeName(%q) = %q: a separator or a character Windows refuses", given, got)
	case strings.HasPrefix(got, ".") || strings.HasPrefix(got, " ") || strings.HasSuffix(got, " ") || strings.HasSuffix(got, ".") ||
		strings.Contains(got, "  "):
		t.Fatalf("SanitizeName(%q) = %q: leading dot, or spaces not collapsed", given, got)
	case !filepath.IsLocal(got):
		t.Fatalf("SanitizeName(%q) = %q: not a local file name", given, got)
	}
	for _, r := range got {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs) {
			t.Fatalf("SanitizeName(%q) = %q: holds %U", given, got, r)
		}
	}
	if again := SanitizeName(got); again != got {
		t.Fatalf("SanitizeName is not stable: %q -> %q -> %q", given, got, again)
	}
	// the export path names an upload's file uploads/<id>/<name>
	w := export.NewWriter(&bytes.Buffer{}, "x", "test", time.Unix(0, 0))
	if err := w.Add(export.File{Name: "uploads/0190c1c2-0000-7000-8000-000000000000/" + got, Kind: "upload"}, strings.NewReader("")); err != nil {
		t.Fatalf("SanitizeName(%q) = %q: the package refuses it: %v", given, got, err)
	}
}

// FuzzSanitizeName: whatever name a client sends, the sanitised one is
// clean, stable and accepted by the export package.
func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"clip.mp4", "../证据 video:01?.mp4", `C:\a\b.MOV`, "..", ".mp4", "con.mp4", "a\u202Eb.mp4",
		"\x00", strings.Repeat("é", 150) + ".mp4", "a. . .", " \u3000 ", "x.\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, given string) {
		checkCleanName(t, given, SanitizeName(given))
	})
}

// TestStorable: the name as given is kept as it came, made storable.
func TestStorable(t *testing.T) {
	cases := []struct{ given, want string }{
		{"../证据 video:01?.mp4", "../证据 video:01?.mp4"},
		{"a\x00b\xffc", "a\uFFFDb\uFFFDc"},
		{strings.Repeat("证", 400), strings.Repeat("证", maxOriginalBytes/3)},
	}
	for _, c := range cases {
		if got := storable(c.given, maxOriginalBytes); got != c.want {
			t.Errorf("storable(%q) = %q, want %q", c.given, got, c.want)
		}
	}
}
