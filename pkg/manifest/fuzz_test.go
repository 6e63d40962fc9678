package manifest

import (
	"bytes"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, n := range []int{1, MinChunk - 1, MinChunk, 3*MinChunk + 7} {
		m, err := Build(bytes.NewReader(image(n, uint64(n))), int64(n), MinChunk)
		if err != nil {
			f.Fatal(err)
		}
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
// arbitrary images.
func FuzzBuild(f *testing.F) {
	f.Add([]byte("x"), uint8(0))
	f.Add(bytes.Repeat([]byte{1, 2, 3}, 50000), uint8(1))
	f.Fuzz(func(t *testing.T, img []byte, shift uint8) {
		if len(img) == 0 {
			return
		}
		chunk := int64(MinChunk) << (shift % 11)
		m, err := Build(bytes.NewReader(img), int64(len(img)), chunk)
		if err != nil {
			t.Fatal(err)
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
	})
}
