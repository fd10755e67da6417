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
//
// A recording continued on another node (a camera that reconnected
// elsewhere within the grace window) has parts: part 0 is the first
// holder's, numbered and chained as above; each later holder writes part
// p >= 1 with its own chain from
//
//	genesis_p = SHA-256("bwc-archive-chain-v1-part" || recording_id || be32(p))
//
// and its own numbers: segments from PartSeq(p) = p<<40, init segments
// from PartInit(p) = p<<16. The parts never collide, whatever the previous
// holder still uploads (a killed node's spool, uploaded at its restart),
// and each part's chain is checked on its own; the recording_parts table
// lists the parts a verifier must find.
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

// partBits and initBits place a part's numbers.
const (
	partBits = 40
	initBits = 16
)

// MaxPart is the highest part number (init numbers are 32-bit).
const MaxPart = 1<<(31-initBits) - 1

// PartSeq is the first segment number of part p.
func PartSeq(p int) uint64 { return uint64(p) << partBits }

// PartInit is the first init segment number of part p.
func PartInit(p int) int { return p << initBits }

// PartOf is the part a segment number belongs to.
func PartOf(seq uint64) int { return int(seq >> partBits) }

// PartGenesis is the prev_chain of part p's first segment (Genesis for
// part 0).
func PartGenesis(recording uuid.UUID, p int) []byte {
	if p == 0 {
		return Genesis(recording)
	}
	h := sha256.New()
	h.Write([]byte("bwc-archive-chain-v1-part"))
	h.Write(recording[:])
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(p))
	h.Write(b[:])
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
