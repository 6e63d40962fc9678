package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/streamroot/streamroot/pkg/imgfmt"
	"github.com/streamroot/streamroot/pkg/squashfs/squashtest"
)

// FuzzInspect runs inspect's layer walk (pkg/squashfs's reader, and the
// pkg/imgfmt probes it hands over to) on mutated small squashfs images.
// Besides not panicking: no size the walk reports is negative, and neither
// the human report nor the JSON holds a byte a terminal would act on.
// (pkg/squashfs:FuzzSquashfs fuzzes the reader alone.)
func FuzzInspect(f *testing.F) {
	ext4 := ext4Image(2048, 0, "live")
	for _, seed := range [][]byte{
		squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: ext4Image(squashtest.Block+100, 1, "blocks")}}),
		squashtest.Build([]squashtest.File{{Path: "LiveOS/ext3fs.img", Data: ext4, Ext: true, Frag: true}, {Path: "LiveOS/x", Data: []byte("x"), Frag: true}}),
		squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: ext4, Ext: true, Sparse: true}}),
		squashtest.BuildZ([]squashtest.File{{Path: "sbin/init", Data: []byte("#!/bin/sh\n")}, {Path: "etc/os-release", Data: []byte("ID=x\n"), Frag: true}}, true),
		squashtest.BuildZ([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: ext4, Frag: true}}, true),
		squashtest.OneBlock(4, squashtest.XZBomb(10)),
		squashtest.OneBlock(2, squashtest.LZMABomb(1<<17)),
	} {
		f.Add(seed)
	}
	// Real images too, when squashfs-tools are installed: 4 KiB each.
	if _, err := exec.LookPath("mksquashfs"); err == nil {
		src := filepath.Join(f.TempDir(), "src")
		os.MkdirAll(filepath.Join(src, "LiveOS"), 0o755)
		os.WriteFile(filepath.Join(src, "LiveOS", "rootfs.img"), ext4Image(6000, 1, "real"), 0o644)
		for _, comp := range []string{"gzip", "xz", "zstd", "lzma"} {
			img := filepath.Join(f.TempDir(), comp+".sq")
			if exec.Command("mksquashfs", src, img, "-comp", comp, "-b", "4K", "-noappend", "-quiet", "-no-progress").Run() == nil {
				if b, err := os.ReadFile(img); err == nil {
					f.Add(b)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		layout := imgfmt.DefaultLayout()
		in := &inspector{ctx: context.Background(), rep: &report{Source: "fuzz.img", Size: int64(len(data)), layout: layout}, isoPath: layout.ISOImage()}
		zero := int64(0)
		if err := in.layer(bytes.NewReader(data), int64(len(data)), &zero, ""); err != nil {
			if s := oneLine(err.Error()); !terminalSafe(s) {
				t.Fatalf("error %q is not safe on a terminal", s)
			}
			return
		}
		for _, l := range in.rep.Layers {
			if l.Size < 0 {
				t.Fatalf("layer %+v: negative size", l)
			}
		}
		in.summarize()
		var out bytes.Buffer
		printReport(&out, in.rep)
		if !terminalSafe(out.String()) {
			t.Fatalf("report not safe on a terminal:\n%q", out.String())
		}
		js, err := json.Marshal(in.rep)
		if err != nil {
			t.Fatal(err)
		}
		if js = jsonEscapeNonPrint(js); !terminalSafe(string(js)) || !json.Valid(js) {
			t.Fatalf("JSON not safe on a terminal or invalid: %q", js)
		}
	})
}

// terminalSafe: valid UTF-8 with no control character but newline and no
// non-printing rune.
func terminalSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r != '\n' && !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}
