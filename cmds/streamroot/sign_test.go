package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/internal/testimg"
)

// keyPair runs keygen into dir and returns the key files' prefix and id.
func keyPair(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	prefix := filepath.Join(dir, name)
	code, out, errs := runCmd(t, "keygen", "-o", prefix)
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errs)
	}
	id, _, _ := strings.Cut(out, "\n")
	return prefix, id
}

// keygen → sign → verify, and each way verify refuses.
func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	k, id := keyPair(t, dir, "k")
	other, _ := keyPair(t, dir, "other")
	if code, _, errs := runCmd(t, "keygen", "-o", k); code != 1 || !strings.Contains(errs, "exists") {
		t.Errorf("keygen over an existing key: exit %d: %s", code, errs)
	}
	if st, err := os.Stat(k + ".key"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("secret key mode %v, %v", st.Mode(), err)
	}
	img := filepath.Join(dir, "img")
	if err := os.WriteFile(img, testimg.Random(300000, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "sign", img, "-key", k+".key", "-version", "5", "-chunk", "64KiB", "-json")
	if code != 0 {
		t.Fatalf("sign: exit %d: %s", code, errs)
	}
	var sr signResult
	if err := json.Unmarshal([]byte(out), &sr); err != nil {
		t.Fatal(err)
	}
	if sr.KeyID != id || sr.Version != 5 || sr.Size != 300000 || sr.Signature != img+".manifest.minisig" || !sr.NotAfter.After(sr.NotBefore) {
		t.Errorf("sign result %+v", sr)
	}
	code, out, errs = runCmd(t, "verify", img, "-key", other+".pub,"+k+".pub", "-min-version", "5")
	if code != 0 || !strings.Contains(out, "verified: key "+id+", version 5") {
		t.Fatalf("verify: exit %d: %s%s", code, out, errs)
	}

	// Served over HTTP: the signature and the size are checked.
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	code, out, errs = runCmd(t, "verify", srv.URL+"/img", "-key", k+".pub", "-json")
	if code != 0 || !strings.Contains(out, `"image_checked": false`) {
		t.Errorf("verify URL: exit %d: %s%s", code, out, errs)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"wrong key", []string{"verify", img, "-key", other + ".pub"}, 1, "signature by key " + id + " refused: not a trusted key"},
		{"rollback", []string{"verify", img, "-key", k + ".pub", "-min-version", "6"}, 1, "version 5 is below the minimum 6"},
		{"no signature", []string{"verify", img, "-key", k + ".pub", "-manifest", filepath.Join(dir, "nothing")}, 1, "sign the image first"},
		{"no key", []string{"verify", img}, 2, "-key FILES is required"},
		{"sign without version", []string{"sign", img, "-key", k + ".key"}, 2, "-version N is required"},
		{"sign with a public key", []string{"sign", img, "-key", k + ".pub", "-version", "1"}, 1, "not the public one"},
		{"sign expired", []string{"sign", img, "-key", k + ".key", "-version", "1", "-not-after", "2001-01-01T00:00:00Z"}, 2, "expired already"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCmd(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code, tc.want)
			}
		})
	}

	// The image changed after signing: verify names the chunk.
	b, _ := os.ReadFile(img)
	b[200000] ^= 1
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(t, "verify", img, "-key", k+".pub"); code != 1 || !strings.Contains(errs, "does not match") || !strings.Contains(errs, "chunk 3") {
		t.Errorf("verify of a changed image: exit %d: %s", code, errs)
	}
	// The manifest changed after signing.
	m, _ := os.ReadFile(img + ".manifest")
	if err := os.WriteFile(img+".manifest", append(m, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(t, "verify", img, "-key", k+".pub"); code != 1 || !strings.Contains(errs, "does not match the manifest") {
		t.Errorf("verify of a changed manifest: exit %d: %s", code, errs)
	}
}

// What sign writes, minisign's own tool verifies, with the key keygen
// wrote (Debian's minisign package; make test-deps installs it).
func TestSignMinisignTool(t *testing.T) {
	ms, err := exec.LookPath("minisign")
	if err != nil {
		t.Skip("no minisign on PATH")
	}
	dir := t.TempDir()
	k, _ := keyPair(t, dir, "k")
	img := filepath.Join(dir, "img")
	if err := os.WriteFile(img, testimg.Random(100000, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(t, "sign", img, "-key", k+".key", "-version", "2"); code != 0 {
		t.Fatalf("sign: %s", errs)
	}
	out, err := exec.Command(ms, "-Vm", img+".manifest", "-p", k+".pub").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"version":2`) {
		t.Fatalf("minisign -V: %v\n%s", err, out)
	}
}
