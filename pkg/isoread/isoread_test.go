package isoread_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/isoread"
	"github.com/streamroot/streamroot/pkg/isoread/isotest"
)

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

// countingReader counts the bytes read, to check that lookups read only
// directory sectors.
type countingReader struct {
	r     io.ReaderAt
	bytes int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.bytes += int64(n)
	return n, err
}

func TestGoBuiltISO(t *testing.T) {
	squash := payload(3*2048+100, 1)
	files := []isotest.File{
		{Path: "LiveOS/squashfs.img", Data: squash},
		{Path: "isolinux/vmlinuz0", Data: payload(5000, 2)},
		{Path: "EFI/BOOT/grub.cfg", Data: []byte("menuentry x {}\n")},
		{Path: "empty", Data: nil},
	}
	tests := []struct {
		name       string
		opts       isotest.Options
		lookup     string
		contiguous bool
	}{
		{"plain ISO names, case-insensitive", isotest.Options{VolumeID: "FDI"}, "LiveOS/squashfs.img", true},
		{"rock ridge", isotest.Options{VolumeID: "FDI", RockRidge: true}, "LiveOS/squashfs.img", true},
		{"multi-extent contiguous", isotest.Options{RockRidge: true, MaxExtent: 2048}, "LiveOS/squashfs.img", true},
		{"multi-extent with gaps", isotest.Options{RockRidge: true, MaxExtent: 4096, Gap: 3}, "/LiveOS//squashfs.img", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := isotest.Build(files, tt.opts)
			cr := &countingReader{r: bytes.NewReader(raw)}
			im, err := isoread.Open(cr, int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if im.VolumeID != tt.opts.VolumeID {
				t.Errorf("VolumeID %q", im.VolumeID)
			}
			if im.RockRidge != tt.opts.RockRidge {
				t.Errorf("RockRidge = %v", im.RockRidge)
			}
			f, err := im.Lookup(tt.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if f.Size != int64(len(squash)) || f.IsDir || f.Contiguous != tt.contiguous {
				t.Errorf("file %+v", f)
			}
			if cr.bytes > 16*2048 {
				t.Errorf("lookup read %d bytes: more than the descriptors and directories", cr.bytes)
			}
			got, err := io.ReadAll(f.SectionReader())
			if err != nil || !bytes.Equal(got, squash) {
				t.Fatalf("content differs (err %v, %d bytes)", err, len(got))
			}
			// A read across extents through ReaderAt.
			buf := make([]byte, 3000)
			if _, err := f.ReaderAt().ReadAt(buf, 1500); err != nil || !bytes.Equal(buf, squash[1500:4500]) {
				t.Errorf("ReadAt across extents: %v", err)
			}
			if tt.contiguous && !bytes.Equal(raw[f.Offset:f.Offset+f.Size], squash) {
				t.Errorf("Offset %d does not point at the data", f.Offset)
			}
			if e, err := im.Lookup("empty"); err != nil || e.Size != 0 {
				t.Errorf("empty file: %v %+v", err, e)
			}
			root, err := im.ReadDir("/")
			if err != nil || len(root) != 4 {
				t.Fatalf("ReadDir(/) = %d entries, %v", len(root), err)
			}
			boot, err := im.ReadDir("efi/boot")
			if err != nil || len(boot) != 1 || !strings.EqualFold(boot[0].Name, "grub.cfg") || boot[0].Path != "EFI/BOOT/"+boot[0].Name {
				t.Errorf("ReadDir(efi/boot) = %+v, %v", boot, err)
			}
		})
	}
}

func TestLookupErrors(t *testing.T) {
	raw := isotest.Build([]isotest.File{{Path: "LiveOS/rootfs.img", Data: []byte("x")}, {Path: "README", Data: []byte("r")}}, isotest.Options{RockRidge: true})
	im, err := isoread.Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
		notExist   bool
	}{
		{"LiveOS/squashfs.img", "LiveOS/squashfs.img: file does not exist in the ISO (LiveOS holds: rootfs.img)", true},
		{"images/pxeboot/vmlinuz", "images: file does not exist in the ISO (the root directory holds: LiveOS, README)", true},
		{"README/x", "README: not a directory", false},
	}
	for _, tt := range tests {
		_, err := im.Lookup(tt.path)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Lookup(%s) = %v, want %q", tt.path, err, tt.want)
		}
		if errors.Is(err, fs.ErrNotExist) != tt.notExist {
			t.Errorf("Lookup(%s): errors.Is(ErrNotExist) wrong", tt.path)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	good := isotest.Build([]isotest.File{{Path: "LiveOS/squashfs.img", Data: payload(10000, 3)}}, isotest.Options{})
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"too short", make([]byte, 1000), "not an ISO 9660 image"},
		{"no signature", make([]byte, 40000), "no CD001 at sector 16"},
		{"truncated after the descriptors", good[:18*2048], "past the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := isoread.Open(bytes.NewReader(tt.data), int64(len(tt.data)))
			if err == nil {
				_, err = im.Lookup("LiveOS/squashfs.img")
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// A file whose data lies past the end of a truncated image.
	trunc := good[:len(good)-2048]
	im, err := isoread.Open(bytes.NewReader(trunc), int64(len(trunc)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.Lookup("LiveOS/squashfs.img"); err == nil || !strings.Contains(err.Error(), "truncated ISO") {
		t.Errorf("truncated: %v", err)
	}
}

// TestXorriso reads ISOs made by the real tool in the layouts live ISOs use.
func TestXorriso(t *testing.T) {
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("xorriso not installed (apt-get install xorriso); the Go-built ISO tests cover the reader")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	squash := payload(300000, 9)
	long := "a-long-file-name-beyond-8.3.img"
	for p, data := range map[string][]byte{"LiveOS/squashfs.img": squash, "isolinux/vmlinuz0": payload(100, 1), "deep/" + long: []byte("long")} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(src, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		args      []string
		rr, jol   bool
		longFound bool
	}{
		{"rock ridge + joliet", []string{"-rockridge", "on", "-joliet", "on"}, true, false, true},
		{"joliet only", []string{"-rockridge", "off", "-joliet", "on"}, false, true, true},
		{"plain ISO 9660", []string{"-rockridge", "off", "-joliet", "off"}, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iso := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".iso")
			args := append([]string{"-report_about", "SORRY", "-outdev", iso, "-volid", "FDI-TEST"}, tt.args...)
			if out, err := exec.Command("xorriso", append(args, "-map", src, "/")...).CombinedOutput(); err != nil {
				t.Fatalf("xorriso: %v\n%s", err, out)
			}
			f, err := os.Open(iso)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			im, err := isoread.Open(f, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			if im.VolumeID != "FDI-TEST" || im.RockRidge != tt.rr || im.Joliet != tt.jol {
				t.Errorf("VolumeID %q RockRidge %v Joliet %v", im.VolumeID, im.RockRidge, im.Joliet)
			}
			sf, err := im.Lookup("LiveOS/squashfs.img")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(sf.SectionReader())
			if err != nil || !bytes.Equal(got, squash) || !sf.Contiguous {
				t.Fatalf("squashfs.img content differs (%v)", err)
			}
			lf, err := im.Lookup("deep/" + long)
			if tt.longFound != (err == nil) {
				t.Errorf("long name lookup: %v", err)
			}
			if err == nil && lf.Name != long {
				t.Errorf("long name %q", lf.Name)
			}
		})
	}
}

// TestHostileExtents: a file's extents are the image's word for how much
// to copy; an ISO whose multi-extent records overlap or add up to more than
// the image must not make a reader produce more bytes than the image has
// (extract would write until the disk is full).
func TestHostileExtents(t *testing.T) {
	many := make([][2]int64, 100)
	for i := range many {
		many[i] = [2]int64{0, 32768} // the system area, again and again
	}
	tests := []struct {
		name    string
		extents [][2]int64
		want    string // "" = fine
	}{
		{"one extent read 100 times", many, "LiveOS/squashfs.img: its 100 extents add up to 3276800 bytes, more than the"},
		{"two overlapping extents", [][2]int64{{0, 4096}, {1, 2048}}, "LiveOS/squashfs.img: extents 0 (sector 0, 4096 bytes) and 1 (sector 1, 2048 bytes) overlap"},
		{"same sector twice", [][2]int64{{3, 100}, {3, 100}}, "overlap"},
		{"empty extents may share a sector", [][2]int64{{0, 0}, {0, 0}, {2, 2048}, {0, 2048}}, ""},
		{"gaps are fine", [][2]int64{{4, 2048}, {0, 2048}, {8, 10}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := isotest.Build([]isotest.File{{Path: "LiveOS/squashfs.img"}, {Path: "pad", Data: payload(4*2048, 1)}},
				isotest.Options{RockRidge: true, Extents: map[string][][2]int64{"LiveOS/squashfs.img": tt.extents}})
			im, err := isoread.Open(bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			f, err := im.Lookup("LiveOS/squashfs.img")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				var total int64
				for _, e := range tt.extents {
					total += e[1]
				}
				n, err := io.Copy(io.Discard, f.SectionReader())
				if err != nil || n != total || f.Size != total {
					t.Errorf("read %d bytes (%v), size %d, want %d", n, err, f.Size, total)
				}
				return
			}
			if err == nil {
				n, _ := io.Copy(io.Discard, io.LimitReader(f.SectionReader(), 64<<20))
				t.Fatalf("no error; the file reads as %d bytes of a %d-byte image", n, len(raw))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %q, want %q", err, tt.want)
			}
			if _, err := im.ReadDir("LiveOS"); err == nil {
				t.Error("ReadDir lists the file")
			}
		})
	}
}

// TestNamesEscapedInErrors: names come from the image and errors reach a
// terminal; an escape sequence in a name must not reach it raw.
func TestNamesEscapedInErrors(t *testing.T) {
	raw := isotest.Build([]isotest.File{{Path: "LiveOS/a\x1b[2J\u202e.img", Data: []byte("x")}, {Path: "f\x1b]0;pwned\x07", Data: []byte("x")}},
		isotest.Options{RockRidge: true})
	im, err := isoread.Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{"LiveOS/squashfs.img", `LiveOS/squashfs.img: file does not exist in the ISO (LiveOS holds: a\x1b[2J\u202e.img)`},
		{"f\x1b]0;pwned\x07/x", `f\x1b]0;pwned\x07: not a directory`},
		{"x\x1b[1m", `x\x1b[1m: file does not exist in the ISO (the root directory holds: LiveOS, f\x1b]0;pwned\x07)`},
	} {
		_, err := im.Lookup(tt.path)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Lookup(%q) = %q, want %q", tt.path, err, tt.want)
		}
	}
	// The names themselves stay as the image has them.
	if f, err := im.Lookup("LiveOS/a\x1b[2J\u202e.img"); err != nil || f.Name != "a\x1b[2J\u202e.img" {
		t.Errorf("Lookup by the raw name: %v %+v", err, f)
	}
}
