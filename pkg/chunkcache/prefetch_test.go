package chunkcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/testimg"
	"github.com/streamroot/streamroot/pkg/httpsrc"
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

// rangeServer is an httptest server of img that logs, in order, the chunk
// each range request starts at ("start N") and holds the chunks in hold
// until their channel closes.
type rangeServer struct {
	chunk int64
	mu    sync.Mutex
	log   []string
	hold  map[int]chan struct{}
}

func (s *rangeServer) note(e string) {
	s.mu.Lock()
	s.log = append(s.log, e)
	s.mu.Unlock()
}

func (s *rangeServer) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// starts is the chunks requested so far, in order.
func (s *rangeServer) starts() []int {
	var out []int
	for _, e := range s.events() {
		var i int
		if _, err := fmt.Sscanf(e, "start %d", &i); err == nil {
			out = append(out, i)
		}
	}
	return out
}

func serveImage(t *testing.T, img []byte, chunk int64, o Options) (*Cache, *rangeServer) {
	t.Helper()
	rs := &rangeServer{chunk: chunk, hold: map[int]chan struct{}{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var from int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &from); err == nil && r.Method == http.MethodGet {
			i := int(from / chunk)
			rs.note(fmt.Sprintf("start %d", i))
			rs.mu.Lock()
			h := rs.hold[i]
			rs.mu.Unlock()
			if h != nil {
				select {
				case <-h:
				case <-r.Context().Done():
					return
				}
			}
		}
		http.ServeContent(w, r, "img", time.Unix(1, 0), bytes.NewReader(img))
	}))
	t.Cleanup(srv.Close)
	src, err := httpsrc.Open(context.Background(), srv.URL+"/img", httpsrc.Options{Stall: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	o.Chunk, o.ReadTimeout = chunk, 20*time.Second
	c, err := New(httpsrc.Device{Source: src}, o)
	if err != nil {
		t.Fatal(err)
	}
	rs.mu.Lock()
	rs.log = nil // what Open asked is not the cache's
	rs.mu.Unlock()
	return c, rs
}

// The list is fetched first, in its order, Parallel chunks at a time, and
// nothing else is fetched.
func TestPrefetchOrderAndParallel(t *testing.T) {
	const chunk = 64 << 10
	img := testimg.Random(32*chunk, 7)
	list := []int{20, 3, 17, 9, 5, 28}
	c, rs := serveImage(t, img, chunk, Options{Parallel: 3})
	gate := make(chan struct{})
	for _, i := range list[:3] {
		rs.hold[i] = gate
	}
	done := make(chan PrefetchResult, 1)
	go func() { done <- c.Prefetch(context.Background(), list) }()
	// The first three are in flight together, held by the server: the
	// workers run in parallel.
	waitFor(t, "three prefetches in flight at once", func() bool { return len(rs.starts()) == 3 })
	if got := rs.starts(); !sameSet(got, list[:3]) {
		t.Fatalf("first fetches %v, want the list's first three %v", got, list[:3])
	}
	close(gate)
	r := <-done
	if got := rs.starts(); !sameSet(got, list) || !sameSet(got[3:], list[3:]) {
		t.Fatalf("fetched %v, want the list %v in order of its Parallel-wide batches", got, list)
	}
	if r.Listed != 6 || r.Planned != 6 || r.Fetched != 6 || r.Failed != 0 {
		t.Fatalf("result %+v", r)
	}
	for _, i := range list {
		buf := make([]byte, chunk)
		if err := c.ReadAt(context.Background(), buf, int64(i)*chunk); err != nil || !bytes.Equal(buf, img[i*chunk:(i+1)*chunk]) {
			t.Fatalf("chunk %d after prefetch: %v", i, err)
		}
	}
	if got := rs.starts(); len(got) != len(list) {
		t.Fatalf("reading the prefetched chunks fetched again: %v", got)
	}
}

func sameSet(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// A kernel read issued during the prefetch reaches the server while a
// prefetch chunk is still in flight, and no further prefetch chunk starts
// until it has its answer.
func TestPrefetchYieldsToDemand(t *testing.T) {
	const chunk = 64 << 10
	img := testimg.Random(40*chunk, 8)
	list := []int{10, 11, 12, 13, 14}
	const demand = 30
	c, rs := serveImage(t, img, chunk, Options{Parallel: 1})
	first, held := make(chan struct{}), make(chan struct{})
	rs.hold[list[0]], rs.hold[demand] = first, held
	done := make(chan PrefetchResult, 1)
	go func() { done <- c.Prefetch(context.Background(), list) }()
	waitFor(t, "the first prefetch", func() bool { return slices.Contains(rs.starts(), list[0]) })
	readDone := make(chan error, 1)
	go func() {
		p := make([]byte, 4096)
		readDone <- c.ReadAt(context.Background(), p, demand*chunk)
	}()
	// Not queued behind the prefetch: the read is at the server while the
	// prefetch's chunk is still held there.
	waitFor(t, "the demand read at the server", func() bool { return slices.Contains(rs.starts(), demand) && c.waiting.Load() > 0 })
	close(first)
	time.Sleep(100 * time.Millisecond) // room for the worker to (wrongly) start the next chunk
	rs.note("demand released")
	close(held)
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Fetched != len(list) {
		t.Fatalf("result %+v", r)
	}
	ev := rs.events()
	next := slices.Index(ev, fmt.Sprintf("start %d", list[1]))
	if rel := slices.Index(ev, "demand released"); next < rel {
		t.Fatalf("prefetch chunk %d started while a kernel read waited for the server: %v", list[1], ev)
	}
}

// A prefetched chunk that fails verification is refused like any other:
// counted as failed, never served.
func TestPrefetchRefusesCorruptChunk(t *testing.T) {
	const chunk = 64 << 10
	img := testimg.Random(8*chunk, 9)
	served := slices.Clone(img)
	served[5*chunk+100] ^= 0xff
	c, _ := serveImage(t, served, chunk, Options{Verify: verifyAgainst(img, chunk)})
	r := c.Prefetch(context.Background(), []int{5, 6})
	if r.Fetched != 1 || r.Failed != 1 {
		t.Fatalf("result %+v, want chunk 6 fetched and chunk 5 failed", r)
	}
	if c.Stats().VerifyFailures != 1 {
		t.Fatalf("stats %+v", c.Stats())
	}
	if err := c.ReadAt(context.Background(), make([]byte, 4096), 5*chunk); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading the corrupt chunk: %v, want ErrCorrupt", err)
	}
}

// The list is cut to PrefetchLimit: the image's chunks in stream mode
// (entries past the image and repeats ignored), half the byte bound in
// lazy mode, whose cache never holds more than the bound.
func TestPrefetchBound(t *testing.T) {
	const chunk = 64 << 10
	img := testimg.Random(16*chunk, 10)
	for _, tc := range []struct {
		name         string
		o            Options
		list         []int
		planned      int
		fetchedFirst []int
	}{
		{"stream", Options{}, []int{3, 99, 3, 1, -1, 15}, 3, []int{3, 1, 15}},
		{"lazy", Options{Bounded: true, CacheBytes: 8 * chunk}, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, 4, []int{9, 8, 7, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rs := serveImage(t, img, chunk, tc.o)
			r := c.Prefetch(context.Background(), tc.list)
			if r.Planned != tc.planned || r.Fetched != tc.planned || r.Listed != len(tc.list) {
				t.Fatalf("result %+v, want %d planned and fetched", r, tc.planned)
			}
			if got := rs.starts(); !sameSet(got, tc.fetchedFirst) {
				t.Fatalf("fetched %v, want %v", got, tc.fetchedFirst)
			}
			if st := c.Stats(); tc.o.Bounded && st.PeakCacheBytes > tc.o.CacheBytes {
				t.Fatalf("lazy cache held %d bytes, bound %d", st.PeakCacheBytes, tc.o.CacheBytes)
			}
		})
	}
}

// The background fill after a prefetch fetches only what is still
// missing: every chunk reaches the server once.
func TestFillSkipsPrefetched(t *testing.T) {
	const chunk = 64 << 10
	img := testimg.Random(12*chunk, 11)
	c, rs := serveImage(t, img, chunk, Options{Parallel: 2})
	if r := c.Prefetch(context.Background(), []int{7, 2, 9}); r.Fetched != 3 {
		t.Fatalf("result %+v", r)
	}
	if err := c.Fill(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	got := rs.starts()
	if !sameSet(got[:3], []int{7, 2, 9}) {
		t.Fatalf("prefetch fetched %v first", got[:3])
	}
	if !sameSet(got, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Fatalf("fetched %v: some chunk twice or missing", got)
	}
}
