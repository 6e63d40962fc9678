package decompress

import (
	"io"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/deb/debtest"
)

// bzip2Hello is `printf 'streamroot\n' | bzip2 -9`: Go has no bzip2
// writer.
var bzip2Hello = []byte{0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 0x74, 0x26, 0x00, 0x80, 0x00, 0x00,
	0x04, 0x41, 0x80, 0x00, 0x10, 0x22, 0x02, 0x9c, 0x00, 0x20, 0x00, 0x31, 0x0c, 0x08, 0x20, 0x64, 0xf4, 0x91, 0x0f, 0x06,
	0x0a, 0x78, 0xbb, 0x92, 0x29, 0xc2, 0x84, 0x83, 0xa1, 0x30, 0x04, 0x00}

func TestReader(t *testing.T) {
	const want = "streamroot\n"
	compress := func(suffix string) []byte {
		b, err := debtest.Compress(suffix, []byte(want))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		f  Format
		in []byte
	}{
		{None, []byte(want)},
		{XZ, compress(".xz")},
		{Zstd, compress(".zst")},
		{Gzip, compress(".gz")},
		{Bzip2, bzip2Hello},
	} {
		t.Run(string(tc.f), func(t *testing.T) {
			r, err := Reader(tc.f, strings.NewReader(string(tc.in)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || string(got) != want {
				t.Errorf("read %q, %v; want %q", got, err, want)
			}
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

// A stream that is not what its format says fails when opened or read,
// never reads as data; an unknown format is refused.
func TestReaderRefuses(t *testing.T) {
	for _, f := range []Format{XZ, Zstd, Gzip, Bzip2} {
		r, err := Reader(f, strings.NewReader("not compressed at all"))
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		if err == nil {
			t.Errorf("%s: plain text read without an error", f)
		}
	}
	if _, err := Reader("lz4", strings.NewReader("")); err == nil || !strings.Contains(err.Error(), `"lz4"`) {
		t.Errorf("unknown format: %v", err)
	}
}
