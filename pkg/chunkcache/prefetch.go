package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// PrefetchResult says what Prefetch did.
type PrefetchResult struct {
	Listed  int // entries in the list given
	Planned int // chunks Prefetch set out to fetch: the list within the image and the bound
	Fetched int // chunks that are local because of it (or were already)
	Failed  int // chunks it could not fetch (corrupt, source error); a kernel read tries them again
	Took    time.Duration
}

// PrefetchLimit is how many chunks Prefetch fetches at most. Stream and
// ram modes keep every chunk (the image-sized memfd), so the whole list.
// Lazy mode keeps at most its byte bound: past half of it, prefetched
// chunks would only evict each other and the boot's own demand reads, so
// the list is cut at half the bound, the other half left to demand.
func (c *Cache) PrefetchLimit() int {
	if !c.o.Bounded {
		return c.chunks
	}
	return max(1, int(c.budget/c.o.Chunk/2))
}

// Prefetch fetches the listed chunks (a manifest's boot-trace order), in
// list order, with Options.Parallel workers. It stays behind demand: a
// worker starts a chunk only while no kernel read waits for a fetch, as the
// background fill does, so a read never queues behind the list (a read of
// a chunk being prefetched joins that fetch). Chunks are verified as any
// other; a corrupt one is refused and counted, not served. Entries outside
// the image and past PrefetchLimit are ignored; a chunk already local costs
// nothing. It returns when the list is done, ctx ends or the source broke.
func (c *Cache) Prefetch(ctx context.Context, list []int) PrefetchResult {
	start := time.Now()
	var plan []int
	seen := map[int]bool{}
	for _, i := range list {
		if len(plan) == c.PrefetchLimit() {
			break
		}
		if i >= 0 && i < c.chunks && !seen[i] {
			seen[i] = true
			plan = append(plan, i)
		}
	}
	var next, fetched, failed atomic.Int64
	var wg sync.WaitGroup
	for range min(c.o.Parallel, len(plan)) {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= len(plan) || c.yieldToDemand(ctx) != nil || c.Err() != nil {
					return
				}
				if err := c.prefetchChunk(ctx, plan[n]); err != nil {
					failed.Add(1)
					if !errors.Is(err, ErrCorrupt) {
						c.o.Log.Debug("prefetch", "chunk", plan[n], "err", err)
					}
					continue
				}
				fetched.Add(1)
			}
		})
	}
	wg.Wait()
	return PrefetchResult{Listed: len(list), Planned: len(plan), Fetched: int(fetched.Load()), Failed: int(failed.Load()), Took: time.Since(start)}
}

// prefetchChunk fetches chunk i as the fill does, within one read's timeout.
func (c *Cache) prefetchChunk(ctx context.Context, i int) error {
	ctx, cancel := context.WithTimeout(ctx, c.o.ReadTimeout)
	defer cancel()
	_, release, err := c.chunk(ctx, i, false, nil)
	if err != nil {
		return fmt.Errorf("prefetch chunk %d: %w", i, err)
	}
	release()
	return nil
}

// yieldToDemand waits while a kernel read waits for a fetch: background
// work (fill, prefetch) starts no chunk then, so demand always goes first.
func (c *Cache) yieldToDemand(ctx context.Context) error {
	for c.waiting.Load() > 0 {
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
