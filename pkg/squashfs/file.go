package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// IsSymlink says whether the inode is a symbolic link.
func (in Inode) IsSymlink() bool { return in.typ == 3 || in.typ == 10 }

// Target is a symlink's target ("" for other inodes).
func (in Inode) Target() string { return in.target }

// Inode reads the inode a directory entry names.
func (s *FS) Inode(e Entry) (Inode, error) { return s.inode(e.ref) }

// File is a regular file's content as an io.ReaderAt: every data block
// (compressed, stored or sparse) and the fragment tail, decompressed on
// demand. The blocks read last are kept (up to cacheBytes), so a
// filesystem image read through it (an ext4 rootfs.img, whose inode
// tables and file data alternate) decompresses each block about once.
type File struct {
	s      *FS
	in     Inode
	starts []uint64 // on-disk position of each block
	words  []uint32 // each block's size word

	mu    sync.Mutex
	cache []cachedBlock // most recent first
}

// cachedBlock is one decompressed block; idx len(words) is the fragment.
type cachedBlock struct {
	idx  int
	data []byte
}

// cacheBytes bounds a File's decompressed blocks kept: 16 MiB is 128
// blocks of mksquashfs's default 128 KiB, 16 of the largest, 1 MiB.
const cacheBytes = 16 << 20

// Open returns the content of a regular file inode.
func (s *FS) Open(in Inode) (*File, error) {
	if !in.IsRegular() {
		return nil, errors.New("not a regular file")
	}
	f := &File{s: s, in: in}
	c := in.list
	pos := in.blocksAt
	for i := range in.blocks {
		b, err := c.read(4)
		if err != nil {
			return nil, fmt.Errorf("block list: %w", err)
		}
		w := binary.LittleEndian.Uint32(b)
		if size := w & 0xFFFFFF; size > s.sb.BlockSize || w&^(1<<24|0xFFFFFF) != 0 {
			return nil, fmt.Errorf("data block %d: size word %#x", i, w)
		}
		f.starts = append(f.starts, pos)
		f.words = append(f.words, w)
		pos += uint64(w & 0xFFFFFF)
		if pos > s.sb.BytesUsed {
			return nil, fmt.Errorf("data block %d ends at %d, past the %d bytes the superblock declares", i, pos, s.sb.BytesUsed)
		}
	}
	return f, nil
}

// Size is the file's size.
func (f *File) Size() int64 { return int64(f.in.size) }

// ReadAt reads len(p) bytes at off, io.EOF past the end.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	bs := int64(f.s.sb.BlockSize)
	n := 0
	for n < len(p) {
		at := off + int64(n)
		if at >= f.Size() {
			return n, io.EOF
		}
		idx := int(at / bs)
		data, err := f.block(idx)
		if err != nil {
			return n, err
		}
		in := int(at - int64(idx)*bs)
		if in >= len(data) {
			return n, fmt.Errorf("block %d holds %d bytes, short of offset %d", idx, len(data), in)
		}
		n += copy(p[n:], data[in:])
	}
	return n, nil
}

// block returns data block idx decompressed, or the fragment tail when
// idx is past the full blocks.
func (f *File) block(idx int) ([]byte, error) {
	for i, c := range f.cache {
		if c.idx == idx {
			copy(f.cache[1:i+1], f.cache[:i])
			f.cache[0] = c
			return c.data, nil
		}
	}
	bs := int(f.s.sb.BlockSize)
	var data []byte
	switch {
	case idx < len(f.words):
		w := f.words[idx]
		size := int(w & 0xFFFFFF)
		want := bs
		if idx == len(f.words)-1 && f.in.fragment == sqNoFragment {
			if r := int(f.in.size % uint64(bs)); r != 0 {
				want = r
			}
		}
		if size == 0 { // a hole
			data = make([]byte, want)
			break
		}
		raw := make([]byte, size)
		if err := f.s.readFullAt(raw, f.starts[idx]); err != nil {
			return nil, err
		}
		data = raw
		if w&(1<<24) == 0 {
			var err error
			if data, err = f.s.decomp(raw, bs); err != nil {
				return nil, fmt.Errorf("data block %d: %w", idx, err)
			}
		}
		if len(data) < want {
			return nil, fmt.Errorf("data block %d holds %d bytes, want %d", idx, len(data), want)
		}
	case idx == len(f.words) && f.in.fragment != sqNoFragment:
		var err error
		if data, err = f.s.fragment(f.in); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("block %d of a file of %d", idx, len(f.words))
	}
	f.cache = append([]cachedBlock{{idx, data}}, f.cache...)
	if n := cacheBytes / max(bs, 1); len(f.cache) > n {
		f.cache = f.cache[:n]
	}
	return data, nil
}
