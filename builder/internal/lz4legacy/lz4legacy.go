// Package lz4legacy writes the LZ4 legacy frame format, the one lz4 format
// the kernel's initramfs unpacker reads (lib/decompress_unlz4.c, `lz4 -l`):
// the magic 0x184C2102, then chunks of a little-endian 32-bit compressed
// size and one independent LZ4 block of at most 8 MiB uncompressed. The
// kernel decodes every chunk into an 8 MiB buffer, stops at the end of the
// input or at a zero size word (the zero padding before a following cpio
// archive) and skips a repeated magic (concatenated frames). There is no
// flag for a stored block, no checksum and, for an initramfs, no trailing
// uncompressed size: the kernel image's own lz4 format appends one, and the
// initramfs unpacker would read it as the next chunk's size.
//
// The blocks come from github.com/pierrec/lz4/v4's HC block compressor;
// its stream Writer does have a LegacyOption, but it compresses each 8 MiB
// block into an 8 MiB buffer, smaller than CompressBlockBound(8 MiB), and a
// block that does not fit (random bytes: a compressed firmware file) is
// written stored, with bit 31 of its size set. That flag exists only in the
// newer LZ4 frame format; the kernel takes the word as a length and fails
// the unpack. Here every block is compressed into a buffer of
// CompressBlockBound bytes, where the compressor always succeeds.
package lz4legacy

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
)

// Magic opens a legacy frame (little-endian on the wire).
const Magic = 0x184C2102

// BlockSize is the most a chunk decompresses to: the kernel's
// LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE, fixed by the format.
const BlockSize = 8 << 20

// Writer compresses what is written to it into one legacy frame. Its output
// depends only on the bytes written, not on how the writes are split.
type Writer struct {
	w      io.Writer
	c      lz4.CompressorHC
	buf    []byte // pending input, at most BlockSize
	out    []byte // one chunk: size word, then the block
	header bool   // magic written
	err    error
}

// NewWriter returns a Writer onto w compressing at level (lz4.Fast is not
// an HC level: use lz4.Level1 … lz4.Level9).
func NewWriter(w io.Writer, level lz4.CompressionLevel) *Writer {
	return &Writer{
		w:   w,
		c:   lz4.CompressorHC{Level: level},
		buf: make([]byte, 0, BlockSize),
		out: make([]byte, 4+lz4.CompressBlockBound(BlockSize)),
	}
}

// Write buffers p and writes every full 8 MiB block it completes.
func (z *Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && z.err == nil {
		m := min(len(p), BlockSize-len(z.buf))
		z.buf = append(z.buf, p[:m]...)
		p, n = p[m:], n+m
		if len(z.buf) == BlockSize {
			z.err = z.flush()
		}
	}
	return n, z.err
}

// Close writes the last, partial block; it does not close the underlying
// writer. An empty input still makes a frame (the magic alone), which the
// kernel reads as empty.
func (z *Writer) Close() error {
	if z.err == nil {
		z.err = z.flush()
	}
	return z.err
}

func (z *Writer) flush() error {
	if !z.header {
		var m [4]byte
		binary.LittleEndian.PutUint32(m[:], Magic)
		if _, err := z.w.Write(m[:]); err != nil {
			return err
		}
		z.header = true
	}
	if len(z.buf) == 0 {
		return nil
	}
	n, err := z.c.CompressBlock(z.buf, z.out[4:])
	if err == nil && n == 0 {
		// Documented not to happen with a CompressBlockBound buffer.
		err = fmt.Errorf("block of %d bytes did not compress into %d", len(z.buf), len(z.out)-4)
	}
	if err != nil {
		return fmt.Errorf("lz4 legacy: %w", err)
	}
	binary.LittleEndian.PutUint32(z.out, uint32(n))
	if _, err := z.w.Write(z.out[:4+n]); err != nil {
		return err
	}
	z.buf = z.buf[:0]
	return nil
}
