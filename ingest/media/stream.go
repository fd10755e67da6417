package media

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRingSize is the capacity of a reader's ring, in frames (about 8 s
// of 30 fps video with audio).
const DefaultRingSize = 512

// StreamGOPFrames bounds a stream's cached group of pictures, in frames
// (video and audio); a longer group is not cached (DropLongGroup).
const StreamGOPFrames = 1024

// ErrClosed is returned by a Reader that was closed by its owner.
var ErrClosed = errors.New("media reader closed")

// Stream fans the frames of one live recording out to its readers. One
// goroutine writes (the ingest session); each reader has its own bounded
// ring, so a slow reader never stalls the writer or the other readers: a
// reader that falls a full ring behind loses what it has queued and resumes
// at the next video keyframe, and the loss is counted.
type Stream struct {
	mu      sync.Mutex
	info    Info
	readers map[*Reader]struct{}
	gop     *GOP[*Frame] // frames since the last video keyframe, for instant start
	closed  bool
	done    chan struct{}

	frames atomic.Uint64
	bytes  atomic.Uint64
}

// NewStream makes the fan-out of a recording.
func NewStream(info Info) *Stream {
	return &Stream{info: info, readers: map[*Reader]struct{}{}, done: make(chan struct{}),
		gop: NewGOP[*Frame](StreamGOPFrames, DropLongGroup)}
}

// Info returns the recording's current description.
func (s *Stream) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.info
	info.Tracks = append([]*Track(nil), s.info.Tracks...)
	return info
}

// SetTracks replaces the stream's tracks (on a reconnect, or a change of
// codec configuration).
func (s *Stream) SetTracks(tracks []*Track) {
	s.mu.Lock()
	s.info.Tracks = append([]*Track(nil), tracks...)
	s.mu.Unlock()
}

// SetOfficer rebinds the stream to an officer (after a late check-out).
func (s *Stream) SetOfficer(id [16]byte) {
	s.mu.Lock()
	s.info.OfficerID = id
	s.mu.Unlock()
}

// Stats returns the frames and payload bytes written so far.
func (s *Stream) Stats() (frames, bytes uint64) { return s.frames.Load(), s.bytes.Load() }

// Readers returns the number of open readers.
func (s *Stream) Readers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.readers)
}

// Done is closed when the stream ends.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Write hands a frame to every reader. It never blocks on a reader.
func (s *Stream) Write(f *Frame) {
	s.frames.Add(1)
	s.bytes.Add(uint64(f.Size()))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	video := f.Track != nil && f.Track.Kind == Video
	s.gop.Add(f, video, video && f.Key)
	for r := range s.readers {
		r.push(f)
	}
}

// Close ends the stream: readers drain what they have queued, then Read
// returns io.EOF.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.done)
	s.gop.Reset()
	for r := range s.readers {
		r.end()
	}
}

// ReaderOptions configure a reader.
type ReaderOptions struct {
	// Name identifies the reader in logs and metrics.
	Name string
	// Size is the ring capacity in frames (DefaultRingSize when 0).
	Size int
	// FromKeyframe starts the reader at the most recent video keyframe
	// (the cached group of pictures) instead of the next frame, so that a
	// live viewer sees a picture at once.
	FromKeyframe bool
	// Batch, for a reader to which tens of milliseconds do not matter (a
	// peer link), wakes it only when a video frame is queued or Batch
	// frames are: the audio frames between two pictures are read with the
	// next one instead of a wake-up each (an audio-only stream is read
	// Batch frames at a time). 0: woken by every frame.
	Batch int
	// Linger, for a reader to which a fraction of a second does not matter
	// at all (the archive: it keeps a fragment's frames in memory until the
	// fragment is complete anyway), wakes it only once the frames queued
	// span Linger of the recording's time (or the ring is half full, or a
	// timestamp jumps back as far): a few wake-ups a second instead of one
	// per picture. It takes precedence over Batch.
	Linger time.Duration
	// Want, if set, selects the tracks read: the frames of a track for
	// which it returns false are neither queued nor wake the reader (the
	// relay does not forward AAC audio without a transcoder). It is called
	// by the writer under the stream's lock and must not block.
	Want func(*Track) bool
	// OnDrop, if set, is called by the writer (under the stream's lock;
	// it must not block) each time the reader overflows, with the number of
	// frames lost. The archive uses it to raise an alarm.
	OnDrop func(lost int)
}

// Subscribe adds a reader. A reader of a closed stream reads io.EOF.
func (s *Stream) Subscribe(o ReaderOptions) *Reader {
	if o.Size <= 0 {
		o.Size = DefaultRingSize
	}
	r := &Reader{s: s, opts: o, ring: make([]*Frame, o.Size), notify: make(chan struct{}, 1)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		r.ended = true
		return r
	}
	if o.FromKeyframe {
		if gop := s.gop.Frames(); len(gop) > 0 {
			for _, f := range gop {
				r.push(f)
			}
		} else {
			r.waitKey = true
		}
	}
	s.readers[r] = struct{}{}
	return r
}

// Reader is one consumer's view of a stream: a bounded ring of frames.
type Reader struct {
	s      *Stream
	opts   ReaderOptions
	notify chan struct{}

	mu      sync.Mutex
	ring    []*Frame
	head, n int
	waitKey bool // skipping frames until the next video keyframe
	ended   bool // the stream closed
	closed  bool // the owner closed the reader
	dropped uint64
}

// push queues a frame; called by the writer with the stream's lock held.
func (r *Reader) push(f *Frame) {
	if r.opts.Want != nil && f.Track != nil && !r.opts.Want(f.Track) {
		return
	}
	r.mu.Lock()
	lost := 0
	if r.waitKey {
		if f.Track != nil && f.Track.Kind == Video && f.Key {
			r.waitKey = false
		} else {
			r.dropped++
			r.mu.Unlock()
			return
		}
	}
	if r.n == len(r.ring) {
		// Overflow: drop what is queued and resume at the next keyframe,
		// so the reader never decodes pictures whose references are gone.
		lost = r.n + 1
		r.dropped += uint64(lost)
		clear(r.ring)
		r.head, r.n = 0, 0
		if f.Track != nil && f.Track.Kind == Video && f.Key {
			lost--
			r.dropped--
			r.ring[0], r.n = f, 1
		} else {
			r.waitKey = true
		}
	} else {
		r.ring[(r.head+r.n)%len(r.ring)] = f
		r.n++
	}
	wake := r.wakes(f)
	r.mu.Unlock()
	if lost > 0 && r.opts.OnDrop != nil {
		r.opts.OnDrop(lost)
	}
	if !wake {
		return
	}
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// wakes reports whether the frame just queued, f, wakes the reader (see
// ReaderOptions); r.mu is held.
func (r *Reader) wakes(f *Frame) bool {
	switch {
	case r.opts.Linger > 0:
		if r.n == 0 { // after an overflow, waiting for a keyframe
			return false
		}
		// a span as long backwards is a timestamp jump (the interleaving of
		// audio and video moves it back a little, which is no reason)
		span := f.DTS - r.ring[r.head].DTS
		return span >= r.opts.Linger || span <= -r.opts.Linger || 2*r.n >= len(r.ring)
	case r.opts.Batch > 0:
		return r.n >= r.opts.Batch || f.Track != nil && f.Track.Kind == Video
	}
	return true
}

func (r *Reader) end() {
	r.mu.Lock()
	r.ended = true
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Read returns the next frame, waiting for one. It returns io.EOF once the
// stream has ended and the ring is drained, ErrClosed after Close, and the
// context's error when ctx ends first.
func (r *Reader) Read(ctx context.Context) (*Frame, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, ErrClosed
		}
		if r.n > 0 {
			f := r.ring[r.head]
			r.ring[r.head] = nil
			r.head = (r.head + 1) % len(r.ring)
			r.n--
			r.mu.Unlock()
			return f, nil
		}
		ended := r.ended
		r.mu.Unlock()
		if ended {
			return nil, io.EOF
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Len is the number of frames queued: what Read returns without waiting.
func (r *Reader) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Dropped is the number of frames this reader lost by falling behind.
func (r *Reader) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// Name is the reader's name.
func (r *Reader) Name() string { return r.opts.Name }

// Close detaches the reader from the stream.
func (r *Reader) Close() {
	r.s.mu.Lock()
	delete(r.s.readers, r)
	r.s.mu.Unlock()
	r.mu.Lock()
	r.closed = true
	clear(r.ring)
	r.n = 0
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}
