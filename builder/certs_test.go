package builder

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/builder/buildertest"
)

func TestReadCerts(t *testing.T) {
	cert, key := testCertPEM(t)
	corrupt := []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	dir := t.TempDir()
	tests := []struct {
		name    string
		data    []byte // nil: no file
		advice  string
		ok, bad int
		wantErr string // the whole error, with {f} for the file's path
	}{
		{name: "one certificate", data: cert, ok: 1},
		{name: "two, with text around", data: append(append([]byte("# bundle\n"), cert...), cert...), ok: 2},
		{name: "one that does not parse", data: append(append([]byte(nil), cert...), corrupt...), ok: 1, bad: 1},
		{name: "no PEM at all", data: []byte("nothing here\n")},
		{name: "a private key", data: append(append([]byte(nil), cert...), key...),
			wantErr: `-x {f}: PEM block 2 is "EC PRIVATE KEY", not CERTIFICATE`},
		{name: "missing", wantErr: "-x: open {f}: no such file or directory"},
		{name: "missing, with advice", advice: " (use -x none)", wantErr: "-x: open {f}: no such file or directory (use -x none)"},
		// Advice is for a failed read only: a bad file needs fixing.
		{name: "a private key, with advice", data: key, advice: " (use -x none)",
			wantErr: `-x {f}: PEM block 1 is "EC PRIVATE KEY", not CERTIFICATE`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("ca%d.pem", i))
			if tt.data != nil {
				buildertest.WriteFile(t, path, tt.data)
			}
			b, ok, bad, err := readCerts("-x", path, tt.advice)
			if tt.wantErr != "" {
				if want := strings.ReplaceAll(tt.wantErr, "{f}", path); err == nil || err.Error() != want {
					t.Fatalf("error %v, want %q", err, want)
				}
				if b != nil {
					t.Errorf("returned %d bytes with the error", len(b))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.ok || bad != tt.bad || !bytes.Equal(b, tt.data) {
				t.Errorf("ok %d bad %d (%d bytes), want ok %d bad %d, the file's %d bytes", ok, bad, len(b), tt.ok, tt.bad, len(tt.data))
			}
		})
	}
}
