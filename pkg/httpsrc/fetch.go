package httpsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultChunk is the range size: large enough that per-request latency
// does not dominate, small enough that a broken transfer loses little and
// that caches keyed by aligned slices (nginx slice) can serve it.
const DefaultChunk = 4 << 20

// Progress is a snapshot of a running fetch.
type Progress struct {
	Done, Total int64 // image bytes complete
	Received    int64 // bytes read from the network, retries included
	Elapsed     time.Duration
}

// FetchOptions tune Fetch.
type FetchOptions struct {
	Chunk    int64 // range size, default DefaultChunk
	Parallel int   // ranges in flight, default 4
	// Progress is called about every Every (default 2s) and once at the end.
	Progress func(Progress)
	Every    time.Duration
	// Verify checks each chunk (aligned to Chunk) before it is stored; an
	// error stops the fetch: a corrupt image must not be mounted.
	Verify func(off int64, data []byte) error
}

// Fetch copies the whole image into dst with parallel aligned ranges. It
// returns nil only when every byte has arrived from the pinned image; on
// error dst holds an incomplete copy that must not be used.
func (s *Source) Fetch(ctx context.Context, dst io.WriterAt, o FetchOptions) error {
	if o.Chunk <= 0 {
		o.Chunk = DefaultChunk
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.Every <= 0 {
		o.Every = 2 * time.Second
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	start := time.Now()
	var mu sync.Mutex
	var done int64
	next := make(chan int64)
	go func() {
		defer close(next)
		for off := int64(0); off < s.Size; off += o.Chunk {
			select {
			case next <- off:
			case <-ctx.Done():
				return
			}
		}
	}()

	errc := make(chan error, o.Parallel)
	var wg sync.WaitGroup
	for range o.Parallel {
		wg.Go(func() {
			defer func() {
				// In PID 1 a panic on this goroutine would panic the
				// kernel: it becomes the fetch's error instead.
				if r := recover(); r != nil {
					err := fmt.Errorf("fetch %s: panic: %v", s.name, r)
					errc <- err
					cancel(err)
				}
			}()
			buf := make([]byte, o.Chunk)
			for off := range next {
				n := min(o.Chunk, s.Size-off)
				if err := s.ReadRange(ctx, buf[:n], off); err != nil {
					errc <- err
					cancel(err)
					return
				}
				if o.Verify != nil {
					if err := o.Verify(off, buf[:n]); err != nil {
						err = fmt.Errorf("%s: %w", s.name, err)
						errc <- err
						cancel(err)
						return
					}
				}
				if _, err := dst.WriteAt(buf[:n], off); err != nil {
					err = fmt.Errorf("store bytes %d-%d of %s: %w", off, off+n-1, s.name, err)
					errc <- err
					cancel(err)
					return
				}
				mu.Lock()
				done += n
				mu.Unlock()
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	report := func() {
		if o.Progress == nil {
			return
		}
		mu.Lock()
		d := done
		mu.Unlock()
		o.Progress(Progress{Done: d, Total: s.Size, Received: s.Received(), Elapsed: time.Since(start)})
	}
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	lastRecv, lastMove := s.Received(), time.Now()
	for {
		select {
		case <-finished:
			select {
			case err := <-errc:
				return err
			default:
			}
			if err := context.Cause(ctx); err != nil {
				return err
			}
			report()
			return nil
		case <-tick.C:
			report()
			// Retries happen inside the stall window; a transfer that
			// makes no progress at all for that long has failed.
			if r := s.Received(); r != lastRecv {
				lastRecv, lastMove = r, time.Now()
			} else if time.Since(lastMove) > s.stall {
				err := fmt.Errorf("GET %s: no data for %s (rd.retry)", s.name, s.stall)
				if last := s.LastError(); last != nil {
					err = fmt.Errorf("%w: last error: %w", err, last)
				}
				cancel(err)
				<-finished
				return err
			}
		}
	}
}

// IsPermanent reports errors that retrying cannot fix.
func IsPermanent(err error) bool {
	var se *StatusError
	var re *RedirectError
	return errors.As(err, &se) || errors.As(err, &re) || errors.Is(err, ErrChanged) || errors.Is(err, ErrNoRanges)
}
