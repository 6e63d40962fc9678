package main

import (
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func TestHTTPSOptions(t *testing.T) {
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "ca.der")
	if err := os.WriteFile(notPEM, srv.Certificate().Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	want := x509.NewCertPool()
	want.AddCert(srv.Certificate())
	e := &env{stall: time.Second}
	for _, tc := range []struct {
		name     string
		cacert   string
		insecure bool
		wantCAs  bool
		err      string
	}{
		{"system CAs", "", false, false, ""},
		{"insecure", "", true, false, ""},
		{"a CA file", good, false, true, ""},
		{"no PEM in the file", notPEM, false, false, "no PEM certificate"},
		{"no file", filepath.Join(dir, "missing.pem"), false, false, "no such file"},
	} {
		ho, err := e.httpsOptions(30*time.Second, tc.cacert, tc.insecure)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want one saying %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ho.Stall != time.Second || ho.Proxy == nil {
			t.Errorf("%s: stall %v, proxy set %v; want httpOptions' (1s, set)", tc.name, ho.Stall, ho.Proxy != nil)
		}
		if ho.InsecureSkipVerify != tc.insecure {
			t.Errorf("%s: InsecureSkipVerify %v, want %v", tc.name, ho.InsecureSkipVerify, tc.insecure)
		}
		switch {
		case !tc.wantCAs && ho.RootCAs != nil:
			t.Errorf("%s: RootCAs set, want the system's", tc.name)
		case tc.wantCAs && !ho.RootCAs.Equal(want):
			t.Errorf("%s: RootCAs are not the file's certificate", tc.name)
		}
	}
}
