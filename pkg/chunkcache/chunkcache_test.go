package chunkcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/streamroot/streamroot/internal/testimg"
)

type memSource struct {
	data  []byte
	reads atomic.Int64
	down  atomic.Bool
}

func (m *memSource) Size() int64 { return int64(len(m.data)) }
func (m *memSource) ReadAt(ctx context.Context, p []byte, off int64) error {
	if m.down.Load() {
		<-ctx.Done() // a dead server: nothing comes back
		return ctx.Err()
	}
	m.reads.Add(1)
	copy(p, m.data[off:])
	return nil
}

// modeName names a cache configuration after the fetch mode that uses it.
func modeName(bounded bool) string {
	if bounded {
		return "lazy"
	}
	return "stream"
}

func TestStreamReadThenFill(t *testing.T) {
	src := &memSource{data: testimg.Random(10<<20+1000, 5)}
	c, err := New(src, Options{Chunk: 1 << 20, Parallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	if c.Size() != (10<<20+1000+4095)&^4095 {
		t.Fatalf("device size %d", c.Size())
	}
	for _, tc := range []struct{ off, n int64 }{{0, 4096}, {(1 << 20) - 10, 20}, {10 << 20, 1000}, {5 << 20, 2 << 20}} {
		p := make([]byte, tc.n)
		if err := c.ReadAt(context.Background(), p, tc.off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, src.data[tc.off:tc.off+tc.n]) {
			t.Fatalf("read %d+%d: wrong data", tc.off, tc.n)
		}
	}
	// The zero tail past the image, inside the last device block.
	tail := make([]byte, 4096)
	tail[0] = 1
	if err := c.ReadAt(context.Background(), tail, c.Size()-4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tail[:1000+(10<<20)-int(c.Size()-4096)], src.data[c.Size()-4096:]) || tail[4095] != 0 {
		t.Fatal("tail block wrong")
	}
	if s := c.Stats(); s.DemandFetches != 5 || s.FillFetches != 0 {
		t.Fatalf("before fill: %+v", s)
	}
	if err := c.Fill(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !c.Complete() || c.Stats().FillFetches != 6 {
		t.Fatalf("after fill: %+v", c.Stats())
	}
	// The server can go: everything is local.
	src.down.Store(true)
	h := sha256.New()
	if _, err := io.Copy(h, c.Reader()); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(src.data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("local image differs")
	}
}

func TestLazyBoundedAndTimeout(t *testing.T) {
	src := &memSource{data: testimg.Random(32<<20, 5)}
	// A read timeout far above what a loaded host needs for a 1 MiB copy:
	// this half is about the bound, not the timeout.
	c, err := New(src, Options{Bounded: true, Chunk: 1 << 20, CacheChunks: 4, ReadTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4096)
	for i := range 20 {
		if err := c.ReadAt(context.Background(), p, int64(i)<<20); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // let the last readahead land
	c.mu.Lock()
	n := len(c.lazyMem)
	c.mu.Unlock()
	if n > 4 {
		t.Fatalf("lazy cache holds %d chunks, bound is 4", n)
	}
	if err := c.Fill(context.Background(), nil); err == nil {
		t.Fatal("lazy Fill succeeded")
	}

	// With the server gone, an uncached read fails at the read timeout, not
	// at the source's own (here: never).
	down := &memSource{data: testimg.Random(4<<20, 5)}
	down.down.Store(true)
	c, err = New(down, Options{Bounded: true, Chunk: 1 << 20, CacheChunks: 4, ReadTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.ReadAt(context.Background(), p, 3<<20)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// Generous for a loaded host; what matters is that the 300 ms bound,
	// not the source, ended the read.
	if d := time.Since(start); d < 300*time.Millisecond || d > 10*time.Second {
		t.Fatalf("failed after %s, bound is 300ms", d)
	}
}

func TestVerifyRefusesBadChunk(t *testing.T) {
	src := &memSource{data: testimg.Random(4<<20, 5)}
	bad := errors.New("sha256 mismatch")
	c, err := New(src, Options{Chunk: 1 << 20, Verify: func(i int, _ []byte) error {
		if i == 2 {
			return bad
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	if err := c.ReadAt(context.Background(), p, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadAt(context.Background(), p, 2<<20+5); !errors.Is(err, bad) {
		t.Fatalf("corrupt chunk served: err = %v", err)
	}
	// Known bad: the next read fails at once, without a new fetch.
	reads := src.reads.Load()
	if err := c.ReadAt(context.Background(), p, 2<<20+9); !errors.Is(err, bad) || src.reads.Load() != reads {
		t.Fatalf("second read of the bad chunk: err %v, fetches %d→%d", err, reads, src.reads.Load())
	}
	if c.Stats().VerifyFailures != 1 {
		t.Fatalf("%+v", c.Stats())
	}
}

// changingSource serves data until changed is set, then answers every read
// as a server whose file was replaced does.
type changingSource struct {
	memSource
	changed atomic.Bool
}

var errChanged = errors.New("image changed on the server")

func (s *changingSource) ReadAt(ctx context.Context, p []byte, off int64) error {
	if s.changed.Load() {
		s.reads.Add(1)
		return errChanged
	}
	return s.memSource.ReadAt(ctx, p, off)
}

// A permanent source error (the image changed) stops all fetching at once:
// the fill returns instead of retrying forever, chunks already local are
// still served, every other read fails fast with that error, and the
// caller hears of it once, before any reader does.
func TestPermanentErrorStopsFetching(t *testing.T) {
	for _, bounded := range []bool{false, true} {
		t.Run(modeName(bounded), func(t *testing.T) {
			src := &changingSource{memSource: memSource{data: testimg.Random(8<<20, 5)}}
			var reported atomic.Int32
			c, err := New(src, Options{Bounded: bounded, Chunk: 1 << 20, Parallel: 2, ReadTimeout: time.Minute,
				Permanent:   func(err error) bool { return errors.Is(err, errChanged) },
				OnPermanent: func(error) { reported.Add(1) },
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// The last chunk: lazy mode's readahead has nothing after it
			// to fetch behind the test's back.
			last := int64(7 << 20)
			if err := c.ReadAt(ctx, make([]byte, 4096), last); err != nil {
				t.Fatal(err)
			}
			src.changed.Store(true)
			start := time.Now()
			if err := c.ReadAt(ctx, make([]byte, 4096), 5<<20); !errors.Is(err, errChanged) {
				t.Fatalf("read after the change: %v, want the permanent error", err)
			}
			if reported.Load() != 1 {
				t.Fatalf("OnPermanent called %d times before the reader saw the error, want 1", reported.Load())
			}
			readsAfter := src.reads.Load()
			for _, off := range []int64{0, 3 << 20, 6 << 20} {
				if err := c.ReadAt(ctx, make([]byte, 4096), off); !errors.Is(err, errChanged) {
					t.Fatalf("read at %d: %v, want the permanent error", off, err)
				}
			}
			if src.reads.Load() != readsAfter {
				t.Errorf("the source was asked %d more times after it failed for good", src.reads.Load()-readsAfter)
			}
			again := make([]byte, 4096)
			if err := c.ReadAt(ctx, again, last); err != nil || !bytes.Equal(again, src.data[last:last+4096]) {
				t.Errorf("the chunk fetched before the change: err %v, same data %v", err, bytes.Equal(again, src.data[last:last+4096]))
			}
			if !bounded {
				if err := c.Fill(ctx, nil); !errors.Is(err, errChanged) {
					t.Errorf("fill: %v, want the permanent error", err)
				}
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %s: the permanent error was retried", time.Since(start))
			}
			if !errors.Is(c.Err(), errChanged) || reported.Load() != 1 {
				t.Errorf("Err() = %v, OnPermanent calls %d", c.Err(), reported.Load())
			}
		})
	}
}

// gateSource blocks reads at the offsets in hold until that offset's
// channel closes, and records which OS thread started each read.
type gateSource struct {
	memSource
	mu     sync.Mutex
	hold   map[int64]chan struct{}
	starts []int64 // offsets, in the order reads started
	tids   map[int64]int
	delay  time.Duration
}

func (g *gateSource) ReadAt(ctx context.Context, p []byte, off int64) error {
	g.mu.Lock()
	g.starts = append(g.starts, off)
	if g.tids == nil {
		g.tids = map[int64]int{}
	}
	g.tids[off] = unix.Gettid()
	h := g.hold[off]
	g.mu.Unlock()
	if h != nil {
		select {
		case <-h:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	time.Sleep(g.delay)
	return g.memSource.ReadAt(ctx, p, off)
}

func (g *gateSource) started() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.starts)
}

// waitFor polls cond for at most 10 s: progress-bound, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// While a kernel read waits for the server, the background fill starts no
// new chunk: demand always goes first.
func TestFillYieldsToDemand(t *testing.T) {
	const chunk = 64 << 10
	demandOff := int64(30 * chunk)
	release := make(chan struct{})
	src := &gateSource{memSource: memSource{data: testimg.Random(40*chunk, 5)}, hold: map[int64]chan struct{}{demandOff: release}, delay: time.Millisecond}
	c, err := New(src, Options{Chunk: chunk, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	fillDone := make(chan error, 1)
	go func() { fillDone <- c.Fill(context.Background(), nil) }()
	waitFor(t, "the fill to start", func() bool { return len(src.started()) >= 3 })
	readDone := make(chan error, 1)
	go func() {
		p := make([]byte, 4096)
		readDone <- c.ReadAt(context.Background(), p, demandOff)
	}()
	waitFor(t, "the demand read to reach the server", func() bool { return slices.Contains(src.started(), demandOff) })
	before := len(src.started())
	time.Sleep(100 * time.Millisecond) // ~100 fill chunks' worth of time
	during := len(src.started()) - before
	close(release)
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	if err := <-fillDone; err != nil {
		t.Fatal(err)
	}
	// The one fill fetch already under way when the read came may finish
	// and, at most, the worker had already passed its turn for one more.
	if during > 1 {
		t.Errorf("the fill started %d chunks while a kernel read waited for the server; want at most 1", during)
	}
}

// Fill workers fetch on their own threads, lowered by FillThread; a kernel
// read that comes to wait on a chunk a worker is fetching raises that
// worker, which lowers itself again before its next chunk.
func TestFillThreadPriority(t *testing.T) {
	const chunk = 64 << 10
	heldOff := int64(5 * chunk)
	release := make(chan struct{})
	src := &gateSource{memSource: memSource{data: testimg.Random(12*chunk, 5)}, hold: map[int64]chan struct{}{heldOff: release}}
	var mu sync.Mutex
	workers := map[int]bool{}
	var lowers, raises int
	paced := int64(0)
	c, err := New(src, Options{Chunk: chunk, Parallel: 1,
		FillThread: func() (func(), func()) {
			tid := unix.Gettid()
			mu.Lock()
			workers[tid] = true
			mu.Unlock()
			return func() {
					if unix.Gettid() != tid {
						t.Errorf("lower ran on thread %d, not the worker's %d", unix.Gettid(), tid)
					}
					mu.Lock()
					lowers++
					mu.Unlock()
				}, func() {
					mu.Lock()
					raises++
					mu.Unlock()
				}
		},
		FillPace: func(ctx context.Context, n int64) error {
			atomic.AddInt64(&paced, n)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	fillDone := make(chan error, 1)
	go func() { fillDone <- c.Fill(context.Background(), nil) }()
	waitFor(t, "the fill to reach the held chunk", func() bool { return slices.Contains(src.started(), heldOff) })
	readDone := make(chan error, 1)
	go func() { readDone <- c.ReadAt(context.Background(), make([]byte, 4096), heldOff) }()
	waitFor(t, "the read to raise the worker", func() bool { mu.Lock(); defer mu.Unlock(); return raises == 1 })
	close(release)
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	if err := <-fillDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Every worker the fill may use is started (and lowered) at once, one
	// turn allowed at a time here: the raised one lowers itself again.
	if len(workers) != DefaultMaxParallel || lowers != DefaultMaxParallel+1 || raises != 1 {
		t.Errorf("workers %v, lowers %d, raises %d; want %d workers lowered at start, one of them again after the raised chunk, raised once",
			workers, lowers, raises, DefaultMaxParallel)
	}
	src.mu.Lock()
	for off, tid := range src.tids {
		if !workers[tid] {
			t.Errorf("chunk at %d was fetched on thread %d, not on the fill worker's", off, tid)
		}
	}
	src.mu.Unlock()
	if paced != int64(len(src.data)) {
		t.Errorf("FillPace was asked for %d bytes, want the image's %d", paced, len(src.data))
	}
}

// A FillPace error ends the fill with that error.
func TestFillPaceErrorEndsFill(t *testing.T) {
	src := &memSource{data: testimg.Random(8<<16, 5)}
	stop := errors.New("pace says stop")
	n := 0
	c, err := New(src, Options{Chunk: 1 << 16, Parallel: 1, FillPace: func(context.Context, int64) error {
		if n++; n > 3 {
			return stop
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Fill(context.Background(), nil); !errors.Is(err, stop) {
		t.Fatalf("Fill: %v, want the pace error", err)
	}
	if got := c.Stats().FillFetches; got != 3 {
		t.Errorf("%d chunks fetched, want 3", got)
	}
}
