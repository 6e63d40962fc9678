// Package ext4 reads files out of an ext2, ext3 or ext4 filesystem image
// through an io.ReaderAt, without mounting it: the superblock, group
// descriptors (32- and 64-bit), inodes, extent trees and ext2/3 block
// maps, directories (htree ones read linearly, as their index blocks
// look like empty entries to a linear reader) and symlinks, fast and
// slow. It is what `streamroot initramfs --from-iso` needs to take
// lib/modules/<kver> out of a live image's LiveOS/rootfs.img.
//
// Why no library: the Go ext4 readers there are come with a disk-image
// toolkit (partition tables, writers, a file-backed storage interface)
// and read through a seekable file; this reads only what a module tree
// needs, through the same io.ReaderAt chain (ISO file → squashfs file →
// ext4) as the other image readers here, every claim of the image
// checked (FuzzExt4).
//
// Not read: inline data (a file kept in its inode, off by default in
// mkfs), encrypted and casefolded directories, which a kernel's module
// tree does not use; they are errors naming the file.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/streamroot/streamroot/pkg/pathwalk"
	"github.com/streamroot/streamroot/pkg/readat"
)

const (
	superOffset = 1024
	magic       = 0xEF53
	rootInode   = 2

	incompatMetaBG  = 0x10
	incompat64Bit   = 0x80
	incompatExtents = 0x40
	incompatInline  = 0x8000
	incompatEncrypt = 0x10000
	incompatKnown   = 0x2 | 0x4 | 0x8 | 0x10 | incompatExtents | incompat64Bit | 0x100 | 0x200 | 0x400 | 0x1000 | 0x2000 | incompatInline | incompatEncrypt | 0x20000

	flagIndex   = 0x1000     // htree directory
	flagExtents = 0x80000    // blocks mapped by an extent tree
	flagInline  = 0x10000000 // data in the inode

	maxLink = 4096
	// maxExtents bounds one file's extent list: a module is a few MiB
	// in a few extents; a tree that claims millions is corrupt.
	maxExtents = 1 << 16
	// maxDirSize bounds a directory read whole.
	maxDirSize = 64 << 20
)

// ErrNotFound means a path Lookup walked does not exist.
var ErrNotFound = errors.New("not found")

// FS is an opened filesystem image.
type FS struct {
	r         io.ReaderAt
	blockSize int64
	blocks    uint64
	inodes    uint32
	perGroup  uint32
	inodeSize int64
	descSize  int64
	descAt    int64  // position of the group descriptor table
	firstData int64  // s_first_data_block
	perGroupB int64  // blocks per group
	firstMeta uint32 // meta_bg: the first descriptor block moved to its group
	sparse    bool   // sparse_super: superblock copies only in groups 0, 1, powers of 3, 5, 7
	groups    uint32
	incompat  uint32
}

// New reads the superblock of the image in r.
func New(r io.ReaderAt) (*FS, error) {
	sb := make([]byte, 1024)
	if err := readat.Full(r, sb, superOffset); err != nil {
		return nil, fmt.Errorf("ext4 superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[56:]) != magic {
		return nil, errors.New("not an ext2/3/4 filesystem (no 0xEF53 magic)")
	}
	logBS := le.Uint32(sb[24:])
	if logBS > 6 {
		return nil, fmt.Errorf("block size 2^%d KiB", logBS)
	}
	f := &FS{
		r:         r,
		blockSize: 1024 << logBS,
		inodes:    le.Uint32(sb[0:]),
		perGroup:  le.Uint32(sb[40:]),
		inodeSize: 128,
		descSize:  32,
		incompat:  le.Uint32(sb[96:]),
	}
	if f.incompat&^incompatKnown != 0 {
		return nil, fmt.Errorf("unknown incompatible features %#x", f.incompat&^incompatKnown)
	}
	f.blocks = uint64(le.Uint32(sb[4:]))
	if f.incompat&incompat64Bit != 0 {
		f.blocks |= uint64(le.Uint32(sb[0x150:])) << 32
		f.descSize = int64(le.Uint16(sb[0xFE:]))
		if f.descSize < 64 || f.descSize > 1024 || f.descSize&(f.descSize-1) != 0 {
			return nil, fmt.Errorf("group descriptor size %d", f.descSize)
		}
	}
	if le.Uint32(sb[76:]) >= 1 { // dynamic revision: the inode size is set
		f.inodeSize = int64(le.Uint16(sb[88:]))
	}
	if f.inodeSize < 128 || f.inodeSize > f.blockSize || f.inodeSize&(f.inodeSize-1) != 0 {
		return nil, fmt.Errorf("inode size %d", f.inodeSize)
	}
	if f.perGroup == 0 || f.inodes == 0 {
		return nil, errors.New("no inodes")
	}
	f.groups = (f.inodes + f.perGroup - 1) / f.perGroup
	f.firstData = int64(le.Uint32(sb[20:])) // 1 with 1 KiB blocks, else 0
	f.descAt = (f.firstData + 1) * f.blockSize
	f.perGroupB = int64(le.Uint32(sb[32:]))
	f.firstMeta = le.Uint32(sb[0x104:])
	f.sparse = le.Uint32(sb[100:])&1 != 0
	if f.perGroupB == 0 {
		return nil, errors.New("no blocks per group")
	}
	return f, nil
}

// Inode is one file's inode, as much as reading it needs.
type Inode struct {
	num   uint32
	mode  uint16
	flags uint32
	size  uint64
	block [60]byte // i_block: extent tree root, block map or fast symlink
}

// IsDir says whether the inode is a directory.
func (in Inode) IsDir() bool { return in.mode&0xF000 == 0x4000 }

// IsRegular says whether the inode is a regular file.
func (in Inode) IsRegular() bool { return in.mode&0xF000 == 0x8000 }

// IsSymlink says whether the inode is a symbolic link.
func (in Inode) IsSymlink() bool { return in.mode&0xF000 == 0xA000 }

// Size is the file's size.
func (in Inode) Size() int64 { return int64(in.size) }

// Perm is the inode's permission bits.
func (in Inode) Perm() uint32 { return uint32(in.mode) & 0o777 }

func (f *FS) readAt(p []byte, off int64) error { return readat.Full(f.r, p, off) }

// inode reads inode number n.
func (f *FS) inode(n uint32) (Inode, error) {
	if n == 0 || n > f.inodes {
		return Inode{}, fmt.Errorf("inode %d of %d", n, f.inodes)
	}
	g, idx := (n-1)/f.perGroup, (n-1)%f.perGroup
	if g >= f.groups {
		return Inode{}, fmt.Errorf("inode %d: group %d of %d", n, g, f.groups)
	}
	desc := make([]byte, f.descSize)
	if err := f.readAt(desc, f.descPos(g)); err != nil {
		return Inode{}, fmt.Errorf("group %d descriptor: %w", g, err)
	}
	le := binary.LittleEndian
	table := uint64(le.Uint32(desc[8:]))
	if f.descSize >= 64 {
		table |= uint64(le.Uint32(desc[0x28:])) << 32
	}
	if table == 0 || table >= f.blocks {
		return Inode{}, fmt.Errorf("group %d: inode table at block %d of %d", g, table, f.blocks)
	}
	raw := make([]byte, 128)
	if err := f.readAt(raw, int64(table)*f.blockSize+int64(idx)*f.inodeSize); err != nil {
		return Inode{}, fmt.Errorf("inode %d: %w", n, err)
	}
	in := Inode{num: n, mode: le.Uint16(raw), flags: le.Uint32(raw[0x20:]),
		size: uint64(le.Uint32(raw[4:])) | uint64(le.Uint32(raw[0x6C:]))<<32}
	copy(in.block[:], raw[0x28:0x28+60])
	if in.size > f.blocks*uint64(f.blockSize) && !in.IsDir() {
		// A sparse file can claim more than the disk holds, but not more
		// than the 2^32 blocks an extent tree can map.
		if in.size>>32 >= uint64(f.blockSize) {
			return in, fmt.Errorf("inode %d: size %d", n, in.size)
		}
	}
	return in, nil
}

// descPos is where group g's descriptor is: in the table after the
// superblock, or, with meta_bg, in the first block group of its
// "meta group" (after that group's superblock copy, if it has one).
func (f *FS) descPos(g uint32) int64 {
	perBlock := uint32(f.blockSize / f.descSize)
	mg := g / perBlock
	if f.incompat&incompatMetaBG == 0 || mg < f.firstMeta {
		return f.descAt + int64(g)*f.descSize
	}
	first := mg * perBlock
	block := f.firstData + int64(first)*f.perGroupB
	if f.hasSuper(first) {
		block++
	}
	return block*f.blockSize + int64(g%perBlock)*f.descSize
}

// hasSuper says whether group g holds a superblock copy.
func (f *FS) hasSuper(g uint32) bool {
	if !f.sparse || g <= 1 {
		return true
	}
	for _, b := range []uint32{3, 5, 7} {
		n := b
		for n < g {
			n *= b
		}
		if n == g {
			return true
		}
	}
	return false
}

// Root is the root directory's inode.
func (f *FS) Root() (Inode, error) { return f.inode(rootInode) }

// extent maps length blocks from logical block logical to physical
// block physical; uninit ones read as zeros.
type extent struct {
	logical, length uint32
	physical        uint64
	uninit          bool
}

// extents lists a file's blocks.
func (f *FS) extents(in Inode) ([]extent, error) {
	if in.flags&flagInline != 0 {
		return nil, errors.New("inline data is not read by this tool")
	}
	if in.flags&flagExtents == 0 {
		return f.blockMap(in)
	}
	var out []extent
	if err := f.extentNode(in.block[:], 0, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// extentNode walks one node of an extent tree (the root is in i_block).
func (f *FS) extentNode(b []byte, level int, out *[]extent) error {
	le := binary.LittleEndian
	if len(b) < 12 || le.Uint16(b) != 0xF30A {
		return errors.New("extent node without its magic")
	}
	n, depth := int(le.Uint16(b[2:])), int(le.Uint16(b[6:]))
	if 12+12*n > len(b) || depth > 5 || level > 5 {
		return fmt.Errorf("extent node of %d entries, depth %d", n, depth)
	}
	for i := range n {
		e := b[12+12*i:]
		if depth == 0 {
			length := uint32(le.Uint16(e[4:]))
			x := extent{logical: le.Uint32(e), physical: uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))}
			if length > 32768 {
				x.uninit, length = true, length-32768
			}
			x.length = length
			if x.physical+uint64(length) > f.blocks {
				return fmt.Errorf("extent at block %d+%d, past the %d blocks", x.physical, length, f.blocks)
			}
			if *out = append(*out, x); len(*out) > maxExtents {
				return errors.New("more than 65536 extents")
			}
			continue
		}
		leaf := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		if leaf >= f.blocks {
			return fmt.Errorf("extent index to block %d of %d", leaf, f.blocks)
		}
		child := make([]byte, f.blockSize)
		if err := f.readAt(child, int64(leaf)*f.blockSize); err != nil {
			return err
		}
		if err := f.extentNode(child, level+1, out); err != nil {
			return err
		}
	}
	return nil
}

// blockMap lists the blocks of an ext2/3 file: 12 direct pointers, then
// single, double and triple indirect blocks.
func (f *FS) blockMap(in Inode) ([]extent, error) {
	le := binary.LittleEndian
	nblocks := (in.size + uint64(f.blockSize) - 1) / uint64(f.blockSize)
	if nblocks > maxExtents*64 {
		return nil, fmt.Errorf("block-mapped file of %d blocks", nblocks)
	}
	var out []extent
	logical := uint32(0)
	add := func(p uint32) error {
		if uint64(logical) >= nblocks {
			return nil
		}
		if p != 0 {
			if uint64(p) >= f.blocks {
				return fmt.Errorf("block pointer %d of %d", p, f.blocks)
			}
			if k := len(out) - 1; k >= 0 && out[k].logical+out[k].length == logical && out[k].physical+uint64(out[k].length) == uint64(p) {
				out[k].length++
			} else if out = append(out, extent{logical: logical, physical: uint64(p), length: 1}); len(out) > maxExtents {
				return errors.New("more than 65536 extents")
			}
		}
		logical++
		return nil
	}
	per := uint32(f.blockSize / 4)
	var indirect func(p uint32, level int) error
	indirect = func(p uint32, level int) error {
		if p == 0 { // a hole of per^level blocks
			span := uint64(1)
			for range level {
				span *= uint64(per)
			}
			logical = uint32(min(uint64(logical)+span, nblocks))
			return nil
		}
		if uint64(p) >= f.blocks {
			return fmt.Errorf("indirect block %d of %d", p, f.blocks)
		}
		b := make([]byte, f.blockSize)
		if err := f.readAt(b, int64(p)*f.blockSize); err != nil {
			return err
		}
		for i := uint32(0); i < per && uint64(logical) < nblocks; i++ {
			q := le.Uint32(b[4*i:])
			var err error
			if level == 1 {
				err = add(q)
			} else {
				err = indirect(q, level-1)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	for i := range 12 {
		if err := add(le.Uint32(in.block[4*i:])); err != nil {
			return nil, err
		}
	}
	for level := 1; level <= 3 && uint64(logical) < nblocks; level++ {
		if err := indirect(le.Uint32(in.block[4*(11+level):]), level); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// File is a regular file's (or a slow symlink's, or a directory's)
// content as an io.ReaderAt.
type File struct {
	f    *FS
	size int64
	ext  []extent
}

// Open returns the content of a regular file inode.
func (f *FS) Open(in Inode) (*File, error) {
	if !in.IsRegular() {
		return nil, errors.New("not a regular file")
	}
	return f.open(in)
}

func (f *FS) open(in Inode) (*File, error) {
	ext, err := f.extents(in)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", in.num, err)
	}
	slices.SortFunc(ext, func(a, b extent) int { return int(int64(a.logical) - int64(b.logical)) })
	return &File{f: f, size: int64(in.size), ext: ext}, nil
}

// Size is the file's size.
func (fl *File) Size() int64 { return fl.size }

// ReadAt reads len(p) bytes at off, io.EOF past the end; holes and
// unwritten extents read as zeros.
func (fl *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	bs := fl.f.blockSize
	n := 0
	for n < len(p) {
		at := off + int64(n)
		if at >= fl.size {
			return n, io.EOF
		}
		lb := uint64(at / bs)
		in := at % bs
		chunk := min(int64(len(p)-n), bs-in, fl.size-at)
		i, found := slices.BinarySearchFunc(fl.ext, lb, func(e extent, lb uint64) int {
			switch {
			case uint64(e.logical)+uint64(e.length) <= lb:
				return -1
			case uint64(e.logical) > lb:
				return 1
			}
			return 0
		})
		dst := p[n : n+int(chunk)]
		if !found || fl.ext[i].uninit {
			clear(dst)
		} else {
			e := fl.ext[i]
			phys := e.physical + (lb - uint64(e.logical))
			if err := fl.f.readAt(dst, int64(phys)*bs+in); err != nil {
				return n, err
			}
		}
		n += int(chunk)
	}
	return n, nil
}

// Entry is one name in a directory.
type Entry struct {
	Name  string
	inode uint32
}

// ReadDir lists a directory in its on-disk order, without "." and "..".
func (f *FS) ReadDir(in Inode) ([]Entry, error) {
	if !in.IsDir() {
		return nil, errors.New("not a directory")
	}
	if in.size > maxDirSize {
		return nil, fmt.Errorf("directory of %d bytes", in.size)
	}
	fl, err := f.open(in)
	if err != nil {
		return nil, err
	}
	b := make([]byte, in.size)
	if _, err := fl.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	le := binary.LittleEndian
	var out []Entry
	for off := 0; off+8 <= len(b); {
		ino, rec, nameLen := le.Uint32(b[off:]), int(le.Uint16(b[off+4:])), int(b[off+6])
		if rec < 8 || off+rec > len(b) || 8+nameLen > rec {
			return nil, fmt.Errorf("directory inode %d: entry at %d with length %d", in.num, off, rec)
		}
		if name := string(b[off+8 : off+8+nameLen]); ino != 0 && name != "." && name != ".." {
			if strings.ContainsRune(name, '/') || name == "" {
				return nil, fmt.Errorf("directory inode %d: entry name %q", in.num, name)
			}
			out = append(out, Entry{Name: name, inode: ino})
		}
		off += rec
	}
	return out, nil
}

// Inode reads the inode a directory entry names.
func (f *FS) Inode(e Entry) (Inode, error) { return f.inode(e.inode) }

// Readlink returns a symlink's target: in the inode for a fast symlink,
// in a data block for a slow one.
func (f *FS) Readlink(in Inode) (string, error) {
	if !in.IsSymlink() {
		return "", errors.New("not a symlink")
	}
	if in.size == 0 || in.size > maxLink {
		return "", fmt.Errorf("symlink of %d bytes", in.size)
	}
	if in.flags&(flagExtents|flagInline) == 0 && in.size < 60 {
		return string(in.block[:in.size]), nil
	}
	if in.flags&flagInline != 0 && in.size < 60 {
		return string(in.block[:in.size]), nil
	}
	fl, err := f.open(in)
	if err != nil {
		return "", err
	}
	b := make([]byte, in.size)
	if _, err := fl.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return string(b), nil
}

// Lookup finds a path as the image's own root would see it: symlinks
// followed in every component (an absolute target from the image's
// root, at most 40, as in Linux; EL's /lib -> usr/lib), ".." at the root
// stays there, at most 256 components walked.
func (f *FS) Lookup(p string) (Inode, error) {
	root, err := f.Root()
	if err != nil {
		return root, err
	}
	return pathwalk.Resolve[Inode](walker{f, p}, root, p)
}

// walker is the ext4 side of a pathwalk: p is the path looked up.
type walker struct {
	f *FS
	p string
}

func (w walker) Child(dir Inode, name, walked string) (Inode, error) {
	if !dir.IsDir() {
		return Inode{}, fmt.Errorf("%s: %s is not a directory", w.p, path.Dir(walked))
	}
	ents, err := w.f.ReadDir(dir)
	if err != nil {
		return Inode{}, err
	}
	i := slices.IndexFunc(ents, func(e Entry) bool { return e.Name == name })
	if i < 0 {
		return Inode{}, fmt.Errorf("%s: %w", w.p, ErrNotFound)
	}
	in, err := w.f.Inode(ents[i])
	if err != nil {
		return in, fmt.Errorf("%s: %w", walked, err)
	}
	return in, nil
}

func (w walker) Link(in Inode) (string, bool, error) {
	if !in.IsSymlink() {
		return "", false, nil
	}
	t, err := w.f.Readlink(in)
	return t, true, err
}
