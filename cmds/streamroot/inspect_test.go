package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/isoread/isotest"
	"github.com/streamroot/streamroot/pkg/squashfs/squashtest"
)

// ext4Image is a hand-made ext4 superblock in a file of size bytes (4 KiB
// blocks, journal + extents).
func ext4Image(size int, blocks uint32, label string) []byte {
	b := make([]byte, size)
	sb := b[1024:]
	le := binary.LittleEndian
	le.PutUint32(sb[0x00:], 256)    // inodes
	le.PutUint32(sb[0x04:], blocks) // blocks
	le.PutUint32(sb[0x18:], 2)      // 1024 << 2
	le.PutUint16(sb[0x38:], 0xEF53)
	le.PutUint32(sb[0x5C:], 0x4)  // has_journal
	le.PutUint32(sb[0x60:], 0x40) // extents
	copy(sb[0x68:], []byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8})
	copy(sb[0x78:], label)
	return b
}

func erofsImage(size int, blocks uint32) []byte {
	b := make([]byte, size)
	sb := b[1024:]
	le := binary.LittleEndian
	le.PutUint32(sb[0:], 0xE0F5E1E2)
	sb[12] = 12 // 4 KiB blocks
	le.PutUint64(sb[16:], 42)
	le.PutUint64(sb[24:], 1767225600) // 2026-01-01
	le.PutUint32(sb[36:], blocks)
	copy(sb[64:], "fdi-root")
	le.PutUint32(sb[80:], 0x2) // COMPR_CFGS
	le.PutUint16(sb[84:], 0x9) // lz4 + zstd
	return b
}

func inspectJSON(t *testing.T, args ...string) (int, report, string) {
	t.Helper()
	code, out, errs := runCmd(t, append([]string{"inspect", "-json"}, args...)...)
	var r report
	if out != "" {
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("bad JSON: %v\n%s", err, out)
		}
	}
	return code, r, errs
}

func kinds(r report) string {
	var k []string
	for _, l := range r.Layers {
		k = append(k, l.Kind)
	}
	return strings.Join(k, ",")
}

func TestInspectHandMade(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	ext4 := ext4Image(64<<10, 16, "Anaconda")
	tests := []struct {
		name   string
		file   string
		code   int
		kinds  string
		check  func(t *testing.T, r report)
		stderr string
	}{
		{"ext4", write("root.ext4", ext4), 0, "ext4", func(t *testing.T, r report) {
			x := r.Layers[0].Ext4
			if x.Blocks != 16 || x.BlockSize != 4096 || x.Label != "Anaconda" || x.UUID != "12345678-9abc-def0-0102-030405060708" || x.Inodes != 256 {
				t.Errorf("ext4 %+v", x)
			}
			if !strings.Contains(r.Boot, "root filesystem image") {
				t.Errorf("boot %q", r.Boot)
			}
		}, ""},
		{"ext4 truncated", write("short.ext4", ext4Image(32<<10, 16, "x")), 1, "ext4", func(t *testing.T, r report) {
			if r.Problem != "truncated: ext4 declares 65536 bytes, the image has 32768" {
				t.Errorf("problem %q", r.Problem)
			}
		}, "cannot boot: truncated"},
		{"erofs", write("root.erofs", erofsImage(64<<10, 16)), 0, "erofs", func(t *testing.T, r report) {
			e := r.Layers[0].EROFS
			if e.BlockSize != 4096 || e.Blocks != 16 || e.Inodes != 42 || e.VolumeName != "fdi-root" || strings.Join(e.Compression, "+") != "lz4+zstd" || e.Created != "2026-01-01T00:00:00Z" {
				t.Errorf("erofs %+v", e)
			}
		}, ""},
		{"erofs truncated", write("short.erofs", erofsImage(8<<10, 16)), 1, "erofs", nil, "truncated: erofs declares 65536 bytes"},
		{"squashfs superblock", write("sb.squashfs", squashtest.Superblock(8192, 4, 3, 8192)), 0, "squashfs", func(t *testing.T, r report) {
			s := r.Layers[0].Squashfs
			if s.Compression != "lzo" || s.CompressionID != 3 || s.BlockSize != 131072 || s.BytesUsed != 8192 || s.Inodes != 7 || s.Version != "4.0" || s.Contents != "unknown" {
				t.Errorf("squashfs %+v", s)
			}
			if len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "squashfs contents unknown: lzo compression is not readable") {
				t.Errorf("notes %q", r.Notes)
			}
		}, ""},
		{"squashfs bad tables", write("bad.squashfs", squashtest.Superblock(8192, 4, 1, 8192)), 0, "squashfs", func(t *testing.T, r report) {
			if s := r.Layers[0].Squashfs; s.Contents != "unknown" || !strings.Contains(s.Reason, "metadata block at 8190") {
				t.Errorf("squashfs %+v", s)
			}
		}, ""},
		{"squashfs truncated", write("short.squashfs", squashtest.Superblock(4096, 4, 4, 1<<20)), 1, "squashfs", nil, "truncated: squashfs declares 1048576 bytes, the image has 4096"},
		{"squashfs v3", write("v3.squashfs", squashtest.Superblock(4096, 3, 1, 4096)), 1, "", nil, "squashfs version 3.0: Linux mounts only version 4"},
		{"not an image", write("text", []byte(strings.Repeat("hello world\n", 4000))), 1, "", nil,
			`not a squashfs, erofs, ext4 or ISO 9660 image (first bytes "hello world.hell")`},
		{"ISO with an erofs", write("erofs.iso", isotest.Build([]isotest.File{{Path: "LiveOS/squashfs.img", Data: erofsImage(64<<10, 16)},
			{Path: "images/pxeboot/vmlinuz", Data: []byte("k")}, {Path: "images/pxeboot/initrd.img", Data: []byte("i")}},
			isotest.Options{RockRidge: true, VolumeID: "FDI"})), 0, "iso9660,erofs", func(t *testing.T, r report) {
			iso, inner := r.Layers[0], r.Layers[1]
			if iso.ISO.VolumeID != "FDI" || iso.ISO.Image != "LiveOS/squashfs.img" || iso.ISO.Names != "rock-ridge" ||
				strings.Join(iso.ISO.BootFiles, ",") != "images/pxeboot/initrd.img,images/pxeboot/vmlinuz" {
				t.Errorf("iso %+v", iso.ISO)
			}
			if inner.Offset == nil || *inner.Offset%2048 != 0 || inner.Size != 64<<10 || inner.Path != "LiveOS/squashfs.img" {
				t.Errorf("inner layer %+v", inner)
			}
			if r.Layout != "iso9660 → erofs (LiveOS/squashfs.img)" {
				t.Errorf("layout %q", r.Layout)
			}
		}, ""},
		{"ISO without the live image", write("empty.iso", isotest.Build([]isotest.File{{Path: "LiveOS/other.img", Data: []byte("x")}}, isotest.Options{RockRidge: true})),
			1, "iso9660", nil, "cannot boot: LiveOS/squashfs.img: file does not exist in the ISO (LiveOS holds: other.img)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, r, errs := inspectJSON(t, tt.file)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, errs)
			}
			if kinds(r) != tt.kinds {
				t.Errorf("layers %q, want %q", kinds(r), tt.kinds)
			}
			if !strings.Contains(errs, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", errs, tt.stderr)
			}
			if tt.code != 0 && strings.Count(errs, "\n") != 1 {
				t.Errorf("error not one line: %q", errs)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

// mksquashfs builds a squashfs from files (path → content) with the given
// compressor, or skips the test when squashfs-tools are missing.
func mksquashfs(t *testing.T, files map[string][]byte, comp string, extra ...string) string {
	t.Helper()
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("mksquashfs not installed (apt-get install squashfs-tools); TestInspectHandMade covers superblocks")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for p, data := range files {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(src, p), data, 0o755); err != nil { // sbin/init must be executable
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "squashfs.img")
	args := append([]string{src, img, "-comp", comp, "-noappend", "-quiet", "-no-progress"}, extra...)
	if out, err := exec.Command("mksquashfs", args...).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "not supported") || strings.Contains(string(out), "Unrecognised") {
			t.Skipf("mksquashfs has no %s: %s", comp, out)
		}
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return img
}

func TestInspectSquashfs(t *testing.T) {
	small := ext4Image(8<<10, 2, "small")     // lives in a fragment
	big := ext4Image(300<<10, 75, "Anaconda") // full data blocks
	many := map[string][]byte{"sbin/init": []byte("#!/bin/sh\n")}
	for i := range 1500 { // a root directory spanning several metadata blocks
		many[fmt.Sprintf("usr/share/doc/a-rather-long-file-name-%04d.txt", i)] = []byte{byte(i)}
		if i < 300 {
			many[fmt.Sprintf("entry-with-a-long-name-in-the-root-%04d", i)] = nil
		}
	}
	tests := []struct {
		name     string
		files    map[string][]byte
		comp     string
		extra    []string
		contents string
		live     string
		label    string
		init     string
	}{
		{"gzip, rootfs.img in blocks", map[string][]byte{"LiveOS/rootfs.img": big}, "gzip", nil, "read", "LiveOS/rootfs.img", "Anaconda", ""},
		{"xz, rootfs.img in a fragment", map[string][]byte{"LiveOS/rootfs.img": small}, "xz", nil, "read", "LiveOS/rootfs.img", "small", ""},
		{"xz with BCJ filter", map[string][]byte{"LiveOS/rootfs.img": big}, "xz", []string{"-Xbcj", "x86"}, "read", "LiveOS/rootfs.img", "Anaconda", ""},
		{"zstd, ext3fs.img", map[string][]byte{"LiveOS/ext3fs.img": big}, "zstd", nil, "read", "LiveOS/ext3fs.img", "Anaconda", ""},
		{"lzma", map[string][]byte{"LiveOS/rootfs.img": big}, "lzma", nil, "read", "LiveOS/rootfs.img", "Anaconda", ""},
		{"uncompressed", map[string][]byte{"LiveOS/rootfs.img": big}, "gzip", []string{"-noI", "-noD", "-noF", "-noX"}, "read", "LiveOS/rootfs.img", "Anaconda", ""},
		{"plain root, large directories", many, "gzip", nil, "read", "", "", "/sbin/init"},
		{"lzo: listed by unsquashfs", map[string][]byte{"LiveOS/rootfs.img": big}, "lzo", nil, "unsquashfs", "LiveOS/rootfs.img", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := mksquashfs(t, tt.files, tt.comp, tt.extra...)
			if tt.contents == "unsquashfs" {
				if _, err := exec.LookPath("unsquashfs"); err != nil {
					t.Skip("unsquashfs not installed")
				}
			}
			code, r, errs := inspectJSON(t, img)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			s := r.Layers[0].Squashfs
			if s == nil || s.Compression != tt.comp || s.Contents != tt.contents || s.LiveImage != tt.live || s.Init != tt.init {
				t.Fatalf("squashfs %+v (notes %q)", s, r.Notes)
			}
			if tt.label != "" {
				if len(r.Layers) != 2 || r.Layers[1].Ext4 == nil || r.Layers[1].Ext4.Label != tt.label || r.Layers[1].Path != tt.live ||
					r.Layers[1].Offset != nil || r.Layers[1].Size != int64(len(tt.files[tt.live])) {
					t.Fatalf("inner layer %+v", r.Layers[1:])
				}
				if !strings.Contains(r.Boot, "dracut's live layout") {
					t.Errorf("boot %q", r.Boot)
				}
			}
			if tt.init != "" && (len(s.Root) != 302 || s.Root[0] != "entry-with-a-long-name-in-the-root-0000") {
				t.Errorf("root listing: %d names, first %q", len(s.Root), s.Root[0])
			}
		})
	}
}

func TestInspectURL(t *testing.T) {
	inner := ext4Image(64<<10, 16, "Anaconda")
	if _, err := exec.LookPath("mksquashfs"); err == nil {
		p := mksquashfs(t, map[string][]byte{"LiveOS/rootfs.img": ext4Image(300<<10, 75, "Anaconda")}, "xz")
		inner, _ = os.ReadFile(p)
	}
	pad := make([]byte, 6<<20)
	iso := isotest.Build([]isotest.File{{Path: "LiveOS/squashfs.img", Data: inner}, {Path: "zz/padding.bin", Data: pad}}, isotest.Options{RockRidge: true, VolumeID: "FDI"})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fdi.iso"), iso, 0o644)
	base, log := newTestServer(t, dir)

	code, r, errs := inspectJSON(t, base+"/fdi.iso")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if r.Size != int64(len(iso)) || r.Layers[0].ISO.VolumeID != "FDI" || !strings.HasSuffix(kinds(r), "ext4") {
		t.Errorf("report %+v", r)
	}
	if r.HTTP == nil || r.HTTP.Bytes > 256<<10 || r.HTTP.Requests > 4 {
		t.Errorf("fetched %+v of a %d-byte ISO: too much\n%s", r.HTTP, len(iso), log.String())
	}
	if strings.Contains(log.String(), `range=""`) {
		t.Errorf("a request without Range:\n%s", log.String())
	}

	code, out, _ := runCmd(t, "inspect", base+"/fdi.iso")
	if code != 0 || !strings.Contains(out, "range requests\n") || !strings.Contains(out, `volume "FDI", rock-ridge names`) {
		t.Errorf("human output:\n%s", out)
	}

	noRange := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(iso[:100000]) }))
	defer noRange.Close()
	for _, tt := range []struct{ url, want string }{
		{noRange.URL + "/fdi.iso", "the server ignored the Range request (answered 200 OK); refusing to download the whole file"},
		{base + "/missing.iso", "GET " + base + "/missing.iso: 404 Not Found\n"},
		{"ftp://h/x.iso", "only http:// and https:// URLs"},
	} {
		code, _, errs := runCmd(t, "inspect", tt.url)
		if code == 0 || !strings.Contains(errs, tt.want) || strings.Count(errs, "\n") > 2 {
			t.Errorf("%s: exit %d, %q; want %q", tt.url, code, errs, tt.want)
		}
	}
}
