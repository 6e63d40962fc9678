// Package debtest writes small Debian packages for tests, laid out as
// dpkg-deb builds them: the ar container with debian-binary, a control
// member and data.tar in the compression asked for.
package debtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// File is one data.tar entry: a regular file with Data, or a directory
// (Name ending in "/"), or a symlink (Link set).
type File struct {
	Name string
	Data []byte
	Link string
}

// Member is one ar member as dpkg-deb writes it: a 60-byte header, the
// content, a newline pad to an even offset.
func Member(name string, body []byte) []byte {
	h := fmt.Sprintf("%-16s%-12d%-6d%-6d%-8s%-10d`\n", name, 0, 0, 0, "100644", len(body))
	out := append([]byte(h), body...)
	if len(body)%2 == 1 {
		out = append(out, '\n')
	}
	return out
}

// Tar is a tar archive of files.
func Tar(files []File) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		h := tar.Header{Name: f.Name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.Data))}
		switch {
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.Link, 0
		case len(f.Name) > 0 && f.Name[len(f.Name)-1] == '/':
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Compress compresses b for a data.tar<suffix> member: "" (none), ".xz",
// ".zst" or ".gz".
func Compress(suffix string, b []byte) ([]byte, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch suffix {
	case "":
		return b, nil
	case ".xz":
		w, err = xz.NewWriter(&buf)
	case ".zst":
		w, err = zstd.NewWriter(&buf)
	case ".gz":
		w = gzip.NewWriter(&buf)
	default:
		return nil, fmt.Errorf("debtest: unknown compression %q", suffix)
	}
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Build returns a package whose data.tar<suffix> holds files.
func Build(suffix string, files []File) ([]byte, error) {
	t, err := Tar(files)
	if err != nil {
		return nil, err
	}
	data, err := Compress(suffix, t)
	if err != nil {
		return nil, err
	}
	deb := []byte("!<arch>\n")
	deb = append(deb, Member("debian-binary", []byte("2.0\n"))...)
	deb = append(deb, Member("control.tar.xz", []byte("odd"))...)
	return append(deb, Member("data.tar"+suffix, data)...), nil
}
