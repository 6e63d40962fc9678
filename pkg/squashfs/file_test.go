package squashfs_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/streamroot/streamroot/pkg/squashfs"
	"github.com/streamroot/streamroot/pkg/squashfs/squashtest"
)

// readAll reads a file's content through Open (io.ReadAll's growing
// reads cross block boundaries at odd offsets).
func readAll(t *testing.T, s *squashfs.FS, p string) []byte {
	t.Helper()
	in, err := s.Lookup(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Open(in)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	out, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return out
}

func TestOpenSquashtest(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*squashtest.Block/16+7)
	for name, f := range map[string]squashtest.File{
		"blocks":   {Data: big},
		"extended": {Data: big, Ext: true},
		"fragment": {Data: []byte("tiny"), Frag: true},
		"sparse":   {Data: big, Sparse: true},
	} {
		t.Run(name, func(t *testing.T) {
			f.Path = "x/file"
			s := open(t, squashtest.Build([]squashtest.File{f}))
			want := f.Data
			if f.Sparse {
				want = append(make([]byte, squashtest.Block), big[squashtest.Block:]...)
			}
			if got := readAll(t, s, "x/file"); !bytes.Equal(got, want) {
				t.Errorf("read %d bytes, want %d (equal: %v)", len(got), len(want), bytes.Equal(got, want))
			}
		})
	}
}

// TestOpenMksquashfs reads back what mksquashfs writes in each
// compression the readers know, with fragments, holes and several
// blocks, when mksquashfs is installed.
func TestOpenMksquashfs(t *testing.T) {
	mk, err := exec.LookPath("mksquashfs")
	if err != nil {
		t.Skip("no mksquashfs")
	}
	src := t.TempDir()
	rnd := rand.New(rand.NewPCG(1, 2))
	files := map[string][]byte{
		"lib/modules/1.0/kernel/a.ko": make([]byte, 300000),
		"lib/modules/1.0/modules.dep": []byte("kernel/a.ko:\n"),
		"small":                       []byte("tail only"),
		"holes":                       make([]byte, 400000),
	}
	for i := range files["lib/modules/1.0/kernel/a.ko"] {
		files["lib/modules/1.0/kernel/a.ko"][i] = byte(rnd.IntN(4))
	}
	copy(files["holes"][390000:], "end")
	for i := 100000; i < 200000; i++ {
		files["holes"][i] = byte(i / 7)
	}
	for p, b := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("lib", filepath.Join(src, "usrlib")); err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"gzip", "xz", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "sq.img")
			if b, err := exec.Command(mk, src, img, "-comp", comp, "-b", "64K", "-noappend", "-quiet").CombinedOutput(); err != nil {
				t.Skipf("mksquashfs -comp %s: %v\n%s", comp, err, b)
			}
			raw, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			s := open(t, raw)
			for p, want := range files {
				if got := readAll(t, s, p); !bytes.Equal(got, want) {
					t.Errorf("%s: read %d bytes, not its %d", p, len(got), len(want))
				}
			}
			// Random reads across blocks, as ext4 through the file does:
			// the block cache must hand back the right block each time.
			in, err := s.Lookup("holes")
			if err != nil {
				t.Fatal(err)
			}
			hf, err := s.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			want := files["holes"]
			buf := make([]byte, 3000)
			for range 200 {
				off := rnd.Int64N(int64(len(want)))
				n, err := hf.ReadAt(buf, off)
				if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
					t.Fatalf("ReadAt(%d) = %d, %v: wrong bytes", off, n, err)
				}
			}
			if got := readAll(t, s, "usrlib/modules/1.0/modules.dep"); string(got) != "kernel/a.ko:\n" {
				t.Errorf("through the symlink: %q", got)
			}
			in, _ = s.Lookup("lib/modules/1.0")
			ents, err := s.ReadDir(in)
			if err != nil || len(ents) != 2 {
				t.Fatalf("ReadDir = %v, %v", ents, err)
			}
			for _, e := range ents {
				ci, err := s.Inode(e)
				if err != nil || ci.IsDir() != (e.Name == "kernel") {
					t.Errorf("%s: %+v, %v", e.Name, ci, err)
				}
			}
		})
	}
}
