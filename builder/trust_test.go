package builder

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
	"github.com/streamroot/streamroot/pkg/trust"
)

func testPub(t *testing.T) minisign.PublicKey {
	t.Helper()
	pub, _, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// -trust-key takes key files and bare keys; -min-version needs a key.
func TestTrustFlags(t *testing.T) {
	a, b := testPub(t), testPub(t)
	dir := t.TempDir()
	af := filepath.Join(dir, "a.pub")
	text, _ := a.MarshalText()
	if err := os.WriteFile(af, text, 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"-init", "i", "-kver", "k", "-o", "out"}
	o, _, err := ParseFlags(append(base, "-trust-key", af+","+b.String()+","+af, "-min-version", "7"), func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.TrustKeys) != 2 || o.TrustKeys[0] != a.String() || o.TrustKeys[1] != b.String() || o.MinVersion != 7 {
		t.Errorf("keys %q min %d", o.TrustKeys, o.MinVersion)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-min-version", "3"}, "needs -trust-key"},
		{[]string{"-trust-key", "RWQnotakey"}, "neither a key file nor a minisign public key"},
		{[]string{"-trust-key", filepath.Join(dir, "missing.pub")}, "neither a key file"},
		{[]string{"-trust-key", af, "-min-version", "-1"}, "invalid value"},
	} {
		_, _, err := ParseFlags(append(base, tc.args...), func(string) string { return "" }, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.want)
		}
	}
}

// The keys and the minimum land where the boot reads them, in the form
// trust.LoadBaked reads.
func TestTrustBaked(t *testing.T) {
	a, b := testPub(t), testPub(t)
	dir := t.TempDir()
	opts := testOptions(t, dir)
	opts.TrustKeys, opts.MinVersion = []string{a.String(), b.String()}, 12
	if _, err := Build(opts, testLogger(&bytes.Buffer{})); err != nil {
		t.Fatal(err)
	}
	arc := readArchive(t, opts.Out, "none")
	root := t.TempDir()
	for _, f := range []string{trust.KeysFile, trust.MinVersionFile} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, arc.content(t, strings.TrimPrefix(f, "/")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pol, err := trust.LoadBaked(filepath.Join(root, trust.KeysFile), filepath.Join(root, trust.MinVersionFile))
	if err != nil {
		t.Fatal(err)
	}
	if pol == nil || len(pol.Keys) != 2 || !pol.Keys[0].Equal(a) || !pol.Keys[1].Equal(b) || pol.MinVersion != 12 {
		t.Fatalf("baked policy %+v", pol)
	}
	opts.TrustKeys = nil
	if _, err := Build(opts, testLogger(&bytes.Buffer{})); err == nil {
		t.Error("a minimum version without keys was built")
	}
}
