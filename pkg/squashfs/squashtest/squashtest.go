// Package squashtest writes tiny squashfs 4.0 images for tests of the
// readers (pkg/squashfs, the CLI's inspect): gzip is declared but every
// block is stored uncompressed (the on-disk flag says so), 4 KiB blocks,
// one metadata block each for the inodes and the directories. It makes
// small images (a few KiB) without mksquashfs, and images that lie: an
// inode can declare any size.
package squashtest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/streamroot/streamroot/internal/pathtree"
)

// File is one regular file; directories are implied by paths.
type File struct {
	Path string
	Data []byte
	// Ext writes an extended file inode (type 9) rather than a basic one.
	Ext bool
	// Size, when non-zero, is the size the inode declares instead of
	// len(Data) (the block list still describes Data).
	Size uint64
	// Frag stores the file (under 4 KiB) in the fragment block.
	Frag bool
	// Sparse writes a zero first block size word (a hole).
	Sparse bool
	// Link, when set, makes the file a symlink to Link (Data unused).
	Link string
	// Mode is the permission bits (0: 0755).
	Mode uint16
}

// Block is the images' block size.
const Block = 4096

const noFragment = 0xFFFFFFFF

type node struct {
	name     string
	dir      bool
	file     File
	children []*node
	inum     uint32
	inodeOff int // offset of the inode in the inode table's block
	listOff  int // directory: offset of its listing in the directory table's block
	listLen  int
	parent   *node
}

// squashNode is t's tree as nodes below parent, the tables still to be
// laid out.
func squashNode(t *pathtree.Node[File], parent *node) *node {
	n := &node{name: t.Name, dir: t.Dir, file: t.File, parent: parent}
	for _, c := range t.Children {
		n.children = append(n.children, squashNode(c, n))
	}
	return n
}

// Build is an image holding files, its tables stored uncompressed.
func Build(files []File) []byte { return BuildZ(files, false) }

// BuildZ is Build with the inode and directory tables
// zlib-compressed when compress is set, as mksquashfs writes them.
func BuildZ(files []File, compress bool) []byte {
	le := binary.LittleEndian
	root := squashNode(pathtree.Build(files, func(f File) string { return f.Path }), nil)
	var nodes []*node
	var walk func(n *node)
	walk = func(n *node) {
		nodes = append(nodes, n)
		slices.SortFunc(n.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(root)

	img := make([]byte, 96)
	// Data: full blocks of each file, then one fragment block.
	blocksAt := map[*node]int{}
	var frag []byte
	fragOff := map[*node]int{}
	for _, n := range nodes {
		if n.dir {
			continue
		}
		if n.file.Link != "" {
			continue
		}
		if n.file.Frag {
			fragOff[n] = len(frag)
			frag = append(frag, n.file.Data...)
			continue
		}
		blocksAt[n] = len(img)
		img = append(img, n.file.Data...)
	}
	fragAt := len(img)
	img = append(img, frag...)

	// Inodes, numbered in walk order from 1.
	var inodes []byte
	for i, n := range nodes {
		n.inum = uint32(i + 1)
		n.inodeOff = len(inodes)
		switch {
		case n.dir:
			inodes = append(inodes, make([]byte, 32)...)
		case n.file.Link != "":
			inodes = append(inodes, make([]byte, 24+len(n.file.Link))...)
		case n.file.Ext:
			inodes = append(inodes, make([]byte, 56+4*nblocks(n))...)
		default:
			inodes = append(inodes, make([]byte, 32+4*nblocks(n))...)
		}
	}
	// Listings: one header per directory (under 256 entries).
	var dirs []byte
	for _, n := range nodes {
		if !n.dir {
			continue
		}
		n.listOff = len(dirs)
		if len(n.children) > 0 {
			h := make([]byte, 12)
			le.PutUint32(h, uint32(len(n.children)-1))
			le.PutUint32(h[8:], n.children[0].inum)
			dirs = append(dirs, h...)
			for _, c := range n.children {
				e := make([]byte, 8, 8+len(c.name))
				le.PutUint16(e, uint16(c.inodeOff))
				le.PutUint16(e[2:], uint16(int16(c.inum-n.children[0].inum)))
				typ := uint16(2)
				if c.dir {
					typ = 1
				} else if c.file.Link != "" {
					typ = 3
				}
				le.PutUint16(e[4:], typ)
				le.PutUint16(e[6:], uint16(len(c.name)-1))
				dirs = append(dirs, append(e, c.name...)...)
			}
		}
		n.listLen = len(dirs) - n.listOff
	}
	for _, n := range nodes {
		b := inodes[n.inodeOff:]
		le.PutUint16(b[2:], 0o755)
		if n.file.Mode != 0 {
			le.PutUint16(b[2:], n.file.Mode)
		}
		le.PutUint32(b[8:], 1767225600)
		le.PutUint32(b[12:], n.inum)
		switch {
		case n.dir:
			le.PutUint16(b, 1)
			le.PutUint32(b[16:], 0) // listing in the directory table's first block
			le.PutUint32(b[20:], 2)
			le.PutUint16(b[24:], uint16(n.listLen+3))
			le.PutUint16(b[26:], uint16(n.listOff))
			parent := uint32(len(nodes) + 1)
			if n.parent != nil {
				parent = n.parent.inum
			}
			le.PutUint32(b[28:], parent)
		case n.file.Link != "":
			le.PutUint16(b, 3)
			le.PutUint32(b[16:], 1) // nlink
			le.PutUint32(b[20:], uint32(len(n.file.Link)))
			copy(b[24:], n.file.Link)
		default:
			size := uint64(len(n.file.Data))
			if n.file.Size != 0 {
				size = n.file.Size
			}
			fragment, offset := uint32(noFragment), uint32(0)
			if n.file.Frag {
				fragment, offset = 0, uint32(fragOff[n])
			}
			list := b[32:]
			if n.file.Ext {
				le.PutUint16(b, 9)
				le.PutUint64(b[16:], uint64(blocksAt[n]))
				le.PutUint64(b[24:], size)
				le.PutUint32(b[40:], 1) // nlink
				le.PutUint32(b[44:], fragment)
				le.PutUint32(b[48:], offset)
				le.PutUint32(b[52:], 0xFFFFFFFF) // no xattrs
				list = b[56:]
			} else {
				le.PutUint16(b, 2)
				le.PutUint32(b[16:], uint32(blocksAt[n]))
				le.PutUint32(b[20:], fragment)
				le.PutUint32(b[24:], offset)
				le.PutUint32(b[28:], uint32(size))
			}
			for i := range nblocks(n) {
				n := min(Block, len(n.file.Data)-i*Block)
				le.PutUint32(list[4*i:], uint32(n)|1<<24)
			}
			if n.file.Sparse {
				le.PutUint32(list, 0)
			}
		}
	}
	meta := func(data []byte) []byte {
		if compress {
			var z bytes.Buffer
			w := zlib.NewWriter(&z)
			w.Write(data)
			w.Close()
			return append(le.AppendUint16(nil, uint16(z.Len())), z.Bytes()...)
		}
		return append(le.AppendUint16(nil, uint16(len(data))|0x8000), data...)
	}
	inodeTable := len(img)
	img = append(img, meta(inodes)...)
	dirTable := len(img)
	img = append(img, meta(dirs)...)
	compress = false // the fragment table and ids stay plain
	fragTable, fragments := uint64(0xFFFFFFFFFFFFFFFF), uint32(0)
	if len(frag) > 0 {
		entries := len(img)
		e := make([]byte, 16)
		le.PutUint64(e, uint64(fragAt))
		le.PutUint32(e[8:], uint32(len(frag))|1<<24)
		img = append(img, meta(e)...)
		fragTable, fragments = uint64(len(img)), 1
		img = le.AppendUint64(img, uint64(entries))
	}
	idTable := len(img)
	img = le.AppendUint64(img, uint64(len(img)+8))
	img = le.AppendUint16(img, 0x8004)
	img = le.AppendUint32(img, 0) // uid/gid 0

	sb := img[:96]
	copy(sb, "hsqs")
	le.PutUint32(sb[4:], uint32(len(nodes)))
	le.PutUint32(sb[8:], 1767225600)
	le.PutUint32(sb[12:], Block)
	le.PutUint32(sb[16:], fragments)
	le.PutUint16(sb[20:], 1) // gzip
	le.PutUint16(sb[22:], 12)
	le.PutUint16(sb[26:], 1) // ids
	le.PutUint16(sb[28:], 4)
	le.PutUint64(sb[32:], uint64(root.inodeOff)) // block 0, offset
	le.PutUint64(sb[40:], uint64(len(img)))
	le.PutUint64(sb[48:], uint64(idTable))
	le.PutUint64(sb[56:], 0xFFFFFFFFFFFFFFFF)
	le.PutUint64(sb[64:], uint64(inodeTable))
	le.PutUint64(sb[72:], uint64(dirTable))
	le.PutUint64(sb[80:], fragTable)
	le.PutUint64(sb[88:], 0xFFFFFFFFFFFFFFFF)
	return img
}

func nblocks(n *node) int {
	if n.file.Frag {
		return 0
	}
	return (len(n.file.Data) + Block - 1) / Block
}

// Superblock is a hand-made squashfs superblock at the start of size
// bytes whose tables are garbage: enough for a superblock report, not for
// the contents.
func Superblock(size int, major uint16, comp uint16, bytesUsed uint64) []byte {
	b := make([]byte, size)
	copy(b, "hsqs")
	le := binary.LittleEndian
	le.PutUint32(b[4:], 7)            // inodes
	le.PutUint32(b[8:], 1767225600)   // mtime
	le.PutUint32(b[12:], 131072)      // block size
	le.PutUint16(b[20:], comp)        // compression
	le.PutUint16(b[22:], 17)          // block log
	le.PutUint16(b[28:], major)       // version
	le.PutUint64(b[40:], bytesUsed)   // bytes used
	le.PutUint64(b[64:], bytesUsed-2) // inode table: a bad metadata header
	return b
}

// OneBlock is an 8 KiB squashfs of the given compression whose inode table
// is one compressed metadata block holding block.
func OneBlock(comp uint16, block []byte) []byte {
	img := Superblock(8192, 4, comp, 8192)
	binary.LittleEndian.PutUint64(img[32:], 0)  // root inode: block 0, offset 0
	binary.LittleEndian.PutUint64(img[64:], 96) // inode table
	binary.LittleEndian.PutUint16(img[96:], uint16(len(block)))
	copy(img[98:], block)
	return img
}

// XZBomb is an xz stream whose only block asks for an LZMA2 dictionary of
// 2^(code/2+12) bytes, followed by an empty LZMA2 stream.
func XZBomb(code byte) []byte {
	le := binary.LittleEndian
	s := []byte("\xfd7zXZ\x00\x00\x01")
	s = le.AppendUint32(s, crc32.ChecksumIEEE(s[6:8]))
	h := []byte{2, 0, 0x21, 1, code, 0, 0, 0}
	s = append(s, le.AppendUint32(h, crc32.ChecksumIEEE(h))...)
	return append(s, 0, 0, 0, 0)
}

// LZMABomb is a legacy .lzma header asking for a dictionary of dict bytes,
// of unknown size, then nothing.
func LZMABomb(dict uint32) []byte {
	b := binary.LittleEndian.AppendUint32([]byte{0x5d}, dict)
	return append(binary.LittleEndian.AppendUint64(b, 1<<64-1), 0, 0, 0, 0, 0)
}
