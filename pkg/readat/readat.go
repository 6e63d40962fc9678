// Package readat reads exact byte ranges from an io.ReaderAt, the way the
// image parsers (squashfs, ISO 9660) need them: all of the range, or an
// error that says which range and why.
package readat

import (
	"errors"
	"fmt"
	"io"
)

// Full fills p from r at off. A short read is an error even when r
// reports none, and an end of input inside the range is
// io.ErrUnexpectedEOF: for a parser, a truncated image.
func Full(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(p), off, err)
}
