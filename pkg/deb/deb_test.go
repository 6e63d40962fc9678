package deb

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/deb/debtest"
)

// testFiles are a directory, a file and a symlink.
func testFiles() []debtest.File {
	return []debtest.File{
		{Name: "./boot/"},
		{Name: "./boot/vmlinuz-1.0", Data: []byte("kernel!")},
		{Name: "./lib/modules/1.0/build", Link: "/usr/src/x"},
	}
}

func testDeb(t testing.TB, suffix string) []byte {
	t.Helper()
	b, err := debtest.Build(suffix, testFiles())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testTar(t testing.TB) []byte {
	t.Helper()
	b, err := debtest.Tar(testFiles())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func walkAll(r io.Reader) (string, error) {
	var sb strings.Builder
	err := Walk(r, func(h *tar.Header, body io.Reader) error {
		b, err := io.ReadAll(body)
		fmt.Fprintf(&sb, "%s %c %q %s\n", h.Name, h.Typeflag, b, h.Linkname)
		return err
	})
	return sb.String(), err
}

func TestWalk(t *testing.T) {
	want := "./boot/ 5 \"\" \n./boot/vmlinuz-1.0 0 \"kernel!\" \n./lib/modules/1.0/build 2 \"\" /usr/src/x\n"
	for _, kind := range []string{"", ".xz", ".zst", ".gz"} {
		t.Run("data.tar"+kind, func(t *testing.T) {
			got, err := walkAll(bytes.NewReader(testDeb(t, kind)))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("entries:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestWalkErrors(t *testing.T) {
	good := testDeb(t, ".xz")
	stop := errors.New("stop")
	for name, tc := range map[string]struct {
		in   []byte
		fn   func(*tar.Header, io.Reader) error
		want error
	}{
		"empty":          {nil, nil, ErrNotDeb},
		"not ar":         {[]byte("PK\x03\x04 a zip"), nil, ErrNotDeb},
		"no members":     {[]byte(arMagic), nil, ErrNotDeb},
		"first member":   {append([]byte(arMagic), debtest.Member("data.tar", testTar(t))...), nil, ErrNotDeb},
		"bad header":     {append([]byte(arMagic), []byte(strings.Repeat("x", 60))...), nil, ErrNotDeb},
		"truncated":      {good[:len(good)-40], nil, nil},
		"callback error": {good, func(*tar.Header, io.Reader) error { return stop }, stop},
		"unknown compression": {append(append([]byte(arMagic), debtest.Member("debian-binary", []byte("2.0\n"))...),
			debtest.Member("data.tar.lz4", []byte("x"))...), nil, nil},
		"format 3": {append(append([]byte(arMagic), debtest.Member("debian-binary", []byte("3.0\n"))...),
			debtest.Member("data.tar", testTar(t))...), nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			fn := tc.fn
			if fn == nil {
				fn = func(_ *tar.Header, b io.Reader) error { _, err := io.Copy(io.Discard, b); return err }
			}
			err := Walk(bytes.NewReader(tc.in), fn)
			if err == nil {
				t.Fatal("Walk succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRealKernelDeb walks a Debian kernel package from the cache the
// harness and `make kernel` fill, when one is there.
func TestRealKernelDeb(t *testing.T) {
	cache := os.Getenv("STREAMROOT_CACHE")
	if cache == "" {
		cache = "/var/cache/streamroot"
	}
	debs, _ := filepath.Glob(filepath.Join(cache, "debs", "linux-image-*.deb"))
	if len(debs) == 0 {
		t.Skip("no kernel .deb in " + cache + "/debs")
	}
	if testing.Short() {
		t.Skip("decompresses a 70 MB package")
	}
	f, err := os.Open(debs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kernels, modules int
	err = Walk(f, func(h *tar.Header, _ io.Reader) error {
		switch {
		case strings.HasPrefix(h.Name, "./boot/vmlinuz-"):
			kernels++
		case strings.Contains(h.Name, "/modules/") && strings.Contains(h.Name, ".ko"):
			modules++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if kernels != 1 || modules < 1000 {
		t.Errorf("%s: %d kernels, %d modules", debs[0], kernels, modules)
	}
}

// FuzzWalk: a package from anywhere must give entries or an error,
// never a panic or an endless read.
func FuzzWalk(f *testing.F) {
	for _, kind := range []string{"", ".gz"} {
		f.Add(testDeb(f, kind))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = Walk(bytes.NewReader(b), func(_ *tar.Header, body io.Reader) error {
			_, err := io.Copy(io.Discard, io.LimitReader(body, 1<<20))
			return err
		})
	})
}
