// Package isotest writes small ISO 9660 images for tests, so readers can be
// tested without xorriso or genisoimage. It writes what a reader needs (a
// primary volume descriptor, directories, file extents, optionally Rock
// Ridge names and multi-extent files) and nothing more: no path tables, no
// boot catalog. Do not use it to make bootable media.
package isotest

import (
	"encoding/binary"
	"slices"
	"strings"

	"github.com/streamroot/streamroot/internal/pathtree"
)

const sector = 2048

// File is one regular file of the image; directories are implied by paths.
type File struct {
	Path string // slash-separated, e.g. "LiveOS/squashfs.img"
	Data []byte
}

// Options shape the image.
type Options struct {
	VolumeID  string
	RockRidge bool // real names in Rock Ridge NM entries; ISO names upper-cased
	// MaxExtent splits files into extents of at most this many bytes (a
	// multiple of 2048), as ISO level 3 does for files over 4 GiB.
	MaxExtent int64
	// Gap inserts this many empty sectors between the extents of a split
	// file, making it non-contiguous.
	Gap int64
	// Extents gives files (by Path) an explicit extent list of {sector,
	// bytes} pairs instead of their data, to make hostile images: extents
	// that overlap, point at other files or add up to more than the image.
	// Such a file gets no sectors of its own and its Data is ignored.
	Extents map[string][][2]int64
}

type node struct {
	name     string
	path     string
	dir      bool
	data     []byte
	children []*node
	lba      int64 // first sector
	size     int64 // directory: bytes of records; file: len(data)
	extents  [][2]int64
}

// isoNode is t's tree as nodes, the sectors still to be laid out.
func isoNode(t *pathtree.Node[File]) *node {
	n := &node{name: t.Name, path: t.Path, dir: t.Dir, data: t.File.Data}
	for _, c := range t.Children {
		n.children = append(n.children, isoNode(c))
	}
	return n
}

// Build returns the bytes of an ISO image holding files.
func Build(files []File, o Options) []byte {
	if o.MaxExtent <= 0 {
		o.MaxExtent = 1 << 31
	}
	root := isoNode(pathtree.Build(files, func(f File) string { return f.Path }))
	var dirs []*node
	var walk func(d *node)
	walk = func(d *node) {
		slices.SortFunc(d.children, func(a, b *node) int { return strings.Compare(isoName(a), isoName(b)) })
		dirs = append(dirs, d)
		for _, c := range d.children {
			if c.dir {
				walk(c)
			}
		}
	}
	walk(root)

	// Pass 1: directory sizes (they depend on names only), then sectors.
	for _, d := range dirs {
		d.size = int64(len(dirRecords(d, root, o, true)))
	}
	next := int64(18)
	for _, d := range dirs {
		d.lba = next
		next += (d.size + sector - 1) / sector
	}
	for _, d := range dirs {
		for _, c := range d.children {
			if c.dir {
				continue
			}
			c.size = int64(len(c.data))
			if ext, ok := o.Extents[c.path]; ok {
				c.extents, c.data = ext, nil
				continue
			}
			left := c.size
			for first := true; first || left > 0; first = false {
				n := min(left, o.MaxExtent)
				c.extents = append(c.extents, [2]int64{next, n})
				next += (n + sector - 1) / sector
				if left -= n; left > 0 {
					next += o.Gap
				}
			}
		}
	}
	img := make([]byte, next*sector)

	pvd := img[16*sector : 17*sector]
	pvd[0], pvd[6] = 1, 1
	copy(pvd[1:6], "CD001")
	copy(pvd[8:40], pad("", 32))
	copy(pvd[40:72], pad(o.VolumeID, 32))
	both32(pvd[80:], uint32(next))
	both16(pvd[120:], 1)
	both16(pvd[124:], 1)
	both16(pvd[128:], sector)
	copy(pvd[156:190], record(root.lba, root.size, true, false, []byte{0}, nil))
	pvd[881] = 1
	term := img[17*sector : 18*sector]
	term[0], term[6] = 255, 1
	copy(term[1:6], "CD001")

	for _, d := range dirs {
		copy(img[d.lba*sector:], dirRecords(d, root, o, false))
		for _, c := range d.children {
			if c.dir {
				continue
			}
			if _, ok := o.Extents[c.path]; ok {
				continue
			}
			off := int64(0)
			for _, e := range c.extents {
				copy(img[e[0]*sector:], c.data[off:off+e[1]])
				off += e[1]
			}
		}
	}
	return img
}

func parentOf(root, d *node) *node {
	var p *node
	var walk func(x *node)
	walk = func(x *node) {
		for _, c := range x.children {
			if c == d {
				p = x
			}
			if c.dir {
				walk(c)
			}
		}
	}
	walk(root)
	if p == nil {
		return root
	}
	return p
}

// dirRecords lays out a directory's records, never across a sector.
func dirRecords(d, root *node, o Options, sizing bool) []byte {
	var out []byte
	add := func(r []byte) {
		if len(out)/sector != (len(out)+len(r)-1)/sector {
			out = append(out, make([]byte, sector-len(out)%sector)...)
		}
		out = append(out, r...)
	}
	var dotSU []byte
	if o.RockRidge && d == root {
		dotSU = []byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0, 'R', 'R', 5, 1, 0x81}
	}
	add(record(d.lba, d.size, true, false, []byte{0}, dotSU))
	p := parentOf(root, d)
	add(record(p.lba, p.size, true, false, []byte{1}, nil))
	for _, c := range d.children {
		var su []byte
		if o.RockRidge {
			su = append([]byte{'N', 'M', byte(5 + len(c.name)), 1, 0}, c.name...)
		}
		if c.dir {
			add(record(c.lba, c.size, true, false, []byte(isoName(c)), su))
			continue
		}
		exts := c.extents
		if ext, ok := o.Extents[c.path]; ok {
			exts = ext
		} else if sizing {
			exts = nil
			left := int64(len(c.data))
			for first := true; first || left > 0; first = false {
				n := min(left, o.MaxExtent)
				exts = append(exts, [2]int64{0, n})
				left -= n
			}
		}
		for i, e := range exts {
			add(record(e[0], e[1], false, i < len(exts)-1, []byte(isoName(c)), su))
		}
	}
	return out
}

func isoName(n *node) string {
	name := strings.ToUpper(n.name)
	name = strings.Map(func(r rune) rune {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, name)
	if n.dir {
		return strings.ReplaceAll(name, ".", "_")
	}
	if !strings.Contains(name, ".") {
		name += "."
	}
	return name + ";1"
}

func record(lba, size int64, dir, multi bool, name, su []byte) []byte {
	l := 33 + len(name)
	if len(name)%2 == 0 {
		l++
	}
	l += len(su)
	if l%2 == 1 {
		l++
	}
	r := make([]byte, l)
	r[0] = byte(l)
	both32(r[2:], uint32(lba))
	both32(r[10:], uint32(size))
	r[18], r[19], r[20] = 126, 1, 1 // 2026-01-01
	if dir {
		r[25] |= 0x02
	}
	if multi {
		r[25] |= 0x80
	}
	both16(r[28:], 1)
	r[32] = byte(len(name))
	copy(r[33:], name)
	suOff := 33 + len(name)
	if len(name)%2 == 0 {
		suOff++
	}
	copy(r[suOff:], su)
	return r
}

func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func pad(s string, n int) string {
	return s + strings.Repeat(" ", n-len(s))
}
