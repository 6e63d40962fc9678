package manifest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/internal/testimg"
)

func TestBuild(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		chunk      int64
		wantChunks int
		lastLen    int64
	}{
		{"one short chunk", 1000, MinChunk, 1, 1000},
		{"exact multiple", 4 * MinChunk, MinChunk, 4, MinChunk},
		{"short last chunk", 3*MinChunk + 17, MinChunk, 4, 17},
		{"one byte over", 2*MinChunk + 1, MinChunk, 3, 1},
		{"chunk bigger than image", 5 * MinChunk, DefaultChunk, 1, 5 * MinChunk},
		{"many chunks in parallel", 37*MinChunk + 5, MinChunk, 38, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := testimg.Random(tt.size, uint64(tt.size))
			m, err := Build(bytes.NewReader(img), int64(len(img)), tt.chunk)
			if err != nil {
				t.Fatal(err)
			}
			if m.NumChunks() != tt.wantChunks {
				t.Fatalf("chunks = %d, want %d", m.NumChunks(), tt.wantChunks)
			}
			if m.SHA256 != sha256.Sum256(img) {
				t.Errorf("whole-image hash wrong")
			}
			for i := range m.NumChunks() {
				off, n := m.ChunkRange(i)
				if off != int64(i)*tt.chunk {
					t.Errorf("chunk %d offset %d", i, off)
				}
				if i == m.NumChunks()-1 && n != tt.lastLen {
					t.Errorf("last chunk length %d, want %d", n, tt.lastLen)
				}
				if err := m.VerifyChunk(i, img[off:off+n]); err != nil {
					t.Errorf("VerifyChunk(%d): %v", i, err)
				}
				if m.ChunkAt(off) != i || m.ChunkAt(off+n-1) != i {
					t.Errorf("ChunkAt around chunk %d wrong", i)
				}
			}
			if err := m.Verify(bytes.NewReader(img)); err != nil {
				t.Errorf("Verify: %v", err)
			}
			got, err := Parse(m.Marshal())
			if err != nil {
				t.Fatalf("Parse(Marshal): %v", err)
			}
			if !equal(got, m) {
				t.Errorf("round trip changed the manifest")
			}
		})
	}
}

func equal(a, b *Manifest) bool {
	if a.Size != b.Size || a.Chunk != b.Chunk || a.SHA256 != b.SHA256 || len(a.Chunks) != len(b.Chunks) || !slices.Equal(a.Prefetch, b.Prefetch) {
		return false
	}
	for i := range a.Chunks {
		if a.Chunks[i] != b.Chunks[i] {
			return false
		}
	}
	return true
}

func TestBuildErrors(t *testing.T) {
	img := testimg.Random(3*MinChunk, 1)
	tests := []struct {
		name  string
		size  int64
		chunk int64
		want  string
	}{
		{"zero size", 0, MinChunk, "must be positive"},
		{"chunk too small", int64(len(img)), MinChunk / 2, "power of two"},
		{"chunk too big", int64(len(img)), MaxChunk * 2, "power of two"},
		{"chunk not power of two", int64(len(img)), 3 * MinChunk, "power of two"},
		{"image shorter than size", int64(len(img)) + 10, MinChunk, "read chunk 3 at byte 196608: image ends at byte 196608"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(bytes.NewReader(img), tt.size, tt.chunk)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMarshalFormat(t *testing.T) {
	img := bytes.Repeat([]byte{'a'}, MinChunk+1)
	m, err := Build(bytes.NewReader(img), int64(len(img)), MinChunk)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("streamroot-manifest 1\nsize 65537\nchunk 65536\nsha256 %x\n%x\n%x\n",
		sha256.Sum256(img), sha256.Sum256(img[:MinChunk]), sha256.Sum256([]byte{'a'}))
	if got := string(m.Marshal()); got != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", got, want)
	}
	if Digest(m.Marshal()) != sha256.Sum256([]byte(want)) {
		t.Errorf("Digest is not the SHA-256 of the file")
	}
	if got, want := KernelArg([]byte(want)), fmt.Sprintf("streamroot.manifest=sha256:%x", sha256.Sum256([]byte(want))); got != want {
		t.Errorf("KernelArg = %s, want %s", got, want)
	}
}

func TestVerifyChunkCorrupt(t *testing.T) {
	img := testimg.Random(5*MinChunk+100, 7)
	m, err := Build(bytes.NewReader(img), int64(len(img)), MinChunk)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(img)
	bad[3*MinChunk+12345] ^= 0x40
	tests := []struct {
		name string
		i    int
		data []byte
		want string
	}{
		{"flipped bit", 3, bad[3*MinChunk : 4*MinChunk], "chunk 3 (bytes 196608-262143 of the image): SHA-256 mismatch"},
		{"short chunk", 1, img[MinChunk : 2*MinChunk-1], "chunk 1 (bytes 65536-131071 of the image): got 65535 bytes, want 65536"},
		{"long last chunk", 5, img[5*MinChunk-1:], "chunk 5 (bytes 327680-327779 of the image): got 101 bytes, want 100"},
		{"index past the end", 6, nil, "chunk 6 (bytes 393216-393215 of the image): no such chunk: the manifest has 6"},
		{"negative index", -1, nil, "no such chunk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.VerifyChunk(tt.i, tt.data)
			var ce *ChunkError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ChunkError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
	err = m.Verify(bytes.NewReader(bad))
	var ce *ChunkError
	if !errors.As(err, &ce) || ce.Index != 3 || ce.Offset != 3*MinChunk {
		t.Errorf("Verify(corrupt) = %v, want chunk 3 at offset %d", err, 3*MinChunk)
	}
}

func TestParsePinned(t *testing.T) {
	m, err := Build(bytes.NewReader(testimg.Random(1000, 3)), 1000, MinChunk)
	if err != nil {
		t.Fatal(err)
	}
	data := m.Marshal()
	if _, err := ParsePinned(data, Digest(data)); err != nil {
		t.Errorf("ParsePinned(right digest): %v", err)
	}
	other := bytes.Replace(data, []byte("size 1000"), []byte("size 999"), 1)
	if _, err := ParsePinned(other, Digest(data)); err == nil || !strings.Contains(err.Error(), "manifest digest mismatch") {
		t.Errorf("ParsePinned(substituted) = %v", err)
	}
}

const (
	h0 = "0000000000000000000000000000000000000000000000000000000000000000"
	h1 = "1111111111111111111111111111111111111111111111111111111111111111"
	hA = "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdef0123"
)

func TestParse(t *testing.T) {
	hdr := "streamroot-manifest 1\nsize 65537\nchunk 65536\nsha256 " + hA + "\n"
	tests := []struct {
		name string
		in   string
		want string // "" = valid
	}{
		{"valid", hdr + h0 + "\n" + h1 + "\n", ""},
		{"valid one chunk", "streamroot-manifest 1\nsize 1\nchunk 67108864\nsha256 " + h0 + "\n" + h1 + "\n", ""},
		{"empty", "", "manifest line 1: empty file"},
		{"not a manifest", "hello\n", `manifest line 1: not a streamroot manifest`},
		{"version 3", "streamroot-manifest 3\n", `manifest line 1: unsupported manifest version "3"`},
		{"version 2 without its lines", "streamroot-manifest 2\n", `manifest line 2: missing "size" line`},
		{"no final newline", hdr + h0 + "\n" + h1, "manifest line 6: no LF at the end"},
		{"CRLF", strings.ReplaceAll(hdr, "\n", "\r\n"), "manifest line 1: carriage return"},
		{"trailing space", "streamroot-manifest 1\nsize 65537 \n", "manifest line 2: leading or trailing whitespace"},
		{"leading space", "streamroot-manifest 1\n size 65537\n", "manifest line 2: leading or trailing whitespace"},
		{"empty line", "streamroot-manifest 1\n\nsize 1\n", "manifest line 2: empty line"},
		{"missing size", "streamroot-manifest 1\n", `manifest line 2: missing "size" line`},
		{"size first wrong key", "streamroot-manifest 1\nchunk 65536\n", `manifest line 2: expected "size <value>"`},
		{"size zero", "streamroot-manifest 1\nsize 0\n", `manifest line 2: size "0": not a positive decimal number`},
		{"size negative", "streamroot-manifest 1\nsize -5\n", `manifest line 2: size "-5": not a positive`},
		{"size plus", "streamroot-manifest 1\nsize +5\n", `manifest line 2: size "+5": not a positive`},
		{"size leading zero", "streamroot-manifest 1\nsize 05\n", `manifest line 2: size "05": not a canonical`},
		{"size hex", "streamroot-manifest 1\nsize 0x10\n", `manifest line 2: size "0x10": not a canonical`},
		{"size overflow", "streamroot-manifest 1\nsize 99999999999999999999\n", `manifest line 2: size "99999999999999999999": not a canonical`},
		{"two spaces", "streamroot-manifest 1\nsize  5\n", `manifest line 2: size " 5"`},
		{"chunk not power of two", "streamroot-manifest 1\nsize 5\nchunk 65537\n", "manifest line 3: chunk size 65537: must be a power of two"},
		{"chunk too small", "streamroot-manifest 1\nsize 5\nchunk 4096\n", "manifest line 3: chunk size 4096"},
		{"chunk too big", "streamroot-manifest 1\nsize 5\nchunk 134217728\n", "manifest line 3: chunk size 134217728"},
		{"missing sha256", "streamroot-manifest 1\nsize 5\nchunk 65536\n", `manifest line 4: missing "sha256" line`},
		{"sha256 upper case", "streamroot-manifest 1\nsize 5\nchunk 65536\nsha256 " + strings.ToUpper(hA) + "\n", "manifest line 4: sha256: "},
		{"sha256 short", "streamroot-manifest 1\nsize 5\nchunk 65536\nsha256 abc\n", "manifest line 4: sha256: \"abc\": want 64 lowercase hex digits, got 3"},
		{"no chunk lines", hdr, "manifest line 5: the file ends after 0 chunk lines; size 65537 in chunks of 65536 needs 2"},
		{"one chunk line missing", hdr + h0 + "\n", "manifest line 6: the file ends after 1 chunk lines"},
		{"extra chunk line", hdr + h0 + "\n" + h1 + "\n" + h1 + "\n", "manifest line 7: extra line after the 2 chunk lines"},
		{"bad chunk hex", hdr + h0 + "\n" + h1[:63] + "g\n", `manifest line 6: chunk 1: "` + h1[:63] + `g": want 64 lowercase hex digits, found 'g'`},
		{"bad chunk hex, right length", hdr + h0 + "\n" + h1[:63] + "G\n", `manifest line 6: chunk 1:`},
		{"short chunk line", hdr + h0[:10] + "\n" + h1 + "\n", `manifest line 5: chunk 0: "0000000000": want 64 lowercase hex digits, got 10`},
		{"comment line", hdr + "# x\n" + h0 + "\n" + h1 + "\n", "manifest line 5: chunk 0"},
		{"huge size, short file", "streamroot-manifest 1\nsize 9223372036854775807\nchunk 65536\nsha256 " + h0 + "\n" + h1 + "\n",
			"manifest line 6: the file ends after 1 chunk lines; size 9223372036854775807 in chunks of 65536 needs 140737488355328"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.in))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if string(m.Marshal()) != tt.in {
					t.Errorf("Marshal(Parse(x)) != x:\n%s", m.Marshal())
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted it, want error %q", tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("err %T is not a *ParseError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestChunkRangeOutside(t *testing.T) {
	m := &Manifest{Size: 10, Chunk: MinChunk, Chunks: make([][32]byte, 1)}
	for _, i := range []int{-1, 1, 100} {
		if off, n := m.ChunkRange(i); off != 0 || n != 0 {
			t.Errorf("ChunkRange(%d) = %d, %d", i, off, n)
		}
	}
	if m.ChunkAt(10) != -1 || m.ChunkAt(-1) != -1 || m.ChunkAt(9) != 0 {
		t.Errorf("ChunkAt outside the image")
	}
}
