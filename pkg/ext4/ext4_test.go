package ext4

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// treeFiles is the content of the test images: a module tree under
// usr/lib with /lib a symlink to it (EL9's layout), a file large enough
// for indirect blocks at 1 KiB, a slow and a fast symlink, a directory
// of many entries.
func treeFiles() map[string][]byte {
	big := make([]byte, 300<<10+123)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	files := map[string][]byte{
		"usr/lib/modules/1.0/kernel/a.ko": big,
		"usr/lib/modules/1.0/modules.dep": []byte("kernel/a.ko:\n"),
		"etc/hostname":                    []byte("fdi\n"),
	}
	for i := range 150 {
		files[fmt.Sprintf("usr/lib/many/entry-with-a-long-name-%03d", i)] = []byte{byte(i)}
	}
	return files
}

const slowTarget = "../usr/lib/modules/1.0/kernel/../../1.0/kernel/././././././././a.ko"

// mkfs writes the tree and builds an image of it with mkfs.ext4 -d.
func mkfs(t *testing.T, args ...string) []byte {
	t.Helper()
	return mkfsTree(t, treeFiles(), map[string]string{"lib": "usr/lib", "etc/slow": slowTarget, "etc/abs": "/usr/lib/modules"}, args...)
}

// mkfsTree builds an image of files and symlinks (path → target).
func mkfsTree(t *testing.T, files map[string][]byte, links map[string]string, args ...string) []byte {
	t.Helper()
	mk, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/mkfs.ext4"); err != nil {
			t.Skip("no mkfs.ext4 (e2fsprogs)")
		}
		mk = "/usr/sbin/mkfs.ext4"
	}
	src := t.TempDir()
	for p, b := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range links {
		if err := os.Symlink(target, filepath.Join(src, link)); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	cmd := exec.Command(mk, append(append([]string{"-q", "-F", "-d", src}, args...), img, "8M")...)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, b)
	}
	// e2fsck -D re-writes every multi-block directory as an htree
	// (mkfs -d writes them linear): the reader must list both.
	if fsck, err := exec.LookPath("e2fsck"); err == nil {
		cmd := exec.Command(fsck, "-fyD", img)
		cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1")
		if b, err := cmd.CombinedOutput(); err != nil && cmd.ProcessState.ExitCode() > 1 {
			t.Fatalf("e2fsck -D: %v\n%s", err, b)
		}
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(t *testing.T, f *FS, p string) []byte {
	t.Helper()
	in, err := f.Lookup(p)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", p, err)
	}
	fl, err := f.Open(in)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	out, err := io.ReadAll(io.NewSectionReader(fl, 0, fl.Size()))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return out
}

// checkTree reads everything treeFiles wrote back through the image.
// (debugfs -R "htree /usr/lib/many" shows the directory is indexed.)
func checkTree(t *testing.T, img []byte) {
	t.Helper()
	f, err := New(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range treeFiles() {
		if got := readFile(t, f, p); !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes read, not its %d", p, len(got), len(want))
		}
	}
	big := treeFiles()["usr/lib/modules/1.0/kernel/a.ko"]
	for _, p := range []string{"lib/modules/1.0/kernel/a.ko", "etc/slow", "etc/abs/1.0/kernel/a.ko", "/usr/../lib/modules/1.0/../1.0/kernel/a.ko"} {
		if got := readFile(t, f, p); !bytes.Equal(got, big) {
			t.Errorf("%s: through symlinks, %d bytes read", p, len(got))
		}
	}
	slow, err := f.Lookup("etc")
	if err != nil {
		t.Fatal(err)
	}
	ents, err := f.ReadDir(slow)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		in, err := f.Inode(e)
		if err != nil {
			t.Fatal(err)
		}
		if e.Name == "slow" {
			if target, err := f.Readlink(in); err != nil || target != slowTarget {
				t.Errorf("slow symlink: %q, %v", target, err)
			}
		}
		names = append(names, e.Name)
	}
	if got := strings.Join(sorted(names), " "); got != "abs hostname slow" {
		t.Errorf("etc lists %q", got)
	}
	many, err := f.Lookup("lib/many")
	if err != nil {
		t.Fatal(err)
	}
	if ents, err := f.ReadDir(many); err != nil || len(ents) != 150 {
		t.Errorf("many: %d entries, %v", len(ents), err)
	}
	if _, err := f.Lookup("lib/modules/2.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing path: %v", err)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestMkfs(t *testing.T) {
	for name, args := range map[string][]string{
		"ext4":                {},
		"ext4 1k blocks":      {"-b", "1024"},
		"ext4 64bit htree":    {"-O", "64bit,dir_index,metadata_csum"},
		"ext2 block map":      {"-t", "ext2"},
		"ext3 1k, indirect":   {"-t", "ext3", "-b", "1024"},
		"ext4 no flex_bg 128": {"-I", "128", "-O", "^flex_bg"},
	} {
		t.Run(name, func(t *testing.T) { checkTree(t, mkfs(t, args...)) })
	}
}

// TestMetaBG reads files whose groups' descriptors meta_bg moved out of
// the table after the superblock: 64-byte descriptors, 16 to a 1 KiB
// block, 32 groups of 16 inodes: 330 inodes reach past group 16.
func TestMetaBG(t *testing.T) {
	files := map[string][]byte{}
	for i := range 300 {
		files[fmt.Sprintf("d%02d/f%03d", i%30, i)] = []byte(fmt.Sprint(i))
	}
	f, err := New(bytes.NewReader(mkfsTree(t, files, nil, "-b", "1024", "-g", "256", "-N", "512", "-O", "meta_bg,^resize_inode,64bit")))
	if err != nil {
		t.Fatal(err)
	}
	high := 0
	for p, want := range files {
		if got := readFile(t, f, p); !bytes.Equal(got, want) {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
		if in, _ := f.Lookup(p); (in.num-1)/f.perGroup >= 16 {
			high++
		}
	}
	if high == 0 {
		t.Error("no file landed in a group past the first descriptor block: the test proves nothing")
	}
}

// testdata/tree.ext4.gz is mkfs.ext4 -d of treeFiles (E2FSPROGS_FAKE_TIME=1,
// 1 KiB blocks), committed so hosts without e2fsprogs test the reader
// too; STREAMROOT_WRITE_FIXTURE=1 rewrites it.
func TestFixture(t *testing.T) {
	const fixture = "testdata/tree.ext4.gz"
	if os.Getenv("STREAMROOT_WRITE_FIXTURE") == "1" {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = zw.Write(mkfs(t, "-b", "1024", "-U", "00000000-0000-0000-0000-000000000001", "-E", "hash_seed=00000000-0000-0000-0000-000000000001"))
		_ = zw.Close()
		if err := os.WriteFile(fixture, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	checkTree(t, fixtureImage(t))
}

func fixtureImage(t testing.TB) []byte {
	z, err := os.ReadFile("testdata/tree.ext4.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNotExt4(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":    nil,
		"zeros":    make([]byte, 4096),
		"squashfs": append([]byte("hsqs"), make([]byte, 4092)...),
	} {
		if _, err := New(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// FuzzExt4: an image from anywhere gives files or errors, never a panic
// or unbounded work.
func FuzzExt4(f *testing.F) {
	f.Add(fixtureImage(f)[:64<<10])
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := New(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, p := range []string{"lib/modules/1.0/modules.dep", "etc/slow", "usr/lib/many"} {
			in, err := fs.Lookup(p)
			if err != nil {
				continue
			}
			if in.IsDir() {
				_, _ = fs.ReadDir(in)
				continue
			}
			if fl, err := fs.Open(in); err == nil {
				buf := make([]byte, 4096)
				_, _ = fl.ReadAt(buf, 0)
			}
		}
	})
}
