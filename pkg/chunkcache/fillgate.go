package chunkcache

import (
	"context"
	"sync"
	"time"
)

// fillGate runs the fill's parallelism: Fill starts MaxParallel workers
// (each on its own lowered thread when FillThread is set, so none is
// started or stopped as the level changes), and a worker fetches only
// while fewer than the controller's allowance are fetching. It measures
// the samples the controller decides on.
type fillGate struct {
	c    *Cache
	mu   sync.Mutex
	ctl  *fillCtl
	busy int           // workers holding a turn
	wake chan struct{} // closed (and replaced) when a turn may have come free

	// The sample being taken.
	start      time.Time
	startBytes int64
	failures   int
	held       bool
}

func newFillGate(c *Cache) *fillGate {
	g := &fillGate{c: c, ctl: newFillCtl(c.o.Parallel, c.o.MaxParallel), wake: make(chan struct{})}
	g.start, g.startBytes = time.Now(), c.bytes.Load()
	c.fillPar.Store(int64(g.ctl.cur))
	c.fillPeak.Store(int64(g.ctl.peak))
	return g
}

// acquire waits for a turn to fetch.
func (g *fillGate) acquire(ctx context.Context) error {
	for {
		g.mu.Lock()
		if g.busy < g.ctl.cur {
			g.busy++
			g.mu.Unlock()
			return nil
		}
		ch := g.wake
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives the turn back after a chunk (fetched, found local, or
// abandoned).
func (g *fillGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy--
	g.sampleLocked()
	close(g.wake)
	g.wake = make(chan struct{})
}

// waited records that a worker waited for demand reads or the pacer.
func (g *fillGate) waited() {
	g.mu.Lock()
	g.held = true
	g.mu.Unlock()
}

// failed records a fill fetch that failed and will be retried.
func (g *fillGate) failed() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures++
	g.sampleLocked()
}

// sampleLocked ends the sample when it is due (see fillSampleChunks) and
// lets the controller decide. A sample with failures or demand in it is
// due on time alone: it has nothing to measure, and failures must act soon.
func (g *fillGate) sampleLocked() {
	if g.c.waiting.Load() > 0 {
		g.held = true
	}
	now := time.Now()
	took := now.Sub(g.start)
	got := g.c.bytes.Load() - g.startBytes
	enough := got >= int64(max(fillSampleChunks, 2*g.ctl.cur))*g.c.o.Chunk
	if took < fillSampleTime || !(enough || g.failures > 0 || g.held) {
		return
	}
	was := g.ctl.cur
	n := g.ctl.next(fillSample{bytes: got, took: took, failures: g.failures, held: g.held})
	g.c.fillPar.Store(int64(n))
	g.c.fillPeak.Store(int64(g.ctl.peak))
	if n != was {
		g.c.o.Log.Debug("fill parallelism", "from", was, "to", n, "rate_mbps", float64(got)/took.Seconds()/1e6,
			"failures", g.failures)
	}
	g.start, g.startBytes, g.failures, g.held = now, g.c.bytes.Load(), 0, false
}
