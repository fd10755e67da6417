package upload

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes bounds a sanitised file name, in UTF-8 bytes (file systems
// allow 255; the package entry and the object key add a folder to it).
const MaxNameBytes = 200

// maxExtBytes bounds what counts as an extension (".mp4", ".MOV", ".3gp").
const maxExtBytes = 16

// maxOriginalBytes bounds the name as given, kept for the record;
// maxNotesBytes an upload's notes.
const (
	maxOriginalBytes = 1024
	maxNotesBytes    = 16 << 10
)

// SanitizeName is the one cleaning of an upload's file name, done once on
// arrival: what it returns is the name every later use sees (the index,
// the export package's entry name, a download's Content-Disposition); the
// name as given is kept apart (uploads.original_name). It
//   - cuts off directory parts (after the last / or \) and drops invalid
//     UTF-8;
//   - drops control, format (bidi overrides, zero-width), private-use and
//     unassigned characters, and replaces what Windows refuses in a file
//     name (< > : " | ? *) with _, so the package unzips anywhere;
//   - keeps letters of every script (证据.mp4 stays 证据.mp4), marks,
//     digits, punctuation and symbols; turns every kind of space into one
//     space, collapsing runs and trimming the ends;
//   - keeps an extension (a dot and 1 to 15 letters or digits); strips
//     leading dots and trailing dots and spaces of the rest, prefixes a
//     Windows device name (CON, NUL, COM1, ...) with _;
//   - caps the name at MaxNameBytes at a UTF-8 boundary, keeping the
//     extension;
//   - names what is left empty "upload" (plus the extension: ".mp4" becomes
//     "upload.mp4").
//
// The result is never empty, never ".", ".." or a path, and
// SanitizeName(SanitizeName(x)) == SanitizeName(x).
func SanitizeName(given string) string {
	// one pass is clean; cutting off dots and spaces (or bytes, at the
	// cap) can make a name whose next pass differs ("a .b." -> "a .b",
	// whose ".b" is an extension): pass again until stable (at most a few)
	s := sanitizeOnce(given)
	for range 4 {
		next := sanitizeOnce(s)
		if next == s {
			break
		}
		s = next
	}
	return s
}

func sanitizeOnce(given string) string {
	s := strings.ToValidUTF8(given, "")
	s = strings.TrimRight(s, `/\`)
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = strings.Map(nameRune, s)
	s = strings.TrimRight(strings.Join(strings.Fields(s), " "), ". ")
	stem, ext := splitExt(s)
	stem = strings.TrimLeft(stem, ". ")
	stem = strings.TrimRight(stem, ". ")
	if len(stem)+len(ext) > MaxNameBytes {
		stem = strings.TrimRight(cutUTF8(stem, MaxNameBytes-len(ext)), ". ")
	}
	if stem == "" {
		stem = "upload"
	}
	if reservedDevice(stem) {
		stem = "_" + stem
		if len(stem)+len(ext) > MaxNameBytes { // "con.<long>": the _ must fit too
			stem = strings.TrimRight(cutUTF8(stem, MaxNameBytes-len(ext)), ". ")
		}
	}
	return stem + ext
}

// nameRune maps one rune of a file name: spaces to ' ', what Windows
// refuses to '_', -1 (dropped) for what is not a visible character.
func nameRune(r rune) rune {
	switch {
	case r == '/' || r == '\\' || strings.ContainsRune(`<>:"|?*`, r):
		return '_'
	case unicode.IsSpace(r) || unicode.Is(unicode.Z, r):
		return ' '
	case unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S):
		return r
	default: // Cc, Cf, Co, Cs and unassigned code points
		return -1
	}
}

// splitExt splits off an extension: the last dot and 1 to 15 letters or
// digits after it. Anything else after the last dot is part of the stem.
func splitExt(s string) (stem, ext string) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 || len(s)-i < 2 || len(s)-i > maxExtBytes {
		return s, ""
	}
	for _, r := range s[i+1:] {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return s, ""
		}
	}
	return s[:i], s[i:]
}

// cutUTF8 cuts s to at most n bytes, at a rune boundary.
func cutUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// reservedDevice: Windows opens a device, not a file, for these names,
// whatever their extension.
func reservedDevice(stem string) bool {
	base, _, _ := strings.Cut(stem, ".")
	switch strings.ToUpper(strings.TrimRight(base, " ")) {
	case "CON", "PRN", "AUX", "NUL",
		"COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9":
		return true
	}
	return false
}

// storable is text as given made storable in PostgreSQL (which refuses NUL
// bytes and invalid UTF-8: each becomes U+FFFD), capped at max bytes at a
// rune boundary. For what is kept for the record only (the original name,
// notes), never for a name that is used.
func storable(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	return cutUTF8(s, max)
}
