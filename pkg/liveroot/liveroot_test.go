package liveroot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/imgfmt"
)

func TestFindInit(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "sbin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/lib/systemd/systemd"), []byte("x"), 0o755))
	// An absolute link must resolve inside root, not in the initramfs.
	must(os.Symlink("/usr/lib/systemd/systemd", filepath.Join(root, "sbin/init")))
	must(os.Symlink("../nowhere", filepath.Join(root, "sbin/dangling")))
	must(os.WriteFile(filepath.Join(root, "sbin/noexec"), []byte("x"), 0o644))

	for _, tc := range []struct {
		cands []string
		want  string
	}{
		{[]string{"/sbin/init"}, "/sbin/init"},
		{[]string{"", "/sbin/dangling", "/sbin/noexec", "/sbin/init"}, "/sbin/init"},
		{[]string{"/bin/none"}, ""},
	} {
		got, err := FindInit(root, tc.cands...)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("FindInit(%v) = %q, %v; want %q", tc.cands, got, err, tc.want)
		}
	}
}

func TestDracutNames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers []Layer
		want   map[string]string // link name under base → target; "" = absent
	}{
		{"iso", []Layer{{Kind: imgfmt.ISO9660, Device: "/dev/nbd0", Mountpoint: "BASE/iso9660"}, {Kind: imgfmt.Squashfs, Device: "/dev/loop0", Mountpoint: "BASE/squashfs"}},
			map[string]string{"livedev": "/dev/nbd0", "live": "iso9660"}},
		{"squashfs", []Layer{{Kind: imgfmt.Squashfs, Device: "/dev/loop3", Mountpoint: "BASE/squashfs"}},
			map[string]string{"livedev": "/dev/loop3", "live": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			r := &Root{}
			for _, l := range tc.layers {
				l.Mountpoint = strings.Replace(l.Mountpoint, "BASE", base, 1)
				r.Layers = append(r.Layers, l)
			}
			if err := DracutNames(r, base); err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				got, err := os.Readlink(filepath.Join(base, name))
				if want == "" {
					if err == nil {
						t.Errorf("%s -> %q, want no link", name, got)
					}
					continue
				}
				if err != nil || got != want {
					t.Errorf("%s -> %q (%v), want %q", name, got, err, want)
				}
			}
		})
	}
	if err := DracutNames(&Root{}, t.TempDir()); err == nil {
		t.Error("no layers: no error")
	}
}
