package httpsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/testimg"
)

const testBlock = 64 << 10

func openBlocks(t *testing.T, url string, o Options, budget int64) *BlockReader {
	t.Helper()
	if o.Stall == 0 {
		o.Stall = 5 * time.Second
	}
	s, err := Open(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	return s.BlockReader(context.Background(), testBlock, budget)
}

// Blocks are fetched once, runs of missing blocks in one range, and what
// ReadAt returns is the image's bytes, up to the end.
func TestBlockReader(t *testing.T) {
	img := testimg.Random(5*testBlock+1234, 1)
	var mu sync.Mutex
	var ranges []string
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 1 { // after Open's
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			mu.Unlock()
		}
		w.Header().Set("ETag", `"b"`)
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	b := openBlocks(t, srv.URL+"/img", Options{}, 1<<20)
	for _, rd := range []struct{ off, n int }{{10, 100}, {testBlock - 5, 10}, {0, 3 * testBlock}, {4 * testBlock, 2 * testBlock}} {
		p := make([]byte, rd.n)
		n, err := b.ReadAt(p, int64(rd.off))
		want := img[rd.off:min(rd.off+rd.n, len(img))]
		if n != len(want) || !bytes.Equal(p[:n], want) || (n < rd.n) != (err == io.EOF) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d bytes", rd.n, rd.off, n, err, len(want))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"bytes=0-65535", "bytes=65536-131071", "bytes=131072-196607", "bytes=262144-328913"}
	if strings.Join(ranges, " ") != strings.Join(want, " ") || b.Ranges() != 4 {
		t.Errorf("ranges %q (%d), want %q", ranges, b.Ranges(), want)
	}
	if b.Fetched() != int64(len(img))-testBlock || b.Size() != int64(len(img)) {
		t.Errorf("fetched %d, size %d", b.Fetched(), b.Size())
	}
	if n, err := b.ReadAt(make([]byte, 1), int64(len(img))); n != 0 || err != io.EOF {
		t.Errorf("read at the end: %d, %v", n, err)
	}
	if _, err := b.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("negative offset: no error")
	}
}

// The budget bounds what is fetched, however the reads come; a refused
// read fetches nothing.
func TestBlockReaderBudget(t *testing.T) {
	img := testimg.Random(40*testBlock, 1)
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"b"`)
		cw := &countingWriter{ResponseWriter: w, n: &served}
		http.ServeContent(cw, r, "img", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	b := openBlocks(t, srv.URL+"/img", Options{}, 4*testBlock)
	if _, err := b.ReadAt(make([]byte, 3*testBlock), 0); err != nil {
		t.Fatal(err)
	}
	before := served.Load()
	_, err := b.ReadAt(make([]byte, 2*testBlock), 10*testBlock)
	if !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("over budget: err %v", err)
	}
	if served.Load() != before {
		t.Errorf("a refused read fetched %d bytes", served.Load()-before)
	}
	// A read that fits is still served; the cache costs nothing.
	if _, err := b.ReadAt(make([]byte, 100), 20*testBlock); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadAt(make([]byte, 4*testBlock), 0); !errors.Is(err, ErrBudget) {
		t.Errorf("block 3 past the budget: err %v", err)
	}
	if _, err := b.ReadAt(make([]byte, 3*testBlock), 0); err != nil {
		t.Errorf("cached blocks: %v", err)
	}
	if b.Fetched() > 4*testBlock {
		t.Errorf("fetched %d bytes, budget %d", b.Fetched(), 4*testBlock)
	}
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Hostile servers: a file that changes under the reader (whether or not
// the server honours If-Range), a Content-Range for other bytes or another
// size; each is an error, never bytes of another file.
func TestBlockReaderHostile(t *testing.T) {
	img := testimg.Random(3*testBlock, 1)
	other := testimg.Random(3*testBlock+1, 1)[1:]
	lm1, lm2 := "Mon, 02 Jan 2006 15:04:05 GMT", "Tue, 03 Jan 2006 15:04:05 GMT"
	for _, tc := range []struct {
		name string
		// answer serves every request after Open's.
		answer func(w http.ResponseWriter, r *http.Request)
		first  map[string]string // Open's validators
		want   string
	}{
		{"strong ETag changes, If-Range honoured", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"2"`)
			http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(other))
		}, map[string]string{"ETag": `"1"`}, "changed"},
		{"weak ETag changes, If-Range ignored", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `W/"2"`)
			r.Header.Del("If-Range")
			http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(other))
		}, map[string]string{"ETag": `W/"1"`}, "changed"},
		{"Last-Modified changes, If-Range ignored", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Last-Modified", lm2)
			r.Header.Del("If-Range")
			http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(other))
		}, map[string]string{"Last-Modified": lm1}, "changed"},
		{"size changes", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"1"`)
			http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img[:2*testBlock+7]))
		}, map[string]string{"ETag": `"1"`}, "changed"},
		{"Content-Range of other bytes", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"1"`)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", testBlock-1, len(img)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(img[:testBlock])
		}, map[string]string{"ETag": `"1"`}, "asked for bytes"},
		{"Content-Range unparsable", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"1"`)
			w.Header().Set("Content-Range", "bytes 131072-196607/*")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(img[2*testBlock:])
		}, map[string]string{"ETag": `"1"`}, "bad Content-Range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) > 1 {
					tc.answer(w, r)
					return
				}
				for k, v := range tc.first {
					w.Header().Set(k, v)
				}
				http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
			}))
			defer srv.Close()
			// Wrong ranges are retried as transient until the stall time.
			b := openBlocks(t, srv.URL+"/img", Options{Stall: 2 * time.Second}, 1<<20)
			p := make([]byte, 10)
			got, err := b.ReadAt(p, 2*testBlock)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadAt = %d, %v; want an error with %q", got, err, tc.want)
			}
			if b.Fetched() != 0 {
				t.Errorf("fetched %d bytes of a refused answer", b.Fetched())
			}
		})
	}
	// A strong ETag a cache weakens is the same file.
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", map[bool]string{true: `"1"`, false: `W/"1"`}[n.Add(1) == 1])
		r.Header.Del("If-Range")
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	if _, err := openBlocks(t, srv.URL+"/img", Options{}, 1<<20).ReadAt(make([]byte, 10), 2*testBlock); err != nil {
		t.Errorf("weakened strong ETag: %v", err)
	}
}

// A read near the end of a file a server says is 2^63-1 bytes long must
// not wrap off+len and return nothing, silently.
func TestBlockReaderAtEnd(t *testing.T) {
	const size = 1<<63 - 1
	last := int64(size / testBlock)
	b := (&Source{Size: size}).BlockReader(context.Background(), testBlock, 1<<20)
	b.cache[last] = bytes.Repeat([]byte{'z'}, size%testBlock)
	p := make([]byte, 100)
	n, err := b.ReadAt(p, size-10)
	if n != 10 || err != io.EOF || string(p[:10]) != "zzzzzzzzzz" {
		t.Errorf("ReadAt(100 bytes, 10 before the end) = %d, %v", n, err)
	}
}
