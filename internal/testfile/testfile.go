// Package testfile is a test helper: a file a test cannot do without,
// read or the test failed.
package testfile

import (
	"os"
	"testing"
)

// Read returns the contents of the file at p, failing t (Fatal) when it
// cannot be read.
func Read(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
