// Package squashfs reads squashfs 4.0 images through an io.ReaderAt: look
// a path up, list a directory and read the first bytes of a file, so the
// CLI's inspect can see inside an image on an HTTP server with a handful
// of Range requests; and read whole files (Open), so `streamroot
// initramfs --from-iso` can take a kernel's modules, or the ext4
// rootfs.img holding them, out of a live image. Layout: squashfs-tools' squashfs_fs.h and
// the kernel's Documentation/filesystems/squashfs.rst.
//
// Every size and position in the image is the image's claim, not a fact:
// positions are checked against bytes_used without overflowing (base and
// length as uint64, never base+length compared), sizes against what the
// image could hold, and no input makes the reader panic (FuzzSquashfs).
package squashfs

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"slices"

	"github.com/klauspost/compress/zstd"
	"github.com/streamroot/streamroot/pkg/pathwalk"
	"github.com/streamroot/streamroot/pkg/readat"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

const (
	sqMetaSize   = 8192
	sqNoFragment = 0xFFFFFFFF
	sqFlagCompOp = 0x0400 // compressor options follow the superblock
	sqNameMax    = 256    // SQUASHFS_NAME_LEN: the kernel refuses longer names
	sqLinkMax    = 4096   // PATH_MAX: the longest symlink target a lookup follows
)

// Super is the 96-byte squashfs superblock, in disk order.
type Super struct {
	Magic, Inodes, ModTime, BlockSize, Fragments          uint32
	Compression, BlockLog, Flags, IDs, Major, Minor       uint16
	RootInode, BytesUsed, IDTable, XattrTable, InodeTable uint64
	DirTable, FragTable, ExportTable                      uint64
}

var compressionNames = map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}

// CompressionName names a superblock's compression id ("" for an id
// squashfs does not define).
func CompressionName(id uint16) string { return compressionNames[id] }

// ParseSuper reads the superblock at the start of head and checks what
// Linux checks before it mounts: the magic, version 4 and a block size that
// is a power of two from 4 KiB to 1 MiB matching its logarithm.
func ParseSuper(head []byte) (Super, error) {
	var sb Super
	if len(head) < 96 || string(head[:4]) != "hsqs" {
		return sb, errors.New("no squashfs magic")
	}
	binary.Read(bytes.NewReader(head[:96]), binary.LittleEndian, &sb)
	if sb.Major != 4 {
		return sb, fmt.Errorf("squashfs version %d.%d: Linux mounts only version 4", sb.Major, sb.Minor)
	}
	if sb.BlockSize < 4096 || sb.BlockSize > 1<<20 || sb.BlockSize&(sb.BlockSize-1) != 0 || 1<<sb.BlockLog != sb.BlockSize {
		return sb, fmt.Errorf("squashfs block size %d (log %d) is invalid", sb.BlockSize, sb.BlockLog)
	}
	return sb, nil
}

// FS reads the metadata of one squashfs image. It caches the metadata
// blocks it has read and is not safe for concurrent use.
type FS struct {
	r      io.ReaderAt
	sb     Super
	decomp func(src []byte, max int) ([]byte, error)
	meta   map[int64]metaBlock
}

type metaBlock struct {
	data []byte
	next int64 // position of the following metadata block
}

// New reads the image in r, whose superblock is sb, with the decompressor
// sb names; gzip, lzma, xz and zstd are readable, lzo and lz4 are not.
func New(r io.ReaderAt, sb Super) (*FS, error) {
	d, err := decompressor(sb.Compression, max(int64(sb.BlockSize), sqMetaSize))
	if err != nil {
		return nil, err
	}
	return &FS{r: r, sb: sb, decomp: d, meta: map[int64]metaBlock{}}, nil
}

// decompressor returns the decompressor for a compression id. dict
// bounds the LZMA dictionary a block may ask for: mksquashfs uses the block
// size, and the kernel refuses more, while a crafted header could make the
// decoder allocate up to 4 GiB for an 8 KiB metadata block.
func decompressor(id uint16, dict int64) (func([]byte, int) ([]byte, error), error) {
	stream := func(open func(io.Reader) (io.Reader, error)) func([]byte, int) ([]byte, error) {
		return func(src []byte, max int) ([]byte, error) {
			rd, err := open(bytes.NewReader(src))
			if err != nil {
				return nil, err
			}
			out, err := io.ReadAll(io.LimitReader(rd, int64(max)+1))
			if err != nil {
				return nil, err
			}
			if len(out) > max {
				return nil, fmt.Errorf("block decompresses to more than %d bytes", max)
			}
			return out, nil
		}
	}
	switch id {
	case 1:
		return stream(func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) }), nil
	case 2:
		return stream(func(r io.Reader) (io.Reader, error) {
			return lzma.ReaderConfig{DictCap: int(max(dict, lzma.MinDictCap))}.NewReader(r)
		}), nil
	case 4:
		xzStream := stream(func(r io.Reader) (io.Reader, error) { return xz.NewReader(r) })
		return func(src []byte, max int) ([]byte, error) {
			if err := xzCheckDict(src, dict); err != nil {
				return nil, err
			}
			return xzStream(src, max)
		}, nil
	case 6:
		return func(src []byte, max int) ([]byte, error) {
			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max)*2+(1<<20)))
			if err != nil {
				return nil, err
			}
			defer dec.Close()
			out, err := dec.DecodeAll(src, make([]byte, 0, max))
			if err != nil {
				return nil, err
			}
			if len(out) > max {
				return nil, fmt.Errorf("block decompresses to more than %d bytes", max)
			}
			return out, nil
		}, nil
	}
	name := compressionNames[id]
	if name == "" {
		name = fmt.Sprintf("id %d", id)
	}
	return nil, fmt.Errorf("%s compression is not readable by this tool in pure Go", name)
}

func (s *FS) readFull(p []byte, off int64) error {
	if off < 0 {
		return fmt.Errorf("read %d bytes at %d: outside the %d bytes the superblock declares", len(p), uint64(off), s.sb.BytesUsed)
	}
	return s.readFullAt(p, uint64(off))
}

// readFullAt is readFull at a position read from the image (a uint64 that
// may be anything).
func (s *FS) readFullAt(p []byte, at uint64) error {
	used := s.sb.BytesUsed
	if at > used || uint64(len(p)) > used-at {
		return fmt.Errorf("read %d bytes at %d: outside the %d bytes the superblock declares", len(p), at, s.sb.BytesUsed)
	}
	off := int64(at) // at <= used, and used fits the image's int64 size
	if off < 0 {
		return fmt.Errorf("read %d bytes at %d: outside the image", len(p), at)
	}
	return readat.Full(s.r, p, off)
}

// at is the absolute position of rel bytes into a table starting at base,
// both read from the image, or an error when it lies outside bytes_used.
func (s *FS) at(what string, base, rel uint64) (int64, error) {
	used := s.sb.BytesUsed
	if base > used || rel > used-base || base+rel > math.MaxInt64 {
		return 0, fmt.Errorf("%s at %d+%d: outside the %d bytes the superblock declares", what, base, rel, used)
	}
	return int64(base + rel), nil
}

// metaBlock reads the metadata block at absolute position pos.
func (s *FS) metaBlock(pos int64) (metaBlock, error) {
	if b, ok := s.meta[pos]; ok {
		return b, nil
	}
	var hdr [2]byte
	if err := s.readFull(hdr[:], pos); err != nil {
		return metaBlock{}, fmt.Errorf("metadata block at %d: %w", pos, err)
	}
	h := binary.LittleEndian.Uint16(hdr[:])
	n := int(h & 0x7fff)
	if n == 0 || n > sqMetaSize {
		return metaBlock{}, fmt.Errorf("metadata block at %d: bad length %d", pos, n)
	}
	raw := make([]byte, n)
	if err := s.readFull(raw, pos+2); err != nil {
		return metaBlock{}, fmt.Errorf("metadata block at %d: %w", pos, err)
	}
	data := raw
	if h&0x8000 == 0 {
		var err error
		if data, err = s.decomp(raw, sqMetaSize); err != nil {
			return metaBlock{}, fmt.Errorf("metadata block at %d: %w", pos, err)
		}
	}
	b := metaBlock{data: data, next: pos + 2 + int64(n)}
	s.meta[pos] = b
	return b, nil
}

// metaCursor reads a byte stream that runs across metadata blocks.
type metaCursor struct {
	s   *FS
	pos int64 // absolute position of the current block
	off int   // offset in its decompressed data
}

func (c *metaCursor) read(n int) ([]byte, error) {
	out := make([]byte, 0, n)
	for len(out) < n {
		b, err := c.s.metaBlock(c.pos)
		if err != nil {
			return nil, err
		}
		if c.off >= len(b.data) {
			c.pos, c.off = b.next, c.off-len(b.data)
			continue
		}
		k := copy(out[len(out):n], b.data[c.off:])
		out = out[:len(out)+k]
		c.off += k
	}
	return out, nil
}

// Inode is the part of an inode a lookup, a listing and Head need.
type Inode struct {
	typ        uint16
	mode       uint16 // permission bits
	dir        bool
	target     string // symlink: where it points
	size       uint64 // file size, or directory listing size
	dirBlock   uint32 // directory: start of its listing, relative to the directory table
	dirOffset  uint16
	blocksAt   uint64 // file: position of its first data block
	fragment   uint32
	fragOffset uint32
	firstBlock uint32     // file: on-disk size word of its first data block, if any
	blocks     int        // number of full data blocks
	list       metaCursor // file: where its block size words start
}

// IsDir says whether the inode is a directory.
func (in Inode) IsDir() bool { return in.dir }

// IsRegular says whether the inode is a regular file (basic or extended).
func (in Inode) IsRegular() bool { return in.typ == 2 || in.typ == 9 }

// Perm is the inode's permission bits.
func (in Inode) Perm() fs.FileMode { return fs.FileMode(in.mode) & fs.ModePerm }

// Size is a file's size as its inode declares it (checked against what the
// image can describe), or a directory listing's size.
func (in Inode) Size() uint64 { return in.size }

func (s *FS) inode(ref uint64) (Inode, error) {
	pos, err := s.at("inode", s.sb.InodeTable, ref>>16)
	if err != nil {
		return Inode{}, err
	}
	c := &metaCursor{s: s, pos: pos, off: int(ref & 0xffff)}
	hdr, err := c.read(16)
	if err != nil {
		return Inode{}, err
	}
	le := binary.LittleEndian
	in := Inode{typ: le.Uint16(hdr), mode: le.Uint16(hdr[2:])}
	switch in.typ {
	case 3, 10: // basic or extended symlink: nlink, target size, target
		b, err := c.read(8)
		if err != nil {
			return in, err
		}
		n := le.Uint32(b[4:])
		if n == 0 || n > sqLinkMax {
			return in, fmt.Errorf("symlink target of %d bytes (1 to %d)", n, sqLinkMax)
		}
		t, err := c.read(int(n))
		if err != nil {
			return in, err
		}
		in.target = string(t)
		return in, nil
	case 1: // basic directory
		b, err := c.read(16)
		if err != nil {
			return in, err
		}
		in.dir = true
		in.dirBlock, in.size, in.dirOffset = le.Uint32(b), uint64(le.Uint16(b[8:])), le.Uint16(b[10:])
	case 8: // extended directory
		b, err := c.read(24)
		if err != nil {
			return in, err
		}
		in.dir = true
		in.size, in.dirBlock, in.dirOffset = uint64(le.Uint32(b[4:])), le.Uint32(b[8:]), le.Uint16(b[18:])
	case 2: // basic file
		b, err := c.read(16)
		if err != nil {
			return in, err
		}
		in.blocksAt, in.fragment, in.fragOffset, in.size = uint64(le.Uint32(b)), le.Uint32(b[4:]), le.Uint32(b[8:]), uint64(le.Uint32(b[12:]))
	case 9: // extended file
		b, err := c.read(40)
		if err != nil {
			return in, err
		}
		in.blocksAt, in.size, in.fragment, in.fragOffset = le.Uint64(b), le.Uint64(b[8:]), le.Uint32(b[28:]), le.Uint32(b[32:])
	default:
		return in, nil // symlinks, devices, ...: nothing to read
	}
	if in.typ == 2 || in.typ == 9 {
		bs := uint64(s.sb.BlockSize)
		// Every block, sparse or not, has a 4-byte size word in the inode
		// table, and a metadata block of 3 bytes or more on disk holds at
		// most 8192 bytes (2048 words) however well they compress: a file
		// of more blocks than that (2^63 bytes, say) is a lie, and one that
		// would turn negative as an int64.
		if in.size > math.MaxInt64 || in.size/bs/(sqMetaSize/4) > s.sb.BytesUsed/3 {
			return in, fmt.Errorf("file size %d is more than a squashfs of %d bytes can describe", in.size, s.sb.BytesUsed)
		}
		in.blocks = int(in.size / bs)
		if in.fragment == sqNoFragment && in.size%bs != 0 {
			in.blocks++
		}
		in.list = *c
		if in.blocks > 0 {
			b, err := c.read(4)
			if err != nil {
				return in, err
			}
			in.firstBlock = le.Uint32(b)
		}
	}
	return in, nil
}

// Entry is one name in a directory listing.
type Entry struct {
	Name string
	ref  uint64
	typ  uint16
}

// ReadDir lists a directory inode, in the image's order.
func (s *FS) ReadDir(in Inode) ([]Entry, error) {
	if !in.dir {
		return nil, errors.New("not a directory")
	}
	if in.size <= 3 {
		return nil, nil
	}
	left := int(in.size) - 3
	pos, err := s.at("directory", s.sb.DirTable, uint64(in.dirBlock))
	if err != nil {
		return nil, err
	}
	c := &metaCursor{s: s, pos: pos, off: int(in.dirOffset)}
	le := binary.LittleEndian
	var out []Entry
	for left > 0 {
		h, err := c.read(12)
		if err != nil {
			return nil, err
		}
		left -= 12
		count, start := int(le.Uint32(h))+1, uint64(le.Uint32(h[4:]))
		if count > 256 {
			return nil, fmt.Errorf("directory header with %d entries", count)
		}
		for range count {
			e, err := c.read(8)
			if err != nil {
				return nil, err
			}
			nameLen := int(le.Uint16(e[6:])) + 1
			if nameLen > sqNameMax {
				return nil, fmt.Errorf("directory entry with a name of %d bytes (at most %d)", nameLen, sqNameMax)
			}
			name, err := c.read(nameLen)
			if err != nil {
				return nil, err
			}
			left -= 8 + nameLen
			out = append(out, Entry{Name: string(name), ref: start<<16 | uint64(le.Uint16(e)), typ: le.Uint16(e[4:])})
		}
		if len(out) > 1<<20 {
			return nil, errors.New("directory too large")
		}
	}
	return out, nil
}

// Root is the root directory's inode.
func (s *FS) Root() (Inode, error) { return s.inode(s.sb.RootInode) }

// Lookup finds a path as the image's own root would see it (stat(2),
// case-sensitive): symlinks are followed in every component, an absolute
// target from the image's root, at most 40 of them as in Linux, and ".."
// at the root stays there. One lookup walks at most 256 components, so a
// crafted image (a directory that holds itself, long symlink chains)
// bounds the work.
func (s *FS) Lookup(p string) (Inode, error) {
	root, err := s.Root()
	if err != nil {
		return root, err
	}
	return pathwalk.Resolve[Inode](walker{s, p}, root, p)
}

// walker is the squashfs side of a pathwalk: p is the path looked up.
type walker struct {
	s *FS
	p string
}

func (w walker) Child(dir Inode, name, walked string) (Inode, error) {
	ents, err := w.s.ReadDir(dir)
	if err != nil {
		return Inode{}, err
	}
	i := slices.IndexFunc(ents, func(e Entry) bool { return e.Name == name })
	if i < 0 {
		return Inode{}, fmt.Errorf("%s: %w", w.p, ErrNotFound)
	}
	in, err := w.s.inode(ents[i].ref)
	if err != nil {
		return in, fmt.Errorf("%s: %w", walked, err)
	}
	return in, nil
}

func (walker) Link(in Inode) (string, bool, error) { return in.target, in.IsSymlink(), nil }

// ErrNotFound means a path Lookup walked does not exist.
var ErrNotFound = errors.New("not found")

// Head returns the first bytes of a file: its first data block, or its
// fragment when the whole file is one.
func (s *FS) Head(in Inode) ([]byte, error) {
	bs := int(s.sb.BlockSize)
	if in.blocks > 0 {
		size := int(in.firstBlock & 0xFFFFFF)
		if size == 0 { // sparse block
			return make([]byte, min(bs, int(in.size))), nil
		}
		if size > bs {
			return nil, fmt.Errorf("data block of %d bytes is larger than the block size", size)
		}
		raw := make([]byte, size)
		if err := s.readFullAt(raw, in.blocksAt); err != nil {
			return nil, err
		}
		if in.firstBlock&(1<<24) != 0 {
			return raw, nil
		}
		return s.decomp(raw, bs)
	}
	if in.fragment == sqNoFragment {
		return nil, nil
	}
	return s.fragment(in)
}

// fragment returns the part of a file kept in a fragment block: all of
// it for a small file, the tail of a larger one (size mod block size).
func (s *FS) fragment(in Inode) ([]byte, error) {
	bs := int(s.sb.BlockSize)
	want := in.size - uint64(in.blocks)*uint64(bs)
	// Fragment table: an array of u64 positions of metadata blocks, each
	// holding 512 entries {start u64, size u32, unused u32}.
	if in.fragment >= s.sb.Fragments {
		return nil, fmt.Errorf("fragment %d of %d", in.fragment, s.sb.Fragments)
	}
	var idx [8]byte
	idxAt, err := s.at("fragment index", s.sb.FragTable, 8*uint64(in.fragment/512))
	if err != nil {
		return nil, err
	}
	if err := s.readFull(idx[:], idxAt); err != nil {
		return nil, err
	}
	entries, err := s.at("fragment entries", binary.LittleEndian.Uint64(idx[:]), 0)
	if err != nil {
		return nil, err
	}
	c := &metaCursor{s: s, pos: entries, off: int(in.fragment%512) * 16}
	e, err := c.read(16)
	if err != nil {
		return nil, err
	}
	start, word := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint32(e[8:])
	size := int(word & 0xFFFFFF)
	if size == 0 || size > bs {
		return nil, fmt.Errorf("fragment block of %d bytes", size)
	}
	raw := make([]byte, size)
	if err := s.readFullAt(raw, start); err != nil {
		return nil, err
	}
	data := raw
	if word&(1<<24) == 0 {
		if data, err = s.decomp(raw, bs); err != nil {
			return nil, err
		}
	}
	if off := uint64(in.fragOffset); off > uint64(len(data)) || want > uint64(len(data))-off {
		return nil, fmt.Errorf("fragment of %d bytes holds no %d bytes at %d", len(data), want, in.fragOffset)
	}
	return data[in.fragOffset : uint64(in.fragOffset)+want], nil
}

// xzCheckDict refuses an xz stream whose first block asks for an LZMA2
// dictionary larger than limit bytes, before the decoder allocates it (the
// xz package takes the larger of its limit and the header's). A squashfs
// block is one stream of one block, as mksquashfs writes it.
func xzCheckDict(src []byte, limit int64) error {
	bad := errors.New("xz block header is malformed")
	if len(src) < 13 || string(src[:6]) != "\xfd7zXZ\x00" {
		return nil // not xz: the decoder says what is wrong
	}
	if src[12] == 0 {
		return nil // no block, only an index
	}
	n := (int(src[12]) + 1) * 4
	if n > len(src)-12 {
		return bad
	}
	hdr := src[12 : 12+n-4] // without its CRC32
	p := 2
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && p < len(hdr); i++ {
			b := hdr[p]
			p++
			v |= uint64(b&0x7f) << (7 * i)
			if b&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	flags := hdr[1]
	for _, bit := range []byte{0x40, 0x80} { // compressed, uncompressed size
		if flags&bit != 0 {
			if _, ok := varint(); !ok {
				return bad
			}
		}
	}
	for range int(flags&3) + 1 {
		id, ok1 := varint()
		size, ok2 := varint()
		if !ok1 || !ok2 || size > uint64(len(hdr)-p) {
			return bad
		}
		props := hdr[p : p+int(size)]
		p += int(size)
		if id != 0x21 { // not LZMA2 (a BCJ filter, say)
			continue
		}
		if len(props) != 1 || props[0] > 40 {
			return bad
		}
		c := props[0]
		d := int64(1)<<32 - 1
		if c < 40 {
			d = int64(2|c&1) << (c/2 + 11)
		}
		if d > limit {
			return fmt.Errorf("xz block asks for a %d-byte dictionary, more than the %d a squashfs block can need", d, limit)
		}
	}
	return nil
}
