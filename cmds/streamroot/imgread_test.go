package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/isoread/isotest"
	"github.com/streamroot/streamroot/pkg/squashfs/squashtest"
)

// TestSquashBuilder checks the test writer against the reader on the
// layouts it makes, so the hostile cases below differ from a good image
// only in what they break.
func TestSquashBuilder(t *testing.T) {
	small := ext4Image(2048, 0, "small")
	big := ext4Image(3*squashtest.Block+100, 3, "big")
	tests := []struct {
		name  string
		files []squashtest.File
		live  string
		label string
		init  string
		zlib  bool
	}{
		{"basic inode, blocks", []squashtest.File{{Path: "LiveOS/rootfs.img", Data: big}}, "LiveOS/rootfs.img", "big", "", false},
		{"extended inode, blocks", []squashtest.File{{Path: "LiveOS/ext3fs.img", Data: big, Ext: true}}, "LiveOS/ext3fs.img", "big", "", false},
		{"fragment", []squashtest.File{{Path: "LiveOS/rootfs.img", Data: small, Frag: true}, {Path: "LiveOS/x", Data: []byte("x"), Frag: true}}, "LiveOS/rootfs.img", "small", "", false},
		{"plain root", []squashtest.File{{Path: "sbin/init", Data: []byte("#!/bin/sh\n")}, {Path: "etc/os-release", Data: []byte("ID=x\n"), Frag: true}}, "", "", "/sbin/init", false},
		// A sparse file may be far larger than the image: its block list
		// compresses to almost nothing.
		{"extended inode, 1 GiB sparse", []squashtest.File{{Path: "LiveOS/rootfs.img", Data: big, Ext: true, Size: 1 << 30}}, "LiveOS/rootfs.img", "big", "", false},
		{"zlib tables", []squashtest.File{{Path: "LiveOS/rootfs.img", Data: big}, {Path: "sbin/init", Data: []byte("x"), Frag: true}}, "LiveOS/rootfs.img", "big", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "sq.img")
			os.WriteFile(p, squashtest.BuildZ(tt.files, tt.zlib), 0o644)
			code, r, errs := inspectJSON(t, p)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			s := r.Layers[0].Squashfs
			if s.Contents != "read" || s.LiveImage != tt.live || s.Init != tt.init {
				t.Fatalf("squashfs %+v, notes %q", s, r.Notes)
			}
			if tt.label != "" && (len(r.Layers) != 2 || r.Layers[1].Ext4 == nil || r.Layers[1].Ext4.Label != tt.label) {
				t.Errorf("inner layer %+v", r.Layers[1:])
			}
		})
	}
}

// TestInspectHostileSquashfs: a squashfs whose inodes or superblock lie
// is reported, never a panic, and never trusted for a size.
func TestInspectHostileSquashfs(t *testing.T) {
	big := ext4Image(2*squashtest.Block, 2, "big")
	huge := squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: big, Ext: true, Size: 1 << 63}})
	used := squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: big}})
	binary.LittleEndian.PutUint64(used[40:], 1<<64-1)
	fragOff := squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: []byte("tiny"), Frag: true}})
	// The fragment offset of the file's basic inode (the third inode:
	// root, LiveOS, rootfs.img; 32 bytes each; after the 2-byte header).
	inodes := binary.LittleEndian.Uint64(fragOff[64:])
	binary.LittleEndian.PutUint32(fragOff[inodes+2+64+24:], 0xFFFFFFF0)
	tests := []struct {
		name    string
		img     []byte
		code    int
		problem string
		reason  string
	}{
		{"extended inode of 2^63 bytes, sparse", squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: big, Ext: true, Size: 1 << 63, Sparse: true}}), 0, "",
			"LiveOS/rootfs.img: file size 9223372036854775808 is more than a squashfs of"},
		{"extended inode of 2^63 bytes", huge, 0, "", "LiveOS/rootfs.img: file size 9223372036854775808 is more than a squashfs of"},
		{"extended inode of 2^64-1 bytes", squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: big, Ext: true, Size: 1<<64 - 1}}), 0, "",
			"file size 18446744073709551615 is more than"},
		{"bytes used 2^64-1", used, 1, "truncated: squashfs declares 18446744073709551615 bytes, the image has", ""},
		{"fragment offset past the fragment", fragOff, 0, "", "fragment of 4 bytes holds no 4 bytes at 4294967280"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "sq.img")
			os.WriteFile(p, tt.img, 0o644)
			code, r, errs := inspectJSON(t, p)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, errs)
			}
			if !strings.HasPrefix(r.Problem, tt.problem) {
				t.Errorf("problem %q, want %q", r.Problem, tt.problem)
			}
			if s := r.Layers[0].Squashfs; tt.reason != "" && (s.Contents != "unknown" || !strings.Contains(s.Reason, tt.reason)) {
				t.Errorf("squashfs %+v, want the reason %q", s, tt.reason)
			}
			if len(r.Layers) != 1 {
				t.Errorf("layers %+v: a size the image cannot hold was trusted", r.Layers)
			}
		})
	}
}

// TestNamesEscapedOnOutput: names from images (file names, volume ids,
// labels) reach the terminal with escape sequences made visible, in the
// report and in error messages.
func TestNamesEscapedOnOutput(t *testing.T) {
	const evil = "\x1b[2J\x1b]0;owned\x07\u202e"
	const shown = `\x1b[2J\x1b]0;owned\x07\u202e`
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	sq := write("root.sq", squashtest.Build([]squashtest.File{{Path: "sbin/init", Data: []byte("x")}, {Path: "etc" + evil + "/x", Data: []byte("y")}}))
	liveSq := write("live.sq", squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: ext4Image(2048, 0, "lbl\x1b[2J\u202e"), Frag: true}}))
	iso := write("boot.iso", isotest.Build([]isotest.File{
		{Path: "LiveOS/squashfs.img", Data: ext4Image(4096, 1, "x")},
		{Path: "isolinux/vmlinuz" + evil, Data: []byte("k")},
	}, isotest.Options{RockRidge: true, VolumeID: "VOL" + evil[:4]}))
	noLive := write("nolive.iso", isotest.Build([]isotest.File{{Path: "LiveOS/other" + evil, Data: []byte("x")}}, isotest.Options{RockRidge: true}))
	out := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"squashfs root listing", []string{"inspect", sq}, 0, "a root filesystem: /etc" + shown + " /sbin\n", ""},
		{"ext4 label", []string{"inspect", liveSq}, 0, `label "lbl\x1b[2J\u202e"`, ""},
		{"-json", []string{"inspect", "-json", liveSq}, 0, `"label": "lbl\u001b[2J\u202e"`, ""},
		{"ISO boot files and volume id", []string{"inspect", iso}, 0, "boot files: isolinux/vmlinuz" + shown + "\n", ""},
		{"ISO volume id", []string{"inspect", iso}, 0, `volume "VOL\x1b[2J", rock-ridge names`, ""},
		{"inspect: names in the problem", []string{"inspect", noLive}, 1, "LiveOS holds: other" + shown + ")", "LiveOS holds: other" + shown + ")"},
		{"extract: names in the error", []string{"extract", noLive, "-o", out}, 1, "", "(LiveOS holds: other" + shown + ")\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, stderr)
			}
			if strings.ContainsAny(stdout+stderr, "\x1b\x07\u202e") {
				t.Errorf("raw escape sequence on the terminal:\nstdout %q\nstderr %q", stdout, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stdout %q\nstderr %q\nwant %q and %q", stdout, stderr, tt.stdout, tt.stderr)
			}
		})
	}
}

// TestInspectLZMADictionary: the dictionary an xz or lzma block asks for
// is bounded by the block size before the decoder allocates it; a crafted
// 40-byte metadata block made inspect allocate 1 GiB (up to 4 GiB).
func TestInspectLZMADictionary(t *testing.T) {
	for _, tt := range []struct {
		name   string
		comp   uint16
		block  []byte
		reason string
	}{
		{"xz, 1 GiB", 4, squashtest.XZBomb(36), "xz block asks for a 1073741824-byte dictionary, more than the 131072 a squashfs block can need"},
		{"xz, 4 GiB", 4, squashtest.XZBomb(40), "xz block asks for a 4294967295-byte dictionary"},
		{"xz, the block size is fine", 4, squashtest.XZBomb(10), "metadata block at 96: "},
		{"lzma, 1 GiB", 2, squashtest.LZMABomb(1 << 30), "lzma: header dictionary size 1073741824 exceeds configured dictionary capacity 131072"},
		{"lzma, the block size is fine", 2, squashtest.LZMABomb(1 << 17), "metadata block at 96: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "xz.sq")
			os.WriteFile(p, squashtest.OneBlock(tt.comp, tt.block), 0o644)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			code, r, errs := inspectJSON(t, p)
			runtime.ReadMemStats(&after)
			if code != 0 || len(r.Layers) != 1 || !strings.Contains(r.Layers[0].Squashfs.Reason, tt.reason) ||
				(strings.HasSuffix(tt.name, "fine") && strings.Contains(r.Layers[0].Squashfs.Reason, "dictionary")) {
				t.Errorf("exit %d (%s), layers %+v; want the reason %q", code, errs, r.Layers, tt.reason)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
				t.Errorf("inspect of an 8 KiB image allocated %d MiB", n>>20)
			}
		})
	}
}
