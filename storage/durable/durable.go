// Package durable holds the platform's one way of making a local file
// change survive a crash (kill -9, power loss): the spool of the archive,
// the ingest's journal and the upload service's completion markers all
// write through it.
package durable

import (
	"os"
	"path/filepath"
)

// WriteAtomic replaces dir/name with data durably: a temporary file is
// written and fsynced, renamed over the name, and the folder fsynced. A
// crash leaves either the old contents or the new, never a mix.
func WriteAtomic(dir, name string, data []byte, perm os.FileMode) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a folder, making creations, renames and removals in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// TruncateSync cuts a file to size and fsyncs it (dropping a torn tail).
func TruncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}
