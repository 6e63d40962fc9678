// Package imgfmt holds the rules of the image formats streamroot boots,
// once, for the boot (pkg/liveroot) and the CLI's inspect: which layer an
// image is, by magic (squashfs, erofs, ext2/3/4, ISO 9660); what its
// superblock claims (sizes, block size, compression, names) and whether the
// image is as long as that; dracut's live-layout names (rd.live.dir,
// rd.live.squashimg, LiveOS/rootfs.img or ext3fs.img inside a squashfs);
// and where a root's init may be. What inspect says about an image is what
// a boot does with it.
package imgfmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/squashfs"
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

// HeadSize is how many bytes from the start of an image Probe needs to
// see every layout's magic and superblock: the ISO 9660 primary volume
// descriptor starts at 32 KiB.
const HeadSize = 34 << 10

// Facts are what an image's superblock claims. Every number is the
// image's claim, not a fact about the bytes behind it.
type Facts struct {
	Kind Kind
	// Declared is how many bytes the filesystem says it occupies
	// (math.MaxUint64 when the claim does not fit 64 bits; 0 for an ISO,
	// whose size is not checked here).
	Declared uint64
	Squashfs *squashfs.Super // for Squashfs
	EROFS    *EROFSInfo      // for EROFS
	Ext4     *Ext4Info       // for Ext4
}

// EROFSInfo is an erofs superblock's report.
type EROFSInfo struct {
	BlockSize   int      `json:"block_size"`
	Blocks      uint32   `json:"blocks"`
	Inodes      uint64   `json:"inodes"`
	VolumeName  string   `json:"volume_name,omitempty"`
	UUID        string   `json:"uuid"`
	Created     string   `json:"created"`
	Compression []string `json:"compression,omitempty"`
}

// Ext4Info is an ext2/3/4 superblock's report.
type Ext4Info struct {
	Type      string `json:"type"` // ext2, ext3 or ext4
	BlockSize int    `json:"block_size"`
	Blocks    uint64 `json:"blocks"`
	Inodes    uint32 `json:"inodes"`
	Label     string `json:"label,omitempty"`
	UUID      string `json:"uuid"`
}

// Fits says whether an image of size bytes holds all the filesystem
// declares. The claim is compared as an unsigned count, never turned into
// an int64 or shifted, so no claim wraps around to look small.
func (f Facts) Fits(size int64) bool { return size >= 0 && f.Declared <= uint64(size) }

// Probe names the layout of an image from its first bytes (HeadSize of
// them, or the whole image when it is shorter) and reads its superblock.
// It fails with ErrUnknown when no magic matches, and with a message
// naming the field when a superblock is one Linux would not mount. The
// magics are tried in the order the boot mounts them: squashfs, erofs,
// ext4, then ISO 9660 (an ISO's first 32 KiB are free for other uses).
func Probe(head []byte) (Facts, error) {
	le := binary.LittleEndian
	switch {
	case len(head) >= 96 && string(head[0:4]) == "hsqs":
		sb, err := squashfs.ParseSuper(head)
		if err != nil {
			return Facts{}, err
		}
		return Facts{Kind: Squashfs, Declared: sb.BytesUsed, Squashfs: &sb}, nil
	case len(head) >= 1024+128 && le.Uint32(head[1024:]) == 0xE0F5E1E2:
		info, err := probeEROFS(head[1024:])
		if err != nil {
			return Facts{}, err
		}
		return Facts{Kind: EROFS, Declared: uint64(info.Blocks) * uint64(info.BlockSize), EROFS: info}, nil
	// The ext4 fields read below end at 0x154 (the 64-bit block count's
	// high half): a shorter image is no ext4, not a panic.
	case len(head) >= 1024+0x154 && le.Uint16(head[1024+0x38:]) == 0xEF53:
		info, err := probeExt4(head[1024:])
		if err != nil {
			return Facts{}, err
		}
		declared := uint64(math.MaxUint64)
		if hi, lo := bits.Mul64(info.Blocks, uint64(info.BlockSize)); hi == 0 {
			declared = lo
		}
		return Facts{Kind: Ext4, Declared: declared, Ext4: info}, nil
	case len(head) >= 32769+5 && string(head[32769:32774]) == "CD001":
		return Facts{Kind: ISO9660}, nil
	}
	return Facts{}, ErrUnknown
}

// probeEROFS reads an erofs superblock (the bytes at offset 1024).
func probeEROFS(sb []byte) (*EROFSInfo, error) {
	le := binary.LittleEndian
	blkbits := sb[12]
	if blkbits < 9 || blkbits > 16 {
		return nil, fmt.Errorf("erofs block size 2^%d is invalid", blkbits)
	}
	info := &EROFSInfo{
		BlockSize:  1 << blkbits,
		Inodes:     le.Uint64(sb[16:]),
		Created:    time.Unix(int64(le.Uint64(sb[24:])), 0).UTC().Format(time.RFC3339),
		Blocks:     le.Uint32(sb[36:]),
		UUID:       uuid(sb[48:64]),
		VolumeName: cString(sb[64:80]),
	}
	if incompat := le.Uint32(sb[80:]); incompat&0x2 != 0 { // COMPR_CFGS: the algorithms used
		algs := le.Uint16(sb[84:])
		for i, name := range []string{"lz4", "lzma", "deflate", "zstd"} {
			if algs&(1<<i) != 0 {
				info.Compression = append(info.Compression, name)
			}
		}
	} else if incompat&0x1 != 0 {
		info.Compression = []string{"lz4"}
	}
	return info, nil
}

// probeExt4 reads an ext2/3/4 superblock (the bytes at offset 1024, at
// least 0x154 of them).
func probeExt4(sb []byte) (*Ext4Info, error) {
	le := binary.LittleEndian
	logBlock := le.Uint32(sb[0x18:])
	if logBlock > 6 {
		return nil, fmt.Errorf("ext4 block size 2^%d is invalid", 10+logBlock)
	}
	info := &Ext4Info{
		BlockSize: 1024 << logBlock,
		Blocks:    uint64(le.Uint32(sb[0x04:])),
		Inodes:    le.Uint32(sb[0x00:]),
		Label:     cString(sb[0x78:0x88]),
		UUID:      uuid(sb[0x68:0x78]),
		Type:      "ext2",
	}
	compat, incompat := le.Uint32(sb[0x5C:]), le.Uint32(sb[0x60:])
	if incompat&0x80 != 0 { // INCOMPAT_64BIT: high half of the count
		info.Blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	if compat&0x4 != 0 {
		info.Type = "ext3"
	}
	if incompat&(0x40|0x80|0x200) != 0 { // extents, 64bit, flex_bg
		info.Type = "ext4"
	}
	return info, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

func uuid(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ReadHead reads the first min(size, n) bytes of an image: fewer only
// when the reader ends early.
func ReadHead(r io.ReaderAt, size int64, n int) ([]byte, error) {
	head := make([]byte, max(0, min(size, int64(n))))
	got, err := r.ReadAt(head, 0)
	if got < len(head) && err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return head[:got], nil
}

// Detect reads the superblocks of the image of the given size and names its
// layout. It also checks the size the superblock claims, so a truncated
// image is refused (ErrTruncated) before the kernel mounts it and fails on
// a late read.
func Detect(r io.ReaderAt, size int64) (Kind, error) {
	if size < 0 {
		return "", fmt.Errorf("image size %d", size)
	}
	// Read a whole head even when size claims less: a short size with a
	// long superblock is a truncated image, not an unknown one.
	head, err := ReadHead(r, HeadSize, HeadSize)
	if err != nil {
		return "", fmt.Errorf("read superblock: %w", err)
	}
	f, err := Probe(head)
	if err != nil {
		return "", err
	}
	if !f.Fits(size) {
		if f.Ext4 != nil && f.Declared == math.MaxUint64 {
			return "", fmt.Errorf("%w: ext4 says %d blocks of %d bytes, the image has %d", ErrTruncated, f.Ext4.Blocks, f.Ext4.BlockSize, size)
		}
		return "", fmt.Errorf("%w: %s says %d bytes, the image has %d", ErrTruncated, f.Kind, f.Declared, size)
	}
	return f.Kind, nil
}

// DetectFile is Detect on a file or block device.
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

// The live layout's defaults, as dracut's dmsquash-live has them.
const (
	DefaultLiveDir   = "LiveOS"
	DefaultSquashImg = "squashfs.img"
)

// Layout is where dracut's live layout keeps its images: rd.live.dir and
// rd.live.squashimg.
type Layout struct {
	LiveDir   string // rd.live.dir: the directory of the images ("." the top)
	SquashImg string // rd.live.squashimg: the squashfs's name inside an ISO
}

// DefaultLayout is LiveOS/squashfs.img.
func DefaultLayout() Layout { return Layout{LiveDir: DefaultLiveDir, SquashImg: DefaultSquashImg} }

// ISOImage is the path of the live image inside an ISO, relative to its
// root.
func (l Layout) ISOImage() string { return path.Join(l.LiveDir, l.SquashImg) }

// LiveImages are the paths, relative to a squashfs's (or erofs's) root, of
// the ext4 image that makes it dracut's live layout, in the order
// dmsquash-live tries them. A squashfs holding none is the root itself.
func (l Layout) LiveImages() []string {
	return []string{path.Join(l.LiveDir, "rootfs.img"), path.Join(l.LiveDir, "ext3fs.img")}
}

// Inner is the path, relative to the root of a layer of kind k, of the
// image a boot mounts next: the live image for an ISO (whether or not it
// exists: without it the ISO cannot boot), the first of LiveImages that
// isFile says is a regular file for a squashfs or erofs, and "" when the
// layer is the root itself.
func (l Layout) Inner(k Kind, isFile func(p string) bool) string {
	switch k {
	case ISO9660:
		return l.ISOImage()
	case Squashfs, EROFS:
		for _, p := range l.LiveImages() {
			if isFile(p) {
				return p
			}
		}
	}
	return ""
}

// InitCandidates are the paths, inside a root, of the init a boot starts
// when the kernel line has no init=, in the order tried.
func InitCandidates() []string {
	return []string{"/sbin/init", "/usr/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd"}
}
