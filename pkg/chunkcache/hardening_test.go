package chunkcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/syncbuf"
	"github.com/streamroot/streamroot/internal/testimg"
	"github.com/streamroot/streamroot/pkg/httpsrc"
)

// slowSource answers after a delay and records how many bytes of fetch
// buffers it holds at once: every one of them is a chunk buffer the cache
// allocated, whatever the cache's own accounting says.
type slowSource struct {
	memSource
	delay      time.Duration
	inflight   atomic.Int64
	peakFlight atomic.Int64
}

func (s *slowSource) ReadAt(ctx context.Context, p []byte, off int64) error {
	n := s.inflight.Add(int64(len(p)))
	defer s.inflight.Add(-int64(len(p)))
	for {
		old := s.peakFlight.Load()
		if n <= old || s.peakFlight.CompareAndSwap(old, n) {
			break
		}
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.memSource.ReadAt(ctx, p, off)
}

// Many concurrent misses against a slow server: what lazy mode holds —
// kept chunks plus the buffers of fetches in flight, readahead included —
// never exceeds the byte bound, by the cache's own count, by what the
// server sees in flight, and by the Go heap. A bound below one chunk is
// raised to one chunk and demand reads take turns instead of deadlocking.
func TestLazyMemoryBound(t *testing.T) {
	const chunk = 1 << 20
	for _, tc := range []struct {
		name       string
		bound      int64
		wantBudget int64
		readers    int
	}{
		{"bound of 6 chunks", 6 * chunk, 6 * chunk, 48},
		{"bound below one chunk", 100 << 10, chunk, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &slowSource{memSource: memSource{data: bigImage(48 * chunk)}, delay: 20 * time.Millisecond}
			c, err := New(src, Options{Bounded: true, Chunk: chunk, CacheBytes: tc.bound, ReadTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if c.Budget() != tc.wantBudget {
				t.Fatalf("budget %d, want %d", c.Budget(), tc.wantBudget)
			}
			// The heap: garbage is collected early so what is sampled is
			// close to what is live; the image itself is in the baseline.
			defer debug.SetGCPercent(debug.SetGCPercent(10))
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapAlloc
			var heapPeak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				var ms runtime.MemStats
				for {
					runtime.ReadMemStats(&ms)
					if ms.HeapAlloc > base && ms.HeapAlloc-base > heapPeak.Load() {
						heapPeak.Store(ms.HeapAlloc - base)
					}
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}()

			var wg sync.WaitGroup
			var failed atomic.Int64
			for r := range tc.readers {
				wg.Go(func() {
					p := make([]byte, 4096)
					for k := range 3 {
						// Distinct chunks per reader and round: misses.
						i := (r*7 + k*13) % 48
						off := int64(i)*chunk + int64(r)*4096
						if err := c.ReadAt(context.Background(), p, off); err != nil {
							t.Errorf("reader %d: %v", r, err)
							failed.Add(1)
							return
						}
						if !bytes.Equal(p, src.data[off:off+4096]) {
							t.Errorf("reader %d: wrong data at %d", r, off)
						}
					}
				})
			}
			wg.Wait()
			time.Sleep(100 * time.Millisecond) // the last readaheads land
			close(stop)
			<-sampled
			if failed.Load() > 0 {
				t.Fatalf("%d readers failed", failed.Load())
			}
			s := c.Stats()
			t.Logf("budget %d: cache peak %d, server-side buffers peak %d, heap peak %d above baseline, fetched %d chunks",
				c.Budget(), s.PeakCacheBytes, src.peakFlight.Load(), heapPeak.Load(), s.DemandFetches+s.FillFetches)
			if s.PeakCacheBytes > c.Budget() || s.CacheBytes > c.Budget() {
				t.Errorf("the cache accounted %d bytes at peak (%d now), bound %d", s.PeakCacheBytes, s.CacheBytes, c.Budget())
			}
			if p := src.peakFlight.Load(); p > c.Budget() {
				t.Errorf("the server held %d bytes of fetch buffers at once, bound %d", p, c.Budget())
			}
			// Slack: the garbage GOGC=10 allows over the live heap, plus
			// the readers' own small allocations.
			if limit := uint64(2*c.Budget() + 8<<20); heapPeak.Load() > limit {
				t.Errorf("the heap grew by %d bytes, more than the bound %d allows (%d with slack)", heapPeak.Load(), c.Budget(), limit)
			}
		})
	}
}

// bigImage is image's fast sibling, for tens of MiB under -race.
func bigImage(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{5, 6})
	_, _ = r.Read(b)
	return b
}

type sizeSource struct{ size int64 }

func (s sizeSource) Size() int64 { return s.size }
func (s sizeSource) ReadAt(_ context.Context, p []byte, _ int64) error {
	clear(p)
	return nil
}

// Sizes no image has (≤ 0, a wrapped NBD export size, a forged
// Content-Range total) are refused with the size in the message, in every
// mode, never a panic.
func TestNewRefusesAbsurdSizes(t *testing.T) {
	var nbdSize uint64 = 0xFFFFFF0000000000
	for _, size := range []int64{-1, 0, int64(nbdSize), MaxImageSize + 1, math.MaxInt64} {
		for _, bounded := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/%d", modeName(bounded), size), func(t *testing.T) {
				c, err := New(sizeSource{size}, Options{Bounded: bounded})
				if err == nil || c != nil {
					t.Fatalf("New accepted an image of %d bytes", size)
				}
				if !strings.Contains(err.Error(), fmt.Sprint(size)) {
					t.Errorf("error does not name the size: %v", err)
				}
			})
		}
	}
}

// Lazy mode allocates nothing in proportion to the image: the largest
// image accepted costs no more than a small one.
func TestLazyHugeImageAllocatesLittle(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c, err := New(sizeSource{MaxImageSize}, Options{Bounded: true})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("New allocated %d bytes for a lazy image of %d bytes", d, MaxImageSize)
	}
	p := make([]byte, 4096)
	p[0] = 1
	if err := c.ReadAt(context.Background(), p, MaxImageSize-4096); err != nil || p[0] != 0 {
		t.Fatalf("read at the end: %v", err)
	}
}

// A read the device cannot hold (nbd.Serve should refuse it first) is an
// error, never a panic or a negative chunk index.
func TestReadAtOutsideDevice(t *testing.T) {
	for _, bounded := range []bool{true, false} {
		src := &memSource{data: testimg.Random(3<<20, 5)}
		c, err := New(src, Options{Bounded: bounded})
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{-4096, c.Size(), c.Size() - 100, math.MaxInt64 - 10} {
			if err := c.ReadAt(context.Background(), make([]byte, 4096), off); err == nil {
				t.Errorf("%s: read at %d accepted", modeName(bounded), off)
			}
		}
	}
}

func TestBitmap(t *testing.T) {
	b := newBitmap(130)
	if len(b) != 3 {
		t.Fatalf("130 bits in %d words", len(b))
	}
	for _, i := range []int{0, 63, 64, 129} {
		b.set(i)
	}
	for i := range 130 {
		if want := i == 0 || i == 63 || i == 64 || i == 129; b.get(i) != want {
			t.Errorf("bit %d = %v", i, b.get(i))
		}
	}
}

// corruptingSource damages every nth answer, as a bad proxy or a broken
// connection does, and counts how often the cache asked it to reconnect.
type corruptingSource struct {
	memSource
	every   int64
	answers atomic.Int64
	resets  atomic.Int64
	byOff   sync.Map // offset → *atomic.Int64, answers per offset
}

func (s *corruptingSource) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := s.memSource.ReadAt(ctx, p, off); err != nil {
		return err
	}
	v, _ := s.byOff.LoadOrStore(off, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if s.every > 0 && s.answers.Add(1)%s.every == 0 {
		p[len(p)/2] ^= 0xff
	}
	return nil
}

func (s *corruptingSource) Reset() { s.resets.Add(1) }

func (s *corruptingSource) answersAt(off int64) int64 {
	v, ok := s.byOff.Load(off)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// verifyAgainst is a chunk manifest: chunk i must be data's.
func verifyAgainst(data []byte, chunk int64) func(int, []byte) error {
	return func(i int, got []byte) error {
		off := int64(i) * chunk
		if !bytes.Equal(got, data[off:off+int64(len(got))]) {
			return errors.New("sha256 mismatch")
		}
		return nil
	}
}

// logRecords is a JSON slog handler's output, one record per line.
func logRecords(t *testing.T, buf *syncbuf.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// One corrupt answer in three does not cost any chunk: a chunk that fails
// verification is fetched again over a new connection, and every read
// gets the pinned image's bytes.
func TestCorruptAnswerIsRefetched(t *testing.T) {
	const chunk = 64 << 10
	for _, bounded := range []bool{false, true} {
		t.Run(modeName(bounded), func(t *testing.T) {
			src := &corruptingSource{memSource: memSource{data: testimg.Random(40*chunk, 5)}, every: 3}
			var logs syncbuf.Buffer
			c, err := New(src, Options{Bounded: bounded, Chunk: chunk, Verify: verifyAgainst(src.data, chunk),
				Log: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, chunk)
			for i := range int64(40) {
				if err := c.ReadAt(context.Background(), p, i*chunk); err != nil {
					t.Fatalf("chunk %d: %v", i, err)
				}
				if !bytes.Equal(p, src.data[i*chunk:(i+1)*chunk]) {
					t.Fatalf("chunk %d: wrong data served", i)
				}
			}
			time.Sleep(50 * time.Millisecond) // lazy: the last readahead
			s := c.Stats()
			if s.VerifyFailures != 0 || s.Refetches == 0 || s.ReadErrors != 0 {
				t.Errorf("stats %+v: want refetches, no chunk declared bad", s)
			}
			if src.resets.Load() != s.Refetches {
				t.Errorf("%d refetches but %d reconnects", s.Refetches, src.resets.Load())
			}
			var warned int
			for _, r := range logRecords(t, &logs) {
				if strings.Contains(r["msg"].(string), "fetching it again") {
					if _, ok := r["chunk"]; !ok || r["failures"] == nil {
						t.Errorf("refetch log without chunk or failure count: %v", r)
					}
					warned++
				}
			}
			if int64(warned) != s.Refetches {
				t.Errorf("%d refetch log lines for %d refetches", warned, s.Refetches)
			}
		})
	}
}

// A chunk that fails verification every time is fetched 1+MaxRefetches
// times, each after a reconnect, then declared bad once — in the log with
// its index and failure count — and never fetched again.
func TestChunkDeclaredBadAfterRefetches(t *testing.T) {
	const chunk = 64 << 10
	src := &corruptingSource{memSource: memSource{data: testimg.Random(8*chunk, 5)}}
	var logs syncbuf.Buffer
	good := verifyAgainst(src.data, chunk)
	c, err := New(src, Options{Chunk: chunk, Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Verify: func(i int, b []byte) error {
			if i == 5 {
				return errors.New("sha256 mismatch")
			}
			return good(i, b)
		}})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 512)
	for range 3 {
		if err := c.ReadAt(context.Background(), p, 5*chunk+100); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("read of the bad chunk: %v", err)
		}
	}
	if n := src.answersAt(5 * chunk); n != 1+MaxRefetches {
		t.Errorf("the bad chunk was fetched %d times, want %d", n, 1+MaxRefetches)
	}
	if src.resets.Load() != MaxRefetches {
		t.Errorf("%d reconnects, want %d", src.resets.Load(), MaxRefetches)
	}
	var declared int
	for _, r := range logRecords(t, &logs) {
		if strings.Contains(r["msg"].(string), "declared bad") {
			declared++
			if r["chunk"] != float64(5) || r["failures"] != float64(1+MaxRefetches) {
				t.Errorf("declared-bad log: %v", r)
			}
		}
	}
	if declared != 1 {
		t.Errorf("%d declared-bad log lines, want 1", declared)
	}
	if s := c.Stats(); s.VerifyFailures != 1 || s.Refetches != MaxRefetches {
		t.Errorf("stats %+v", s)
	}
}

// When every fill worker quits early (here: each hits a bad chunk) Fill
// returns and leaves no goroutine behind.
func TestFillLeavesNoGoroutine(t *testing.T) {
	const chunk = 64 << 10
	src := &memSource{data: testimg.Random(16*chunk, 5)}
	c, err := New(src, Options{Chunk: chunk, Parallel: 2, Verify: func(i int, _ []byte) error {
		if i < 2 {
			return errors.New("sha256 mismatch")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	if err := c.Fill(context.Background(), nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("fill: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Fill, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The HTTP source is a Resetter, so the daemon's refetches reconnect.
var _ Resetter = httpsrc.Device{}

// With room for one chunk, readahead takes only free room and never
// evicts the chunk being read: reading each chunk's end first (which
// starts a readahead of the next), then its start, fetches every chunk
// once.
func TestLazyOneChunkBoundDoesNotThrash(t *testing.T) {
	const chunk = 64 << 10
	src := &memSource{data: testimg.Random(6*chunk, 5)}
	c, err := New(src, Options{Bounded: true, Chunk: chunk, CacheBytes: chunk})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4096)
	for i := range int64(6) {
		for _, off := range []int64{(i+1)*chunk - 4096, i * chunk} {
			if err := c.ReadAt(context.Background(), p, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, src.data[off:off+4096]) {
				t.Fatalf("wrong data at %d", off)
			}
			time.Sleep(20 * time.Millisecond) // the readahead, if any, lands
		}
	}
	if n := src.reads.Load(); n != 6 {
		t.Errorf("%d fetches for 6 chunks", n)
	}
}
