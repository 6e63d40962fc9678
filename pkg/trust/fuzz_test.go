package trust

import (
	"testing"
	"time"
)

// FuzzParseSignature: a signature file comes from the HTTP server, so it is
// untrusted input; parsing must never panic, must stay within its bound,
// and what parses carries a statement that passes its own checks.
func FuzzParseSignature(f *testing.F) {
	_, priv := newKey(f)
	f.Add(mustSign(f, priv, []byte("m"), statement(1)))
	f.Add([]byte("untrusted comment: x\nRUQ=\ntrusted comment: {}\nAA==\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignature(data)
		if err != nil {
			if s != nil {
				t.Fatal("a signature and an error")
			}
			return
		}
		if len(data) > MaxSignature {
			t.Fatalf("parsed %d bytes, over the bound", len(data))
		}
		if err := s.Statement.check(); err != nil {
			t.Fatalf("parsed a statement that fails its checks: %v", err)
		}
		// Verify must refuse it (no key signs fuzz input) without panicking.
		p := &Policy{Keys: nil}
		if _, err := p.Verify([]byte("m"), data, time.Now()); err == nil {
			t.Fatal("verified with no keys")
		}
	})
}
