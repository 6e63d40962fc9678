// Package chunkcache is the block daemon's chunk cache: it sits between a remote
// image (HTTP ranges, a remote NBD export) and the kernel's nbd device, and
// decides what to fetch when.
//
// The image is cut into aligned chunks. A read from the kernel fetches the
// chunks it touches first (demand), with the next chunk fetched ahead; in
// stream and ram modes a background fill fetches every other chunk so the
// node stops needing the server; in lazy mode only what is read is fetched
// and what is kept, with the fetches in flight, stays within a byte bound.
// Every chunk can be verified (a chunk manifest) before any byte of it is
// served.
//
// Prefetch fetches a given list first (a manifest's boot trace), with the
// fill's workers and behind demand like the fill. Its bound is what the
// cache keeps: in stream and ram modes the whole image, so the whole list
// (the fill later skips those chunks, as it skips any local one); in lazy
// mode half the byte bound, so prefetched chunks never evict each other nor
// the boot's own reads.
package chunkcache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrCorrupt marks a chunk that failed verification: fetching it again
// from the same server will not help.
var ErrCorrupt = errors.New("corrupt chunk")

// MaxImageSize is the largest image the cache accepts (16 TiB). A size
// above it, or ≤ 0, is a broken or hostile server rather than an image (an
// NBD export size that wraps negative, a forged Content-Range total), and
// must not size anything. pkg/httpsrc may carry a bound of its own; this
// one is the cache's.
const MaxImageSize int64 = 16 << 40

// DefaultCacheBytes is lazy mode's memory bound when Options.CacheBytes is
// 0. The block daemon passes its own, a fraction of the node's RAM.
const DefaultCacheBytes int64 = 64 << 20

// MaxRefetches is how many times a chunk that failed verification is
// fetched again, each over a new connection, before it is declared bad: a
// proxy or a connection that corrupted one answer need not cost the chunk
// for the life of the daemon, while an image that really differs from its
// manifest costs MaxRefetches extra transfers per chunk, once.
const MaxRefetches = 3

// DefaultParallel is Options.Parallel when 0: the fill's starting number
// of fetches in flight, and Prefetch's number of workers.
const DefaultParallel = 4

// DefaultMaxParallel is Options.MaxParallel when 0: the most fetches one
// node's fill keeps in flight however well more would pay. At 1 MiB chunks
// and 50 ms RTT that is about 300 MB/s; the cap is there for the server,
// which during a boot storm fills every node at once.
const DefaultMaxParallel = 16

// Source is where chunks come from.
type Source interface {
	ReadAt(ctx context.Context, p []byte, off int64) error
	Size() int64
}

// Resetter is an optional Source method: drop the connections kept for
// reuse, so the next read dials anew. The cache calls it before it fetches
// again a chunk that failed verification.
type Resetter interface{ Reset() }

// Options tune the cache.
type Options struct {
	// Bounded keeps only what is read, within CacheBytes (lazy mode: the
	// image may be larger than the node's RAM; Fill is refused). Otherwise
	// every chunk is kept, in an image-sized memfd, and Fill fetches the
	// ones not read yet (stream and ram modes).
	Bounded bool
	Chunk   int64 // power of two; default 1 MiB
	// Parallel is the number of fetches the background fill starts with
	// (default DefaultParallel), and Prefetch's number of workers. The
	// fill adds fetches while each step raises its throughput by 10%
	// (fillCtl), up to MaxParallel, and never goes below Parallel.
	Parallel int
	// MaxParallel caps the fill's fetches in flight (default
	// DefaultMaxParallel; raised to Parallel if lower, which makes the
	// fill's parallelism fixed).
	MaxParallel int
	// CacheBytes bounds lazy mode's memory: the chunks kept plus the
	// buffers of the fetches in flight (demand and readahead). Default
	// DefaultCacheBytes. A bound smaller than one chunk is raised to one
	// chunk: a chunk is verified whole, so it must fit; demand reads then
	// take turns.
	CacheBytes int64
	// CacheChunks, if > 0, also bounds the number of chunks lazy mode
	// keeps (0: the byte bound only).
	CacheChunks int
	// ReadTimeout bounds how long a kernel read may wait for the server
	// before it gets EIO (default 60s).
	ReadTimeout time.Duration
	// Verify checks chunk i before it is served; nil: no check.
	Verify func(i int, data []byte) error
	// Permanent says a source error will not go away by asking again
	// (the image changed on the server). After the first one the cache
	// fetches nothing more: it keeps serving the chunks it has, which
	// are the pinned image's, and fails every other read at once rather
	// than retrying forever or mixing in another image's bytes.
	Permanent func(error) bool
	// OnPermanent is called once with that first permanent error, before
	// any reader sees it, so the caller can record why reads now fail.
	OnPermanent func(error)
	// FillThread, when set, is called once by each background fill worker,
	// on the OS thread the worker is locked to and fetches its chunks on.
	// lower drops that thread's CPU and I/O priority; raise restores it.
	// The cache calls raise (from another goroutine) when a kernel read
	// comes to wait on a chunk the worker is fetching, so a read the
	// booted system is blocked on never runs at the fill's priority, and
	// lower again before the worker's next chunk.
	FillThread func() (lower, raise func())
	// FillPace, when set, is called before each background fetch of n
	// bytes and may wait: the caller bounds the fill's rate while the
	// booted system wants the CPU. An error ends the fill.
	FillPace func(ctx context.Context, n int64) error
	// Touch, when set, is called with each chunk a kernel read touches,
	// before it is fetched (the block daemon's boot trace).
	Touch func(i int)
	Log   *slog.Logger
}

// Stats are counters for logs and tests.
type Stats struct {
	Chunks, Present int
	DemandFetches   int64
	FillFetches     int64
	BytesFetched    int64
	// VerifyFailures counts the chunks declared bad: they failed
	// verification 1+MaxRefetches times.
	VerifyFailures int64
	// Refetches counts the fetches repeated after a failed verification.
	Refetches  int64
	ReadErrors int64
	// CacheBytes is what lazy mode holds now (kept chunks and fetches in
	// flight); PeakCacheBytes the most it held. Both stay ≤ the bound.
	CacheBytes, PeakCacheBytes int64
	// FillParallel is the number of fetches the fill allows now (at its
	// end, the level it settled at); FillParallelPeak the most it
	// allowed. Both 0 before Fill.
	FillParallel, FillParallelPeak int
}

// Cache serves an image from local chunks, fetching the missing ones.
type Cache struct {
	src    Source
	o      Options
	size   int64 // the image's size
	chunks int

	mem     *memfdStore // stream/ram: the whole image, sparse
	mu      sync.Mutex
	present bitmap // stream/ram: chunks in mem
	flights map[int]*flight
	bad     map[int]error // chunks that failed verification for good: never refetched
	broken  error         // the first permanent source error: nothing more is fetched

	// Lazy mode. used counts every chunk buffer that is alive: kept in
	// lazyMem or being fetched; it never exceeds budget.
	budget  int64
	used    int64
	peak    int64
	lru     *list.List // *entry, most recent first
	lazyMem map[int]*entry
	room    chan struct{} // closed (and replaced) when used falls or a pin drops
	queue   []*flight     // demand fetches waiting for room, first come first served

	demand, fill, bytes, verifyFail, refetch, readErr atomic.Int64
	presentN                                          atomic.Int64
	fillPar, fillPeak                                 atomic.Int64 // see Stats.FillParallel
	// waiting counts kernel reads waiting for a fetch: the background fill
	// starts no new chunk while any does, so demand always goes first.
	waiting atomic.Int64
}

// entry is a chunk kept in lazy mode. A pinned entry is being copied out by
// a reader and is not evicted, so its bytes are never freed under a reader
// nor kept alive unaccounted.
type entry struct {
	i    int
	data []byte
	elem *list.Element
	pins int
}

type flight struct {
	done     chan struct{}
	demand   bool   // a kernel read waits on it (readahead alone does not wait for room)
	waiters  int    // readers that will pin the entry once it lands
	finished bool   // set under mu when the fetch ended
	entry    *entry // lazy mode, on success: pinned once per waiter
	err      error
	// raise, for a chunk a background fill worker fetches on its own
	// low-priority thread: restores that thread's priority (once, under
	// Cache.mu) when a kernel read comes to wait on the chunk.
	raise  func()
	raised bool
}

// bitmap is one bit per chunk (stream/ram modes, which hold the image
// itself in RAM): an image of MaxImageSize in 1 MiB chunks costs 2 MiB,
// not the 16 MiB of a []bool.
type bitmap []uint64

func newBitmap(n int) bitmap    { return make(bitmap, (n+63)/64) }
func (b bitmap) get(i int) bool { return b[i/64]&(1<<(uint(i)%64)) != 0 }
func (b bitmap) set(i int)      { b[i/64] |= 1 << (uint(i) % 64) }

// New makes a cache over src.
func New(src Source, o Options) (*Cache, error) {
	if o.Chunk == 0 {
		o.Chunk = 1 << 20
	}
	if o.Chunk&(o.Chunk-1) != 0 || o.Chunk < 4096 || o.Chunk > 1<<30 {
		return nil, fmt.Errorf("blockd: chunk size %d is not a power of two between 4096 and 1 GiB", o.Chunk)
	}
	size := src.Size()
	if size <= 0 || size > MaxImageSize {
		return nil, fmt.Errorf("blockd: the source reports an image of %d bytes: not an image (sizes must be 1 byte to %d TiB)",
			size, MaxImageSize>>40)
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.MaxParallel <= 0 {
		o.MaxParallel = DefaultMaxParallel
	}
	o.MaxParallel = max(o.MaxParallel, o.Parallel)
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 60 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{src: src, o: o, size: size, flights: map[int]*flight{}, bad: map[int]error{}}
	c.chunks = int((c.size + o.Chunk - 1) / o.Chunk)
	switch {
	case !o.Bounded:
		m, err := newMemfd("streamroot-image", c.size)
		if err != nil {
			return nil, err
		}
		c.mem = m
		c.present = newBitmap(c.chunks)
	default:
		// Nothing here grows with the image: lazy mode is for images
		// larger than the node's RAM.
		c.budget = o.CacheBytes
		if c.budget < o.Chunk {
			o.Log.Warn("the lazy cache bound is smaller than one chunk: it holds one chunk, and reads take turns",
				"bound_bytes", c.budget, "chunk_bytes", o.Chunk)
			c.budget = o.Chunk
		}
		c.lru = list.New()
		c.lazyMem = map[int]*entry{}
		c.room = make(chan struct{})
	}
	return c, nil
}

// Size is the device size: the image rounded up to 4 KiB (the kernel's
// block size); the tail past the image reads as zeros.
func (c *Cache) Size() int64 { return (c.size + 4095) &^ 4095 }

// ImageSize is the image's own size.
func (c *Cache) ImageSize() int64 { return c.size }

// ChunkSize is the size in bytes of the chunks the cache numbers and
// fetches.
func (c *Cache) ChunkSize() int64 { return c.o.Chunk }

// Budget is lazy mode's memory bound in bytes (0 in other modes).
func (c *Cache) Budget() int64 { return c.budget }

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	used, peak := c.used, c.peak
	c.mu.Unlock()
	return Stats{Chunks: c.chunks, Present: int(c.presentN.Load()), DemandFetches: c.demand.Load(),
		FillFetches: c.fill.Load(), BytesFetched: c.bytes.Load(), VerifyFailures: c.verifyFail.Load(),
		Refetches: c.refetch.Load(), ReadErrors: c.readErr.Load(), CacheBytes: used, PeakCacheBytes: peak,
		FillParallel: int(c.fillPar.Load()), FillParallelPeak: int(c.fillPeak.Load())}
}

// Complete reports whether every chunk is local (stream/ram modes).
func (c *Cache) Complete() bool { return int(c.presentN.Load()) == c.chunks }

// ReadAt serves the kernel: it fills p from the chunks under it, fetching
// missing ones first, within ReadTimeout.
func (c *Cache) ReadAt(ctx context.Context, p []byte, off int64) error {
	if off < 0 || off > c.Size() || int64(len(p)) > c.Size()-off {
		c.readErr.Add(1)
		return fmt.Errorf("read %d bytes at %d: outside the device (%d bytes)", len(p), off, c.Size())
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.ReadTimeout)
	defer cancel()
	end := off + int64(len(p))
	if end > c.size { // the zero tail of the last block
		tail := max(off, c.size)
		clear(p[tail-off:])
		end = c.size
	}
	for pos := off; pos < end; {
		i := int(pos / c.o.Chunk)
		cstart := int64(i) * c.o.Chunk
		n := min(end, cstart+c.o.Chunk) - pos
		if c.o.Touch != nil {
			c.o.Touch(i)
		}
		data, release, err := c.chunk(ctx, i, true, nil)
		if err != nil {
			c.readErr.Add(1)
			return fmt.Errorf("read %d bytes at %d (chunk %d): %w", len(p), off, i, err)
		}
		if data != nil {
			copy(p[pos-off:pos-off+n], data[pos-cstart:])
			release()
		} else if err := c.mem.ReadAt(p[pos-off:pos-off+n], pos); err != nil {
			return err
		}
		pos += n
	}
	if c.o.Bounded {
		// Readahead: a kernel reading chunk i sequentially will want i+1.
		if next := int(end / c.o.Chunk); next < c.chunks {
			c.prefetch(next)
		}
	}
	return nil
}

func noRelease() {}

// chunk makes chunk i local. In lazy mode it returns the chunk's bytes,
// pinned until the caller calls release; in stream/ram mode nil (read it
// from the memfd). A fill worker passes raise (see Options.FillThread): it
// fetches a missing chunk itself, on its own thread, rather than in a new
// goroutine at normal priority.
func (c *Cache) chunk(ctx context.Context, i int, demand bool, raise func()) (data []byte, release func(), err error) {
	c.mu.Lock()
	if err := c.bad[i]; err != nil {
		// The chunk failed verification every time it was fetched: fail
		// at once instead of per kernel retry.
		c.mu.Unlock()
		return nil, nil, err
	}
	if c.o.Bounded {
		if e, ok := c.lazyMem[i]; ok {
			c.lru.MoveToFront(e.elem)
			e.pins++
			c.mu.Unlock()
			return e.data, func() { c.unpin(e) }, nil
		}
	} else if c.present.get(i) {
		c.mu.Unlock()
		return nil, noRelease, nil
	}
	if c.broken != nil {
		c.mu.Unlock()
		return nil, nil, c.broken
	}
	f, ok := c.flights[i]
	if !ok {
		f = &flight{done: make(chan struct{}), raise: raise}
		c.flights[i] = f
		if raise != nil && !c.o.Bounded {
			c.mu.Unlock()
			c.fetch(i, f)
			return nil, noRelease, f.err
		}
		go c.fetch(i, f)
	}
	if demand {
		f.demand = true // a readahead's fetch now waits for room too
		if f.raise != nil && !f.raised {
			f.raised = true
			f.raise()
		}
	}
	f.waiters++
	c.mu.Unlock()
	if demand {
		c.waiting.Add(1)
		defer c.waiting.Add(-1)
	}
	select {
	case <-f.done:
		if f.err != nil {
			return nil, nil, f.err
		}
		if f.entry != nil {
			return f.entry.data, func() { c.unpin(f.entry) }, nil
		}
		return nil, noRelease, nil
	case <-ctx.Done():
		c.mu.Lock()
		if !f.finished {
			f.waiters--
		} else if f.entry != nil {
			c.unpinLocked(f.entry) // it landed as we gave up: drop our pin
		}
		c.mu.Unlock()
		return nil, nil, fmt.Errorf("no data from the server within %s: %w", c.o.ReadTimeout, ctx.Err())
	}
}

// prefetch starts a fetch of chunk i nobody waits for, unless it is local,
// in flight, bad or the source is broken.
func (c *Cache) prefetch(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bad[i] != nil || c.lazyMem[i] != nil || c.flights[i] != nil || c.broken != nil {
		return
	}
	f := &flight{done: make(chan struct{})}
	c.flights[i] = f
	go c.fetch(i, f)
}

func (c *Cache) unpin(e *entry) {
	c.mu.Lock()
	c.unpinLocked(e)
	c.mu.Unlock()
}

func (c *Cache) unpinLocked(e *entry) {
	e.pins--
	if e.pins == 0 {
		c.trimLocked()
		c.signalLocked()
	}
}

// signalLocked wakes the fetches waiting for room.
func (c *Cache) signalLocked() {
	if len(c.queue) > 0 {
		close(c.room)
		c.room = make(chan struct{})
	}
}

// trimLocked enforces CacheChunks, evicting the least recently used
// unpinned chunks.
func (c *Cache) trimLocked() {
	for e := c.lru.Back(); e != nil && c.o.CacheChunks > 0 && c.lru.Len() > c.o.CacheChunks; {
		prev := e.Prev()
		if ent := e.Value.(*entry); ent.pins == 0 {
			c.evictLocked(ent)
		}
		e = prev
	}
}

func (c *Cache) evictLocked(e *entry) {
	c.lru.Remove(e.elem)
	delete(c.lazyMem, e.i)
	c.used -= int64(len(e.data))
}

// reserve accounts n bytes for a lazy fetch's buffer before it is
// allocated, evicting unpinned chunks, least recently used first. Fetches a
// kernel read waits on queue for room in arrival order, so none starves
// (in-flight fetches land and readers unpin within ReadTimeout, and the
// bound holds at least one chunk, so room comes); a readahead nobody waits
// on gives up instead, and gives up whenever a demand fetch is queued.
func (c *Cache) reserve(ctx context.Context, f *flight, n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	queued := false
	defer func() {
		if queued { // gave up: the next in line may fit
			c.queue = slices.DeleteFunc(c.queue, func(q *flight) bool { return q == f })
			c.signalLocked()
		}
	}()
	for {
		if len(c.queue) == 0 || c.queue[0] == f {
			// A readahead never evicts the chunk read last: the kernel is
			// likely still reading it, and a small bound would thrash.
			for e := c.lru.Back(); e != nil && c.used+n > c.budget && (f.demand || e != c.lru.Front()); {
				prev := e.Prev()
				if ent := e.Value.(*entry); ent.pins == 0 {
					c.evictLocked(ent)
				}
				e = prev
			}
			if c.used+n <= c.budget {
				c.used += n
				c.peak = max(c.peak, c.used)
				return nil // the deferred dequeue lets the next in line try
			}
		}
		if !f.demand {
			return errNoRoom
		}
		if !queued {
			c.queue = append(c.queue, f)
			queued = true
		}
		ch := c.room
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		c.mu.Lock()
		if ctx.Err() != nil {
			return fmt.Errorf("no room in the lazy cache (%d bytes) within %s: %w", c.budget, c.o.ReadTimeout, ctx.Err())
		}
	}
}

// errNoRoom ends a readahead that found the cache full.
var errNoRoom = errors.New("readahead skipped: the lazy cache is full")

// fetch downloads chunk i once for everyone waiting on it. It runs with its
// own deadlines so a reader giving up does not waste the transfer.
func (c *Cache) fetch(i int, f *flight) {
	defer close(f.done)
	off := int64(i) * c.o.Chunk
	n := min(c.o.Chunk, c.size-off)
	var err error
	if c.o.Bounded {
		rctx, cancel := context.WithTimeout(context.Background(), c.o.ReadTimeout)
		defer cancel()
		for {
			err = c.reserve(rctx, f, n)
			if err == nil {
				break
			}
			c.mu.Lock()
			if err == errNoRoom && f.demand {
				// A kernel read joined this readahead after it found no
				// room: it must not fail for that, so wait like a demand fetch.
				c.mu.Unlock()
				continue
			}
			defer c.mu.Unlock()
			delete(c.flights, i)
			f.finished, f.err = true, err
			if err != errNoRoom {
				c.o.Log.Warn("chunk fetch failed", "chunk", i, "offset", off, "err", err)
			}
			return
		}
	}
	buf := make([]byte, n)
	for failures := 0; ; {
		err = c.fetchOnce(buf, i, off)
		if !errors.Is(err, ErrCorrupt) {
			break
		}
		failures++
		if failures > MaxRefetches {
			c.verifyFail.Add(1)
			c.o.Log.Error("chunk declared bad: it failed verification every time it was fetched; reads of it fail with I/O errors until the daemon restarts",
				"chunk", i, "offset", off, "failures", failures, "err", err)
			break
		}
		c.refetch.Add(1)
		c.o.Log.Warn("chunk failed verification: fetching it again over a new connection",
			"chunk", i, "offset", off, "failures", failures, "fetches_left", MaxRefetches-failures+1, "err", err)
		if r, ok := c.src.(Resetter); ok {
			r.Reset()
		}
	}
	if err == nil && c.mem != nil {
		err = c.mem.WriteAt(buf, off)
	}
	if err != nil && c.o.Permanent != nil && c.o.Permanent(err) {
		c.breakOnce(err) // before close(f.done) wakes the readers
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.flights, i)
	f.finished = true
	if err != nil {
		f.err = err
		if c.o.Bounded {
			c.used -= n
			c.signalLocked()
		}
		if errors.Is(err, ErrCorrupt) {
			c.bad[i] = err
		} else {
			c.o.Log.Warn("chunk fetch failed", "chunk", i, "offset", off, "err", err)
		}
		return
	}
	c.bytes.Add(n)
	if f.demand {
		c.demand.Add(1)
	} else {
		c.fill.Add(1)
	}
	if c.o.Bounded {
		e := &entry{i: i, data: buf, pins: f.waiters}
		e.elem = c.lru.PushFront(e)
		c.lazyMem[i] = e
		f.entry = e
		c.trimLocked()
		if e.pins == 0 {
			c.signalLocked() // nobody waits on it: a waiting fetch may evict it
		}
		return
	}
	c.present.set(i)
	c.presentN.Add(1)
}

// fetchOnce reads and verifies chunk i into buf.
func (c *Cache) fetchOnce(buf []byte, i int, off int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.o.ReadTimeout)
	defer cancel()
	if err := c.src.ReadAt(ctx, buf, off); err != nil {
		return err
	}
	if c.o.Verify != nil {
		if err := c.o.Verify(i, buf); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	return nil
}

// breakOnce records the first permanent source error and reports it.
func (c *Cache) breakOnce(err error) {
	c.mu.Lock()
	first := c.broken == nil
	if first {
		c.broken = err
	}
	c.mu.Unlock()
	if first {
		c.o.Log.Error("the source failed for good: no more chunks are fetched; reads of chunks not yet local fail", "err", err)
		if c.o.OnPermanent != nil {
			c.o.OnPermanent(err)
		}
	}
}

// Err is the permanent source error that stopped all fetching, or nil.
func (c *Cache) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// Fill fetches every missing chunk, in order, with Parallel to
// MaxParallel fetches in flight as the link rewards (fillGate, fillCtl),
// and returns when all are local. Demand reads are not queued behind it:
// they start their own fetches, and the fill starts no chunk while one
// waits. progress, if set, is called after each chunk.
func (c *Cache) Fill(ctx context.Context, progress func(Stats)) error {
	if c.o.Bounded {
		return errors.New("blockd: lazy mode does not fill")
	}
	// Cancelled on return: when every worker quit early (a corrupt chunk,
	// a broken source) the feeder must not wait forever to hand out the
	// next chunk.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range c.chunks {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	gate := newFillGate(c)
	var wg sync.WaitGroup
	errs := make(chan error, c.o.MaxParallel)
	for range c.o.MaxParallel {
		wg.Go(func() {
			var lower, raise func()
			if c.o.FillThread != nil {
				// Never unlocked: the thread ends with the worker, so its
				// lowered priority is never inherited by other goroutines.
				runtime.LockOSThread()
				lower, raise = c.o.FillThread()
				lower()
			}
			for {
				// The turn comes before the chunk: a worker waiting for
				// one holds no chunk back from the others.
				if gate.acquire(ctx) != nil {
					return // the incomplete fill is reported below
				}
				i, ok := <-next
				if !ok {
					gate.release()
					return
				}
				err := c.fillOne(ctx, i, gate, lower, raise)
				gate.release()
				if err != nil {
					errs <- err
					return
				}
				if progress != nil {
					progress(c.Stats())
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if !c.Complete() {
		return fmt.Errorf("blockd: fill ended with %d of %d chunks", c.presentN.Load(), c.chunks)
	}
	return nil
}

// fillOne is one worker's turn: chunk i, once demand and the pacer allow.
func (c *Cache) fillOne(ctx context.Context, i int, gate *fillGate, lower, raise func()) error {
	waited, err := c.fillTurn(ctx, i)
	if waited {
		gate.waited()
	}
	if err != nil {
		return err
	}
	// A failed chunk is retried until ctx ends: the source already
	// retries transient errors; this covers a server that is down for
	// longer than one read's timeout.
	for {
		err := c.fillChunk(ctx, i, lower, raise)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrCorrupt) || c.Err() != nil {
			return fmt.Errorf("fill chunk %d: %w", i, err)
		}
		gate.failed()
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}

// fillTurn waits until the fill may fetch chunk i: no kernel read is
// waiting for a fetch (demand first), and FillPace allows it. waited says
// it had to wait for either, so the fill's rate then measured demand or
// the pacer rather than the link.
func (c *Cache) fillTurn(ctx context.Context, i int) (waited bool, err error) {
	waited = c.waiting.Load() > 0
	if err := c.yieldToDemand(ctx); err != nil {
		return waited, fmt.Errorf("fill chunk %d: %w", i, err)
	}
	if c.o.FillPace != nil {
		off := int64(i) * c.o.Chunk
		start := time.Now()
		err := c.o.FillPace(ctx, min(c.o.Chunk, c.size-off))
		// A pacer that lets the chunk go returns at once; one that
		// holds the fill sleeps for a good part of a chunk's time.
		waited = waited || time.Since(start) > time.Millisecond
		if err != nil {
			return waited, fmt.Errorf("fill chunk %d: %w", i, err)
		}
	}
	return waited, nil
}

// fillChunk fetches chunk i for the fill, on this worker's thread when it
// has one, and lowers the thread's priority again if a kernel read raised
// it meanwhile.
func (c *Cache) fillChunk(ctx context.Context, i int, lower, raise func()) error {
	if raise == nil {
		_, _, err := c.chunk(ctx, i, false, nil)
		return err
	}
	raised := false
	_, _, err := c.chunk(ctx, i, false, func() { raised = true; raise() })
	c.mu.Lock() // raised is written under c.mu (in chunk)
	r := raised
	c.mu.Unlock()
	if r {
		lower()
	}
	return err
}

// memfdStore is the image in anonymous memory: sparse until written, never
// on a filesystem that switch_root could delete.
type memfdStore struct{ fd int }

func newMemfd(name string, size int64) (*memfdStore, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("memfd size %d: %w", size, err)
	}
	return &memfdStore{fd: fd}, nil
}

func (m *memfdStore) ReadAt(p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pread(m.fd, p, off)
		if err != nil {
			return fmt.Errorf("memfd read: %w", err)
		}
		if n == 0 {
			return errors.New("memfd read: unexpected end")
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

func (m *memfdStore) WriteAt(p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(m.fd, p, off)
		if err != nil {
			return fmt.Errorf("memfd write: %w", err)
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// Reader returns a sequential reader over the local image (stream/ram
// modes, once Complete), for a whole-image checksum.
func (c *Cache) Reader() *SectionReader { return &SectionReader{c: c} }

// SectionReader reads the local image from the start.
type SectionReader struct {
	c   *Cache
	off int64
}

func (r *SectionReader) Read(p []byte) (int, error) {
	if r.off >= r.c.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.c.size-r.off)
	if err := r.c.mem.ReadAt(p[:n], r.off); err != nil {
		return 0, err
	}
	r.off += n
	return int(n), nil
}
