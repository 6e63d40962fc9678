// Package liveroot turns a boot image into the root at /sysroot: it detects
// the layout by magic (ISO 9660 → LiveOS/squashfs.img → squashfs or erofs →
// LiveOS/rootfs.img ext4), loop-mounts each layer read-only and puts a
// writable overlayfs with a tmpfs upper on top, as dracut's dmsquash-live
// does with rd.live.overlay.overlayfs.
package liveroot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Kind is a filesystem layout recognised by its magic number.
type Kind string

// The layouts streamroot boots.
const (
	Squashfs Kind = "squashfs"
	EROFS    Kind = "erofs"
	Ext4     Kind = "ext4"
	ISO9660  Kind = "iso9660"
)

// ErrUnknown means the image is none of the layouts streamroot boots.
var ErrUnknown = errors.New("not a squashfs, erofs, ext4 or ISO 9660 image")

// ErrTruncated means the image is shorter than its own superblock says.
var ErrTruncated = errors.New("image is truncated")

// Detect reads the superblocks of the image of the given size and names its
// layout. It also checks the size the superblock claims, so a truncated
// image is refused before the kernel mounts it and fails on a late read.
// The claimed sizes are compared as unsigned block counts, never turned
// into an int64 or shifted, so no claim wraps around to look small.
func Detect(r io.ReaderAt, size int64) (Kind, error) {
	if size < 0 {
		return "", fmt.Errorf("image size %d", size)
	}
	usize := uint64(size)
	buf := make([]byte, 34*1024)
	n, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read superblock: %w", err)
	}
	buf = buf[:n]
	le := binary.LittleEndian
	switch {
	case len(buf) >= 96 && string(buf[0:4]) == "hsqs":
		if major := le.Uint16(buf[28:]); major != 4 {
			return "", fmt.Errorf("squashfs version %d: only version 4 is supported by Linux", major)
		}
		if used := le.Uint64(buf[40:]); used > usize {
			return "", fmt.Errorf("%w: squashfs says %d bytes, the image has %d", ErrTruncated, used, size)
		}
		return Squashfs, nil
	case len(buf) >= 1024+128 && le.Uint32(buf[1024:]) == 0xE0F5E1E2:
		blkbits := buf[1024+12]
		if blkbits < 9 || blkbits > 16 {
			return "", fmt.Errorf("erofs block size 2^%d is invalid", blkbits)
		}
		if blocks := uint64(le.Uint32(buf[1024+36:])); blocks > usize>>blkbits {
			return "", fmt.Errorf("%w: erofs says %d bytes, the image has %d", ErrTruncated, blocks<<blkbits, size)
		}
		return EROFS, nil
	// The ext4 fields read below end at 0x154 (the 64-bit block count's
	// high half): a shorter image is no ext4, not a panic.
	case len(buf) >= 1024+0x154 && le.Uint16(buf[1024+0x38:]) == 0xEF53:
		logBlock := le.Uint32(buf[1024+0x18:])
		if logBlock > 6 {
			return "", fmt.Errorf("ext4 block size 2^%d is invalid", 10+logBlock)
		}
		blocks := uint64(le.Uint32(buf[1024+0x04:]))
		if le.Uint32(buf[1024+0x60:])&0x80 != 0 { // INCOMPAT_64BIT: high half of the count
			blocks |= uint64(le.Uint32(buf[1024+0x150:])) << 32
		}
		if shift := 10 + logBlock; blocks > usize>>shift {
			if blocks > math.MaxUint64>>shift {
				return "", fmt.Errorf("%w: ext4 says %d blocks of %d bytes, the image has %d", ErrTruncated, blocks, 1<<shift, size)
			}
			return "", fmt.Errorf("%w: ext4 says %d bytes, the image has %d", ErrTruncated, blocks<<shift, size)
		}
		return Ext4, nil
	case len(buf) >= 32769+5 && string(buf[32769:32774]) == "CD001":
		return ISO9660, nil
	}
	return "", ErrUnknown
}

// DetectFile is Detect on a file.
func DetectFile(path string) (Kind, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// Stat reports 0 for a block device; seeking to the end works for both.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", err
	}
	k, err := Detect(f, size)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}
