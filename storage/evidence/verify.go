package evidence

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/internal/chain"
)

// Problem is one integrity failure found by Verify.
type Problem struct {
	Recording uuid.UUID
	Seq       int64 // -1 when about an init segment or the whole recording
	Init      int   // -1 when about a media segment
	Key       string
	What      string
}

func (p Problem) String() string {
	switch {
	case p.Seq >= 0:
		return fmt.Sprintf("recording %s segment %06d (%s): %s", p.Recording, p.Seq, p.Key, p.What)
	case p.Init >= 0:
		return fmt.Sprintf("recording %s init segment %d (%s): %s", p.Recording, p.Init, p.Key, p.What)
	}
	return fmt.Sprintf("recording %s: %s", p.Recording, p.What)
}

// Report is the outcome of Verify.
type Report struct {
	Recordings, Inits, Segments int
	Bytes                       int64
	Problems                    []Problem
}

// OK is true when nothing is wrong.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Write prints the report.
func (r Report) Write(w io.Writer) {
	for _, p := range r.Problems {
		fmt.Fprintln(w, "BAD", p)
	}
	status := "OK"
	if !r.OK() {
		status = fmt.Sprintf("FAILED: %d problem(s)", len(r.Problems))
	}
	fmt.Fprintf(w, "verified %d recording(s), %d init segment(s), %d segment(s), %d bytes: %s\n",
		r.Recordings, r.Inits, r.Segments, r.Bytes, status)
}

// Verify checks recordings (all archived ones when recs is empty): every
// indexed object exists in the bucket, its bytes hash to the indexed
// SHA-256, each segment's prev_chain is the previous segment's chain and its
// chain recomputes from its fields (see package chain), the chain values
// stored with the objects agree with the index, and sequence numbers run
// from 0 without holes. The error is for failures to check (database or
// store unreachable), not for problems found.
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
	if len(inits) == 0 && len(segs) == 0 {
		r.Problems = append(r.Problems, Problem{Recording: rec, Seq: -1, Init: -1, What: "no archived segments in the index"})
		return nil
	}
	initSHA := map[int][]byte{}
	for _, in := range inits {
		r.Inits++
		initSHA[in.N] = in.SHA256
		bad := func(what string) {
			r.Problems = append(r.Problems, Problem{Recording: rec, Seq: -1, Init: in.N, Key: in.Key, What: what})
		}
		if _, what, err := checkObject(ctx, blobs, in.Key, in.SHA256, in.Size, r); err != nil {
			return err
		} else if what != "" {
			bad(what)
		}
	}
	return checkSegments(ctx, blobs, rec, segs, initSHA, r)
}

// checkSegments checks a recording's media segments in order: sequence,
// hash chain, objects.
func checkSegments(ctx context.Context, blobs *blob.Store, rec uuid.UUID, segs []index.Segment, initSHA map[int][]byte, r *Report) error {
	prev := chain.Genesis(rec)
	for i, s := range segs {
		r.Segments++
		bad := func(format string, args ...any) {
			r.Problems = append(r.Problems, Problem{Recording: rec, Seq: s.Seq, Init: -1, Key: s.Key, What: fmt.Sprintf(format, args...)})
		}
		want := int64(i)
		if i > 0 {
			want = segs[i-1].Seq + 1
		}
		if s.Seq != want {
			bad("sequence hole: segments %d..%d are missing from the index", want, s.Seq-1)
		}
		if i == 0 || s.Seq == want {
			if !bytes.Equal(s.PrevChain, prev) {
				bad("hash chain broken: prev_chain does not match the chain of the segment before")
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
		st, what, err := checkObject(ctx, blobs, s.Key, s.SHA256, s.Size, r)
		if err != nil {
			return err
		}
		if what != "" {
			bad("%s", what)
			continue
		}
		if c := st.UserMetadata["Bwc-Chain"]; c != hex.EncodeToString(s.Chain) {
			bad("chain value stored with the object (%.16s...) differs from the index", c)
		}
	}
	return nil
}

// checkObject downloads and hashes one object; what describes a problem.
func checkObject(ctx context.Context, blobs *blob.Store, key string, sum []byte, size int64, r *Report) (minio.ObjectInfo, string, error) {
	c, bucket := blobs.Client(), blobs.Bucket()
	st, err := c.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if code := minio.ToErrorResponse(err).Code; code == "NoSuchKey" || code == "NoSuchVersion" {
			return st, "object missing from the bucket", nil
		}
		return st, "", err
	}
	got, _, err := blobs.SHA256(ctx, key, "")
	if err != nil {
		return st, "", err
	}
	r.Bytes += st.Size
	if !bytes.Equal(got, sum) {
		return st, fmt.Sprintf("SHA-256 mismatch: object %x, index %x", got, sum), nil
	}
	if st.Size != size {
		return st, fmt.Sprintf("size %d, index says %d", st.Size, size), nil
	}
	return st, "", nil
}
