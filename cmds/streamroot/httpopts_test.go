package main

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/httpsrc"
)

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
		ho, err := e.httpsOptions(inspectStall, tc.cacert, tc.insecure)
		if tc.optErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.optErr) {
				t.Errorf("%s: err %v, want one saying %q", tc.name, err, tc.optErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ho.Stall != e.stall || ho.Proxy == nil {
			t.Errorf("%s: stall %v, proxy set %v; want httpOptions' (%v, set)", tc.name, ho.Stall, ho.Proxy != nil, e.stall)
		}
		got, err := httpsrc.GetSmall(context.Background(), srv.URL, 64, ho)
		switch {
		case tc.getErr == "" && (err != nil || string(got) != "signed"):
			t.Errorf("%s: fetch %q, %v; want the server's answer", tc.name, got, err)
		case tc.getErr != "" && (err == nil || !strings.Contains(err.Error(), tc.getErr)):
			t.Errorf("%s: fetch err %v, want one saying %q", tc.name, err, tc.getErr)
		}
	}
}
