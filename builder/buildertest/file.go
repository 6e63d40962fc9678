package buildertest

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteFile writes b to p (0644), creating its directories, and returns
// p: a build input laid out in a test's directory.
func WriteFile(t testing.TB, p string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
