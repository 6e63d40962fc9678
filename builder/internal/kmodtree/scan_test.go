package kmodtree

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/builder/buildertest"
)

func TestModinfo(t *testing.T) {
	got, err := Modinfo(buildertest.Module("alias=pci:v1*", "depends=a,b-c", "alias=virtio:d1v*", "junk", "name=x"))
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"alias", "pci:v1*"}, {"depends", "a,b-c"}, {"alias", "virtio:d1v*"}, {"name", "x"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Modinfo = %q, want %q", got, want)
	}
	for _, bad := range [][]byte{nil, []byte("\x7fELF"), moduleBody("x")} {
		if _, err := Modinfo(bad); err == nil {
			t.Errorf("Modinfo(%q) = nil error", bad)
		}
	}
}

// TestScan computes the indexes of a package-style tree (no depmod
// output) and checks them as Load would read depmod's: the closure in
// reverse load order, aliases and softdeps by module, compressed
// modules decompressed with their trailer intact.
func TestScan(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"kernel/fs/ext4/ext4.ko.xz":          compressXZ(t, buildertest.Module("depends=mbcache,jbd2", "softdep=pre: crc32c", "alias=fs-ext4")),
		"kernel/fs/jbd2/jbd2.ko":             buildertest.Module("depends=crc16"),
		"kernel/fs/mbcache.ko.zst":           compressZstd(t, buildertest.Module("depends=")),
		"kernel/lib/crc16.ko.gz":             compressGzip(t, buildertest.Module()),
		"kernel/crypto/crc32c_generic.ko":    buildertest.Module("alias=crypto-crc32c", "alias=crc32c"),
		"kernel/drivers/net/virtio_net.ko":   buildertest.Module("alias=virtio:d00000001v*", "depends=net_failover"),
		"kernel/drivers/net/net_failover.ko": buildertest.Module("depends=failover"),
		"kernel/net/core/failover.ko":        buildertest.Module(),
		"modules.builtin":                    []byte("kernel/drivers/block/loop.ko\n"),
		"README":                             []byte("not a module"),
	}
	for p, b := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	ext4, ok := tr.Module("ext4")
	if !ok {
		t.Fatal("no ext4")
	}
	// Read backwards it is a load order: mbcache, crc16, jbd2, then ext4.
	wantDeps := []string{"kernel/fs/jbd2/jbd2.ko", "kernel/lib/crc16.ko.gz", "kernel/fs/mbcache.ko.zst"}
	if !reflect.DeepEqual(ext4.Deps, wantDeps) {
		t.Errorf("ext4 deps = %q, want %q", ext4.Deps, wantDeps)
	}
	set := tr.NewSet()
	for _, n := range []string{"ext4", "virtio:d00000001v00001AF4", "loop"} {
		l, err := set.Add(n)
		if err != nil || !l.Found() {
			t.Fatalf("Add(%s) = %+v, %v", n, l, err)
		}
	}
	want := []string{"crc16", "crc32c_generic", "ext4", "failover", "jbd2", "mbcache", "net_failover", "virtio_net"}
	if got := set.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("closure = %q, want %q", got, want)
	}
	idx, err := set.IndexFiles()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(idx["modules.softdep"]); got != "softdep ext4 pre: crc32c\n" {
		t.Errorf("modules.softdep = %q", got)
	}
	if !strings.Contains(string(idx["modules.dep"]), "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko kernel/fs/mbcache.ko\n") {
		t.Errorf("modules.dep lacks ext4's line:\n%s", idx["modules.dep"])
	}
	if got := string(idx["modules.builtin"]); got != string(files["modules.builtin"]) {
		t.Errorf("modules.builtin = %q", got)
	}
	b, err := tr.ReadModule(ext4)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, buildertest.Module("depends=mbcache,jbd2", "softdep=pre: crc32c", "alias=fs-ext4")) {
		t.Error("ext4.ko.xz did not decompress to the signed module byte for byte")
	}
}

func TestScanErrors(t *testing.T) {
	for name, files := range map[string]map[string][]byte{
		"missing dependency":            {"a.ko": buildertest.Module("depends=b")},
		"not ELF":                       {"a.ko": []byte("garbage")},
		"cycle is fine, missing is not": {"a.ko": buildertest.Module("depends=b"), "b.ko": buildertest.Module("depends=a,c")},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for p, b := range files {
				if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Scan(dir); err == nil {
				t.Error("Scan succeeded")
			}
		})
	}
}

// TestScanRealTree compares Scan with depmod on the tree `make kernel`
// unpacks: every module's closure must be the same set.
func TestScanRealTree(t *testing.T) {
	dirs, _ := filepath.Glob("../../../build/kernel/lib/modules/*")
	if len(dirs) == 0 {
		t.Skip("no build/kernel module tree (make kernel)")
	}
	if testing.Short() {
		t.Skip("reads every module of a real kernel")
	}
	dm, err := Load(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	sc, err := Scan(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range dm.depOrder {
		a, b := dm.mods[n], sc.mods[n]
		if b == nil {
			t.Errorf("%s: depmod has it, Scan not", n)
			continue
		}
		if !sameSet(a.Deps, b.Deps) {
			t.Errorf("%s: depmod deps %q, Scan %q", n, a.Deps, b.Deps)
		}
	}
	if len(sc.mods) != len(dm.mods) {
		t.Errorf("Scan found %d modules, depmod %d", len(sc.mods), len(dm.mods))
	}
	if len(sc.aliases) < len(dm.aliases)*9/10 {
		t.Errorf("Scan found %d aliases, depmod %d", len(sc.aliases), len(dm.aliases))
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

// FuzzModinfo feeds arbitrary bytes to the .modinfo reader: a module from
// a downloaded package is untrusted input.
func FuzzModinfo(f *testing.F) {
	f.Add(buildertest.Module("alias=fs-ext4", "depends=a,b"))
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := Modinfo(b)
		if err != nil && recs != nil {
			t.Fatal("records with an error")
		}
		for _, kv := range recs {
			if kv[0] == "" || strings.Contains(kv[0], "=") {
				t.Fatalf("bad key %q", kv[0])
			}
		}
	})
}
