// Package bzimage reads the kernel release out of an x86 Linux kernel
// image (bzImage) without running or unpacking it: the boot protocol's
// setup header (Documentation/arch/x86/boot.rst) has "HdrS" at 0x202
// and, from protocol 2.00 on, kernel_version at 0x20E: the offset, less
// 0x200, of a NUL-terminated string whose first word is the release
// (`uname -r`), e.g. "6.1.0-47-amd64 (debian-kernel@…) #1 SMP …".
// `streamroot initramfs --from-iso` uses it to pick the module tree
// that matches the ISO's kernel.
package bzimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/streamroot/streamroot/pkg/readat"
)

// ErrNotBzImage means the file has no x86 boot protocol setup header.
var ErrNotBzImage = errors.New("not an x86 Linux kernel image (no HdrS setup header)")

// maxVersion bounds the version string: real ones are ~100 bytes.
const maxVersion = 512

// Release returns the kernel release of the bzImage in r (size bytes).
func Release(r io.ReaderAt, size int64) (string, error) {
	var hdr [0x210]byte
	if size < int64(len(hdr)) {
		return "", ErrNotBzImage
	}
	if err := readat.Full(r, hdr[:], 0); err != nil {
		return "", err
	}
	le := binary.LittleEndian
	if string(hdr[0x202:0x206]) != "HdrS" {
		return "", ErrNotBzImage
	}
	if v := le.Uint16(hdr[0x206:]); v < 0x200 {
		return "", fmt.Errorf("boot protocol %#x has no kernel_version field", v)
	}
	ptr := le.Uint16(hdr[0x20E:])
	if ptr == 0 {
		return "", errors.New("the setup header has no kernel_version string")
	}
	off := int64(ptr) + 0x200
	if off >= size {
		return "", fmt.Errorf("kernel_version at %d, past the %d-byte image", off, size)
	}
	b := make([]byte, min(maxVersion, size-off))
	if err := readat.Full(r, b, off); err != nil {
		return "", err
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	rel, _, _ := strings.Cut(string(b), " ")
	if rel == "" || strings.ContainsFunc(rel, func(r rune) bool { return r < '!' || r > '~' || r == '/' }) || rel == "." || rel == ".." {
		return "", fmt.Errorf("kernel_version %q does not start with a release", b)
	}
	return rel, nil
}
