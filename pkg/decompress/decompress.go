// Package decompress opens the compressed streams Linux packages carry:
// xz, zstd, gzip and bzip2, or none. pkg/deb names the format by the
// data.tar member's suffix, pkg/rpm by the payload's magic; both read
// through Reader, so a format is added in one place.
package decompress

import (
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Format is a compression format.
type Format string

// The formats Reader opens.
const (
	None  Format = ""
	XZ    Format = "xz"
	Zstd  Format = "zstd"
	Gzip  Format = "gzip"
	Bzip2 Format = "bzip2"
)

// Reader returns r decompressed as f. Close releases the decoder (zstd's
// goroutine and buffers); it does not close r.
func Reader(f Format, r io.Reader) (io.ReadCloser, error) {
	switch f {
	case None:
		return io.NopCloser(r), nil
	case XZ:
		x, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(x), nil
	case Zstd:
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return z.IOReadCloser(), nil
	case Gzip:
		return gzip.NewReader(r)
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	}
	return nil, fmt.Errorf("unknown compression format %q", f)
}
