// Package testimg is a test helper: deterministic pseudo-random image
// bytes, the same for a seed on every run, for the tests that move images
// through caches, servers and devices and compare what comes out.
package testimg

import "math/rand/v2"

// Random returns n pseudo-random bytes; the same seed gives the same bytes.
func Random(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
