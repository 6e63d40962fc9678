package builder

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/streamroot/streamroot/builder/internal/lz4legacy"
	"github.com/ulikunitz/xz"
)

// compressions are the accepted -compress values, in the order shown in
// usage messages. Each is one the test kernel's initramfs unpacker
// decodes (Debian's config: CONFIG_RD_ZSTD, RD_LZ4, RD_XZ, RD_GZIP; also
// RD_BZIP2, RD_LZMA and RD_LZO, which nothing here writes). "zstd" is
// "zstd:best", the default.
var compressions = []string{"zstd", "zstd:fastest", "zstd:default", "zstd:better", "zstd:best", "lz4", "xz", "gzip", "none"}

// Compressions returns the accepted -compress values, the default first.
func Compressions() []string { return append([]string(nil), compressions...) }

// zstdLevels maps the zstd:<level> spellings to the encoder's levels.
var zstdLevels = map[string]zstd.EncoderLevel{
	"zstd":         zstd.SpeedBestCompression,
	"zstd:fastest": zstd.SpeedFastest,
	"zstd:default": zstd.SpeedDefault,
	"zstd:better":  zstd.SpeedBetterCompression,
	"zstd:best":    zstd.SpeedBestCompression,
}

// zstdWindow caps the zstd window. The kernel's unzstd allocates the
// window the frame header asks for; 8 MiB keeps that modest on small
// machines and is what zstd's own default levels use.
const zstdWindow = 8 << 20

// xzDict is the LZMA2 dictionary size. The initramfs unpacker runs the xz
// decoder in dynamic-allocation mode, so any size works; 8 MiB is xz -6.
const xzDict = 8 << 20

// NewCompressor wraps w in the named compression (one of Compressions).
// Every choice here must be something the kernel's initramfs unpacker
// decodes, and must produce the same bytes for the same input.
func NewCompressor(kind string, w io.Writer) (io.WriteCloser, error) {
	if level, ok := zstdLevels[kind]; ok {
		// One frame with the default checksum (the kernel verifies it).
		// The streaming encoder's output does not depend on its
		// concurrency: it only pipelines blocks.
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(level),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderCRC(true))
	}
	switch kind {
	case "lz4":
		// The legacy frame (`lz4 -l`), the only lz4 format the kernel
		// unpacks, at the highest HC level as the kernel's own `lz4 -9`.
		return lz4legacy.NewWriter(w, lz4.Level9), nil
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
