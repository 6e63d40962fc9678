package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/wanterr"
	"github.com/streamroot/streamroot/pkg/httpsrc"
	"github.com/streamroot/streamroot/pkg/isoread/isotest"
)

// inspect URL goes through httpsrc (pkg/httpsrc's BlockReader tests cover
// its pinning and budget): absurd sizes are refused, a file that changes
// is an error, and no password is shown.
func TestInspectReaderValidatorsAndSizes(t *testing.T) {
	iso := isotest.Build([]isotest.File{{Path: "LiveOS/squashfs.img", Data: ext4Image(64<<10, 16, "x")}}, isotest.Options{VolumeID: "CH"})
	var n atomic.Int32
	changing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, n.Add(1)))
		r.Header.Del("If-Range") // a cache that ignores it
		http.ServeContent(w, r, "img", time.Time{}, bytes.NewReader(iso))
	}))
	defer changing.Close()
	if code, _, errs := runCmd(t, "inspect", changing.URL+"/img"); code == 0 || !strings.Contains(errs, "changed") {
		t.Errorf("a file that changes between requests: exit %d, %q", code, errs)
	}

	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", "bytes 0-0/9223372036854775807")
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte{0})
	}))
	defer huge.Close()
	url := strings.Replace(huge.URL, "://", "://u:s3cr3t@", 1) + "/img"
	code, _, errs := runCmd(t, "inspect", url)
	if code == 0 || !strings.Contains(errs, "9223372036854775807") || !strings.Contains(errs, "127.0.0.1") || strings.Contains(errs, "s3cr3t") {
		t.Fatalf("absurd size: exit %d, %q", code, errs)
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

// inspect follows redirects once and never from https to plain http (the
// policy is httpsrc's: TestBlockReaderRedirects), and its report names
// where the redirect led.
func TestInspectRedirects(t *testing.T) {
	iso := isotest.Build([]isotest.File{{Path: "LiveOS/squashfs.img", Data: ext4Image(64<<10, 16, "x")}}, isotest.Options{VolumeID: "RD"})
	var plainHits, redirHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redir" {
			redirHits.Add(1)
			http.Redirect(w, r, "/img.iso", http.StatusFound)
			return
		}
		plainHits.Add(1)
		w.Header().Set("ETag", `"p"`)
		http.ServeContent(w, r, "img.iso", time.Time{}, bytes.NewReader(iso))
	}))
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/img.iso", http.StatusFound))
	defer tlsSrv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())
	_, err := openURL(context.Background(), tlsSrv.URL+"/img.iso", httpsrc.Options{RootCAs: pool, Stall: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), plain.URL+"/img.iso") || !strings.Contains(err.Error(), "plain HTTP") || plainHits.Load() != 0 {
		t.Fatalf("https → http: err = %v, the plain server asked %d times", err, plainHits.Load())
	}
	code, r, errs := inspectJSON(t, plain.URL+"/redir")
	if code != 0 || r.Source != plain.URL+"/redir (redirected to "+plain.URL+"/img.iso)" || r.HTTP == nil || r.HTTP.Requests < 2 {
		t.Fatalf("exit %d (%s), source %q, http %+v", code, errs, r.Source, r.HTTP)
	}
	if redirHits.Load() != 1 {
		t.Errorf("the redirecting URL was asked %d times, want once", redirHits.Load())
	}
}

// A weak ETag alone is a warning: it does not promise the same bytes.
func TestInspectURLWeakValidator(t *testing.T) {
	img := ext4Image(64<<10, 16, "w")
	for _, tc := range []struct {
		name, etag string
		modified   time.Time
		warn       bool
	}{
		{"weak ETag alone", `W/"1"`, time.Time{}, true},
		{"weak ETag and Last-Modified", `W/"1"`, time.Unix(1e9, 0), false},
		{"strong ETag", `"1"`, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("ETag", tc.etag)
				http.ServeContent(w, r, "img", tc.modified, bytes.NewReader(img))
			}))
			defer srv.Close()
			code, out, errs := runCmd(t, "inspect", srv.URL+"/img")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if got := strings.Contains(out, "WARNING: the server's only validator is a weak ETag"); got != tc.warn {
				t.Errorf("warning shown %v, want %v:\n%s", got, tc.warn, out)
			}
		})
	}
}

func TestHTTPOptions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		envStall time.Duration
		want     time.Duration
	}{
		{"the command's own", 0, 30 * time.Second},
		{"a test's shorter one wins", time.Second, time.Second},
	} {
		ho := (&env{stall: tc.envStall}).httpOptions(30 * time.Second)
		if ho.Stall != tc.want {
			t.Errorf("%s: stall %v, want %v", tc.name, ho.Stall, tc.want)
		}
		if ho.Proxy == nil {
			t.Errorf("%s: no proxy from the environment", tc.name)
		}
		if ho.InsecureSkipVerify || ho.RootCAs != nil {
			t.Errorf("%s: TLS settings %+v, want the defaults", tc.name, ho)
		}
	}
}

// -cacert and -insecure reach the TLS handshake: with the server's own
// certificate as the CA file, or with -insecure, a fetch succeeds; with
// the system's CAs it is refused.
func TestHTTPSOptions(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "signed") }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	der := srv.Certificate().Raw
	ca := write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	e := &env{stall: 5 * time.Second}
	for _, tc := range []struct {
		name     string
		cacert   string
		insecure bool
		optErr   string // from httpsOptions
		getErr   string // from the fetch with its options
	}{
		{"the server's CA", ca, false, "", ""},
		{"insecure", "", true, "", ""},
		{"the system's CAs", "", false, "", "certificate"},
		{"no PEM in the file", write("ca.der", der), false, "no PEM certificate", ""},
		{"no file", filepath.Join(dir, "missing.pem"), false, "no such file", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ho, err := e.httpsOptions(inspectStall, tc.cacert, tc.insecure)
			if wanterr.Check(t, err, tc.optErr) {
				return
			}
			if ho.Stall != e.stall || ho.Proxy == nil {
				t.Errorf("stall %v, proxy set %v; want httpOptions' (%v, set)", ho.Stall, ho.Proxy != nil, e.stall)
			}
			got, err := httpsrc.GetSmall(context.Background(), srv.URL, 64, ho)
			switch {
			case tc.getErr == "" && (err != nil || string(got) != "signed"):
				t.Errorf("fetch %q, %v; want the server's answer", got, err)
			case tc.getErr != "" && (err == nil || !strings.Contains(err.Error(), tc.getErr)):
				t.Errorf("fetch err %v, want one saying %q", err, tc.getErr)
			}
		})
	}
}
