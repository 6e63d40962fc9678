package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/isoread/isotest"
)

// inspect's range reader follows redirects once and never from https to
// plain http.
func TestInspectRedirects(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 5 blocks
	var plainHits, redirHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redir":
			redirHits.Add(1)
			http.Redirect(w, r, "/img", http.StatusFound)
		default:
			plainHits.Add(1)
			w.Header().Set("ETag", `"p"`)
			http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(data))
		}
	}))
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/img", http.StatusFound))
	defer tlsSrv.Close()

	_, err := openHTTPWith(context.Background(), tlsSrv.URL+"/img", tlsSrv.Client().Transport)
	if err == nil || !strings.Contains(err.Error(), tlsSrv.URL+"/img") || !strings.Contains(err.Error(), plain.URL+"/img") || !strings.Contains(err.Error(), "plain HTTP") {
		t.Fatalf("https → http: err = %v", err)
	}
	if plainHits.Load() != 0 {
		t.Fatalf("the plain server was asked %d times after a downgrade", plainHits.Load())
	}

	h, err := openHTTPWith(context.Background(), plain.URL+"/redir", http.DefaultTransport)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	for off := 0; off < len(data); off += 70000 { // several requests
		if _, err := h.ReadAt(got[off:min(off+70000, len(data))], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) || h.requests < 3 {
		t.Fatalf("bytes differ or only %d requests", h.requests)
	}
	if redirHits.Load() != 1 {
		t.Errorf("the redirecting URL was asked %d times, want once", redirHits.Load())
	}
}

// A changed weak ETag or Last-Modified is a changed file even when the
// server ignores If-Range; absurd sizes are refused; no password is shown.
func TestInspectReaderValidatorsAndSizes(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 3*rangeBlock)
	for _, tc := range []struct {
		name      string
		old, new  map[string]string
		wantError string
	}{
		{"weak etag", map[string]string{"ETag": `W/"1"`}, map[string]string{"ETag": `W/"2"`}, "changed"},
		{"last-modified", map[string]string{"Last-Modified": "Mon, 02 Jan 2006 15:04:05 GMT"}, map[string]string{"Last-Modified": "Tue, 03 Jan 2006 15:04:05 GMT"}, "changed"},
		{"weakened strong etag", map[string]string{"ETag": `"1"`}, map[string]string{"ETag": `W/"1"`}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hdr := tc.old
				if n.Add(1) > 1 {
					hdr = tc.new
				}
				for k, v := range hdr {
					w.Header().Set(k, v)
				}
				r.Header.Del("If-Range") // a cache that ignores it
				http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(data))
			}))
			defer srv.Close()
			h, err := openHTTP(context.Background(), srv.URL+"/img")
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.ReadAt(make([]byte, 10), 2*rangeBlock)
			if tc.wantError == "" && err != nil || tc.wantError != "" && (err == nil || !strings.Contains(err.Error(), tc.wantError)) {
				t.Fatalf("err = %v, want %q", err, tc.wantError)
			}
		})
	}

	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", "bytes 0-0/9223372036854775807")
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte{0})
	}))
	defer huge.Close()
	url := strings.Replace(huge.URL, "://", "://u:s3cr3t@", 1) + "/img"
	_, err := openHTTP(context.Background(), url)
	if err == nil || !strings.Contains(err.Error(), "9223372036854775807") || !strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("absurd size: err = %v", err)
	}
	for _, bad := range []string{"http://u:s3cr3t@127.0.0.1:nope/img", strings.Replace(huge.URL, "://", "://u:s3cr3t@", 1) + "/x%zz"} {
		code, out, errs := runCmd(t, "inspect", bad)
		if code == 0 || strings.Contains(out+errs, "s3cr3t") {
			t.Errorf("inspect %s: exit %d, output shows the password: %s%s", bad, code, out, errs)
		}
	}
}

// inspect URL says loudly when the server sends no validator, and never
// prints the URL's password.
func TestInspectURLNoValidator(t *testing.T) {
	iso := isotest.Build([]isotest.File{{Path: "LiveOS/squashfs.img", Data: ext4Image(64<<10, 16, "x")}}, isotest.Options{VolumeID: "NV"})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "nv.iso"), iso, 0o644)
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "nv.iso", time.Time{}, bytes.NewReader(iso)) // no ETag, no Last-Modified
	}))
	defer bare.Close()
	base, _ := newTestServer(t, dir)
	for _, tc := range []struct {
		url  string
		warn bool
	}{{bare.URL + "/nv.iso", true}, {base + "/nv.iso", false}} {
		url := strings.Replace(tc.url, "://", "://u:s3cr3t@", 1)
		code, out, errs := runCmd(t, "inspect", url)
		if strings.Contains(out+errs, "WARNING: the server sends neither ETag nor Last-Modified") != tc.warn {
			t.Errorf("%s: exit %d, warning shown %v, want %v:\n%s%s", tc.url, code, !tc.warn, tc.warn, out, errs)
		}
		if strings.Contains(out+errs, "s3cr3t") {
			t.Errorf("%s: the output shows the password:\n%s%s", tc.url, out, errs)
		}
	}
}

// Content-Range numbers are digits only (strconv alone takes "+5").
func TestContentRangeDigitsOnly(t *testing.T) {
	for _, in := range []string{"bytes +0-5/10", "bytes 0-+5/10", "bytes 0-5/+10", "bytes 0-5/ 10"} {
		if _, _, _, err := parseContentRange(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
