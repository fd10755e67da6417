package evidence

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/internal/chain"
)

// Problem is one integrity failure found by Verify. In JSON (bwc verify
// -json) it also has "kind" (Kind).
type Problem struct {
	Recording uuid.UUID `json:"recording"`
	Seq       int64     `json:"seq"`  // -1 when about an init segment, the upload original or the whole recording
	Init      int       `json:"init"` // -1 when about a media segment or the upload original
	Upload    bool      `json:"-"`    // about the recording's upload original (kind "upload")
	Key       string    `json:"key,omitempty"`
	What      string    `json:"what"`
	Missing   *Span     `json:"missing,omitempty"`   // sequence numbers missing from the index (found against a seal or checkpoint)
	AuditSeq  int64     `json:"audit_seq,omitempty"` // the audit event a checkpoint anchors (kind "audit")
	About     string    `json:"-"`                   // "seal", "checkpoint" or "audit": found against a seal, a checkpoint or the audit trail (seals.go, auditrefs.go); Key names the object, if any
}

// Kind says what a problem is about: "segment", "init", "upload",
// "recording", or "seal", "checkpoint", "audit" (found against a seal or
// checkpoint).
func (p Problem) Kind() string {
	switch {
	case p.About != "":
		return p.About
	case p.Seq >= 0:
		return "segment"
	case p.Init >= 0:
		return "init"
	case p.Upload:
		return "upload"
	}
	return "recording"
}

// MarshalJSON adds "kind" to the fields.
func (p Problem) MarshalJSON() ([]byte, error) {
	type fields Problem // without this method
	return json.Marshal(struct {
		Kind string `json:"kind"`
		fields
	}{p.Kind(), fields(p)})
}

func (p Problem) String() string {
	switch {
	case p.About != "" && p.Recording == uuid.Nil:
		return fmt.Sprintf("%s (%s): %s", p.About, p.Key, p.What)
	case p.About != "" && p.Key == "":
		return fmt.Sprintf("recording %s (%s): %s", p.Recording, p.About, p.What)
	case p.About != "":
		return fmt.Sprintf("recording %s (%s %s): %s", p.Recording, p.About, p.Key, p.What)
	case p.Seq >= 0:
		return fmt.Sprintf("recording %s segment %06d (%s): %s", p.Recording, p.Seq, p.Key, p.What)
	case p.Init >= 0:
		return fmt.Sprintf("recording %s init segment %d (%s): %s", p.Recording, p.Init, p.Key, p.What)
	case p.Upload:
		return fmt.Sprintf("recording %s upload original (%s): %s", p.Recording, p.Key, p.What)
	}
	return fmt.Sprintf("recording %s: %s", p.Recording, p.What)
}

// Report is the outcome of Verify. In JSON it also has "ok" (OK), and
// "problems" is a list, empty when none.
type Report struct {
	Recordings int       `json:"recordings"`
	Inits      int       `json:"inits"`
	Segments   int       `json:"segments"`
	Uploads    int       `json:"uploads"`
	Bytes      int64     `json:"bytes"` // re-read and re-hashed
	Problems   []Problem `json:"problems"`
}

// OK is true when nothing is wrong.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// MarshalJSON adds "ok" to the fields.
func (r Report) MarshalJSON() ([]byte, error) {
	type fields Report // without this method
	if r.Problems == nil {
		r.Problems = []Problem{}
	}
	return json.Marshal(struct {
		OK bool `json:"ok"`
		fields
	}{r.OK(), fields(r)})
}

// Write prints the report.
func (r Report) Write(w io.Writer) {
	for _, p := range r.Problems {
		fmt.Fprintln(w, "BAD", p)
	}
	status := "OK"
	if !r.OK() {
		status = fmt.Sprintf("FAILED: %d problem(s)", len(r.Problems))
	}
	fmt.Fprintf(w, "verified %d recording(s), %d init segment(s), %d segment(s), %d upload(s), %d bytes: %s\n",
		r.Recordings, r.Inits, r.Segments, r.Uploads, r.Bytes, status)
}

// Verify checks recordings (all archived ones when recs is empty): every
// indexed object (init and media segments, an upload's original) exists in
// the bucket at its indexed version, the bytes of that version hash to the
// indexed SHA-256, the key's latest version is the indexed one and not a
// delete marker, each segment's prev_chain is the previous segment's chain and its
// chain recomputes from its fields (see package chain), the chain values
// stored with the objects agree with the index, and sequence numbers run
// from 0 without holes. The error is for failures to check (database or
// store unreachable), not for problems found. VerifyAnchored (seals.go)
// also checks the index against the signed seals and checkpoints.
func Verify(ctx context.Context, db *index.DB, blobs *blob.Store, recs []uuid.UUID) (Report, error) {
	var r Report
	if len(recs) == 0 {
		all, err := db.ArchivedRecordings(ctx)
		if err != nil {
			return r, err
		}
		recs = all
	}
	for _, rec := range recs {
		if err := verifyRecording(ctx, db, blobs, rec, &r); err != nil {
			return r, fmt.Errorf("verify %s: %w", rec, err)
		}
	}
	return r, nil
}

func verifyRecording(ctx context.Context, db *index.DB, blobs *blob.Store, rec uuid.UUID, r *Report) error {
	r.Recordings++
	inits, err := db.InitSegments(ctx, rec)
	if err != nil {
		return err
	}
	segs, err := db.Segments(ctx, rec)
	if err != nil {
		return err
	}
	up, err := db.UploadOfRecording(ctx, rec)
	switch {
	case err == nil:
		return checkUpload(ctx, blobs, rec, up, r)
	case !errors.Is(err, index.ErrNotFound):
		return err
	}
	if len(inits) == 0 && len(segs) == 0 {
		r.Problems = append(r.Problems, Problem{Recording: rec, Seq: -1, Init: -1, What: "no archived segments in the index"})
		return nil
	}
	initSHA := map[int][]byte{}
	for _, in := range inits {
		r.Inits++
		initSHA[in.N] = in.SHA256
		_, whats, err := checkObject(ctx, blobs, object{in.Key, in.VersionID, in.SHA256, in.Size}, r)
		if err != nil {
			return err
		}
		for _, what := range whats {
			r.Problems = append(r.Problems, Problem{Recording: rec, Seq: -1, Init: in.N, Key: in.Key, What: what})
		}
	}
	known := map[int]bool{0: true}
	parts, err := db.RecordingParts(ctx, rec)
	if err != nil {
		return err
	}
	for _, p := range parts {
		known[p.Part] = true
	}
	return checkSegments(ctx, blobs, rec, segs, initSHA, known, r)
}

// checkUpload checks an uploaded recording's original.
func checkUpload(ctx context.Context, blobs *blob.Store, rec uuid.UUID, u index.Upload, r *Report) error {
	r.Uploads++
	_, whats, err := checkObject(ctx, blobs, object{u.Key, u.VersionID, u.SHA256, u.Size}, r)
	for _, what := range whats {
		r.Problems = append(r.Problems, Problem{Recording: rec, Seq: -1, Init: -1, Upload: true, Key: u.Key, What: what})
	}
	return err
}

// checkSegments checks a recording's media segments in order: sequence,
// hash chain, objects. A recording continued on other nodes has parts,
// each numbered from its own base and chained from its own genesis
// (storage/internal/chain); every part after the first must be recorded.
func checkSegments(ctx context.Context, blobs *blob.Store, rec uuid.UUID, segs []index.Segment, initSHA map[int][]byte, known map[int]bool, r *Report) error {
	prev := chain.Genesis(rec)
	part := 0
	for i, s := range segs {
		r.Segments++
		bad := func(format string, args ...any) {
			r.Problems = append(r.Problems, Problem{Recording: rec, Seq: s.Seq, Init: -1, Key: s.Key, What: fmt.Sprintf(format, args...)})
		}
		newPart := false
		if p := chain.PartOf(uint64(s.Seq)); p != part || i == 0 {
			newPart = i > 0 || p > 0
			part, prev = p, chain.PartGenesis(rec, p)
			if !known[p] {
				bad("part %d of the recording is not recorded (recording_parts): segments of another node with no takeover", p)
			}
		}
		want := int64(chain.PartSeq(part))
		if i > 0 && !newPart {
			want = segs[i-1].Seq + 1
		}
		if s.Seq != want {
			bad("sequence hole: segments %d..%d are missing from the index", want, s.Seq-1)
		}
		if newPart || i == 0 || s.Seq == want {
			if !bytes.Equal(s.PrevChain, prev) {
				bad("hash chain broken: prev_chain does not match the chain of the segment before (part %d)", part)
			}
		}
		is, ok := initSHA[s.InitN]
		if !ok {
			bad("its init segment %d is not indexed", s.InitN)
		}
		link := chain.Link{Seq: uint64(s.Seq), SHA256: s.SHA256, Init: s.InitN, InitSHA256: is, Start: s.StartedAt, End: s.EndedAt, Gap: s.Gap}
		if got := chain.Next(s.PrevChain, link); !bytes.Equal(got, s.Chain) {
			bad("hash chain broken: the index row does not hash to its chain value (row edited?)")
		}
		prev = s.Chain
		st, whats, err := checkObject(ctx, blobs, object{s.Key, s.VersionID, s.SHA256, s.Size}, r)
		if err != nil {
			return err
		}
		for _, what := range whats {
			bad("%s", what)
		}
		if st.Key == "" { // the indexed version is not there to compare
			continue
		}
		if c := st.UserMetadata["Bwc-Chain"]; c != hex.EncodeToString(s.Chain) {
			bad("chain value stored with the object (%.16s...) differs from the index", c)
		}
	}
	return nil
}

// object is an indexed object: where it is and what it must hash to.
type object struct {
	key, version string // version "": indexed before version IDs (the current one)
	sha256       []byte
	size         int64
}

// checkObject checks one object's key (its latest version is the indexed
// one, not a delete marker), then downloads and hashes the indexed version;
// whats describe the problems. The object info is the indexed version's
// (zero when it is missing).
func checkObject(ctx context.Context, blobs *blob.Store, o object, r *Report) (minio.ObjectInfo, []string, error) {
	whats, err := checkLatest(ctx, blobs, o)
	if err != nil {
		return minio.ObjectInfo{}, nil, err
	}
	st, err := blobs.Client().StatObject(ctx, blobs.Bucket(), o.key, minio.StatObjectOptions{VersionID: o.version})
	if err != nil {
		code := minio.ToErrorResponse(err).Code
		switch {
		case code != "NoSuchKey" && code != "NoSuchVersion" && code != "MethodNotAllowed":
			return minio.ObjectInfo{}, nil, err
		case o.version == "":
			return minio.ObjectInfo{}, append(whats, "object missing from the bucket"), nil
		}
		return minio.ObjectInfo{}, append(whats, fmt.Sprintf("indexed version %s missing from the bucket (object missing)", o.version)), nil
	}
	got, n, err := blobs.SHA256(ctx, o.key, o.version)
	if err != nil {
		return st, nil, err
	}
	r.Bytes += n
	if !bytes.Equal(got, o.sha256) {
		return st, append(whats, fmt.Sprintf("SHA-256 mismatch: object %x, index %x", got, o.sha256)), nil
	}
	if n != o.size {
		return st, append(whats, fmt.Sprintf("size %d, index says %d", n, o.size)), nil
	}
	return st, whats, nil
}

// checkLatest names a key whose latest version is a delete marker, or not
// the indexed version (a version PUT over the key). Reads are pinned to
// the indexed version, so neither changes what replay serves; both are
// someone writing evidence keys who should not.
func checkLatest(ctx context.Context, blobs *blob.Store, o object) ([]string, error) {
	l, err := blobs.LatestVersion(ctx, o.key)
	switch {
	case err != nil:
		return nil, err
	case !l.Exists:
		return nil, nil // the object is missing: said by checkObject
	case l.DeleteMarker:
		return []string{fmt.Sprintf("latest version is a delete marker (%s): the key was deleted", l.VersionID)}, nil
	case o.version != "" && l.VersionID != o.version:
		return []string{fmt.Sprintf("latest version %s is not the indexed version %s: a new version was written over the key", l.VersionID, o.version)}, nil
	}
	return nil, nil
}
