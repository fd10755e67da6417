package index_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestMigrationKeepsOriginalUploadNames: migration 012 keeps every upload's
// stored name as its original_name and makes the legacy names safe for the
// packages (path separators, characters Windows refuses, control
// characters, leading dots); a name that was clean stays as it was. Run
// again after a rollback to 9, it changes nothing.
func TestMigrationKeepsOriginalUploadNames(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	cases := []struct{ stored, want string }{
		{"clip.mp4", "clip.mp4"},
		{"证据 视频.mp4", "证据 视频.mp4"},
		{`C:\Users\wu\clip<1>.MOV`, "C__Users_wu_clip_1_.MOV"},
		{"..", "upload"},
		{".hidden\x01.mp4", "hidden_.mp4"},
		{"a\u202Eb.mp4", "a_b.mp4"},
	}
	for i, c := range cases {
		sum := sha256.Sum256([]byte(c.stored))
		if _, err := db.CreateUpload(ctx, index.Recording{}, index.Upload{TusID: c.stored + "-tus", UploadedBy: "wu", Filename: c.stored,
			Size: int64(i + 1), SHA256: sum[:], Key: "uploads/k/" + string(rune('a'+i)), Container: "mp4",
			RecordedAt: time.Now().Add(-time.Hour), RecordedAtSource: "upload"}, "wu"); err != nil {
			t.Fatalf("%q: %v", c.stored, err)
		}
	}
	migrate := func(sqls ...string) { t.Helper(); remigrate(t, db, sqls...) }
	check := func(when string) {
		t.Helper()
		ups, err := db.Uploads(ctx, "")
		if err != nil || len(ups) != len(cases) {
			t.Fatalf("%s: uploads %d, %v", when, len(ups), err)
		}
		for _, u := range ups {
			found := false
			for _, c := range cases {
				if u.OriginalName == c.stored {
					found = true
					if u.Filename != c.want {
						t.Errorf("%s: legacy name %q became %q, want %q", when, c.stored, u.Filename, c.want)
					}
				}
			}
			if !found {
				t.Errorf("%s: original_name %q is none of the stored names", when, u.OriginalName)
			}
		}
	}
	// the schema before 012, with the names as rows held them then
	migrate(`ALTER TABLE uploads DROP COLUMN original_name`, `UPDATE schema_version SET version = 11`)
	check("after 012")
	// a rollback to 9 and migrating again changes nothing more
	migrate(`DROP TABLE seals`, `ALTER TABLE recordings DROP COLUMN sealed`, `UPDATE schema_version SET version = 9`)
	check("migrated again")
}
