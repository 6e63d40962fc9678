package httpsrc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/testimg"
)

// memFile is an io.WriterAt over a byte slice.
type memFile []byte

func (m memFile) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

func serve(data *atomic.Pointer[[]byte], etag *atomic.Value) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag.Load().(string))
		http.ServeContent(w, r, "img", time.Unix(1700000000, 0), bytes.NewReader(*data.Load()))
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in                string
		first, last, size int64
		ok                bool
	}{
		{"bytes 0-0/10", 0, 0, 10, true},
		{"bytes 5-9/10", 5, 9, 10, true},
		{"bytes 5-9/*", 0, 0, 0, false},
		{"bytes 5-10/10", 0, 0, 0, false},
		{"bytes 9-5/10", 0, 0, 0, false},
		{"bytes -1-5/10", 0, 0, 0, false},
		{"bytes +0-5/10", 0, 0, 0, false},
		{"bytes 0-+5/10", 0, 0, 0, false},
		{"bytes 0-5/+10", 0, 0, 0, false},
		{"bytes 0-5/ 10", 0, 0, 0, false},
		{"bytes 0-0/9223372036854775808", 0, 0, 0, false},
		{"bytes 0007-9/10", 7, 9, 10, true},
		{"items 0-1/10", 0, 0, 0, false},
		{"", 0, 0, 0, false},
		// The cases of the CLI's own parser, before inspect read through here.
		{"bytes 0-99/1000", 0, 99, 1000, true},
		{"bytes 5-5/6", 5, 5, 6, true},
		{"bytes 0-99/*", 0, 0, 0, false},
		{"bytes 10-5/100", 0, 0, 0, false},
		{"bytes 0-100/100", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
	} {
		f, l, s, err := parseContentRange(tc.in)
		if (err == nil) != tc.ok || (tc.ok && (f != tc.first || l != tc.last || s != tc.size)) {
			t.Errorf("parseContentRange(%q) = %d,%d,%d,%v", tc.in, f, l, s, err)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-0/10", "bytes 5-9/10", "bytes 1-2/*", "bytes 9223372036854775806-9223372036854775806/9223372036854775807"} {
		f.Add(s)
	}
	f.Add("bytes +1-+2/+3")
	f.Fuzz(func(t *testing.T, h string) {
		first, last, size, err := parseContentRange(h)
		if err != nil {
			return
		}
		if first < 0 || last < first || size <= last || last-first+1 <= 0 {
			t.Fatalf("%q accepted as %d-%d/%d", h, first, last, size)
		}
		// Only digits: the accepted header is the canonical one but for
		// leading zeros.
		canon := fmt.Sprintf("bytes %d-%d/%d", first, last, size)
		trim := func(s string) string {
			var out []string
			for _, f := range strings.FieldsFunc(strings.TrimPrefix(s, "bytes "), func(r rune) bool { return r == '-' || r == '/' }) {
				if f = strings.TrimLeft(f, "0"); f == "" {
					f = "0"
				}
				out = append(out, f)
			}
			return strings.Join(out, ",")
		}
		if trim(h) != trim(canon) || strings.Count(h, "-") != 1 || strings.Count(h, "/") != 1 {
			t.Fatalf("%q accepted as %s", h, canon)
		}
	})
}

// openServed serves img (ETag "v1") and opens it.
func openServed(t *testing.T, img []byte) *Source {
	t.Helper()
	var data atomic.Pointer[[]byte]
	data.Store(&img)
	var etag atomic.Value
	etag.Store(`"v1"`)
	srv := httptest.NewServer(serve(&data, &etag))
	t.Cleanup(srv.Close)
	src, err := Open(context.Background(), srv.URL+"/img", Options{Stall: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestFetch(t *testing.T) {
	img := testimg.Random(10<<20+12345, 1)
	src := openServed(t, img)
	if src.Size != int64(len(img)) || src.ETag != `"v1"` {
		t.Fatalf("pinned size %d etag %s", src.Size, src.ETag)
	}
	out := make(memFile, len(img))
	var calls int
	err := src.Fetch(context.Background(), out, FetchOptions{Chunk: 1 << 20, Parallel: 3, Every: time.Millisecond, Progress: func(Progress) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(out) != sha256.Sum256(img) {
		t.Fatal("fetched bytes differ")
	}
	if calls == 0 {
		t.Error("no progress reported")
	}
}

// A panic on a fetch worker (here in the caller's Verify) is the fetch's
// error, not a crash: in PID 1 an unrecovered one panics the kernel.
func TestFetchWorkerPanicIsAnError(t *testing.T) {
	img := testimg.Random(4<<20, 1)
	src := openServed(t, img)
	var calls atomic.Int32
	err := src.Fetch(context.Background(), make(memFile, len(img)), FetchOptions{Chunk: 1 << 20, Parallel: 4, Verify: func(off int64, _ []byte) error {
		if calls.Add(1) == 2 {
			var chunks []int
			_ = chunks[off] // out of range: a runtime panic, as a bug would be
		}
		return nil
	}})
	if err == nil || !strings.Contains(err.Error(), "panic: runtime error: index out of range") || !strings.Contains(err.Error(), "/img") {
		t.Fatalf("Fetch with a panicking worker: %v", err)
	}
}

// A server that cuts every response off after a few hundred KiB: the fetch
// must resume each chunk mid-way and still deliver identical bytes.
func TestFetchResumesBrokenBodies(t *testing.T) {
	img := testimg.Random(3<<20, 1)
	var cuts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"x"`)
		var first, last int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil {
			http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(img)))
		w.Header().Set("Content-Length", fmt.Sprint(last-first+1))
		w.WriteHeader(http.StatusPartialContent)
		n := min(last-first+1, 300<<10)
		w.Write(img[first : first+n])
		if n < last-first+1 {
			cuts.Add(1)
			panic(http.ErrAbortHandler) // drop the connection mid-body
		}
	}))
	defer srv.Close()
	src, err := Open(context.Background(), srv.URL, Options{Stall: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out := make(memFile, len(img))
	if err := src.Fetch(context.Background(), out, FetchOptions{Chunk: 1 << 20, Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, img) {
		t.Fatal("resumed bytes differ")
	}
	if cuts.Load() == 0 {
		t.Fatal("the server never cut a body: the test proves nothing")
	}
}

func TestFetchRefusesChangedImage(t *testing.T) {
	img := testimg.Random(4<<20, 1)
	other := testimg.Random(4<<20, 1)
	other[0] ^= 1
	var data atomic.Pointer[[]byte]
	data.Store(&img)
	var etag atomic.Value
	etag.Store(`"v1"`)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 3 { // replaced after the first ranges
			data.Store(&other)
			etag.Store(`"v2"`)
		}
		serve(&data, &etag)(w, r)
	}))
	defer srv.Close()
	src, err := Open(context.Background(), srv.URL, Options{Stall: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Fetch(context.Background(), make(memFile, len(img)), FetchOptions{Chunk: 1 << 20, Parallel: 1})
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v, want ErrChanged", err)
	}
}

func TestOpenErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/norange":
			w.Write([]byte("whole file"))
		case "/forbidden":
			http.Error(w, "no", http.StatusForbidden)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path, want string
		check      func(error) bool
	}{
		{"/missing", "404", func(err error) bool { var se *StatusError; return errors.As(err, &se) && se.Code == 404 }},
		{"/norange", "Range", func(err error) bool { return errors.Is(err, ErrNoRanges) }},
		{"/forbidden", "403", func(err error) bool {
			var se *StatusError
			return errors.As(err, &se) && se.Code == 403 && strings.Contains(se.Hint(), "permissions")
		}},
	} {
		start := time.Now()
		_, err := Open(context.Background(), srv.URL+tc.path, Options{Stall: 20 * time.Second})
		if err == nil || !tc.check(err) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: err = %v", tc.path, err)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("%s: took %s; a permanent error must not be retried", tc.path, time.Since(start))
		}
	}
}

func TestOpenUnreachableIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	start := time.Now()
	_, err := Open(context.Background(), url+"/img", Options{Stall: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), url) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s, want about the 2s stall bound", d)
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(testimg.Random(10000, 1)))
	}))
	defer srv.Close()
	// Not trusted: fatal at once, with the reason.
	start := time.Now()
	_, err := Open(context.Background(), srv.URL+"/img", Options{Stall: 20 * time.Second})
	var te *TLSError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "certificate") || !strings.Contains(te.Hint(), "EXTRA_CA") {
		t.Fatalf("untrusted server: err = %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Error("a certificate error was retried")
	}
	// Trusted through RootCAs.
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	src, err := Open(context.Background(), srv.URL+"/img", Options{RootCAs: pool})
	if err != nil || src.Size != 10000 {
		t.Fatalf("trusted server: %v", err)
	}
	// rd.noverifyssl.
	if _, err := Open(context.Background(), srv.URL+"/img", Options{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
}

// 503 with Retry-After is waited out as told; a short 206 (fewer bytes than
// Content-Range promises) is retried, never accepted.
func TestRetryAfterAndShortBody(t *testing.T) {
	img := testimg.Random(2<<20, 1)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case 3: // a 206 whose body is shorter than promised
			var first, last int64
			fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(img)))
			w.Header().Set("Content-Length", fmt.Sprint(last-first+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(img[first : first+(last-first+1)/2])
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("ETag", `"e"`)
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	start := time.Now()
	src, err := Open(context.Background(), srv.URL, Options{Stall: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("Retry-After: 1 not honoured (opened after %s)", d)
	}
	out := make(memFile, len(img))
	if err := src.Fetch(context.Background(), out, FetchOptions{Chunk: 1 << 20, Parallel: 1}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, img) {
		t.Fatal("short body accepted as data")
	}
}

// A server that stops sending mid-body: bounded by the stall time, with a
// message that says so.
func TestStalledServerIsBounded(t *testing.T) {
	img := testimg.Random(1<<20, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"s"`)
		if r.Header.Get("Range") == "bytes=0-0" {
			http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
			return
		}
		<-release // never answers the data range
	}))
	defer srv.Close()
	defer close(release)
	src, err := Open(context.Background(), srv.URL, Options{Stall: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = src.Fetch(context.Background(), make(memFile, len(img)), FetchOptions{Chunk: 1 << 20, Every: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no data for") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Fatalf("stalled fetch took %s with a 2s bound", d)
	}
}

// 5xx answers are retried; a Retry-After longer than the whole retry budget
// (rd.retry) is not waited out: the open gives up at the budget, naming the
// URL and the last answer.
func TestServerErrorsWithinRetryBudget(t *testing.T) {
	img := testimg.Random(64<<10, 1)
	for _, tc := range []struct {
		name       string
		code       int
		retryAfter string
		failures   int32 // answers before the good one; -1: never good
		budget     time.Duration
		wantErr    string
		maxTook    time.Duration
	}{
		// Two jittered waits: at most 0.5 s + 1 s.
		{"500 then good", http.StatusInternalServerError, "", 2, 20 * time.Second, "", 5 * time.Second},
		{"503 retry-after beyond rd.retry", http.StatusServiceUnavailable, "3600", -1, 2 * time.Second, "503 Service Unavailable", 5 * time.Second},
		{"500 forever", http.StatusInternalServerError, "", -1, 2 * time.Second, "500 Internal Server Error", 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if k := n.Add(1); tc.failures < 0 || k <= tc.failures {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					w.WriteHeader(tc.code)
					return
				}
				w.Header().Set("ETag", `"r"`)
				http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
			}))
			defer srv.Close()
			start := time.Now()
			src, err := Open(context.Background(), srv.URL+"/img", Options{Stall: tc.budget})
			took := time.Since(start)
			if took > tc.maxTook {
				t.Errorf("took %s, want at most %s (rd.retry is %s)", took, tc.maxTook, tc.budget)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				if got := n.Load(); got != tc.failures+1 {
					t.Errorf("%d requests, want %d (each 5xx retried once more)", got, tc.failures+1)
				}
				if src.Size != int64(len(img)) {
					t.Errorf("size %d", src.Size)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), srv.URL+"/img") {
				t.Fatalf("err = %v, want one naming %s and %q", err, srv.URL+"/img", tc.wantErr)
			}
		})
	}
}

// A 206 for another range than the one asked for (a broken cache or proxy)
// is never stored as the asked range: the range is asked again, and the
// read returns the right bytes.
func TestWrongRangeNotAccepted(t *testing.T) {
	img := testimg.Random(2<<20, 1)
	var wrong atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var first, last int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err == nil && first > 0 && wrong.Add(1) == 1 {
			// The bytes of the range before the asked one, labelled honestly.
			first, last = first-(1<<20), last-(1<<20)
			w.Header().Set("ETag", `"w"`)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(img)))
			w.Header().Set("Content-Length", fmt.Sprint(last-first+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(img[first : last+1])
			return
		}
		w.Header().Set("ETag", `"w"`)
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	src, err := Open(context.Background(), srv.URL, Options{Stall: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1<<20)
	if err := src.ReadRange(context.Background(), got, 1<<20); err != nil {
		t.Fatalf("read after one wrong answer: %v", err)
	}
	if wrong.Load() < 2 {
		t.Fatal("the server was never asked again after the wrong range")
	}
	if !bytes.Equal(got, img[1<<20:]) {
		t.Fatal("the wrong range was stored as the asked one")
	}
	if err := src.Fetch(context.Background(), make(memFile, len(img)), FetchOptions{Chunk: 1 << 20, Parallel: 1}); err != nil {
		t.Fatalf("fetch after the bad answer: %v", err)
	}
}
