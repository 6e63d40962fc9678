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
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamroot/streamroot/bench/delayproxy"
	"github.com/streamroot/streamroot/pkg/httpsrc"
)

var (
	benchOnce sync.Once
	benchData []byte
	benchSrv  *httptest.Server
)

// benchServer serves a random image with Range, If-Range and a strong
// ETag (http.ServeContent), as nginx does.
func benchServer(b *testing.B) (*httptest.Server, int64) {
	benchOnce.Do(func() {
		mb := 64
		if n, err := strconv.Atoi(os.Getenv("STREAMROOT_BENCH_MIB")); err == nil && n > 0 {
			mb = n
		}
		benchData = make([]byte, mb<<20)
		r := rand.NewChaCha8([32]byte{7})
		r.Read(benchData)
		mod := time.Unix(1_700_000_000, 0)
		benchSrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"bench-image"`)
			http.ServeContent(w, r, "image.squashfs", mod, bytes.NewReader(benchData))
		}))
	})
	return benchSrv, int64(len(benchData))
}

func benchRTTs() []time.Duration {
	s := os.Getenv("STREAMROOT_BENCH_RTTS")
	if s == "" {
		s = "0,50"
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		if ms, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && ms >= 0 {
			out = append(out, time.Duration(ms)*time.Millisecond)
		}
	}
	return out
}

// urlWithRTT returns the image URL, through a delay proxy when rtt > 0.
func urlWithRTT(b *testing.B, srv *httptest.Server, rtt time.Duration) string {
	b.Helper()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if rtt > 0 {
		p, err := delayproxy.Listen("127.0.0.1:0", addr, rtt)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
		addr = p.Addr()
	}
	return "http://" + addr + "/image.squashfs"
}

// memWriterAt is the fetch destination: RAM, as the init's tmpfs is.
type memWriterAt []byte

func (m memWriterAt) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

func BenchmarkFetch(b *testing.B) {
	srv, size := benchServer(b)
	dst := make(memWriterAt, size)
	for _, rtt := range benchRTTs() {
		for _, chunk := range []int64{1 << 20, 2 << 20, 4 << 20, 8 << 20} {
			for _, par := range []int{1, 2, 4, 8} {
				name := fmt.Sprintf("rtt=%dms/chunk=%dMiB/par=%d", rtt.Milliseconds(), chunk>>20, par)
				b.Run(name, func(b *testing.B) {
					url := urlWithRTT(b, srv, rtt)
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
	srv, size := benchServer(b)
	for _, rtt := range benchRTTs() {
		b.Run(fmt.Sprintf("rtt=%dms", rtt.Milliseconds()), func(b *testing.B) {
			url := urlWithRTT(b, srv, rtt)
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
