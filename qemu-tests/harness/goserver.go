package harness

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// GoServer is an in-namespace Go HTTP(S) server for peers that must
// misbehave on cue (503 with Retry-After, cut bodies, wrong ranges, 403),
// which nginx cannot be made to do per request. It records every request
// and counts connections (TLS handshakes fail before any request).
type GoServer struct {
	Addr string
	TLS  bool

	ns    *Netns
	cfg   *tls.Config
	h     http.Handler
	conns atomic.Int64

	mu   sync.Mutex
	srv  *http.Server // nil while stopped
	reqs []GoRequest
}

// GoRequest is one request the server answered (or cut).
type GoRequest struct {
	Time    time.Time // when it arrived
	Method  string
	Path    string
	Range   string
	IfRange string
	Status  int           // 0: the handler hijacked the connection
	Took    time.Duration // until the handler returned
}

// StartGoServer serves h on addr inside ns (with TLS when cfg is set)
// until t ends.
func StartGoServer(t testing.TB, ns *Netns, addr string, cfg *tls.Config, h http.Handler) *GoServer {
	t.Helper()
	g := &GoServer{Addr: addr, TLS: cfg != nil, ns: ns, cfg: cfg, h: h}
	if err := g.Start(); err != nil {
		t.Fatalf("go server: %v", err)
	}
	t.Cleanup(func() { g.Stop() })
	t.Logf("go server: %s (tls %v)", addr, cfg != nil)
	return g
}

// Start listens and serves (again, after Stop).
func (g *GoServer) Start() error {
	l, err := g.ns.Listen("tcp", g.Addr)
	if err != nil {
		return err
	}
	if g.cfg != nil {
		l = tls.NewListener(l, g.cfg)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(w, r, g.h) }),
		ReadHeaderTimeout: 30 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				g.conns.Add(1)
			}
		},
	}
	g.mu.Lock()
	g.srv = srv
	g.mu.Unlock()
	go srv.Serve(l)
	return nil
}

// Stop closes the listener and every open connection at once, as a
// crashed server would (bodies in flight break off).
func (g *GoServer) Stop() error {
	g.mu.Lock()
	srv := g.srv
	g.srv = nil
	g.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

func (g *GoServer) serve(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &statusWriter{ResponseWriter: w}
	e := GoRequest{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), IfRange: r.Header.Get("If-Range")}
	h.ServeHTTP(rec, r)
	e.Took = time.Since(e.Time)
	e.Status = rec.status
	if e.Status == 0 && !rec.hijacked {
		e.Status = http.StatusOK
	}
	g.mu.Lock()
	g.reqs = append(g.reqs, e)
	g.mu.Unlock()
}

// URL returns the URL of path on this server, with host (an IP or a name
// the test's DNS resolves) and the server's port.
func (g *GoServer) URL(host, path string) string {
	scheme := "http"
	if g.TLS {
		scheme = "https"
	}
	_, port, _ := net.SplitHostPort(g.Addr)
	return scheme + "://" + net.JoinHostPort(host, port) + "/" + strings.TrimPrefix(path, "/")
}

// Requests returns the requests for path, in order.
func (g *GoServer) Requests(path string) []GoRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []GoRequest
	for _, e := range g.reqs {
		if e.Path == path {
			out = append(out, e)
		}
	}
	return out
}

// Conns is the number of connections accepted so far.
func (g *GoServer) Conns() int64 { return g.conns.Load() }

type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("go server: cannot hijack")
	}
	s.hijacked = true
	return hj.Hijack()
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ServeFile answers r from the file at path with Range, If-Range and a
// strong ETag (the file's size and modification time), as nginx would.
func ServeFile(w http.ResponseWriter, r *http.Request, path string) {
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("ETag", FileETag(st))
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// FileETag is the strong ETag ServeFile gives a file: its modification
// time and size, as nginx does.
func FileETag(st os.FileInfo) string {
	return `"` + strconv.FormatInt(st.ModTime().UnixNano(), 16) + "-" + strconv.FormatInt(st.Size(), 16) + `"`
}

// Throttle wraps w so that the body goes out at about rate bytes per
// second, in pieces of at most 16 KiB (a server that trickles but keeps
// sending).
func Throttle(w http.ResponseWriter, rate int64) http.ResponseWriter {
	return &throttled{ResponseWriter: w, rate: rate}
}

type throttled struct {
	http.ResponseWriter
	rate int64
}

func (t *throttled) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), 16<<10)
		m, err := t.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := t.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		time.Sleep(time.Duration(int64(k) * int64(time.Second) / t.rate))
		b = b[k:]
	}
	return n, nil
}

// ParseRange parses a single "bytes=a-b" (or "bytes=a-") Range header
// against a file of size; ok is false for anything else.
func ParseRange(h string, size int64) (first, last int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 || first >= size {
		return 0, 0, false
	}
	last = size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return 0, 0, false
		}
		last = min(last, size-1)
	}
	return first, last, true
}
