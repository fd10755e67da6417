// Package chain defines the archive's per-recording hash chain.
//
// Each media segment n of a recording carries prev_chain (the chain value
// of segment n-1) and chain, where
//
//	genesis = SHA-256("bwc-archive-chain-v1" || recording_id)          (16 raw UUID bytes)
//	chain_n = SHA-256(prev_chain || sha256_n || be64(seq_n) || be32(init_n) || init_sha256_n ||
//	                  be64(started_at_n in Unix µs) || be64(ended_at_n in Unix µs) || gap_n)
//
// with prev_chain of segment 0 = genesis, sha256_n the SHA-256 of the
// segment's bytes, init_sha256_n that of the init segment it needs, gap_n
// one byte (1 when the segment follows missing media, else 0). Times are
// whole microseconds (PostgreSQL's precision). Removing, reordering,
// inserting or changing a segment, its times, its gap flag or its init
// segment changes every later chain value.
package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// Size of a chain value.
const Size = sha256.Size

// Genesis is the prev_chain of a recording's first segment.
func Genesis(recording uuid.UUID) []byte {
	h := sha256.New()
	h.Write([]byte("bwc-archive-chain-v1"))
	h.Write(recording[:])
	return h.Sum(nil)
}

// Link is what the chain covers of one segment.
type Link struct {
	Seq        uint64
	SHA256     []byte
	Init       int
	InitSHA256 []byte
	Start, End time.Time
	Gap        bool
}

// Next is the chain value of a segment following prev.
func Next(prev []byte, l Link) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(l.SHA256)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], l.Seq)
	h.Write(b[:])
	binary.BigEndian.PutUint32(b[:4], uint32(l.Init))
	h.Write(b[:4])
	h.Write(l.InitSHA256)
	binary.BigEndian.PutUint64(b[:], uint64(l.Start.UnixMicro()))
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(l.End.UnixMicro()))
	h.Write(b[:])
	if l.Gap {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}
