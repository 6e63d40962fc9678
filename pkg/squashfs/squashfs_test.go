package squashfs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/squashfs"
	"github.com/streamroot/streamroot/pkg/squashfs/squashtest"
)

func open(t *testing.T, img []byte) *squashfs.FS {
	t.Helper()
	sb, err := squashfs.ParseSuper(img)
	if err != nil {
		t.Fatal(err)
	}
	s, err := squashfs.New(bytes.NewReader(img), sb)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The reader finds, lists and reads what the test writer put in, for every
// inode and block layout it writes.
func TestReadBack(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*squashtest.Block/16+7)
	for _, tc := range []struct {
		name string
		file squashtest.File
		zlib bool
		want []byte // the first bytes Head returns
	}{
		{"basic, blocks", squashtest.File{Data: big}, false, big[:squashtest.Block]},
		{"extended, blocks", squashtest.File{Data: big, Ext: true}, false, big[:squashtest.Block]},
		{"fragment", squashtest.File{Data: []byte("tiny"), Frag: true}, false, []byte("tiny")},
		{"sparse first block", squashtest.File{Data: big, Sparse: true}, false, make([]byte, squashtest.Block)},
		{"zlib tables", squashtest.File{Data: big}, true, big[:squashtest.Block]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.file
			f.Path = "LiveOS/rootfs.img"
			s := open(t, squashtest.BuildZ([]squashtest.File{f, {Path: "sbin/init", Data: []byte("#!/bin/sh\n"), Frag: true}}, tc.zlib))
			ino, err := s.Lookup("/LiveOS/rootfs.img")
			if err != nil {
				t.Fatal(err)
			}
			if !ino.IsRegular() || ino.IsDir() || ino.Size() != uint64(len(f.Data)) {
				t.Fatalf("inode: regular %v, dir %v, size %d; want a file of %d bytes", ino.IsRegular(), ino.IsDir(), ino.Size(), len(f.Data))
			}
			head, err := s.Head(ino)
			if err != nil || !bytes.Equal(head, tc.want) {
				t.Fatalf("Head = %d bytes %q..., %v; want %d bytes", len(head), head[:min(len(head), 8)], err, len(tc.want))
			}
			root, err := s.Root()
			if err != nil {
				t.Fatal(err)
			}
			ents, err := s.ReadDir(root)
			if err != nil || len(ents) != 2 || ents[0].Name != "LiveOS" || ents[1].Name != "sbin" {
				t.Fatalf("root listing %+v, %v", ents, err)
			}
			if _, err := s.Lookup("LiveOS/missing"); !errors.Is(err, squashfs.ErrNotFound) {
				t.Errorf("missing file: err %v, want ErrNotFound", err)
			}
			if _, err := s.ReadDir(ino); err == nil {
				t.Error("ReadDir of a file: no error")
			}
		})
	}
}

// A superblock Linux would not mount is refused with the field named.
func TestParseSuper(t *testing.T) {
	good := squashtest.Build([]squashtest.File{{Path: "x", Data: []byte("x"), Frag: true}})
	with := func(off int, v uint32, size int) []byte {
		b := bytes.Clone(good)
		switch size {
		case 2:
			binary.LittleEndian.PutUint16(b[off:], uint16(v))
		case 4:
			binary.LittleEndian.PutUint32(b[off:], v)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"good", good, ""},
		{"no magic", append([]byte("hsqt"), good[4:]...), "no squashfs magic"},
		{"short", good[:95], "no squashfs magic"},
		{"version 3", with(28, 3, 2), "squashfs version 3.0: Linux mounts only version 4"},
		{"block size not a power of two", with(12, 5000, 4), "block size 5000"},
		{"block size too small", with(12, 2048, 4), "block size 2048"},
		{"block log does not match", with(22, 13, 2), "(log 13) is invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := squashfs.ParseSuper(tc.img)
			if tc.want == "" {
				if err != nil || sb.BlockSize != squashtest.Block || sb.BytesUsed != uint64(len(good)) {
					t.Fatalf("superblock %+v, %v", sb, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// Compressors the reader cannot run are named, and a block asking for more
// than a squashfs block can need is refused before it is decoded.
func TestDecompressors(t *testing.T) {
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"lzo", squashtest.Superblock(8192, 4, 3, 8192), "lzo compression is not readable"},
		{"unknown id", squashtest.Superblock(8192, 4, 42, 8192), "id 42 compression is not readable"},
		{"xz dictionary of 1 GiB", squashtest.OneBlock(4, squashtest.XZBomb(36)), "xz block asks for a 1073741824-byte dictionary, more than the 131072"},
		{"lzma dictionary of 1 GiB", squashtest.OneBlock(2, squashtest.LZMABomb(1<<30)), "exceeds configured dictionary capacity 131072"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := squashfs.ParseSuper(tc.img)
			if err != nil {
				t.Fatal(err)
			}
			s, err := squashfs.New(bytes.NewReader(tc.img), sb)
			if err == nil {
				_, err = s.Root()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// Sizes and positions the image claims are checked, not trusted.
func TestHostile(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 2*squashtest.Block)
	huge := squashtest.Build([]squashtest.File{{Path: "f", Data: big, Ext: true, Size: 1 << 63}})
	if _, err := open(t, huge).Lookup("f"); err == nil || !strings.Contains(err.Error(), "file size 9223372036854775808 is more than a squashfs of") {
		t.Errorf("a 2^63-byte file: err %v", err)
	}
	outside := squashtest.Build([]squashtest.File{{Path: "f", Data: big}})
	binary.LittleEndian.PutUint64(outside[32:], 1<<40) // root inode far past bytes_used
	if _, err := open(t, outside).Root(); err == nil || !strings.Contains(err.Error(), "outside the") {
		t.Errorf("root inode outside the image: err %v", err)
	}
}

// Lookup follows symlinks as the image's root would: relative to their
// directory, absolute from the image's root, ".." at the root staying
// there; loops and dangling links are errors, never a hang.
func TestLookupSymlinks(t *testing.T) {
	s := open(t, squashtest.Build([]squashtest.File{
		{Path: "usr/lib/systemd/systemd", Data: []byte("systemd"), Frag: true},
		{Path: "usr/bin/sh", Data: []byte("sh"), Frag: true, Mode: 0o644},
		{Path: "sbin", Link: "usr/sbin"},
		{Path: "usr/sbin/init", Link: "../lib/systemd/systemd"},
		{Path: "bin", Link: "/usr/bin"},
		{Path: "up", Link: "../../../usr"},
		{Path: "loop", Link: "loop"},
		{Path: "dangling", Link: "/nowhere"},
	}))
	for _, tc := range []struct {
		path, want, err string
		perm            fs.FileMode
	}{
		{"/sbin/init", "systemd", "", 0o755},
		{"sbin/../sbin/init", "systemd", "", 0o755},
		{"bin/sh", "sh", "", 0o644},
		{"up/lib/systemd/systemd", "systemd", "", 0o755},
		{"loop", "", "more than 40 symlinks", 0},
		{"dangling", "", "not found", 0},
		{"usr/bin/sh/x", "", "not a directory", 0},
	} {
		ino, err := s.Lookup(tc.path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil || !ino.IsRegular() || ino.Perm() != tc.perm {
			t.Fatalf("%s: %v, regular %v, perm %v", tc.path, err, ino.IsRegular(), ino.Perm())
		}
		if head, err := s.Head(ino); err != nil || string(head) != tc.want {
			t.Errorf("%s: Head %q, %v; want %q", tc.path, head, err, tc.want)
		}
	}
}
