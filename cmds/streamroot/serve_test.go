package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/syncbuf"
)

// newTestServer serves dir with the serve handler and returns its URL and
// access log.
func newTestServer(t *testing.T, dir string) (string, *syncbuf.Buffer) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	var log syncbuf.Buffer
	srv := httptest.NewServer(&fileServer{root: root, log: slog.New(slog.NewTextHandler(&log, nil))})
	t.Cleanup(srv.Close)
	return srv.URL, &log
}

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// rawGet sends a request line as is, so the client cannot clean the path.
func rawGet(t *testing.T, base, path string) int {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	content := "0123456789abcdefghij"
	os.WriteFile(filepath.Join(dir, "img"), []byte(content), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "x.img"), []byte("x"), 0o644)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o644)
	os.Symlink(secret, filepath.Join(dir, "escape"))
	os.Symlink("img", filepath.Join(dir, "alias"))
	base, _ := newTestServer(t, dir)

	first, _ := do(t, "GET", base+"/img", nil)
	etag := first.Header.Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]+-14-[0-9a-f]+"$`).MatchString(etag) {
		t.Fatalf("ETag %q is not a strong inode-size-mtime tag", etag)
	}
	lastMod := first.Header.Get("Last-Modified")

	tests := []struct {
		name     string
		method   string
		path     string
		hdr      map[string]string
		status   int
		body     string
		checkHdr map[string]string
	}{
		{"whole file", "GET", "/img", nil, 200, content, map[string]string{"Accept-Ranges": "bytes", "Content-Length": "20"}},
		{"range", "GET", "/img", map[string]string{"Range": "bytes=2-5"}, 206, "2345", map[string]string{"Content-Range": "bytes 2-5/20"}},
		{"suffix range", "GET", "/img", map[string]string{"Range": "bytes=-3"}, 206, "hij", nil},
		{"open range", "GET", "/img", map[string]string{"Range": "bytes=18-"}, 206, "ij", nil},
		{"range past the end", "GET", "/img", map[string]string{"Range": "bytes=50-60"}, 416, "", nil},
		{"If-Range matching ETag", "GET", "/img", map[string]string{"Range": "bytes=0-1", "If-Range": etag}, 206, "01", nil},
		{"If-Range stale ETag", "GET", "/img", map[string]string{"Range": "bytes=0-1", "If-Range": `"stale"`}, 200, content, nil},
		{"If-Range matching date", "GET", "/img", map[string]string{"Range": "bytes=0-1", "If-Range": lastMod}, 206, "01", nil},
		{"If-Range old date", "GET", "/img", map[string]string{"Range": "bytes=0-1", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}, 200, content, nil},
		{"If-None-Match", "GET", "/img", map[string]string{"If-None-Match": etag}, 304, "", map[string]string{"ETag": etag}},
		{"If-Match stale", "GET", "/img", map[string]string{"If-Match": `"stale"`}, 412, "", nil},
		{"HEAD", "HEAD", "/img", nil, 200, "", map[string]string{"Content-Length": "20", "ETag": etag}},
		{"HEAD range", "HEAD", "/img", map[string]string{"Range": "bytes=0-9"}, 206, "", map[string]string{"Content-Length": "10"}},
		{"nested file", "GET", "/sub/x.img", nil, 200, "x", nil},
		{"symlink inside", "GET", "/alias", nil, 200, content, nil},
		{"missing", "GET", "/nope", nil, 404, "404 not found\n", nil},
		{"directory listing off", "GET", "/sub/", nil, 404, "", nil},
		{"root listing off", "GET", "/", nil, 404, "", nil},
		{"symlink out of DIR", "GET", "/escape", nil, 403, "", nil},
		{"encoded traversal", "GET", "/%2e%2e/etc/passwd", nil, 400, "", nil},
		{"POST", "POST", "/img", nil, 405, "", map[string]string{"Allow": "GET, HEAD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, base+tt.path, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			if tt.method == "HEAD" && body != "" {
				t.Errorf("HEAD sent a body")
			}
			for k, v := range tt.checkHdr {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
	for _, p := range []string{"/../etc/passwd", "/sub/../../etc/passwd", "/sub/.."} {
		if code := rawGet(t, base, p); code != 400 {
			t.Errorf("raw GET %s: %d, want 400", p, code)
		}
	}
}

func TestServeETag(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "img")
	os.WriteFile(p, []byte("version one"), 0o644)
	base, _ := newTestServer(t, dir)
	get := func() string {
		resp, _ := do(t, "HEAD", base+"/img", nil)
		return resp.Header.Get("ETag")
	}
	e1 := get()
	if e2 := get(); e2 != e1 || e1 == "" {
		t.Fatalf("ETag not stable across requests: %q %q", e1, e2)
	}
	// Rewritten in place, same size: the mtime changes the tag.
	os.WriteFile(p, []byte("version two"), 0o644)
	os.Chtimes(p, time.Now(), time.Now().Add(time.Second))
	e3 := get()
	if e3 == e1 {
		t.Errorf("ETag unchanged after a rewrite: %q", e3)
	}
	// Replaced by rename (new inode), same size and mtime as before.
	st, _ := os.Stat(p)
	tmp := filepath.Join(dir, ".new")
	os.WriteFile(tmp, []byte("version 3!!"), 0o644)
	os.Chtimes(tmp, st.ModTime(), st.ModTime())
	os.Rename(tmp, p)
	if e4 := get(); e4 == e3 {
		t.Errorf("ETag unchanged after the file was replaced: %q", e4)
	}
	// A client pinned to the old tag gets the whole new file, not a range.
	resp, body := do(t, "GET", base+"/img", map[string]string{"Range": "bytes=0-1", "If-Range": e1})
	if resp.StatusCode != 200 || body != "version 3!!" {
		t.Errorf("If-Range with the old ETag: %d %q", resp.StatusCode, body)
	}
}

func TestServeAccessLog(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "img"), make([]byte, 1000), 0o644)
	base, log := newTestServer(t, dir)
	do(t, "GET", base+"/img", map[string]string{"Range": "bytes=100-299"})
	do(t, "HEAD", base+"/img", nil)
	do(t, "GET", base+"/img", nil)
	rawGet(t, base, "/../x")
	// The handler logs after the response is sent: wait for the lines.
	var lines []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if lines = strings.Split(strings.TrimSpace(log.String()), "\n"); len(lines) >= 4 {
			break
		}
	}
	want := []string{
		`msg=request method=GET path=/img range="bytes=100-299" status=206 bytes=200 duration=`,
		`msg=request method=HEAD path=/img range="" status=200 bytes=0 duration=`,
		`msg=request method=GET path=/img range="" status=200 bytes=1000 duration=`,
		`msg=request method=GET path=/../x range="" status=400 bytes=`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), log.String())
	}
	for _, w := range want {
		found := false
		for _, l := range lines {
			if strings.Contains(l, w) && strings.Contains(l, "remote=127.0.0.1:") {
				found = true
				if strings.Contains(w, "status=400") && !strings.Contains(l, `note="path traversal refused"`) {
					t.Errorf("refusal not explained: %s", l)
				}
			}
		}
		if !found {
			t.Errorf("no log line contains\n%s\nin\n%s", w, log.String())
		}
	}
}

// startServe runs `streamroot serve args` in the background, as main
// would, and waits for its listening line. It returns the address it
// listens on (host:port), its stderr, and stop, which ends the command's
// context as SIGINT/SIGTERM do and asserts it then exits 0 within wait.
func startServe(t *testing.T, args ...string) (addr string, stderr *syncbuf.Buffer, stop func(wait time.Duration)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var out, errb syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), &env{stdout: &out, stderr: &errb})
	}()
	re := regexp.MustCompile(`url=http://(127\.0\.0\.1:\d+)/`)
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(errb.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no listening line: %s", errb.String())
	}
	return addr, &errb, func(wait time.Duration) {
		t.Helper()
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d after its context ended: %s", code, errb.String())
			}
		case <-time.After(wait):
			t.Fatal("serve did not stop")
		}
	}
}

// TestServeCommand runs the subcommand itself: listens, serves, and shuts
// down gracefully when its context ends (as on SIGINT/SIGTERM).
func TestServeCommand(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "img"), []byte("hello"), 0o644)
	addr, errb, stop := startServe(t, "-addr", "127.0.0.1:0", dir)
	resp, body := do(t, "GET", "http://"+addr+"/img", map[string]string{"Range": "bytes=1-2"})
	if resp.StatusCode != 206 || body != "el" {
		t.Errorf("GET: %d %q", resp.StatusCode, body)
	}
	stop(15 * time.Second)
	if !strings.Contains(errb.String(), "msg=stopped") {
		t.Errorf("no graceful stop logged: %s", errb.String())
	}
}

// Names starting with "." are never served, and nothing but a regular file
// is opened: a FIFO (open(2) would wait for a writer, a goroutine and a
// thread per request), a directory, or a symlink to either answers at once
// with an error status.
func TestServeRefusesHiddenAndSpecial(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "img"), []byte("image"), 0o644)
	os.Mkdir(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "config"), []byte("[remote]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".htpasswd"), []byte("admin:x"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", ".img.swp"), []byte("swap"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "ok.img"), []byte("ok"), 0o644)
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink("pipe", filepath.Join(dir, "pipe-link"))
	os.Symlink("sub", filepath.Join(dir, "dir-link"))
	os.Symlink(t.TempDir(), filepath.Join(dir, "outside-dir"))
	os.Symlink(".htpasswd", filepath.Join(dir, "visible"))
	base, log := newTestServer(t, dir)
	// On a server that blocks in open(2), a writer lets the handler go so
	// the server can shut down (cleanups run last first).
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
	client := &http.Client{Timeout: 10 * time.Second}

	tests := []struct {
		path   string
		status int
		note   string
	}{
		{"/.git/config", 404, "dot name refused"},
		{"/.git/", 404, "dot name refused"},
		{"/.htpasswd", 404, "dot name refused"},
		{"/sub/.img.swp", 404, "dot name refused"},
		{"/%2egit/config", 404, "dot name refused"},
		{"/./img", 404, "dot name refused"},
		{"/pipe", 404, "not a regular file (p"},
		{"/pipe-link", 404, "not a regular file (p"},
		{"/dir-link", 404, "not a regular file"},
		{"/outside-dir", 403, "escapes"},
		{"/sub/ok.img", 200, ""},
		// A symlink the operator made to a dot name is the operator's
		// choice: only the request path is checked.
		{"/visible", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			start := time.Now()
			resp, err := client.Get(base + tt.path)
			if err != nil {
				t.Fatalf("after %v: %v (the server blocked)", time.Since(start).Round(time.Millisecond), err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.status != 200 && (strings.Contains(string(body), "[remote]") || strings.Contains(string(body), "admin")) {
				t.Errorf("refusal leaked the content: %q", body)
			}
			if tt.note == "" {
				return
			}
			logged, _ := url.PathUnescape(tt.path)
			want := "path=" + logged + " "
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if strings.Contains(log.String(), want) {
					break
				}
			}
			for _, l := range strings.Split(log.String(), "\n") {
				if strings.Contains(l, want) && !(strings.Contains(l, " note=") && strings.Contains(l[strings.Index(l, " note="):], tt.note)) {
					t.Errorf("log line %q: want note %q", l, tt.note)
				}
			}
		})
	}
}
