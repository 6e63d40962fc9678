package readat

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// shortReader returns fewer bytes than asked and no error, as a ReaderAt
// must not but a broken one might.
type shortReader struct{}

func (shortReader) ReadAt(p []byte, _ int64) (int, error) { return len(p) / 2, nil }

type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("EIO") }

func TestFull(t *testing.T) {
	data := strings.NewReader("0123456789")
	for _, tc := range []struct {
		name string
		r    io.ReaderAt
		n    int
		off  int64
		want string
		err  string
	}{
		{"inside", data, 4, 2, "2345", ""},
		{"to the end", data, 3, 7, "789", ""},
		{"past the end", data, 4, 8, "", "read 4 bytes at 8: unexpected EOF"},
		{"at the end", data, 1, 10, "", "read 1 bytes at 10: unexpected EOF"},
		{"short without error", shortReader{}, 4, 0, "", "read 4 bytes at 0: unexpected EOF"},
		{"reader error", failingReader{}, 4, 0, "", "read 4 bytes at 0: EIO"},
		{"empty", data, 0, 0, "", ""},
	} {
		p := make([]byte, tc.n)
		err := Full(tc.r, p, tc.off)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || string(p) != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, p, err, tc.want)
		}
	}
	if err := Full(data, make([]byte, 4), 8); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a truncated read should wrap io.ErrUnexpectedEOF: %v", err)
	}
}
