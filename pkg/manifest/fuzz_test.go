package manifest

import (
	"bytes"
	"testing"

	"github.com/streamroot/streamroot/internal/testimg"
)

func FuzzParse(f *testing.F) {
	for _, n := range []int{1, MinChunk - 1, MinChunk, 3*MinChunk + 7} {
		m, err := Build(bytes.NewReader(testimg.Random(n, uint64(n))), int64(n), MinChunk)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Marshal())
		m.Prefetch = []int{m.NumChunks() - 1, 0}[:min(2, m.NumChunks())]
		f.Add(m.Marshal())
	}
	f.Add([]byte("streamroot-manifest 1\nsize 9223372036854775807\nchunk 65536\nsha256 " + h0 + "\n"))
	f.Add([]byte("streamroot-manifest 2\n"))
	f.Add([]byte("streamroot-manifest 1\r\nsize 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if m != nil {
				t.Fatalf("Parse returned a manifest and an error")
			}
			return
		}
		// The format is canonical: what parses marshals back byte for byte,
		// so the digest pins the content.
		out := m.Marshal()
		if !bytes.Equal(out, data) {
			t.Fatalf("Marshal(Parse(x)) != x:\n%q\n%q", data, out)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(m)): %v", err)
		}
		if !equal(m, m2) {
			t.Fatalf("round trip changed the manifest")
		}
		if int64(m.NumChunks()) != numChunks(m.Size, m.Chunk) {
			t.Fatalf("%d chunk lines for size %d chunk %d", m.NumChunks(), m.Size, m.Chunk)
		}
		off, n := m.ChunkRange(m.NumChunks() - 1)
		if n <= 0 || n > m.Chunk || off+n != m.Size {
			t.Fatalf("last chunk range %d+%d for size %d", off, n, m.Size)
		}
	})
}

// FuzzBuild checks Build against VerifyChunk and the text round trip on
// arbitrary images. The fuzzer gives a short pattern and a length, and the
// image is the pattern repeated to that length (up to four chunks and a
// byte, so several chunks and a short last one are in reach): a few bytes
// of input instead of a 150 KB seed, so it runs thousands of inputs a
// second rather than a handful.
func FuzzBuild(f *testing.F) {
	f.Add([]byte("x"), uint32(0), uint8(0), uint32(0))
	f.Add([]byte{1, 2, 3}, uint32(2*MinChunk+4), uint8(0), uint32(MinChunk+1))
	f.Add([]byte{7}, uint32(MinChunk-1), uint8(1), uint32(MinChunk-1))
	f.Add([]byte("streamroot"), uint32(4*MinChunk), uint8(2), uint32(3*MinChunk))
	f.Fuzz(func(t *testing.T, pattern []byte, n uint32, shift uint8, flip uint32) {
		if len(pattern) == 0 || len(pattern) > MinChunk {
			return
		}
		size := 1 + int(n%(4*MinChunk+1))
		img := make([]byte, size)
		for i := range img {
			// The chunk index is mixed in so equal chunks stay rare.
			img[i] = pattern[i%len(pattern)] + byte(i/MinChunk)
		}
		chunk := int64(MinChunk) << (shift % 11)
		m, err := Build(bytes.NewReader(img), int64(len(img)), chunk)
		if err != nil {
			t.Fatal(err)
		}
		if int64(m.NumChunks()) != numChunks(int64(size), chunk) {
			t.Fatalf("%d chunks for %d bytes in chunks of %d", m.NumChunks(), size, chunk)
		}
		for i := range m.NumChunks() {
			off, n := m.ChunkRange(i)
			if err := m.VerifyChunk(i, img[off:off+n]); err != nil {
				t.Fatal(err)
			}
		}
		m2, err := Parse(m.Marshal())
		if err != nil || !equal(m, m2) {
			t.Fatalf("round trip: %v", err)
		}
		// One flipped bit fails exactly its chunk.
		at := int64(flip) % int64(size)
		img[at] ^= 1 << (flip >> 29)
		bad := int(at / chunk)
		off, l := m.ChunkRange(bad)
		if err := m.VerifyChunk(bad, img[off:off+l]); err == nil {
			t.Fatalf("byte %d flipped: chunk %d still verifies", at, bad)
		}
	})
}
