package testimg

import (
	"bytes"
	"testing"
)

func TestRandom(t *testing.T) {
	a, b, c := Random(4096, 1), Random(4096, 1), Random(4096, 2)
	if len(a) != 4096 || !bytes.Equal(a, b) {
		t.Fatal("the same seed gave other bytes")
	}
	if bytes.Equal(a, c) {
		t.Fatal("two seeds gave the same bytes")
	}
	if n := bytes.Count(a, []byte{0}); n > 64 { // ~16 expected
		t.Errorf("%d zero bytes in 4096: not random-looking", n)
	}
}
