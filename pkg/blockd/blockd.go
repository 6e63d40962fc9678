// Package blockd is the block daemon's cache: it sits between a remote
// image (HTTP ranges, a remote NBD export) and the kernel's nbd device, and
// decides what to fetch when.
//
// The image is cut into aligned chunks. A read from the kernel fetches the
// chunks it touches first (demand), with the next chunk fetched ahead; in
// stream and ram modes a background fill fetches every other chunk so the
// node stops needing the server; in lazy mode only what is read is fetched
// and a bounded number of chunks is kept. Every chunk can be verified (a
// chunk manifest) before any byte of it is served.
package blockd

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrCorrupt marks a chunk that failed verification: fetching it again
// from the same server will not help.
var ErrCorrupt = errors.New("corrupt chunk")

// Source is where chunks come from.
type Source interface {
	ReadAt(ctx context.Context, p []byte, off int64) error
	Size() int64
}

// Mode is how much of the image is kept locally.
type Mode string

// The fetch modes (kernel argument streamroot.fetch).
const (
	Stream Mode = "stream" // demand first, then fill everything in the background
	RAM    Mode = "ram"    // fill everything before serving
	Lazy   Mode = "lazy"   // demand only, bounded cache
)

// Options tune the cache.
type Options struct {
	Mode  Mode
	Chunk int64 // power of two; default 1 MiB
	// Parallel is the number of background fill workers (default 4).
	Parallel int
	// CacheChunks bounds lazy mode's memory (default 64 chunks).
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
	Log      *slog.Logger
}

// Stats are counters for logs and tests.
type Stats struct {
	Chunks, Present int
	DemandFetches   int64
	FillFetches     int64
	BytesFetched    int64
	VerifyFailures  int64
	ReadErrors      int64
}

// Cache serves an image from local chunks, fetching the missing ones.
type Cache struct {
	src    Source
	o      Options
	size   int64 // the image's size
	chunks int

	mem     *memfdStore // stream/ram: the whole image, sparse
	mu      sync.Mutex
	present []bool
	flights map[int]*flight
	bad     map[int]error // chunks that failed verification: never refetched
	broken  error         // the first permanent source error: nothing more is fetched
	lru     *list.List    // lazy: chunk indexes, most recent first
	lruPos  map[int]*list.Element
	lazyMem map[int][]byte

	demand, fill, bytes, verifyFail, readErr atomic.Int64
	presentN                                 atomic.Int64
	// waiting counts kernel reads waiting for a fetch: the background fill
	// starts no new chunk while any does, so demand always goes first.
	waiting atomic.Int64
}

type flight struct {
	done chan struct{}
	data []byte // lazy mode: the chunk
	err  error
	// raise, for a chunk a background fill worker fetches on its own
	// low-priority thread: restores that thread's priority (once, under
	// Cache.mu) when a kernel read comes to wait on the chunk.
	raise  func()
	raised bool
}

// New makes a cache over src.
func New(src Source, o Options) (*Cache, error) {
	if o.Chunk == 0 {
		o.Chunk = 1 << 20
	}
	if o.Chunk&(o.Chunk-1) != 0 || o.Chunk < 4096 {
		return nil, fmt.Errorf("blockd: chunk size %d is not a power of two ≥ 4096", o.Chunk)
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.CacheChunks <= 0 {
		o.CacheChunks = 64
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 60 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{src: src, o: o, size: src.Size(), flights: map[int]*flight{}, bad: map[int]error{}}
	c.chunks = int((c.size + o.Chunk - 1) / o.Chunk)
	c.present = make([]bool, c.chunks)
	switch o.Mode {
	case Stream, RAM:
		m, err := newMemfd("streamroot-image", c.size)
		if err != nil {
			return nil, err
		}
		c.mem = m
	case Lazy:
		c.lru = list.New()
		c.lruPos = map[int]*list.Element{}
		c.lazyMem = map[int][]byte{}
	default:
		return nil, fmt.Errorf("blockd: unknown mode %q", o.Mode)
	}
	return c, nil
}

// Size is the device size: the image rounded up to 4 KiB (the kernel's
// block size); the tail past the image reads as zeros.
func (c *Cache) Size() int64 { return (c.size + 4095) &^ 4095 }

// ImageSize is the image's own size.
func (c *Cache) ImageSize() int64 { return c.size }

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	return Stats{Chunks: c.chunks, Present: int(c.presentN.Load()), DemandFetches: c.demand.Load(),
		FillFetches: c.fill.Load(), BytesFetched: c.bytes.Load(), VerifyFailures: c.verifyFail.Load(), ReadErrors: c.readErr.Load()}
}

// Complete reports whether every chunk is local (stream/ram modes).
func (c *Cache) Complete() bool { return int(c.presentN.Load()) == c.chunks }

// ReadAt serves the kernel: it fills p from the chunks under it, fetching
// missing ones first, within ReadTimeout.
func (c *Cache) ReadAt(ctx context.Context, p []byte, off int64) error {
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
		data, err := c.chunk(ctx, i, true, nil)
		if err != nil {
			c.readErr.Add(1)
			return fmt.Errorf("read %d bytes at %d (chunk %d): %w", len(p), off, i, err)
		}
		if data != nil {
			copy(p[pos-off:pos-off+n], data[pos-cstart:])
		} else if err := c.mem.ReadAt(p[pos-off:pos-off+n], pos); err != nil {
			return err
		}
		pos += n
	}
	if c.o.Mode == Lazy {
		// Readahead: a kernel reading chunk i sequentially will want i+1.
		if next := int(end / c.o.Chunk); next < c.chunks {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), c.o.ReadTimeout)
				defer cancel()
				_, _ = c.chunk(ctx, next, false, nil)
			}()
		}
	}
	return nil
}

// chunk makes chunk i local. In lazy mode it returns the chunk's bytes; in
// stream/ram mode nil (read it from the memfd). A fill worker passes
// raise (see Options.FillThread): it fetches a missing chunk itself, on
// its own thread, rather than in a new goroutine at normal priority.
func (c *Cache) chunk(ctx context.Context, i int, demand bool, raise func()) ([]byte, error) {
	c.mu.Lock()
	if err := c.bad[i]; err != nil {
		// The pinned image's bytes are fixed: asking again gets the same
		// corrupt data, so fail at once instead of per kernel retry.
		c.mu.Unlock()
		return nil, err
	}
	if c.o.Mode == Lazy {
		if d, ok := c.lazyMem[i]; ok {
			c.lru.MoveToFront(c.lruPos[i])
			c.mu.Unlock()
			return d, nil
		}
	} else if c.present[i] {
		c.mu.Unlock()
		return nil, nil
	}
	if c.broken != nil {
		c.mu.Unlock()
		return nil, c.broken
	}
	f, ok := c.flights[i]
	if !ok {
		f = &flight{done: make(chan struct{}), raise: raise}
		c.flights[i] = f
		if raise != nil {
			c.mu.Unlock()
			c.fetch(i, f, demand)
			return f.data, f.err
		}
		go c.fetch(i, f, demand)
	}
	if demand && f.raise != nil && !f.raised {
		f.raised = true
		f.raise()
	}
	c.mu.Unlock()
	if demand {
		c.waiting.Add(1)
		defer c.waiting.Add(-1)
	}
	select {
	case <-f.done:
		return f.data, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("no data from the server within %s: %w", c.o.ReadTimeout, ctx.Err())
	}
}

// fetch downloads chunk i once for everyone waiting on it. It runs with its
// own deadline so a reader giving up does not waste the transfer.
func (c *Cache) fetch(i int, f *flight, demand bool) {
	defer close(f.done)
	off := int64(i) * c.o.Chunk
	n := min(c.o.Chunk, c.size-off)
	buf := make([]byte, n)
	ctx, cancel := context.WithTimeout(context.Background(), c.o.ReadTimeout)
	defer cancel()
	err := c.src.ReadAt(ctx, buf, off)
	if err == nil && c.o.Verify != nil {
		if err = c.o.Verify(i, buf); err != nil {
			c.verifyFail.Add(1)
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
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
	if err != nil {
		f.err = err
		if errors.Is(err, ErrCorrupt) {
			c.bad[i] = err
		}
		c.o.Log.Warn("chunk fetch failed", "chunk", i, "offset", off, "err", err)
		return
	}
	c.bytes.Add(n)
	if demand {
		c.demand.Add(1)
	} else {
		c.fill.Add(1)
	}
	if c.o.Mode == Lazy {
		f.data = buf
		c.lazyMem[i] = buf
		c.lruPos[i] = c.lru.PushFront(i)
		for c.lru.Len() > c.o.CacheChunks {
			old := c.lru.Remove(c.lru.Back()).(int)
			delete(c.lazyMem, old)
			delete(c.lruPos, old)
		}
		return
	}
	c.present[i] = true
	c.presentN.Add(1)
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

// Fill fetches every missing chunk with Parallel workers, in order, and
// returns when all are local. Demand reads are not queued behind it: they
// start their own fetches. progress, if set, is called after each chunk.
func (c *Cache) Fill(ctx context.Context, progress func(Stats)) error {
	if c.o.Mode == Lazy {
		return errors.New("blockd: lazy mode does not fill")
	}
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
	var wg sync.WaitGroup
	errs := make(chan error, c.o.Parallel)
	for range c.o.Parallel {
		wg.Go(func() {
			var lower, raise func()
			if c.o.FillThread != nil {
				// Never unlocked: the thread ends with the worker, so its
				// lowered priority is never inherited by other goroutines.
				runtime.LockOSThread()
				lower, raise = c.o.FillThread()
				lower()
			}
			for i := range next {
				if err := c.fillTurn(ctx, i); err != nil {
					errs <- err
					return
				}
				// A failed chunk is retried until ctx ends: the source
				// already retries transient errors; this covers a server
				// that is down for longer than one read's timeout.
				for {
					_, err := c.fillChunk(ctx, i, lower, raise)
					if err == nil {
						break
					}
					if ctx.Err() != nil || errors.Is(err, ErrCorrupt) || c.Err() != nil {
						errs <- fmt.Errorf("fill chunk %d: %w", i, err)
						return
					}
					select {
					case <-time.After(time.Second):
					case <-ctx.Done():
					}
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

// fillTurn waits until the fill may fetch chunk i: no kernel read is
// waiting for a fetch (demand first), and FillPace allows it.
func (c *Cache) fillTurn(ctx context.Context, i int) error {
	for c.waiting.Load() > 0 {
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("fill chunk %d: %w", i, ctx.Err())
		}
	}
	if c.o.FillPace != nil {
		off := int64(i) * c.o.Chunk
		if err := c.o.FillPace(ctx, min(c.o.Chunk, c.size-off)); err != nil {
			return fmt.Errorf("fill chunk %d: %w", i, err)
		}
	}
	return nil
}

// fillChunk fetches chunk i for the fill, on this worker's thread when it
// has one, and lowers the thread's priority again if a kernel read raised
// it meanwhile.
func (c *Cache) fillChunk(ctx context.Context, i int, lower, raise func()) ([]byte, error) {
	if raise == nil {
		return c.chunk(ctx, i, false, nil)
	}
	raised := false
	data, err := c.chunk(ctx, i, false, func() { raised = true; raise() })
	c.mu.Lock() // raised is written under c.mu (in chunk)
	r := raised
	c.mu.Unlock()
	if r {
		lower()
	}
	return data, err
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
