package chunkcache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/testimg"
)

// linkSource is a server behind a link: every read waits latency (the
// round trip), then its turn on a link that carries one chunk per perChunk
// (0: no bandwidth bound). The link is kept in virtual time, so a late
// wake-up on a loaded host does not lower the bound.
type linkSource struct {
	memSource
	latency, perChunk time.Duration

	mu       sync.Mutex
	linkFree time.Time

	inFlight, peakFlight atomic.Int64
}

func (s *linkSource) ReadAt(ctx context.Context, p []byte, off int64) error {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for peak := s.peakFlight.Load(); n > peak && !s.peakFlight.CompareAndSwap(peak, n); peak = s.peakFlight.Load() {
	}
	if err := sleepCtx(ctx, s.latency); err != nil {
		return err
	}
	if s.perChunk > 0 {
		s.mu.Lock()
		done := time.Now()
		if s.linkFree.After(done) {
			done = s.linkFree
		}
		done = done.Add(s.perChunk)
		s.linkFree = done
		s.mu.Unlock()
		if err := sleepCtx(ctx, time.Until(done)); err != nil {
			return err
		}
	}
	return s.memSource.ReadAt(ctx, p, off)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

const linkChunk = 4096 // the bytes do not matter here, the fetches in flight do

func newLinkCache(t *testing.T, chunks int, latency, perChunk time.Duration, o Options) (*Cache, *linkSource) {
	t.Helper()
	src := &linkSource{memSource: memSource{data: testimg.Random(chunks*linkChunk, 7)}, latency: latency, perChunk: perChunk}
	o.Chunk, o.ReadTimeout = linkChunk, time.Minute
	c, err := New(src, o)
	if err != nil {
		t.Fatal(err)
	}
	return c, src
}

// timedFill fills c and returns how long it took.
func timedFill(t *testing.T, c *Cache) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := c.Fill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// Over a long round trip the fill is latency-bound: more fetches in flight
// deliver more, and the adaptive fill climbs past the fixed 4 and ends
// sooner, never beyond MaxParallel.
func TestFillAdaptsToLatency(t *testing.T) {
	const chunks, latency = 240, 50 * time.Millisecond
	fixed, fsrc := newLinkCache(t, chunks, latency, 0, Options{Parallel: 4, MaxParallel: 4})
	fixedTook := timedFill(t, fixed)
	adaptive, asrc := newLinkCache(t, chunks, latency, 0, Options{}) // the defaults: 4 to 16
	adaptiveTook := timedFill(t, adaptive)

	fs, as := fixed.Stats(), adaptive.Stats()
	t.Logf("fixed: %v, %d in flight at most; adaptive: %v, parallel %d (peak %d), %d in flight at most",
		fixedTook, fsrc.peakFlight.Load(), adaptiveTook, as.FillParallel, as.FillParallelPeak, asrc.peakFlight.Load())
	if fs.FillParallel != 4 || fs.FillParallelPeak != 4 || fsrc.peakFlight.Load() > 4 {
		t.Errorf("fixed fill: parallel %d peak %d, %d in flight; want 4 throughout", fs.FillParallel, fs.FillParallelPeak, fsrc.peakFlight.Load())
	}
	if as.FillParallel <= DefaultParallel || as.FillParallelPeak < as.FillParallel {
		t.Errorf("adaptive fill ended at parallel %d (peak %d); want above the starting %d", as.FillParallel, as.FillParallelPeak, DefaultParallel)
	}
	if n := asrc.peakFlight.Load(); n > int64(as.FillParallelPeak) || n > DefaultMaxParallel || n <= DefaultParallel {
		t.Errorf("adaptive fill had %d fetches in flight; want above %d, within its peak %d and the cap %d",
			n, DefaultParallel, as.FillParallelPeak, DefaultMaxParallel)
	}
	if adaptiveTook >= fixedTook {
		t.Errorf("adaptive fill took %v, fixed 4 took %v; want it faster", adaptiveTook, fixedTook)
	}
}

// A link that 4 fetches already fill gains nothing from more: the fill
// probes one step up, finds no gain, and stays far below the cap.
func TestFillStopsAtBandwidth(t *testing.T) {
	// At most 200 chunks/s; 4 fetches of 5 ms latency would carry 400.
	c, src := newLinkCache(t, 400, 5*time.Millisecond, 5*time.Millisecond, Options{})
	took := timedFill(t, c)
	s := c.Stats()
	t.Logf("%v, parallel %d (peak %d), %d in flight at most", took, s.FillParallel, s.FillParallelPeak, src.peakFlight.Load())
	if up := newFillCtl(DefaultParallel, DefaultMaxParallel).stepUp(DefaultParallel); s.FillParallelPeak > up || s.FillParallel > up {
		t.Errorf("parallel %d, peak %d on a saturated link; want at most one step above %d (%d)", s.FillParallel, s.FillParallelPeak, DefaultParallel, up)
	}
}

// While kernel reads wait for fetches the fill does not grow, though the
// link would reward it: the reads go first, and the rate then is theirs.
func TestFillDoesNotGrowUnderDemand(t *testing.T) {
	const chunks, readers = 400, 4
	c, _ := newLinkCache(t, chunks, 50*time.Millisecond, 0, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fillDone := make(chan error, 1)
	go func() { fillDone <- c.Fill(ctx, nil) }()

	// Readers walk down from the image's end, where the fill is not yet,
	// one read after another, so one nearly always waits and the workers
	// yield; their bytes would make a growing sample if they were counted
	// as the fill's (TestFillGateSamples has the samples themselves).
	stop := time.Now().Add(6 * fillSampleTime)
	var wg sync.WaitGroup
	var reads atomic.Int64
	for r := range readers {
		wg.Go(func() {
			buf := make([]byte, 512)
			for i := chunks - 1 - r; i >= 0 && time.Now().Before(stop); i -= readers {
				if err := c.ReadAt(context.Background(), buf, int64(i)*linkChunk); err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
			}
		})
	}
	wg.Wait()
	s := c.Stats()
	cancel()
	<-fillDone
	t.Logf("%d demand reads; fill: %d chunks, parallel %d (peak %d)", reads.Load(), s.FillFetches, s.FillParallel, s.FillParallelPeak)
	if reads.Load() < 2*fillSampleChunks {
		t.Fatalf("only %d demand reads: the test measured nothing", reads.Load())
	}
	if s.FillParallel != DefaultParallel || s.FillParallelPeak != DefaultParallel {
		t.Errorf("parallel %d, peak %d while demand reads waited; want %d throughout", s.FillParallel, s.FillParallelPeak, DefaultParallel)
	}
}

// The gate's samples: one with a kernel read waiting, or with a worker
// held by the pacer, does not grow the fill; a clean one does.
func TestFillGateSamples(t *testing.T) {
	for _, tc := range []struct {
		name string
		hold func(c *Cache, g *fillGate) (undo func())
		want int
	}{
		{"clean", func(*Cache, *fillGate) func() { return func() {} }, 6},
		{"a kernel read waiting", func(c *Cache, _ *fillGate) func() { c.waiting.Add(1); return func() { c.waiting.Add(-1) } }, DefaultParallel},
		{"held by the pacer", func(c *Cache, g *fillGate) func() {
			c.o.FillPace = func(context.Context, int64) error { time.Sleep(5 * time.Millisecond); return nil }
			if waited, err := c.fillTurn(context.Background(), 0); err != nil || !waited {
				t.Errorf("fillTurn with a sleeping pacer: waited %v, err %v", waited, err)
			}
			g.waited()
			return func() {}
		}, DefaultParallel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newLinkCache(t, 64, 0, 0, Options{})
			g := newFillGate(c)
			undo := tc.hold(c, g)
			defer undo()
			g.start = time.Now().Add(-2 * fillSampleTime) // a sample's time has passed
			c.bytes.Add(64 * linkChunk)                   // and its chunks came
			if err := g.acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			g.release()
			if s := c.Stats(); s.FillParallel != tc.want {
				t.Errorf("parallel %d after the sample, want %d", s.FillParallel, tc.want)
			}
		})
	}
}
