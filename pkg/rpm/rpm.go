// Package rpm reads the files of an RPM package without rpm(8): the
// lead, the signature and main headers (skipped, only their sizes are
// read), then the payload, a newc cpio archive compressed with xz, zstd,
// gzip or bzip2 (told apart by magic, as rpm2cpio does). `streamroot
// initramfs --kernel-rpm` takes an EL kernel (kernel-core,
// kernel-modules) out of one on any host, Debian included.
//
// Why no library: the Go RPM readers parse and verify every header tag
// and signature, which a kernel's files do not need, and several read
// the whole payload into memory; this streams it, about 150 lines with
// archive formats' usual checks, every size bounded (FuzzWalk).
package rpm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/streamroot/streamroot/pkg/decompress"
)

const (
	leadSize   = 96
	headerHead = 16
	// maxHeader bounds one header's index and data: a kernel package's
	// main header (the file list) is a few MiB.
	maxHeader = 256 << 20
	// maxName bounds a cpio name: PATH_MAX.
	maxName = 4096
)

// ErrNotRPM is returned for input that is not an RPM package.
var ErrNotRPM = errors.New("not an RPM package")

// File is one payload entry.
type File struct {
	Name string // as the archive stores it, e.g. "./lib/modules/<kver>/vmlinuz"
	Mode uint32 // st_mode: type and permission bits
	Size int64
}

// IsRegular says whether the entry is a regular file.
func (f File) IsRegular() bool { return f.Mode&0o170000 == 0o100000 }

// Walk calls fn for every payload entry in archive order, with a reader
// for a regular file's content (valid until fn returns). Names are
// untrusted: a caller that writes files must check them. An error from
// fn stops the walk and is returned.
func Walk(r io.Reader, fn func(f File, body io.Reader) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	lead := make([]byte, leadSize)
	if _, err := io.ReadFull(br, lead); err != nil || !bytes.Equal(lead[:4], []byte{0xed, 0xab, 0xee, 0xdb}) {
		return fmt.Errorf("%w: no RPM lead", ErrNotRPM)
	}
	// The signature header is padded to a multiple of 8 bytes; the main
	// header follows unpadded.
	for i, pad := range []bool{true, false} {
		if err := skipHeader(br, pad); err != nil {
			return fmt.Errorf("%w: header %d: %v", ErrNotRPM, i+1, err)
		}
	}
	payload, err := openPayload(br)
	if err != nil {
		return err
	}
	defer payload.Close()
	if err := walkCPIO(payload, fn); err != nil {
		return err
	}
	// Read the compressed stream to its end, so its check (xz's CRC,
	// gzip's) covers what was handed out and a truncated package fails;
	// what follows the trailer is padding, at most a few KiB.
	n, err := io.CopyN(io.Discard, payload, 1<<20)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("payload: %w", err)
	}
	if n == 1<<20 {
		return errors.New("payload: more than 1 MiB after the cpio trailer")
	}
	return nil
}

// skipHeader reads past one header structure.
func skipHeader(br *bufio.Reader, pad bool) error {
	h := make([]byte, headerHead)
	if _, err := io.ReadFull(br, h); err != nil {
		return err
	}
	if !bytes.Equal(h[:3], []byte{0x8e, 0xad, 0xe8}) {
		return errors.New("no header magic")
	}
	nindex, hsize := int64(binary.BigEndian.Uint32(h[8:])), int64(binary.BigEndian.Uint32(h[12:]))
	size := nindex*16 + hsize
	if nindex > maxHeader/16 || hsize > maxHeader || size > maxHeader {
		return fmt.Errorf("header of %d entries and %d bytes", nindex, hsize)
	}
	if pad {
		size += (8 - (headerHead+size)%8) % 8
	}
	_, err := io.CopyN(io.Discard, br, size)
	return err
}

// openPayload opens the payload by its magic.
func openPayload(br *bufio.Reader) (io.ReadCloser, error) {
	magic, err := br.Peek(6)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	for _, m := range payloadMagics {
		if bytes.HasPrefix(magic, m.magic) {
			return decompress.Reader(m.format, br)
		}
	}
	return nil, fmt.Errorf("payload compression with magic %x: want xz, zstd, gzip, bzip2 or none", magic)
}

// payloadMagics tell the payload's compression apart, as rpm2cpio does;
// a newc cpio magic is an uncompressed payload.
var payloadMagics = []struct {
	magic  []byte
	format decompress.Format
}{
	{[]byte("\xfd7zXZ\x00"), decompress.XZ},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, decompress.Zstd},
	{[]byte{0x1f, 0x8b}, decompress.Gzip},
	{[]byte("BZh"), decompress.Bzip2},
	{[]byte("07070"), decompress.None},
}

// walkCPIO reads a newc ("070701") or crc ("070702") cpio stream.
func walkCPIO(r io.Reader, fn func(File, io.Reader) error) error {
	var pos int64
	skip := func(n int64) error {
		_, err := io.CopyN(io.Discard, r, n)
		pos += n
		return err
	}
	for {
		hdr := make([]byte, 110)
		if _, err := io.ReadFull(r, hdr); err != nil {
			return fmt.Errorf("payload: cpio header at %d: %w", pos, err)
		}
		pos += 110
		if m := string(hdr[:6]); m != "070701" && m != "070702" {
			return fmt.Errorf("payload: cpio magic %q at %d (not newc)", hdr[:6], pos-110)
		}
		field := func(i int) (int64, error) {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			return int64(v), err
		}
		mode, err1 := field(1)
		size, err2 := field(6)
		nameLen, err3 := field(11)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("payload: cpio header at %d: %w", pos-110, err)
		}
		if nameLen < 1 || nameLen > maxName {
			return fmt.Errorf("payload: cpio name of %d bytes", nameLen)
		}
		name := make([]byte, nameLen)
		if _, err := io.ReadFull(r, name); err != nil {
			return fmt.Errorf("payload: cpio name: %w", err)
		}
		pos += nameLen
		if err := skip((4 - pos%4) % 4); err != nil {
			return err
		}
		n := strings.TrimSuffix(string(name), "\x00")
		if n == "TRAILER!!!" {
			return nil
		}
		f := File{Name: n, Mode: uint32(mode), Size: size}
		var body io.Reader = bytes.NewReader(nil)
		lr := &io.LimitedReader{R: r, N: size}
		if f.IsRegular() {
			body = lr
		}
		if err := fn(f, body); err != nil {
			return err
		}
		// What fn left unread, then the padding.
		if _, err := io.Copy(io.Discard, lr); err != nil {
			return fmt.Errorf("payload: %s: %w", n, err)
		}
		if lr.N != 0 {
			return fmt.Errorf("payload: %s: %w", n, io.ErrUnexpectedEOF)
		}
		pos += size
		if err := skip((4 - pos%4) % 4); err != nil {
			return err
		}
	}
}
