package chunkcache_test

// The block daemon's cache over a loopback HTTP server (httpsrc.Device),
// with and without added round-trip latency (a delaying proxy on loopback):
//
//   - demand reads: the kernel reading the image sequentially in 128 KiB
//     requests through the cache (lazy mode: each chunk on demand, the next
//     one read ahead), for several chunk sizes;
//   - random 4 KiB reads: the latency of one cold read;
//   - fill: stream mode's background fill of the whole image, for several
//     fixed numbers of fetches in flight and the adaptive fill.
//
//	go test ./pkg/chunkcache -run '^$' -bench . -benchtime 1x
//
// STREAMROOT_BENCH_RTTS (ms, default "0,50") and STREAMROOT_BENCH_MIB
// (image size, default 64) change the grid. docs/benchmarks.md records a run.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamroot/streamroot/bench/benchimg"
	"github.com/streamroot/streamroot/pkg/chunkcache"
	"github.com/streamroot/streamroot/pkg/httpsrc"
)

// openCache opens the image (through a delay proxy when rtt > 0) and a
// cache over it.
func openCache(b *testing.B, rtt time.Duration, o chunkcache.Options) *chunkcache.Cache {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src, err := httpsrc.Open(ctx, benchimg.URL(b, rtt), httpsrc.Options{Stall: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	o.ReadTimeout = time.Minute
	c, err := chunkcache.New(httpsrc.Device{Source: src}, o)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkDemandSequential: 128 KiB reads from start to end, lazy mode.
func BenchmarkDemandSequential(b *testing.B) {
	_, size := benchimg.Server()
	for _, rtt := range benchimg.RTTs() {
		for _, chunk := range []int64{256 << 10, 1 << 20, 4 << 20} {
			b.Run(fmt.Sprintf("rtt=%dms/chunk=%dKiB", rtt.Milliseconds(), chunk>>10), func(b *testing.B) {
				b.SetBytes(size)
				buf := make([]byte, 128<<10)
				for b.Loop() {
					b.StopTimer()
					c := openCache(b, rtt, chunkcache.Options{Bounded: true, Chunk: chunk, CacheChunks: 64})
					b.StartTimer()
					for off := int64(0); off < size; off += int64(len(buf)) {
						if err := c.ReadAt(context.Background(), buf, off); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// BenchmarkDemandRandom4K: cold 4 KiB reads at random offsets, lazy mode;
// the metric is the mean latency of one read.
func BenchmarkDemandRandom4K(b *testing.B) {
	_, size := benchimg.Server()
	for _, rtt := range benchimg.RTTs() {
		for _, chunk := range []int64{256 << 10, 1 << 20, 4 << 20} {
			b.Run(fmt.Sprintf("rtt=%dms/chunk=%dKiB", rtt.Milliseconds(), chunk>>10), func(b *testing.B) {
				const reads = 32
				buf := make([]byte, 4096)
				r := rand.New(rand.NewPCG(1, 2))
				var total time.Duration
				for b.Loop() {
					b.StopTimer()
					c := openCache(b, rtt, chunkcache.Options{Bounded: true, Chunk: chunk, CacheChunks: 4})
					b.StartTimer()
					for range reads {
						off := r.Int64N(size/4096) * 4096
						start := time.Now()
						if err := c.ReadAt(context.Background(), buf, off); err != nil {
							b.Fatal(err)
						}
						total += time.Since(start)
					}
				}
				b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N*reads), "ms/read")
			})
		}
	}
}

// BenchmarkFill: stream mode's background fill of the whole image.
func BenchmarkFill(b *testing.B) {
	_, size := benchimg.Server()
	for _, rtt := range benchimg.RTTs() {
		for _, chunk := range []int64{1 << 20, 4 << 20} {
			// 0: the adaptive fill the block daemon runs (4 up to 16);
			// otherwise a fixed number of fetches in flight.
			for _, par := range []int{1, 4, 8, 0} {
				if par == 0 && chunk != 1<<20 {
					continue // the manifest's chunk size: the one the daemon fills
				}
				name := fmt.Sprintf("par=%d", par)
				o := chunkcache.Options{Chunk: chunk, Parallel: par, MaxParallel: par}
				if par == 0 {
					name, o.Parallel, o.MaxParallel = "par=adaptive", chunkcache.DefaultParallel, chunkcache.DefaultMaxParallel
				}
				b.Run(fmt.Sprintf("rtt=%dms/chunk=%dMiB/%s", rtt.Milliseconds(), chunk>>20, name), func(b *testing.B) {
					b.SetBytes(size)
					for b.Loop() {
						b.StopTimer()
						c := openCache(b, rtt, o)
						b.StartTimer()
						ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
						err := c.Fill(ctx, nil)
						cancel()
						if err != nil {
							b.Fatal(err)
						}
						b.ReportMetric(float64(c.Stats().FillParallel), "parallel")
					}
				})
			}
		}
	}
}
