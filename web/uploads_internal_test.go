package web

import (
	"mime"
	"testing"

	"github.com/bwcplatform/bwc/storage/index"
)

// TestUploadDisposition: a download names the file by its sanitised name,
// which a browser reads back exactly, Chinese included.
func TestUploadDisposition(t *testing.T) {
	for _, name := range []string{"clip.mp4", "证据 video_01_.mp4", "café (final) #3.MOV", "upload"} {
		d := uploadDisposition(index.Upload{Filename: name, OriginalName: "../" + name})
		kind, params, err := mime.ParseMediaType(d)
		if err != nil || kind != "inline" || params["filename"] != name {
			t.Errorf("%q: Content-Disposition %q reads back as %q %v (%v)", name, d, kind, params, err)
		}
	}
}
