package media

import (
	"slices"
	"testing"
)

// TestGOP: the cache holds the frames since the last keyframe; a group
// longer than the limit is dropped until the next keyframe, or keeps its
// head; audio only extends a cached group.
func TestGOP(t *testing.T) {
	type in struct {
		f          int
		video, key bool
	}
	v := func(f int) in { return in{f, true, false} }
	k := func(f int) in { return in{f, true, true} }
	a := func(f int) in { return in{f, false, false} }
	for _, tc := range []struct {
		name     string
		keepHead bool
		adds     []in
		want     []int
	}{
		{"nothing before the first keyframe", DropLongGroup, []in{v(1), a(2)}, nil},
		{"a keyframe starts the group", DropLongGroup, []in{v(1), k(2), a(3), v(4)}, []int{2, 3, 4}},
		{"a new keyframe restarts it", DropLongGroup, []in{k(1), v(2), k(3)}, []int{3}},
		{"too long a group is dropped", DropLongGroup, []in{k(1), v(2), v(3), v(4)}, nil},
		{"audio beyond the limit is not kept", DropLongGroup, []in{k(1), v(2), v(3), a(4)}, []int{1, 2, 3}},
		{"head kept", KeepGroupHead, []in{k(1), v(2), v(3), v(4), v(5)}, []int{1, 2, 3}},
		{"head kept without a keyframe", KeepGroupHead, []in{v(1), v(2)}, []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGOP[int](3, tc.keepHead)
			for _, x := range tc.adds {
				g.Add(x.f, x.video, x.key)
			}
			if got := g.Frames(); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("frames = %v, want %v", got, tc.want)
			}
		})
	}
}
