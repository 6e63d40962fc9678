// Package benchimg is the image server the fetch micro-benchmarks of
// pkg/httpsrc and pkg/chunkcache share: one random image behind a loopback
// HTTP server that answers Range and If-Range with a strong ETag
// (http.ServeContent), as nginx does, and the RTT grid to run at.
package benchimg

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamroot/streamroot/bench/delayproxy"
)

var (
	once sync.Once
	data []byte
	srv  *httptest.Server
)

// Server returns the process's image server (started on first use) and the
// image size: STREAMROOT_BENCH_MIB MiB (default 64) of seeded random bytes.
func Server() (*httptest.Server, int64) {
	once.Do(func() {
		mb := 64
		if n, err := strconv.Atoi(os.Getenv("STREAMROOT_BENCH_MIB")); err == nil && n > 0 {
			mb = n
		}
		data = make([]byte, mb<<20)
		rand.NewChaCha8([32]byte{7}).Read(data)
		mod := time.Unix(1_700_000_000, 0)
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"bench-image"`)
			http.ServeContent(w, r, "image.squashfs", mod, bytes.NewReader(data))
		}))
	})
	return srv, int64(len(data))
}

// URL is the image's URL, through a delay proxy adding rtt when rtt > 0
// (closed when tb ends).
func URL(tb testing.TB, rtt time.Duration) string {
	tb.Helper()
	srv, _ := Server()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if rtt > 0 {
		p, err := delayproxy.Listen("127.0.0.1:0", addr, rtt)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { p.Close() })
		addr = p.Addr()
	}
	return "http://" + addr + "/image.squashfs"
}

// RTTs are the added round-trip times to benchmark at:
// STREAMROOT_BENCH_RTTS in ms (default "0,50").
func RTTs() []time.Duration {
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
