package httpsrc

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/syncbuf"
	"github.com/streamroot/streamroot/internal/testimg"
)

// counted serves img (ServeContent: ranges, If-Range) and counts requests.
func counted(n *atomic.Int32, img []byte, etag string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if etag != "" {
			w.Header().Set("ETag", etag)
		}
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
	}
}

// An https URL answering 302 to plain http is refused at once, naming both
// URLs; the plain server is never asked (a downgrade would let anyone on
// the path swap the image).
func TestRedirectDowngradeRefused(t *testing.T) {
	img := testimg.Random(64<<10, 1)
	var plainHits atomic.Int32
	plain := httptest.NewServer(counted(&plainHits, img, `"p"`))
	defer plain.Close()
	var tlsSrv *httptest.Server
	tlsSrv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/direct":
			http.Redirect(w, r, plain.URL+"/img", http.StatusFound)
		case "/hop": // https → https → http
			http.Redirect(w, r, tlsSrv.URL+"/direct", http.StatusMovedPermanently)
		}
	}))
	defer tlsSrv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())
	for _, path := range []string{"/direct", "/hop"} {
		start := time.Now()
		_, err := Open(context.Background(), tlsSrv.URL+path, Options{RootCAs: pool, Stall: 20 * time.Second, Pin: map[string]string{}})
		var re *RedirectError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "https://127.0.0.1") || !strings.Contains(err.Error(), plain.URL+"/img") ||
			!strings.Contains(err.Error(), "plain HTTP") || !strings.Contains(re.Hint(), "root=") {
			t.Fatalf("%s: err = %v, want a refused downgrade naming both URLs", path, err)
		}
		if !IsPermanent(err) {
			t.Errorf("%s: a refused redirect is not permanent", path)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: took %s: a refused redirect was retried", path, d)
		}
	}
	if plainHits.Load() != 0 {
		t.Errorf("the plain-HTTP server was asked %d times", plainHits.Load())
	}
}

// Redirects are followed once, at Open: every range goes to the final URL.
func TestRedirectResolvedOnce(t *testing.T) {
	img := testimg.Random(3<<20+17, 1)
	var redirHits, imgHits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/boot/img":
			redirHits.Add(1)
			http.Redirect(w, r, "/store/img", http.StatusFound)
		case "/store/img":
			counted(&imgHits, img, `"s"`)(w, r)
		}
	}))
	defer srv.Close()
	src, err := Open(context.Background(), srv.URL+"/boot/img", Options{Stall: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if src.FinalURL != srv.URL+"/store/img" || src.URL != srv.URL+"/boot/img" {
		t.Errorf("URL %s, FinalURL %s", src.URL, src.FinalURL)
	}
	out := make(memFile, len(img))
	if err := src.Fetch(context.Background(), out, FetchOptions{Chunk: 1 << 20, Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, img) {
		t.Fatal("bytes differ")
	}
	if got := redirHits.Load(); got != 1 {
		t.Errorf("the redirecting URL was asked %d times, want once (at Open)", got)
	}
	if imgHits.Load() < 5 {
		t.Errorf("only %d requests reached the final URL", imgHits.Load())
	}
}

// A redirect that shows up after Open is not followed: the image was pinned
// at one URL, and whatever the redirect leads to is not read.
func TestRedirectAfterOpenNotFollowed(t *testing.T) {
	img := testimg.Random(2<<20, 1)
	var otherHits atomic.Int32
	other := httptest.NewServer(counted(&otherHits, img, `"o"`))
	defer other.Close()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 1 {
			http.Redirect(w, r, other.URL+"/img", http.StatusTemporaryRedirect)
			return
		}
		w.Header().Set("ETag", `"o"`)
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	src, err := Open(context.Background(), srv.URL+"/img", Options{Stall: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = src.ReadRange(context.Background(), make([]byte, 4096), 4096)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusTemporaryRedirect || !strings.Contains(err.Error(), other.URL+"/img") {
		t.Fatalf("err = %v, want the 307 refused", err)
	}
	if otherHits.Load() != 0 {
		t.Errorf("the redirect after Open was followed (%d requests)", otherHits.Load())
	}
}

// A redirect to another host is resolved at Open when the caller pins (the
// block daemon: after switch_root there is no resolver), and every range
// dials the pinned address.
func TestRedirectToOtherHostPinned(t *testing.T) {
	img := testimg.Random(2<<20+5, 1)
	var imgHits atomic.Int32
	store := httptest.NewServer(counted(&imgHits, img, `"h"`))
	defer store.Close()
	_, port, _ := net.SplitHostPort(store.Listener.Addr().String())
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://store.invalid:"+port+"/img", http.StatusFound)
	}))
	defer front.Close()

	var lookups atomic.Int32
	var resolverGone atomic.Bool
	old := lookupHost
	lookupHost = func(ctx context.Context, host string) ([]string, error) {
		lookups.Add(1)
		if host != "store.invalid" || resolverGone.Load() {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return []string{"127.0.0.1"}, nil
	}
	t.Cleanup(func() { lookupHost = old })

	pin := map[string]string{}
	src, err := Open(context.Background(), front.URL+"/img", Options{Stall: 10 * time.Second, Pin: pin})
	if err != nil {
		t.Fatal(err)
	}
	resolverGone.Store(true) // switch_root
	if len(pin) != 0 {
		t.Error("Open modified the caller's Pin map")
	}
	out := make(memFile, len(img))
	if err := src.Fetch(context.Background(), out, FetchOptions{Chunk: 1 << 20, Parallel: 2}); err != nil {
		t.Fatalf("fetch from the pinned redirect target: %v", err)
	}
	if !bytes.Equal(out, img) {
		t.Fatal("bytes differ")
	}
	if lookups.Load() != 1 {
		t.Errorf("%d lookups, want 1 (at Open)", lookups.Load())
	}

	// A target that does not resolve is refused at Open, naming it.
	_, err = Open(context.Background(), front.URL+"/img", Options{Stall: 10 * time.Second, Pin: map[string]string{}})
	if err == nil || !strings.Contains(err.Error(), "store.invalid") {
		t.Fatalf("unresolvable redirect target: err = %v", err)
	}
}

// A redirect loop ends after MaxRedirects, at once.
func TestRedirectLoopBounded(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, fmt.Sprintf("/loop%d", hits.Load()%2), http.StatusFound)
	}))
	defer srv.Close()
	start := time.Now()
	_, err := Open(context.Background(), srv.URL+"/loop0", Options{Stall: 20 * time.Second})
	var re *RedirectError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "redirects") {
		t.Fatalf("err = %v", err)
	}
	if h := hits.Load(); h > MaxRedirects+1 {
		t.Errorf("%d requests for a loop bounded at %d redirects", h, MaxRedirects)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s: the loop was retried", d)
	}
}

// swapServer serves old until n requests were answered, then new; headers
// are what each version sends; ignoreIfRange makes it a server (or cache)
// that answers 206 whatever If-Range says.
type version struct {
	data []byte
	hdr  map[string]string
}

func swapServer(t *testing.T, after int32, ignoreIfRange bool, old, new version, ifRanges *[]string) *httptest.Server {
	var n atomic.Int32
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := old
		if n.Add(1) > after {
			v = new
		}
		mu.Lock()
		*ifRanges = append(*ifRanges, r.Header.Get("If-Range"))
		mu.Unlock()
		for k, val := range v.hdr {
			w.Header().Set(k, val)
		}
		if ignoreIfRange {
			r.Header.Del("If-Range")
		}
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(v.data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Weak ETags and Last-Modified pin the image too: a change of either is
// ErrChanged; If-Range never carries a weak ETag.
func TestWeakValidators(t *testing.T) {
	img := testimg.Random(4<<20, 1)
	other := testimg.Random(4<<20, 1)
	other[1<<20+5] ^= 1
	lm1, lm2 := "Mon, 02 Jan 2006 15:04:05 GMT", "Tue, 03 Jan 2006 15:04:05 GMT"
	for _, tc := range []struct {
		name          string
		old, new      map[string]string
		ignoreIfRange bool
		wantIfRange   string
	}{
		{"weak etag only", map[string]string{"ETag": `W/"1"`}, map[string]string{"ETag": `W/"2"`}, false, ""},
		{"weak etag, server ignores If-Range", map[string]string{"ETag": `W/"1"`, "Last-Modified": lm1}, map[string]string{"ETag": `W/"2"`, "Last-Modified": lm1}, true, lm1},
		{"last-modified only, server ignores If-Range", map[string]string{"Last-Modified": lm1}, map[string]string{"Last-Modified": lm2}, true, lm1},
		{"weak etag and last-modified", map[string]string{"ETag": `W/"1"`, "Last-Modified": lm1}, map[string]string{"ETag": `W/"1"`, "Last-Modified": lm2}, true, lm1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ifRanges []string
			srv := swapServer(t, 2, tc.ignoreIfRange, version{img, tc.old}, version{other, tc.new}, &ifRanges)
			src, err := Open(context.Background(), srv.URL, Options{Stall: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if !src.HasValidator() {
				t.Error("HasValidator false with a validator")
			}
			err = src.Fetch(context.Background(), make(memFile, len(img)), FetchOptions{Chunk: 1 << 20, Parallel: 1})
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("err = %v, want ErrChanged", err)
			}
			for _, ir := range ifRanges[1:] {
				if ir != tc.wantIfRange {
					t.Errorf("If-Range %q, want %q", ir, tc.wantIfRange)
				}
			}
		})
	}
}

// A cache weakening a strong ETag (W/"x" for "x") is not a change.
func TestWeakenedETagIsSame(t *testing.T) {
	img := testimg.Random(3<<20, 1)
	var ifRanges []string
	srv := swapServer(t, 1, true, version{img, map[string]string{"ETag": `"x"`}}, version{img, map[string]string{"ETag": `W/"x"`}}, &ifRanges)
	src, err := Open(context.Background(), srv.URL, Options{Stall: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out := make(memFile, len(img))
	if err := src.Fetch(context.Background(), out, FetchOptions{Chunk: 1 << 20, Parallel: 1}); err != nil || !bytes.Equal(out, img) {
		t.Fatalf("err = %v", err)
	}
	if ifRanges[1] != `"x"` {
		t.Errorf("If-Range %q, want the strong ETag", ifRanges[1])
	}
}

// Without ETag and Last-Modified, HasValidator says so (the init and
// inspect warn) and what can still be seen, a size change, is refused.
func TestNoValidator(t *testing.T) {
	img := testimg.Random(3<<20, 1)
	bigger := testimg.Random(3<<20+1, 1)
	var ifRanges []string
	srv := swapServer(t, 2, false, version{img, nil}, version{bigger, nil}, &ifRanges)
	src, err := Open(context.Background(), srv.URL, Options{Stall: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if src.HasValidator() {
		t.Error("HasValidator true without ETag and Last-Modified")
	}
	if err := src.Fetch(context.Background(), make(memFile, len(img)), FetchOptions{Chunk: 1 << 20, Parallel: 1}); !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v, want ErrChanged", err)
	}
}

// rawRange answers every request with the given Content-Range (and a body
// of the asked length), whatever was asked.
func rawRange(cr string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", cr)
		w.Header().Set("ETag", `"a"`)
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte{0})
	}
}

// Sizes no image has are refused at Open, naming the server and the size.
func TestAbsurdSizes(t *testing.T) {
	for _, tc := range []struct {
		size string
		ok   bool
	}{
		{"9223372036854775807", false},
		{"17592186044417", false}, // 16 TiB + 1
		{"17592186044416", true},  // 16 TiB
		{"1", true},
	} {
		srv := httptest.NewServer(rawRange("bytes 0-0/" + tc.size))
		start := time.Now()
		src, err := Open(context.Background(), srv.URL+"/img", Options{Stall: 20 * time.Second})
		srv.Close()
		if tc.ok {
			if err != nil || fmt.Sprint(src.Size) != tc.size {
				t.Errorf("size %s: %v", tc.size, err)
			}
			continue
		}
		var h interface{ Hint() string }
		if err == nil || !strings.Contains(err.Error(), tc.size) || !strings.Contains(err.Error(), srv.URL+"/img") || !errors.As(err, &h) {
			t.Errorf("size %s: err = %v, want one naming the size and the server", tc.size, err)
		}
		if time.Since(start) > 3*time.Second {
			t.Errorf("size %s: refusal was retried", tc.size)
		}
	}
}

// A manifest whose Content-Length is over the limit is refused before its
// body is read, naming the size.
func TestGetSmallContentLength(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1099511627776")
		w.Write([]byte("short"))
	}))
	defer srv.Close()
	_, err := GetSmall(context.Background(), srv.URL+"/m", 1<<20, Options{Stall: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "1099511627776") {
		t.Fatalf("err = %v", err)
	}
}

// Offsets near MaxInt64 fail at once instead of sending a wrapped range
// and retrying until the deadline.
func TestReadRangeOverflow(t *testing.T) {
	img := testimg.Random(1<<20, 1)
	var hits atomic.Int32
	srv := httptest.NewServer(counted(&hits, img, `"v"`))
	defer srv.Close()
	src, err := Open(context.Background(), srv.URL, Options{Stall: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		off int64
		n   int
		ok  bool
	}{
		{math.MaxInt64 - 1, 2, false},
		{math.MaxInt64, 1, false},
		{math.MaxInt64 - 100, 4096, false},
		{-1, 1, false},
		{int64(len(img)) - 1, 2, false},
		{int64(len(img)), 0, true},
		{int64(len(img)) - 1, 1, true},
	} {
		start := time.Now()
		err := src.ReadRange(context.Background(), make([]byte, tc.n), tc.off)
		if (err == nil) != tc.ok {
			t.Errorf("ReadRange(%d bytes at %d) = %v", tc.n, tc.off, err)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("ReadRange(%d bytes at %d) took %s", tc.n, tc.off, time.Since(start))
		}
	}
	if h := hits.Load(); h != 2 {
		t.Errorf("%d requests, want 2 (the open and one valid range)", h)
	}
}

func FuzzCheckRange(f *testing.F) {
	f.Add(int64(math.MaxInt64-1), 2, int64(1<<20))
	f.Add(int64(0), 0, int64(0))
	f.Add(int64(10), 5, int64(15))
	f.Fuzz(func(t *testing.T, off int64, n int, size int64) {
		end := new(big.Int).Add(big.NewInt(off), big.NewInt(int64(n)))
		want := off >= 0 && n >= 0 && end.Cmp(big.NewInt(size)) <= 0
		if got := checkRange(off, n, size); got != want {
			t.Fatalf("checkRange(%d, %d, %d) = %v, want %v", off, n, size, got, want)
		}
	})
}

// No error and no log line carries the password of the image URL.
func TestNoCredentialsInErrorsOrLogs(t *testing.T) {
	const secret = "s3cr3t-pw"
	img := testimg.Random(2<<20, 1)
	other := testimg.Random(2<<20, 1)
	other[0] ^= 1
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/img":
			http.ServeContent(w, r, "img", time.Unix(1700000000, 0), bytes.NewReader(img))
		case "/changing":
			d, mod := img, time.Unix(1700000000, 0)
			if n.Add(1) > 2 {
				d, mod = other, mod.Add(time.Hour)
			}
			http.ServeContent(w, r, "img", mod, bytes.NewReader(d))
		case "/norange":
			w.Write(img[:100])
		case "/huge":
			rawRange("bytes 0-0/9223372036854775807")(w, r)
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://u:"+secret+"@127.0.0.1:1/img", http.StatusFound)
	}))
	defer tlsSrv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())

	withCreds := func(base string) string { return strings.Replace(base, "://", "://u:"+secret+"@", 1) }
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := Options{Stall: time.Second, Log: log, RootCAs: pool}
	var errs []error
	check := func(what string, err error) {
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		errs = append(errs, err)
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
			t.Errorf("%s: the error shows the password: %v", what, err)
		}
	}
	for _, path := range []string{"/missing", "/norange", "/huge", "/500"} {
		_, err := Open(context.Background(), withCreds(srv.URL)+path, o)
		check(path, err)
	}
	_, err := Open(context.Background(), withCreds(dead.URL)+"/img", o)
	check("connection refused", err)
	_, err = Open(context.Background(), withCreds(tlsSrv.URL)+"/img", o)
	check("downgrade", err)
	_, err = Open(context.Background(), withCreds(tlsSrv.URL)+"/img", Options{Stall: time.Second, Log: log})
	check("untrusted certificate", err)
	_, err = Open(context.Background(), "http://u:"+secret+"@127.0.0.1:notaport/img", o)
	check("bad URL", err)
	_, err = GetSmall(context.Background(), withCreds(srv.URL)+"/missing", 1<<20, o)
	check("manifest 404", err)
	_, err = GetSmall(context.Background(), withCreds(dead.URL)+"/m", 1<<20, o)
	check("manifest connection refused", err)

	src, err := Open(context.Background(), withCreds(srv.URL)+"/img", o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(src.URL+src.FinalURL, secret) {
		t.Errorf("Source.URL %s", src.URL)
	}
	check("range outside", src.ReadRange(context.Background(), make([]byte, 2), int64(len(img))-1))
	src, err = Open(context.Background(), withCreds(srv.URL)+"/changing", o)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Fetch(context.Background(), make(memFile, len(img)), FetchOptions{Chunk: 1 << 20, Parallel: 1})
	if !errors.Is(err, ErrChanged) {
		t.Errorf("changing image: %v", err)
	}
	check("changed", err)
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log shows the password:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("no retry was logged: the log check proves little\n%s", logs.String())
	}
	t.Logf("errors:\n%v", errors.Join(errs...))
}

// scrub catches a password in any error text, raw or as a URL escapes it.
func TestScrub(t *testing.T) {
	u, _ := url.Parse("http://u:p%40ss@h/img")
	for _, msg := range []string{"get http://u:p%40ss@h/img: refused", "dial u:p@ss@h failed"} {
		err := scrub(errors.New(msg), u)
		if strings.Contains(err.Error(), "p%40ss") || strings.Contains(err.Error(), "p@ss") || !strings.Contains(err.Error(), "u:xxxxx@h") {
			t.Errorf("scrub(%q) = %q", msg, err)
		}
	}
	plain := errors.New("no URL here")
	if scrub(plain, u) != plain {
		t.Error("an error without the password was rewritten")
	}
}

// A 206 whose Content-Length disagrees with its Content-Range (a broken
// proxy) is not used: the range is asked again.
func TestContentLengthMismatchRetried(t *testing.T) {
	img := testimg.Random(1<<20, 1)
	var bad, hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		var first, last int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err == nil && last > 0 && bad.Add(1) == 1 {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(img)))
			w.Header().Set("Content-Length", fmt.Sprint(last-first+2))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(img[first : last+1])
			w.Write([]byte{0})
			return
		}
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	src, err := Open(context.Background(), srv.URL, Options{Stall: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if err := src.ReadRange(context.Background(), got, 8192); err != nil || !bytes.Equal(got, img[8192:8192+4096]) {
		t.Fatalf("read: %v", err)
	}
	if hits.Load() != 3 {
		t.Errorf("%d requests, want 3: the answer with the wrong Content-Length was used", hits.Load())
	}
}
