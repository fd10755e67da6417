package upload

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/tus/tusd/v2/pkg/filestore"
	"github.com/tus/tusd/v2/pkg/handler"
)

// hashingStore is tusd's file store with a SHA-256 computed as the bytes
// arrive: the hash state is saved (crypto/sha256's state is marshalable)
// after every chunk, so an upload resumed after a dropped link, or after a
// server restart, is hashed without reading the file again.
type hashingStore struct {
	filestore.FileStore
	dir string
}

var _ handler.DataStore = hashingStore{}

type hashingUpload struct {
	handler.Upload
	id, statePath, binPath string
}

func (s hashingStore) wrap(u handler.Upload, err error) (handler.Upload, error) {
	if err != nil {
		return nil, err
	}
	info, err := u.GetInfo(context.Background())
	if err != nil {
		return nil, err
	}
	return &hashingUpload{Upload: u, id: info.ID, statePath: filepath.Join(s.dir, info.ID+".sha256state"),
		binPath: filepath.Join(s.dir, info.ID)}, nil
}

func (s hashingStore) NewUpload(ctx context.Context, info handler.FileInfo) (handler.Upload, error) {
	return s.wrap(s.FileStore.NewUpload(ctx, info))
}

func (s hashingStore) GetUpload(ctx context.Context, id string) (handler.Upload, error) {
	return s.wrap(s.FileStore.GetUpload(ctx, id))
}

func (s hashingStore) AsTerminatableUpload(u handler.Upload) handler.TerminatableUpload {
	h := u.(*hashingUpload)
	os.Remove(h.statePath)
	return s.FileStore.AsTerminatableUpload(h.Upload)
}

// state loads the hash of the first offset bytes: from the saved state, or
// by hashing the file's prefix when the state is missing or behind (a
// crash between a write and its state save).
func (u *hashingUpload) state(offset int64) (hash.Hash, error) {
	h := sha256.New()
	if b, err := os.ReadFile(u.statePath); err == nil && len(b) > 8 && int64(binary.BigEndian.Uint64(b)) == offset {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(b[8:]); err == nil {
			return h, nil
		}
	}
	f, err := os.Open(u.binPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := io.CopyN(h, f, offset); err != nil {
		return nil, fmt.Errorf("rehash %s: %w", u.id, err)
	}
	return h, nil
}

func (u *hashingUpload) save(h hash.Hash, offset int64) error {
	st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	b := binary.BigEndian.AppendUint64(nil, uint64(offset))
	tmp := u.statePath + ".tmp"
	if err := os.WriteFile(tmp, append(b, st...), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, u.statePath)
}

// countingWriter counts what the hash has seen.
type countingWriter struct {
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return c.h.Write(p) }

func (u *hashingUpload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	h, err := u.state(offset)
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{h: h}
	n, err := u.Upload.WriteChunk(ctx, offset, io.TeeReader(src, cw))
	if cw.n == n {
		if serr := u.save(h, offset+n); serr != nil && err == nil {
			err = serr
		}
	} else {
		os.Remove(u.statePath) // hashed and written differ: rehash from the file next time
	}
	return n, err
}

// Sum is the SHA-256 of the complete upload (of size bytes).
func (u *hashingUpload) Sum(size int64) ([]byte, error) {
	h, err := u.state(size)
	if err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

var errNotHashing = errors.New("upload is not from the hashing store")
