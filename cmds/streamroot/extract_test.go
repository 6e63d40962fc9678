package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/isoread/isotest"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestExtract(t *testing.T) {
	squash := pattern(70000)
	rootfs := pattern(5000)
	files := []isotest.File{{Path: "LiveOS/squashfs.img", Data: squash}, {Path: "LiveOS/rootfs.img", Data: rootfs}, {Path: "isolinux/vmlinuz0", Data: []byte("k")}}
	tests := []struct {
		name  string
		opts  isotest.Options
		args  []string
		out   string
		data  []byte
		code  int
		error string
	}{
		{"default path, rock ridge", isotest.Options{RockRidge: true}, nil, "squashfs.img", squash, 0, ""},
		{"plain ISO names", isotest.Options{}, nil, "squashfs.img", squash, 0, ""},
		{"multi-extent", isotest.Options{RockRidge: true, MaxExtent: 8192, Gap: 1}, nil, "squashfs.img", squash, 0, ""},
		{"-path", isotest.Options{RockRidge: true}, []string{"-path", "LiveOS/rootfs.img"}, "rootfs.img", rootfs, 0, ""},
		{"missing file", isotest.Options{RockRidge: true}, []string{"-path", "LiveOS/ext3fs.img"}, "", nil, 1,
			"LiveOS/ext3fs.img: file does not exist in the ISO (LiveOS holds: rootfs.img, squashfs.img)\n"},
		{"a directory", isotest.Options{RockRidge: true}, []string{"-path", "LiveOS"}, "", nil, 1, "LiveOS is a directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			iso := filepath.Join(dir, "fdi.iso")
			os.WriteFile(iso, isotest.Build(files, tt.opts), 0o644)
			outDir := filepath.Join(dir, "out")
			os.Mkdir(outDir, 0o755)
			code, out, errs := runCmd(t, append(append([]string{"extract", iso}, tt.args...), "-o", outDir)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, errs)
			}
			if tt.code != 0 {
				if !strings.HasPrefix(errs, "streamroot extract: "+iso+": ") || !strings.HasSuffix(errs, tt.error) {
					t.Errorf("stderr %q, want it to name the ISO and end %q", errs, tt.error)
				}
				return
			}
			dst := filepath.Join(outDir, tt.out)
			got, err := os.ReadFile(dst)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("extracted content differs (%v)", err)
			}
			want := fmt.Sprintf("%s: %d bytes (%s), sha256 %x\n", dst, len(tt.data), humanBytes(int64(len(tt.data))), sha256.Sum256(tt.data))
			if out != want {
				t.Errorf("stdout %q, want %q", out, want)
			}
			if ents, _ := os.ReadDir(outDir); len(ents) != 1 {
				t.Errorf("temporary files left: %v", ents)
			}
		})
	}
}

func TestExtractErrors(t *testing.T) {
	dir := t.TempDir()
	notISO := filepath.Join(dir, "x.img")
	os.WriteFile(notISO, make([]byte, 50000), 0o644)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{notISO, "-o", dir}, 1, "streamroot extract: " + notISO + ": not an ISO 9660 image (no CD001 at sector 16)\n"},
		{[]string{notISO, "-o", notISO}, 1, "-o " + notISO + ": not a directory"},
		{[]string{filepath.Join(dir, "none.iso")}, 1, "no such file or directory"},
		{[]string{"a.iso", "b.iso"}, 2, "want exactly one ISO, got 2 arguments"},
	}
	for _, tt := range tests {
		code, _, errs := runCmd(t, append([]string{"extract"}, tt.args...)...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}

// TestExtractXorriso extracts from an ISO built by the real tool, as live
// ISOs are.
func TestExtractXorriso(t *testing.T) {
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("xorriso not installed (apt-get install xorriso); TestExtract covers Go-built ISOs")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "LiveOS"), 0o755)
	squash := pattern(1 << 20)
	os.WriteFile(filepath.Join(src, "LiveOS", "squashfs.img"), squash, 0o644)
	iso := filepath.Join(dir, "live.iso")
	if out, err := exec.Command("xorriso", "-report_about", "SORRY", "-outdev", iso, "-volid", "LIVE", "-map", src, "/").CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	code, out, errs := runCmd(t, "extract", iso, "-o", dir)
	if code != 0 {
		t.Fatal(errs)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "squashfs.img"))
	if !bytes.Equal(got, squash) || !strings.Contains(out, fmt.Sprintf("sha256 %x", sha256.Sum256(squash))) {
		t.Errorf("extracted file differs; stdout %q", out)
	}
}

// TestExtractHostileExtents: an ISO whose multi-extent records overlap or
// add up to more than the ISO is refused before anything is written;
// before, extract copied the same sectors again and again (200 records of
// 32 KiB here: 6.4 MiB out of a 50 KiB ISO; with a 16 MiB directory of
// 4 GiB records, until the disk was full).
func TestExtractHostileExtents(t *testing.T) {
	many := make([][2]int64, 200)
	for i := range many {
		many[i] = [2]int64{0, 32768}
	}
	tests := []struct {
		name    string
		extents [][2]int64
		want    string
	}{
		{"200 records of the same sectors", many, "LiveOS/squashfs.img: its 200 extents add up to 6553600 bytes, more than the"},
		{"two overlapping records", [][2]int64{{0, 8192}, {2, 4096}}, "LiveOS/squashfs.img: extents 0 (sector 0, 8192 bytes) and 1 (sector 2, 4096 bytes) overlap (a corrupt or crafted ISO)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			iso := filepath.Join(dir, "evil.iso")
			raw := isotest.Build([]isotest.File{{Path: "LiveOS/squashfs.img"}, {Path: "pad", Data: pattern(8192)}},
				isotest.Options{RockRidge: true, Extents: map[string][][2]int64{"LiveOS/squashfs.img": tt.extents}})
			os.WriteFile(iso, raw, 0o644)
			outDir := filepath.Join(dir, "out")
			os.Mkdir(outDir, 0o755)
			code, _, errs := runCmd(t, "extract", iso, "-o", outDir)
			var written int64
			ents, _ := os.ReadDir(outDir)
			for _, e := range ents {
				if fi, err := e.Info(); err == nil {
					written += fi.Size()
				}
			}
			if code != 1 || !strings.HasPrefix(errs, "streamroot extract: "+iso+": ") || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q (%d bytes written from a %d-byte ISO)", code, errs, tt.want, written, len(raw))
			}
			if len(ents) != 0 || written > 0 {
				t.Errorf("%d files, %d bytes left in the output directory", len(ents), written)
			}
		})
	}
}
