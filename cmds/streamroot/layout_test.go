package main

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/imgfmt"
	"github.com/streamroot/streamroot/pkg/isoread/isotest"
	"github.com/streamroot/streamroot/pkg/liveroot"
	"github.com/streamroot/streamroot/pkg/squashfs/squashtest"
)

// TestInspectAgreesWithBoot: for the same files, under the same
// rd.live.dir / rd.live.squashimg, inspect names the layers the boot
// mounts (liveroot.Next on the tree a mount would show) and the init the
// boot starts (liveroot.FindInit with the same candidates).
func TestInspectAgreesWithBoot(t *testing.T) {
	rootfs := ext4Image(8192, 2, "inner")
	def := imgfmt.DefaultLayout()
	custom := imgfmt.Layout{LiveDir: "images", SquashImg: "root.sq"}
	top := imgfmt.Layout{LiveDir: ".", SquashImg: "squashfs.img"}
	for _, tc := range []struct {
		name   string
		layout imgfmt.Layout
		files  map[string][]byte // inside the squashfs
		links  map[string]string // symlinks inside the squashfs
		noexec []string          // files without the x bits
		// The ISO's live image's path, or "" for no ISO around the squashfs.
		isoPath string
		// What both must find: the live image inside the squashfs ("" for a
		// plain root) and, for a plain root, its init ("" for none).
		live, init string
		code       int
	}{
		{"default live layout", def, map[string][]byte{"LiveOS/rootfs.img": rootfs}, nil, nil, "", "LiveOS/rootfs.img", "", 0},
		{"default, ext3fs.img", def, map[string][]byte{"LiveOS/ext3fs.img": rootfs}, nil, nil, "", "LiveOS/ext3fs.img", "", 0},
		{"rootfs.img before ext3fs.img", def, map[string][]byte{"LiveOS/ext3fs.img": rootfs, "LiveOS/rootfs.img": rootfs}, nil, nil, "", "LiveOS/rootfs.img", "", 0},
		{"rd.live.dir=images", custom, map[string][]byte{"images/rootfs.img": rootfs}, nil, nil, "", "images/rootfs.img", "", 0},
		// Under another rd.live.dir, LiveOS/rootfs.img is just a file of a
		// plain root: the boot mounts the squashfs itself.
		{"rd.live.dir=images, LiveOS/rootfs.img", custom, map[string][]byte{"LiveOS/rootfs.img": rootfs, "usr/lib/systemd/systemd": []byte("x")}, nil, nil, "", "", "/usr/lib/systemd/systemd", 0},
		{"rd.live.dir=.", top, map[string][]byte{"rootfs.img": rootfs}, nil, nil, "", "rootfs.img", "", 0},
		{"plain root, /sbin/init", def, map[string][]byte{"sbin/init": []byte("x"), "usr/lib/systemd/systemd": []byte("x")}, nil, nil, "", "", "/sbin/init", 0},
		// /init is no init a boot starts (init= aside).
		{"plain root, only /init", def, map[string][]byte{"init": []byte("x"), "etc/os-release": []byte("ID=x\n")}, nil, nil, "", "", "", 0},
		// usrmerge: /sbin is a symlink to usr/sbin; the boot follows it.
		{"usrmerge, /sbin/init through links", def, map[string][]byte{"usr/lib/systemd/systemd": []byte("x")},
			map[string]string{"sbin": "usr/sbin", "usr/sbin/init": "../lib/systemd/systemd"}, nil, "", "", "/sbin/init", 0},
		{"dangling /sbin/init", def, map[string][]byte{"usr/lib/systemd/systemd": []byte("x")},
			map[string]string{"sbin/init": "/nowhere"}, nil, "", "", "/usr/lib/systemd/systemd", 0},
		{"/sbin/init not executable", def, map[string][]byte{"sbin/init": []byte("x"), "usr/sbin/init": []byte("x")},
			nil, []string{"sbin/init"}, "", "", "/usr/sbin/init", 0},
		{"LiveOS/rootfs.img a relative symlink", def, map[string][]byte{"images/r.img": rootfs},
			map[string]string{"LiveOS/rootfs.img": "../images/r.img"}, nil, "", "LiveOS/rootfs.img", "", 0},
		{"ISO, default", def, map[string][]byte{"LiveOS/rootfs.img": rootfs}, nil, nil, "LiveOS/squashfs.img", "LiveOS/rootfs.img", "", 0},
		{"ISO, rd.live.dir=images rd.live.squashimg=root.sq", custom, map[string][]byte{"images/rootfs.img": rootfs}, nil, nil, "images/root.sq", "images/rootfs.img", "", 0},
		{"ISO, rd.live.squashimg=root.sq, image at the default", custom, map[string][]byte{"images/rootfs.img": rootfs}, nil, nil, "LiveOS/squashfs.img", "", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// The boot's view: the squashfs's files as its mount shows them.
			mnt := filepath.Join(dir, "squashfs")
			var sqFiles []squashtest.File
			for p, data := range tc.files {
				mode := uint16(0o755)
				if slices.Contains(tc.noexec, p) {
					mode = 0o644
				}
				sqFiles = append(sqFiles, squashtest.File{Path: p, Data: data, Mode: mode})
				os.MkdirAll(filepath.Join(mnt, filepath.Dir(p)), 0o755)
				if err := os.WriteFile(filepath.Join(mnt, p), data, os.FileMode(mode)); err != nil {
					t.Fatal(err)
				}
			}
			for p, target := range tc.links {
				sqFiles = append(sqFiles, squashtest.File{Path: p, Link: target})
				os.MkdirAll(filepath.Join(mnt, filepath.Dir(p)), 0o755)
				if err := os.Symlink(target, filepath.Join(mnt, p)); err != nil {
					t.Fatal(err)
				}
			}
			sq := squashtest.Build(sqFiles)
			img := filepath.Join(dir, "image")
			wantLayers := []string{}
			if tc.isoPath != "" {
				isoMnt := filepath.Join(dir, "iso")
				os.MkdirAll(filepath.Join(isoMnt, path.Dir(tc.isoPath)), 0o755)
				os.WriteFile(filepath.Join(isoMnt, tc.isoPath), sq, 0o644)
				next, err := liveroot.Next(isoMnt, imgfmt.ISO9660, tc.layout)
				if (err != nil) != (tc.code != 0) {
					t.Fatalf("boot: ISO's next layer %q, %v; want exit %d from inspect", next, err, tc.code)
				}
				os.WriteFile(img, isotest.Build([]isotest.File{{Path: tc.isoPath, Data: sq}}, isotest.Options{RockRidge: true}), 0o644)
				wantLayers = append(wantLayers, "iso9660")
				if err == nil {
					wantLayers = append(wantLayers, "squashfs ("+relTo(isoMnt, next)+")")
				}
			} else {
				os.WriteFile(img, sq, 0o644)
				wantLayers = append(wantLayers, "squashfs")
			}
			bootInit := ""
			if tc.code == 0 { // the boot reaches the squashfs
				next, err := liveroot.Next(mnt, imgfmt.Squashfs, tc.layout)
				if err != nil || relTo(mnt, next) != tc.live {
					t.Fatalf("boot: squashfs's next layer %q, %v; want %q", next, err, tc.live)
				}
				if tc.live == "" {
					bootInit, _ = liveroot.FindInit(mnt, imgfmt.InitCandidates()...)
				} else {
					wantLayers = append(wantLayers, "ext4 ("+tc.live+")")
				}
				if bootInit != tc.init {
					t.Fatalf("boot: init %q, want %q", bootInit, tc.init)
				}
			}

			code, r, errs := inspectJSON(t, "-live-dir", tc.layout.LiveDir, "-squashimg", tc.layout.SquashImg, img)
			if code != tc.code {
				t.Fatalf("inspect: exit %d, want %d: %s", code, tc.code, errs)
			}
			var got []string
			for _, l := range r.Layers {
				if l.Path != "" {
					l.Kind += " (" + l.Path + ")"
				}
				got = append(got, l.Kind)
			}
			if strings.Join(got, " → ") != strings.Join(wantLayers, " → ") {
				t.Errorf("inspect: layers %q, the boot mounts %q", got, wantLayers)
			}
			if tc.code != 0 {
				return
			}
			var s *squashInfo
			for _, l := range r.Layers {
				if l.Squashfs != nil {
					s = l.Squashfs
				}
			}
			if s == nil || s.LiveImage != tc.live || s.Init != bootInit {
				t.Errorf("inspect: squashfs %+v; the boot mounts %q and starts %q", s, tc.live, bootInit)
			}
		})
	}
}

func relTo(base, p string) string {
	if p == "" {
		return ""
	}
	r, err := filepath.Rel(base, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}
