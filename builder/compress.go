package builder

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// compressions are the accepted -compress values, in the order shown in
// usage messages.
var compressions = []string{"zstd", "xz", "gzip", "none"}

// zstdWindow caps the zstd window. The kernel's unzstd allocates the
// window the frame header asks for; 8 MiB keeps that modest on small
// machines and is what zstd's own default levels use.
const zstdWindow = 8 << 20

// xzDict is the LZMA2 dictionary size. The initramfs unpacker runs the xz
// decoder in dynamic-allocation mode, so any size works; 8 MiB is xz -6.
const xzDict = 8 << 20

// newCompressor wraps w in the named compression. Every choice here must
// be something the kernel's initramfs unpacker decodes, and must produce
// the same bytes for the same input.
func newCompressor(kind string, w io.Writer) (io.WriteCloser, error) {
	switch kind {
	case "zstd":
		// One frame with the default checksum (the kernel verifies it).
		// The streaming encoder's output does not depend on its
		// concurrency: it only pipelines blocks.
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedBestCompression),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderCRC(true))
	case "xz":
		// The kernel's xz decoder knows only the CRC32 and none checks;
		// ulikunitz/xz defaults to CRC64, which the kernel rejects
		// ("XZ-compressed data is corrupt" at boot).
		return xz.WriterConfig{CheckSum: xz.CRC32, DictCap: xzDict}.NewWriter(w)
	case "gzip":
		// Zero header mtime and no name: the header must not carry
		// build-time data.
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		zw.Header = gzip.Header{OS: 255}
		return zw, nil
	case "none":
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q (want one of %v)", kind, compressions)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// countingWriter counts the bytes written through it; it measures the
// uncompressed archive size.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
