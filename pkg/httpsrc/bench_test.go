package httpsrc_test

// Fetch throughput from a loopback HTTP server, against curl on the same
// URL, with and without added round-trip latency (a user-space delaying
// proxy on loopback). The figures chose DefaultChunk and the default
// parallelism; docs/benchmarks.md records a run.
//
//	go test ./pkg/httpsrc -run '^$' -bench . -benchtime 1x
//
// STREAMROOT_BENCH_RTTS (ms, default "0,50") and STREAMROOT_BENCH_MIB
// (image size, default 64) change the grid.

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/bench/benchimg"
	"github.com/streamroot/streamroot/pkg/httpsrc"
)

// memWriterAt is the fetch destination: RAM, as the init's tmpfs is.
type memWriterAt []byte

func (m memWriterAt) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

func BenchmarkFetch(b *testing.B) {
	_, size := benchimg.Server()
	dst := make(memWriterAt, size)
	for _, rtt := range benchimg.RTTs() {
		for _, chunk := range []int64{1 << 20, 2 << 20, 4 << 20, 8 << 20} {
			for _, par := range []int{1, 2, 4, 8} {
				name := fmt.Sprintf("rtt=%dms/chunk=%dMiB/par=%d", rtt.Milliseconds(), chunk>>20, par)
				b.Run(name, func(b *testing.B) {
					url := benchimg.URL(b, rtt)
					b.SetBytes(size)
					var total time.Duration
					for b.Loop() {
						start := time.Now()
						ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
						src, err := httpsrc.Open(ctx, url, httpsrc.Options{Stall: time.Minute})
						if err != nil {
							cancel()
							b.Fatal(err)
						}
						err = src.Fetch(ctx, dst, httpsrc.FetchOptions{Chunk: chunk, Parallel: par})
						cancel()
						if err != nil {
							b.Fatal(err)
						}
						total += time.Since(start)
					}
					b.ReportMetric(total.Seconds()/float64(b.N), "s/fetch")
				})
			}
		}
	}
}

// BenchmarkCurl is the reference: one plain GET of the same file by curl
// (-o /dev/null), through the same proxy. It skips without curl.
func BenchmarkCurl(b *testing.B) {
	if _, err := exec.LookPath("curl"); err != nil {
		b.Skip("curl is not installed")
	}
	_, size := benchimg.Server()
	for _, rtt := range benchimg.RTTs() {
		b.Run(fmt.Sprintf("rtt=%dms", rtt.Milliseconds()), func(b *testing.B) {
			url := benchimg.URL(b, rtt)
			b.SetBytes(size)
			var total time.Duration
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				start := time.Now()
				out, err := exec.CommandContext(ctx, "curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{size_download}", url).CombinedOutput()
				total += time.Since(start)
				cancel()
				if err != nil {
					b.Fatalf("curl: %v: %s", err, out)
				}
				if n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); n != size {
					b.Fatalf("curl got %s bytes, want %d", out, size)
				}
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/fetch")
		})
	}
}
