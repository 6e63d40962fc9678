// Package isoread finds files in an ISO 9660 image without mounting it: it
// reads the volume descriptors and only the directory sectors on the path it
// walks, through an io.ReaderAt, so it works as well on a local file as on an
// HTTP Range reader that must not download the whole ISO.
//
// Names are taken from Rock Ridge (NM entries) when the image has them, as
// xorriso, genisoimage -R and every Fedora/CentOS live ISO do; otherwise
// from the Joliet tree when there is one; otherwise the plain ISO 9660 names
// with their ";1" version and trailing "." removed. Lookups try an exact
// match first, then a case-insensitive one, so "LiveOS/squashfs.img" finds
// "LIVEOS/SQUASHFS.IMG;1" on an image without extensions.
//
// Files larger than 4 GiB (multi-extent records, ISO level 3) are supported.
// A file's extents must lie inside the image, must not overlap and so add up
// to no more than the image's size: a reader never yields more bytes than
// the image holds.
//
// Names are returned as the image has them; error messages render them
// with textesc.Escape, since they end up on a terminal.
package isoread

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/streamroot/streamroot/pkg/readat"
	"github.com/streamroot/streamroot/pkg/textesc"
)

const sectorSize = 2048

// maxDirSize bounds how much of one directory is read (a sane ISO directory
// is a few sectors; this stops a corrupt length from reading gigabytes).
const maxDirSize = 16 << 20

// Image is an opened ISO 9660 image.
type Image struct {
	r         io.ReaderAt
	size      int64
	blockSize int64
	VolumeID  string // the primary volume identifier (the ISO's label)
	RockRidge bool   // names come from Rock Ridge NM entries
	Joliet    bool   // names come from the Joliet tree
	root      extent
	suspSkip  int // SUSP bytes to skip at the start of each system use area
}

type extent struct {
	lba  int64
	size int64
}

// File is a file or directory in the image.
type File struct {
	Name  string // name as shown (Rock Ridge, Joliet or cleaned ISO name)
	Path  string // slash-separated path from the root, no leading slash
	IsDir bool
	Size  int64 // bytes
	// Offset is the byte offset of the file's first extent in the image.
	// When Contiguous is true the whole file is the Size bytes from there.
	Offset     int64
	Contiguous bool
	extents    []extent
	img        *Image
}

// Open reads the volume descriptors of the ISO image in r (size bytes).
func Open(r io.ReaderAt, size int64) (*Image, error) {
	im := &Image{r: r, size: size, blockSize: sectorSize}
	var joliet []byte
	var primary []byte
descriptors:
	for i := int64(16); i < 16+64; i++ {
		vd := make([]byte, sectorSize)
		if err := im.readFull(vd, i*sectorSize); err != nil {
			if i == 16 {
				return nil, fmt.Errorf("not an ISO 9660 image: %w", err)
			}
			return nil, fmt.Errorf("volume descriptor %d: %w", i-16, err)
		}
		if string(vd[1:6]) != "CD001" {
			if i == 16 {
				return nil, errors.New("not an ISO 9660 image (no CD001 at sector 16)")
			}
			return nil, fmt.Errorf("volume descriptor %d has no CD001 signature", i-16)
		}
		switch vd[0] {
		case 1:
			if primary == nil {
				primary = vd
			}
		case 2:
			esc := vd[88:91]
			if esc[0] == '%' && esc[1] == '/' && (esc[2] == '@' || esc[2] == 'C' || esc[2] == 'E') {
				joliet = vd
			}
		case 255:
			break descriptors
		}
	}
	if primary == nil {
		return nil, errors.New("ISO 9660 image without a primary volume descriptor")
	}
	if bs := int64(binary.LittleEndian.Uint16(primary[128:])); bs != 0 {
		im.blockSize = bs
	}
	if im.blockSize != sectorSize {
		return nil, fmt.Errorf("ISO logical block size %d: only 2048 is supported", im.blockSize)
	}
	im.VolumeID = strings.TrimRight(string(primary[40:72]), " \x00")
	rec, err := parseRecord(primary[156 : 156+34])
	if err != nil {
		return nil, fmt.Errorf("root directory record: %w", err)
	}
	im.root = rec.ext
	// Rock Ridge: the root's "." record carries SUSP "SP" and an "ER" or
	// any RR entry.
	if ok, skip := im.detectRockRidge(); ok {
		im.RockRidge, im.suspSkip = true, skip
	} else if joliet != nil {
		jrec, err := parseRecord(joliet[156 : 156+34])
		if err == nil {
			im.root, im.Joliet = jrec.ext, true
		}
	}
	return im, nil
}

func (im *Image) readFull(p []byte, off int64) error {
	if off < 0 || off > im.size || int64(len(p)) > im.size-off {
		return fmt.Errorf("read %d bytes at %d: past the end of the %d-byte image (truncated ISO?)", len(p), off, im.size)
	}
	return readat.Full(im.r, p, off)
}

// record is a parsed directory record.
type record struct {
	ext       extent
	dir       bool
	multi     bool // more extents of this file follow
	name      []byte
	systemUse []byte
	length    int
}

func parseRecord(b []byte) (record, error) {
	if len(b) < 34 {
		return record{}, errors.New("directory record too short")
	}
	l := int(b[0])
	if l < 34 || l > len(b) {
		return record{}, fmt.Errorf("directory record length %d is invalid", l)
	}
	nl := int(b[32])
	if 33+nl > l {
		return record{}, fmt.Errorf("directory record name length %d exceeds the record", nl)
	}
	r := record{
		ext:    extent{lba: int64(binary.LittleEndian.Uint32(b[2:])), size: int64(binary.LittleEndian.Uint32(b[10:]))},
		dir:    b[25]&0x02 != 0,
		multi:  b[25]&0x80 != 0,
		name:   b[33 : 33+nl],
		length: l,
	}
	su := 33 + nl
	if nl%2 == 0 {
		su++ // padding byte
	}
	if su < l {
		r.systemUse = b[su:l]
	}
	return r, nil
}

// readDir returns the records of a directory, "." and ".." included.
func (im *Image) readDir(e extent) ([]record, error) {
	if e.size > maxDirSize {
		return nil, fmt.Errorf("directory of %d bytes at sector %d: too large", e.size, e.lba)
	}
	buf := make([]byte, (e.size+sectorSize-1)/sectorSize*sectorSize)
	if err := im.readFull(buf, e.lba*sectorSize); err != nil {
		return nil, fmt.Errorf("directory at sector %d: %w", e.lba, err)
	}
	buf = buf[:e.size]
	var recs []record
	for off := 0; off < len(buf); {
		if buf[off] == 0 { // records never cross a sector: skip the padding
			off = (off/sectorSize + 1) * sectorSize
			continue
		}
		end := min(len(buf), (off/sectorSize+1)*sectorSize)
		r, err := parseRecord(buf[off:end])
		if err != nil {
			return nil, fmt.Errorf("directory at sector %d, byte %d: %w", e.lba, off, err)
		}
		recs = append(recs, r)
		off += r.length
	}
	return recs, nil
}

func (im *Image) detectRockRidge() (bool, int) {
	recs, err := im.readDir(im.root)
	if err != nil || len(recs) == 0 {
		return false, 0
	}
	su := recs[0].systemUse
	// SUSP "SP": 'S' 'P' len=7 ver=1 0xBE 0xEF skip
	if len(su) >= 7 && su[0] == 'S' && su[1] == 'P' && su[4] == 0xBE && su[5] == 0xEF {
		skip := int(su[6])
		ok := false
		im.walkSUSP(su, 0, func(sig string, _ []byte) {
			if sig == "ER" || sig == "RR" || sig == "NM" || sig == "PX" {
				ok = true
			}
		})
		if !ok && len(recs) > 2 {
			im.walkSUSP(recs[2].systemUse, skip, func(sig string, _ []byte) {
				if sig == "NM" || sig == "PX" {
					ok = true
				}
			})
		}
		return ok, skip
	}
	return false, 0
}

// walkSUSP calls fn for each System Use entry, following CE continuation
// areas (a bounded number of them).
func (im *Image) walkSUSP(su []byte, skip int, fn func(sig string, data []byte)) {
	if skip > len(su) {
		return
	}
	su = su[skip:]
	for hops := 0; hops < 8; hops++ {
		var ce []byte
		for len(su) >= 4 {
			l := int(su[2])
			if l < 4 || l > len(su) {
				break
			}
			sig, data := string(su[:2]), su[4:l]
			if sig == "ST" {
				break
			}
			if sig == "CE" && len(data) >= 24 {
				ce = data
			} else {
				fn(sig, data)
			}
			su = su[l:]
		}
		if ce == nil {
			return
		}
		lba := int64(binary.LittleEndian.Uint32(ce[0:]))
		off := int64(binary.LittleEndian.Uint32(ce[8:]))
		n := int64(binary.LittleEndian.Uint32(ce[16:]))
		if n > sectorSize || off >= sectorSize {
			return
		}
		buf := make([]byte, n)
		if im.readFull(buf, lba*sectorSize+off) != nil {
			return
		}
		su = buf
	}
}

// name returns the display name of a record.
func (im *Image) name(r record) string {
	if im.RockRidge {
		var nm []byte
		found := false
		im.walkSUSP(r.systemUse, im.suspSkip, func(sig string, data []byte) {
			if sig == "NM" && len(data) >= 1 && data[0]&0x06 == 0 {
				nm = append(nm, data[1:]...)
				found = true
			}
		})
		if found && len(nm) > 0 {
			return string(nm)
		}
	}
	if im.Joliet {
		u := make([]uint16, len(r.name)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(r.name[2*i:])
		}
		s := string(utf16.Decode(u))
		if i := strings.LastIndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		return s
	}
	s := string(r.name)
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if !r.dir {
		s = strings.TrimSuffix(s, ".")
	}
	return s
}

// entries lists a directory as Files (without "." and ".."), merging the
// extents of multi-extent files.
func (im *Image) entries(dir extent, dirPath string) ([]*File, error) {
	recs, err := im.readDir(dir)
	if err != nil {
		return nil, err
	}
	var files []*File
	var cur *File
	for _, r := range recs {
		if len(r.name) == 1 && (r.name[0] == 0 || r.name[0] == 1) {
			continue
		}
		if cur == nil {
			name := im.name(r)
			cur = &File{Name: name, Path: path.Join(dirPath, name), IsDir: r.dir, img: im}
		}
		cur.extents = append(cur.extents, r.ext)
		cur.Size += r.ext.size
		if r.multi {
			continue
		}
		cur.Offset = cur.extents[0].lba * sectorSize
		cur.Contiguous = true
		for i := 1; i < len(cur.extents); i++ {
			prev := cur.extents[i-1]
			if prev.size%sectorSize != 0 || prev.lba+prev.size/sectorSize != cur.extents[i].lba {
				cur.Contiguous = false
			}
		}
		if err := im.checkExtents(cur); err != nil {
			return nil, err
		}
		files = append(files, cur)
		cur = nil
	}
	if cur != nil {
		return nil, fmt.Errorf("%s: multi-extent file without its last extent", textesc.Escape(cur.Path))
	}
	return files, nil
}

// checkExtents refuses a file whose extents do not fit the image: one past
// its end, overlapping ones, or more bytes in all than the image has, so a
// crafted directory of many records pointing at the same sectors cannot
// turn a small ISO into an endless file.
func (im *Image) checkExtents(f *File) error {
	name := textesc.Escape(f.Path)
	for _, e := range f.extents {
		// lba and size are 32-bit on disk, so lba*sectorSize cannot wrap.
		if start := e.lba * sectorSize; start > im.size || e.size > im.size-start {
			return fmt.Errorf("%s: its data (sector %d, %d bytes) lies past the end of the %d-byte image (truncated ISO?)",
				name, e.lba, e.size, im.size)
		}
	}
	if len(f.extents) == 1 {
		return nil
	}
	// At most maxDirSize/34 records of under 4 GiB each: the sum fits.
	if f.Size > im.size {
		return fmt.Errorf("%s: its %d extents add up to %d bytes, more than the %d-byte image holds (a corrupt or crafted ISO)",
			name, len(f.extents), f.Size, im.size)
	}
	order := make([]int, 0, len(f.extents))
	for i, e := range f.extents {
		if e.size > 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(f.extents[a].lba, f.extents[b].lba) })
	far := -1 // the extent reaching furthest so far
	for _, i := range order {
		e := f.extents[i]
		if far >= 0 {
			p := f.extents[far]
			if e.lba*sectorSize < p.lba*sectorSize+p.size {
				a, b := min(i, far), max(i, far)
				return fmt.Errorf("%s: extents %d (sector %d, %d bytes) and %d (sector %d, %d bytes) overlap (a corrupt or crafted ISO)",
					name, a, f.extents[a].lba, f.extents[a].size, b, f.extents[b].lba, f.extents[b].size)
			}
		}
		if far < 0 || e.lba*sectorSize+e.size > f.extents[far].lba*sectorSize+f.extents[far].size {
			far = i
		}
	}
	return nil
}

// ReadDir lists the directory at the slash-separated path ("" or "/" is
// the root).
func (im *Image) ReadDir(p string) ([]*File, error) {
	if clean := strings.Trim(path.Clean("/"+p), "/"); clean == "" {
		return im.entries(im.root, "")
	}
	d, err := im.Lookup(p)
	if err != nil {
		return nil, err
	}
	if !d.IsDir {
		return nil, fmt.Errorf("%s: not a directory", textesc.Escape(d.Path))
	}
	return im.entries(d.extents[0], d.Path)
}

// Lookup finds the file or directory at a slash-separated path. A missing
// path is an error wrapping fs.ErrNotExist that lists what the parent
// directory holds.
func (im *Image) Lookup(p string) (*File, error) {
	clean := strings.Trim(path.Clean("/"+p), "/")
	if clean == "" {
		return &File{Path: "", IsDir: true, Size: im.root.size, Offset: im.root.lba * sectorSize,
			Contiguous: true, extents: []extent{im.root}, img: im}, nil
	}
	dir, dirPath := im.root, ""
	parts := strings.Split(clean, "/")
	for i, part := range parts {
		files, err := im.entries(dir, dirPath)
		if err != nil {
			return nil, err
		}
		f := find(files, part)
		if f == nil {
			names := make([]string, 0, len(files))
			for _, f := range files {
				names = append(names, f.Name)
			}
			slices.Sort(names)
			where := "the root directory"
			if dirPath != "" {
				where = dirPath
			}
			return nil, fmt.Errorf("%s: %w in the ISO (%s holds: %s)", textesc.Escape(path.Join(dirPath, part)), fs.ErrNotExist, textesc.Escape(where), list(names))
		}
		if i == len(parts)-1 {
			return f, nil
		}
		if !f.IsDir {
			return nil, fmt.Errorf("%s: not a directory", textesc.Escape(f.Path))
		}
		dir, dirPath = f.extents[0], f.Path
	}
	panic("unreachable")
}

func find(files []*File, name string) *File {
	for _, f := range files {
		if f.Name == name {
			return f
		}
	}
	for _, f := range files {
		if strings.EqualFold(f.Name, name) {
			return f
		}
	}
	return nil
}

func list(names []string) string {
	names = slices.Clone(names)
	for i, n := range names {
		names[i] = textesc.Escape(n)
	}
	if len(names) == 0 {
		return "nothing"
	}
	if len(names) > 12 {
		return strings.Join(names[:12], ", ") + fmt.Sprintf(" and %d more", len(names)-12)
	}
	return strings.Join(names, ", ")
}

// ReaderAt returns a reader of the file's bytes.
func (f *File) ReaderAt() io.ReaderAt {
	if f.Contiguous {
		return io.NewSectionReader(f.img.r, f.Offset, f.Size)
	}
	return &multiExtent{f: f}
}

// SectionReader returns the file as an io.SectionReader (Read, Seek, ReadAt).
func (f *File) SectionReader() *io.SectionReader {
	return io.NewSectionReader(f.ReaderAt(), 0, f.Size)
}

type multiExtent struct{ f *File }

func (m *multiExtent) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	base := int64(0)
	for _, e := range m.f.extents {
		if len(p) == 0 {
			break
		}
		if off < base+e.size {
			rel := off - base
			want := min(int64(len(p)), e.size-rel)
			got, err := m.f.img.r.ReadAt(p[:want], e.lba*sectorSize+rel)
			n += got
			if int64(got) < want {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
			p, off = p[want:], off+want
		}
		base += e.size
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}
