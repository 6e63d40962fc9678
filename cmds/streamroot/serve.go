package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const serveUsage = `Usage: streamroot serve [-addr 127.0.0.1:8080] [-grace 10s] [-log-format text|json|combined] DIR

Serves the regular files under DIR over HTTP, for labs and tests
(production can use nginx or any CDN that honours Range requests):

  - GET and HEAD, with Range (one or several ranges), If-Range,
    If-None-Match, If-Match, If-Modified-Since (net/http's ServeContent)
  - a strong ETag "<inode>-<size>-<mtime ns>" (hex), so it changes when the
    file is replaced or rewritten, and Last-Modified
  - no directory listings; paths that leave DIR (.., symlinks out) are
    refused; names starting with "." (.git, .htpasswd) are never served
    (404); only regular files are opened, never a FIFO or a device
  - one access-log line per request on stderr: method, path, range,
    status, bytes sent, duration, client, user agent, the If-Range
    outcome (match, or changed: whole file sent); a refused request
    (4xx) is logged at WARN with the reason, a response the client cut
    short gets note="client aborted ..."

-log-format json writes every log line as a JSON object; combined writes
the access log in Apache's/nginx's combined format for log analysers.

SIGINT or SIGTERM stops it gracefully: requests in flight get -grace
(10 s) to finish, then their connections are closed; the log says how
many there were. Either way the exit code is 0.
`

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags("serve", serveUsage)
	addr := fs.String("addr", "127.0.0.1:8080", "`host:port` to listen on (0.0.0.0:8080 for every interface; port 0 picks a free one)")
	grace := fs.Duration("grace", 10*time.Second, "how long requests in flight may finish after SIGINT/SIGTERM")
	logFormat := fs.String("log-format", "text", "log `format`: text or json (log/slog), or combined (the access log in Apache/nginx combined format, other messages as text)")
	pos, err := fs.parse(e, args)
	if err != nil {
		return err
	}
	if err := checkAddr(*addr); err != nil {
		return err
	}
	if *grace < 0 {
		return usagef("-grace %s: must not be negative", *grace)
	}
	var handler slog.Handler
	switch *logFormat {
	case "text", "combined":
		handler = slog.NewTextHandler(e.stderr, nil)
	case "json":
		handler = slog.NewJSONHandler(e.stderr, nil)
	default:
		return usagef("-log-format %q: want text, json or combined", *logFormat)
	}
	if len(pos) != 1 {
		return usagef("want exactly one DIR, got %d arguments", len(pos))
	}
	dir := pos[0]
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()

	log := slog.New(handler)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fsrv := &fileServer{root: root, log: log}
	if *logFormat == "combined" {
		fsrv.combined = e.stderr
	}
	srv := &http.Server{
		Handler:           fsrv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("serving", "dir", dir, "url", "http://"+ln.Addr().String()+"/")

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "reason", context.Cause(ctx), "requests_in_flight", fsrv.inFlight.Load(), "grace", *grace)
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Asked to stop, it stops: a slow client is the client's problem,
		// not a failure of the server.
		log.Warn("grace period over: closing the connections of requests still in flight", "requests", fsrv.inFlight.Load(), "grace", *grace)
		srv.Close()
		// Let the handlers whose connections were closed log their
		// aborted responses before the exit (bounded: a handler stuck
		// elsewhere does not hold the exit up).
		for i := 0; i < 100 && fsrv.inFlight.Load() > 0; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// checkAddr refuses a listen address that is not host:port with a
// numeric port ("8080" alone, say), as a usage error.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("-addr %q: want host:port, e.g. 127.0.0.1:8080 or :8080 (every interface)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return usagef("-addr %q: the port must be a number from 0 to 65535", addr)
	}
	return nil
}

// fileServer serves the regular files of root.
type fileServer struct {
	root     *os.Root
	log      *slog.Logger
	inFlight atomic.Int64 // requests being answered, for the shutdown log
	// combined, when set, receives the access log in the combined log
	// format instead of log.
	combined io.Writer
}

func (s *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	lw := &logWriter{ResponseWriter: w}
	note := s.serve(lw, r)
	if r.Method == http.MethodHead {
		lw.bytes = 0 // net/http discards a HEAD response's body
	}
	if note == "" && lw.err != nil {
		note = "client aborted: " + lw.err.Error()
	}
	attrs := []any{
		"method", r.Method, "path", r.URL.Path, "range", r.Header.Get("Range"),
		"status", lw.status(), "bytes", lw.bytes, "duration", time.Since(start).Round(time.Microsecond),
		"remote", r.RemoteAddr, "agent", r.UserAgent(),
	}
	if r.Header.Get("If-Range") != "" && r.Header.Get("Range") != "" {
		// Whether the client's copy was still current: a 200 means the
		// file changed under a reader that resumes (a node mid-boot).
		outcome := "match"
		if lw.status() == http.StatusOK {
			outcome = "changed: whole file sent"
		} else if lw.status() != http.StatusPartialContent {
			outcome = "n/a"
		}
		attrs = append(attrs, "if_range", outcome)
	}
	if note != "" {
		attrs = append(attrs, "note", note)
	}
	if s.combined != nil {
		s.logCombined(r, lw, start)
		return
	}
	level := slog.LevelInfo
	if c := lw.status(); c >= 400 && c < 600 || lw.err != nil {
		level = slog.LevelWarn
	}
	s.log.Log(r.Context(), level, "request", attrs...)
}

// logCombined writes the access-log line in the combined log format
// (Apache's and nginx's default), which log analysers read as is:
//
//	host - user [time] "request line" status bytes "referer" "user agent"
func (s *fileServer) logCombined(r *http.Request, lw *logWriter, start time.Time) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	user := "-"
	if u, _, ok := r.BasicAuth(); ok && u != "" {
		user = clfEscape(u)
	}
	size := "-"
	if lw.bytes > 0 {
		size = strconv.FormatInt(lw.bytes, 10)
	}
	fmt.Fprintf(s.combined, "%s - %s [%s] \"%s %s %s\" %d %s \"%s\" \"%s\"\n",
		host, user, start.Format("02/Jan/2006:15:04:05 -0700"), clfEscape(r.Method), clfEscape(r.RequestURI), clfEscape(r.Proto),
		lw.status(), size, clfEscape(r.Referer()), clfEscape(r.UserAgent()))
}

// clfEscape escapes a request field for a combined-log line as Apache
// does: quote and backslash with a backslash, other non-printing bytes as
// \xhh, so a client cannot forge a line or drive a terminal; "" is "-".
func clfEscape(v string) string {
	if v == "" {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// serve answers one request and returns a note for the access log when the
// request was refused.
func (s *fileServer) serve(w http.ResponseWriter, r *http.Request) string {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return "method not allowed"
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		http.Error(w, "400 bad path", http.StatusBadRequest)
		return "bad path"
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			http.Error(w, "400 path leaves the served directory", http.StatusBadRequest)
			return "path traversal refused"
		}
	}
	// Dot names (.git, .htpasswd, an editor's .swp, a half-written .new)
	// are never published: answered as missing, so they are not even
	// confirmed to exist.
	for _, seg := range strings.Split(p, "/") {
		if strings.HasPrefix(seg, ".") {
			http.Error(w, "404 not found", http.StatusNotFound)
			return "dot name refused"
		}
	}
	name := strings.TrimPrefix(path.Clean(p), "/")
	if name == "" {
		name = "."
	}
	f, st, ref := s.openRegular(name)
	if ref != nil {
		http.Error(w, ref.body, ref.code)
		return ref.note
	}
	defer f.Close()
	w.Header().Set("ETag", etag(st))
	// By extension, else octet-stream: never sniff (it reads the file).
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ctype)
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
	return ""
}

// refusal is why a request gets no file: status, body and log note.
type refusal struct {
	code       int
	body, note string
}

func refuse(code int, note string) *refusal {
	return &refusal{code, fmt.Sprintf("%d %s", code, strings.ToLower(http.StatusText(code))), note}
}

// openRegular opens name only if it is a regular file, without ever
// blocking: open(2) on a FIFO waits for a writer (a goroutine and a thread
// per request, forever) and on a device may have side effects. So it stats
// first (symlinks inside the root followed, out of it refused by os.Root),
// opens only a regular file, non-blocking in case it was swapped for a
// FIFO since, and checks that the open file is still the one stat saw.
func (s *fileServer) openRegular(name string) (*os.File, fs.FileInfo, *refusal) {
	// A file replaced by rename between the stat and the open (an image
	// being published) is tried again, not refused.
	for range 3 {
		f, st, ref := s.openOnce(name)
		if f != nil || ref != errReplaced {
			return f, st, ref
		}
	}
	return nil, nil, &refusal{http.StatusServiceUnavailable, "503 the file keeps changing; retry", "replaced while being opened"}
}

var errReplaced = &refusal{http.StatusServiceUnavailable, "", "replaced while being opened"}

func (s *fileServer) openOnce(name string) (*os.File, fs.FileInfo, *refusal) {
	st, err := s.root.Stat(name)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil, refuse(http.StatusNotFound, "not found")
		case errors.Is(err, fs.ErrPermission):
			return nil, nil, refuse(http.StatusForbidden, "permission denied")
		default: // e.g. a symlink out of the directory
			return nil, nil, refuse(http.StatusForbidden, err.Error())
		}
	}
	if st.IsDir() {
		return nil, nil, &refusal{http.StatusNotFound, "404 not found (directory listing is off)", "not a regular file"}
	}
	if !st.Mode().IsRegular() {
		return nil, nil, refuse(http.StatusNotFound, "not a regular file ("+st.Mode().Type().String()+")")
	}
	f, err := s.root.OpenFile(name, os.O_RDONLY|openNoBlock, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, refuse(http.StatusNotFound, "not found")
		}
		return nil, nil, refuse(http.StatusForbidden, err.Error())
	}
	fst, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, refuse(http.StatusInternalServerError, err.Error())
	}
	if !fst.Mode().IsRegular() || !os.SameFile(st, fst) {
		f.Close()
		return nil, nil, errReplaced
	}
	return f, fst, nil
}

// etag is a strong validator from the file's identity and version: inode,
// size and modification time in nanoseconds. Replacing the file (new inode)
// or rewriting it (new mtime) changes it; it costs no read of the content.
// A rewrite that keeps the size and restores the old mtime to the
// nanosecond is not noticed: use a content-addressed name for that.
func etag(st fs.FileInfo) string {
	return fmt.Sprintf(`"%x-%x-%x"`, inode(st), st.Size(), st.ModTime().UnixNano())
}

// logWriter counts the status and body bytes of a response.
type logWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
	err   error // the first write error: the client went away
}

func (w *logWriter) noteErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

func (w *logWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	w.noteErr(err)
	return n, err
}

// ReadFrom keeps sendfile(2) for the body while counting it.
func (w *logWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(r)
		w.bytes += n
		w.noteErr(err)
		return n, err
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *logWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
