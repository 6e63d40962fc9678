// Package deb reads the files of a Debian binary package (.deb) without
// dpkg: the ar container, then data.tar compressed with xz, zstd, gzip
// or bzip2, or not at all. `streamroot initramfs --kernel-deb` takes a
// kernel and its modules out of one on any host, EL ones included.
//
// Why no library: the container is ar with 60-byte member headers and
// the payload is a tar; archive/tar and the xz and zstd readers this
// module already uses do the rest, in about a hundred lines, where the
// Go .deb libraries pull in much more (control-file parsing, signing)
// for nothing we need.
//
// Everything is untrusted input: member sizes are checked against the
// stream, names are not interpreted here (the caller decides which tar
// paths it keeps, and must check them: see Walk).
package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/streamroot/streamroot/pkg/decompress"
)

const (
	arMagic    = "!<arch>\n"
	headerSize = 60
	// maxMember bounds one ar member: a kernel package's data.tar is
	// under 100 MiB; a size field far beyond is a corrupt file.
	maxMember = 1 << 36
)

// ErrNotDeb is returned for input that is not a Debian binary package.
var ErrNotDeb = errors.New("not a Debian package (.deb)")

// Walk calls fn for every entry of the package's data.tar, in archive
// order, with a reader for a regular file's content (valid until fn
// returns). Header names are as the archive stores them ("./boot/x"):
// untrusted, so a caller that writes files must check them
// (filepath.IsLocal). An error from fn stops the walk and is returned.
func Walk(r io.Reader, fn func(h *tar.Header, body io.Reader) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != arMagic {
		return fmt.Errorf("%w: no ar header", ErrNotDeb)
	}
	first := true
	for {
		name, size, err := readMember(br)
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: no data.tar member", ErrNotDeb)
		}
		if err != nil {
			return err
		}
		body := io.LimitReader(br, size)
		if first {
			first = false
			if name != "debian-binary" {
				return fmt.Errorf("%w: first member is %q, not debian-binary", ErrNotDeb, name)
			}
			v, err := io.ReadAll(io.LimitReader(body, 64))
			if err != nil {
				return fmt.Errorf("debian-binary: %w", err)
			}
			if !strings.HasPrefix(string(v), "2.") {
				return fmt.Errorf("package format %q: only 2.x is known", strings.TrimSpace(string(v)))
			}
		}
		if base, ok := strings.CutPrefix(name, "data.tar"); ok {
			return walkData(name, base, body, fn)
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return fmt.Errorf("ar member %s: %w", name, err)
		}
		if size%2 == 1 {
			if _, err := br.ReadByte(); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
		}
	}
}

// readMember reads one ar member header: its name and size.
func readMember(br *bufio.Reader) (string, int64, error) {
	h := make([]byte, headerSize)
	n, err := io.ReadFull(br, h)
	if n == 0 && errors.Is(err, io.EOF) {
		return "", 0, io.EOF
	}
	if err != nil {
		return "", 0, fmt.Errorf("ar member header: %w", err)
	}
	if string(h[58:60]) != "`\n" {
		return "", 0, fmt.Errorf("%w: bad ar member header %q", ErrNotDeb, h)
	}
	name := strings.TrimSuffix(strings.TrimRight(string(h[0:16]), " "), "/")
	size, err := strconv.ParseInt(strings.TrimRight(string(h[48:58]), " "), 10, 64)
	if err != nil || size < 0 || size > maxMember {
		return "", 0, fmt.Errorf("ar member %q: bad size %q", name, h[48:58])
	}
	return name, size, nil
}

// dataFormats are data.tar's suffixes dpkg knows.
var dataFormats = map[string]decompress.Format{
	"": decompress.None, ".xz": decompress.XZ, ".zst": decompress.Zstd, ".gz": decompress.Gzip, ".bz2": decompress.Bzip2,
}

// walkData decompresses data.tar<suffix> and walks its entries.
func walkData(name, suffix string, r io.Reader, fn func(*tar.Header, io.Reader) error) error {
	f, ok := dataFormats[suffix]
	if !ok {
		return fmt.Errorf("%s: unknown compression (want .xz, .zst, .gz, .bz2 or none)", name)
	}
	zr, err := decompress.Reader(f, r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		var body io.Reader = bytes.NewReader(nil)
		if h.Typeflag == tar.TypeReg {
			body = tr
		}
		if err := fn(h, body); err != nil {
			return err
		}
	}
}
