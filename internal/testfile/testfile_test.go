package testfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("contents"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := string(Read(t, p)); got != "contents" {
		t.Errorf("Read = %q, want %q", got, "contents")
	}
}
