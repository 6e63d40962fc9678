package chunkcache

import (
	"context"
	"slices"
	"sync"
	"testing"
)

// TestTouchOrder: Options.Touch sees every chunk a read touches, in order,
// the hook the block daemon's boot trace records from.
func TestTouchOrder(t *testing.T) {
	var mu sync.Mutex
	var got []int
	src := &memSource{data: make([]byte, 8*4096)}
	c, err := New(src, Options{Chunk: 4096, Touch: func(i int) { mu.Lock(); got = append(got, i); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6000)
	for _, off := range []int64{5 * 4096, 0} {
		if err := c.ReadAt(context.Background(), buf, off); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []int{5, 6, 0, 1}) {
		t.Fatalf("touched %v, want [5 6 0 1]", got)
	}
}
