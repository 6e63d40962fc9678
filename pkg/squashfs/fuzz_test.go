package squashfs_test

import (
	"bytes"
	"path"
	"testing"

	"github.com/streamroot/streamroot/pkg/squashfs"
	"github.com/streamroot/streamroot/pkg/squashfs/squashtest"
)

// FuzzSquashfs walks mutated small squashfs images: the tree (bounded),
// the live image lookups and the first block of every file. Besides not
// panicking: no Head is longer than a block, and every name a listing
// returns is one the kernel would accept.
func FuzzSquashfs(f *testing.F) {
	ext4 := bytes.Repeat([]byte{0xEF, 0x53}, 1024)
	for _, seed := range [][]byte{
		squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: bytes.Repeat(ext4, 3)}}),
		squashtest.Build([]squashtest.File{{Path: "LiveOS/ext3fs.img", Data: ext4, Ext: true, Frag: true}, {Path: "LiveOS/x", Data: []byte("x"), Frag: true}}),
		squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: ext4, Ext: true, Sparse: true}}),
		squashtest.BuildZ([]squashtest.File{{Path: "sbin/init", Data: []byte("#!/bin/sh\n")}, {Path: "etc/os-release", Data: []byte("ID=x\n"), Frag: true}}, true),
		squashtest.OneBlock(4, squashtest.XZBomb(10)),
		squashtest.OneBlock(2, squashtest.LZMABomb(1<<17)),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sb, err := squashfs.ParseSuper(data)
		if err != nil {
			return
		}
		s, err := squashfs.New(bytes.NewReader(data), sb)
		if err != nil {
			return
		}
		for _, p := range []string{"LiveOS/rootfs.img", "LiveOS/ext3fs.img", "sbin/init"} {
			if ino, err := s.Lookup(p); err == nil && ino.IsRegular() {
				checkHead(t, s, sb, ino)
			}
		}
		root, err := s.Root()
		if err != nil {
			return
		}
		visited := 0
		var walk func(dir squashfs.Inode, at string, depth int)
		walk = func(dir squashfs.Inode, at string, depth int) {
			ents, err := s.ReadDir(dir)
			if err != nil {
				return
			}
			for _, e := range ents {
				if len(e.Name) == 0 || len(e.Name) > 256 {
					t.Fatalf("%s: a name of %d bytes", at, len(e.Name))
				}
				if visited++; visited > 64 || depth > 4 {
					return
				}
				ino, err := s.Lookup(path.Join(at, e.Name))
				if err != nil {
					continue
				}
				if ino.IsDir() {
					walk(ino, path.Join(at, e.Name), depth+1)
				} else if ino.IsRegular() {
					checkHead(t, s, sb, ino)
				}
			}
		}
		walk(root, "/", 0)
	})
}

func checkHead(t *testing.T, s *squashfs.FS, sb squashfs.Super, ino squashfs.Inode) {
	head, err := s.Head(ino)
	if err == nil && uint64(len(head)) > uint64(sb.BlockSize) {
		t.Fatalf("Head returned %d bytes, more than the %d-byte block", len(head), sb.BlockSize)
	}
	// Open and read the start and the end: the block list and the
	// fragment tail are claims too.
	f, err := s.Open(ino)
	if err != nil {
		return
	}
	buf := make([]byte, 8192)
	for _, off := range []int64{0, f.Size() - 1, f.Size() / 2} {
		if n, err := f.ReadAt(buf, max(off, 0)); n > len(buf) || (err == nil && n != len(buf)) {
			t.Fatalf("ReadAt at %d = %d, %v", off, n, err)
		}
	}
}
