package media

// GOP caches the current group of pictures (the frames since the last
// video keyframe) so that a new viewer starts at once, at that keyframe.
// It is the one GOP cache of the platform: media.Stream keeps one of
// Frames for its readers, the relay's feed one of packetized frames.
//
// At most Limit frames are kept. What happens to a longer group is the
// user's choice: DropLongGroup empties the cache until the next keyframe
// (a new viewer then waits for it); KeepGroupHead keeps the group's first
// Limit frames. A GOP is not safe for concurrent use: its user locks.
type GOP[T any] struct {
	limit    int
	keepHead bool
	frames   []T
}

// What a GOP does with a group longer than its limit.
const (
	DropLongGroup = false // empty the cache until the next keyframe
	KeepGroupHead = true  // keep the group's first frames
)

// NewGOP makes a cache of at most limit frames.
func NewGOP[T any](limit int, keepHead bool) *GOP[T] {
	return &GOP[T]{limit: limit, keepHead: keepHead}
}

// Add records a frame: a video keyframe starts a new group; other video
// frames, and audio that goes with the cached pictures, extend it.
func (g *GOP[T]) Add(f T, video, key bool) {
	switch {
	case video && key:
		g.Reset()
		if g.limit > 0 {
			g.frames = append(g.frames, f)
		}
	case len(g.frames) < g.limit && (len(g.frames) > 0 || (video && g.keepHead)):
		g.frames = append(g.frames, f)
	case video && !g.keepHead:
		g.Reset() // too long a group: none until the next keyframe
	}
}

// Frames returns the cached group (nil or empty when there is none). The
// slice is the cache's own: read it under the user's lock.
func (g *GOP[T]) Frames() []T { return g.frames }

// Reset empties the cache.
func (g *GOP[T]) Reset() {
	clear(g.frames)
	g.frames = g.frames[:0]
}
