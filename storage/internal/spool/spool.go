// Package spool is the archive's local, durable staging area: every init
// and media segment is written and fsynced here before anything else, and
// stays until the uploader has it in MinIO and PostgreSQL.
//
// Layout, one directory per recording (<root>/<recording-id>/):
//
//	rec.json         the recording (id, start time: it names the object keys)
//	state.json       next sequence and init numbers, last chain value
//	init-<n>.mp4     an init segment, written whole (tmp, fsync, rename)
//	init-<n>.json    its metadata: present = ready to upload
//	<seq>.m4s        a media segment, grown one fragment at a time, each fsynced
//	<seq>.frags      one line per durable fragment ("F end-offset end-dts-ns end-wall-µs")
//	<seq>.open.json  the open segment's header (start, gap, init, prev chain)
//	<seq>.json       its metadata once sealed: present = ready to upload
//	ended            the recording ended: remove the directory once empty
//
// Metadata and state files are replaced atomically (tmp, fsync, rename,
// fsync of the directory). After a crash, Recover seals an open segment from
// the fragments its .frags log lists (at most the fragment being written is
// lost) and reconciles state.json with the sealed metadata.
package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/bwcplatform/bwc/storage/durable"
)

// ErrBadMeta: a metadata file is not what the archive writes.
var ErrBadMeta = errors.New("bad spool metadata")

func writeJSON(dir, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return durable.WriteAtomic(dir, name, b, 0o640)
}

// segName is the name of segment seq's files without their extension;
// segPath their path.
func segName(seq uint64) string             { return fmt.Sprintf("%06d", seq) }
func segPath(dir string, seq uint64) string { return filepath.Join(dir, segName(seq)) }
