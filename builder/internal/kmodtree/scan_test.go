package kmodtree

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// modELF is a minimal relocatable ELF64 object with a .modinfo section
// holding the given key=value records, as modpost leaves in a .ko, and a
// signature-like trailer after the section data (appended signatures sit
// past the last section; they must come through byte for byte).
func modELF(records ...string) []byte {
	modinfo := []byte(strings.Join(records, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	infoOff := ehsize
	strOff := infoOff + len(modinfo)
	shOff := (strOff + len(shstr) + 7) &^ 7
	var b bytes.Buffer
	le := binary.LittleEndian
	ident := [16]byte{0x7f, 'E', 'L', 'F', 2, 1, 1}
	b.Write(ident[:])
	for _, v := range []any{uint16(1), uint16(62), uint32(1), uint64(0), uint64(0), uint64(shOff),
		uint32(0), uint16(ehsize), uint16(0), uint16(0), uint16(shentsize), uint16(3), uint16(2)} {
		_ = binary.Write(&b, le, v)
	}
	b.Write(modinfo)
	b.Write(shstr)
	b.Write(make([]byte, shOff-b.Len()))
	sh := func(name, typ uint32, off, size int) {
		for _, v := range []any{name, typ, uint64(0), uint64(0), uint64(off), uint64(size), uint32(0), uint32(0), uint64(1), uint64(0)} {
			_ = binary.Write(&b, le, v)
		}
	}
	sh(0, 0, 0, 0)
	sh(1, 1, infoOff, len(modinfo)) // .modinfo, SHT_PROGBITS
	sh(10, 3, strOff, len(shstr))   // .shstrtab, SHT_STRTAB
	b.WriteString("~Module signature appended~\n")
	return b.Bytes()
}

func TestModinfo(t *testing.T) {
	got, err := Modinfo(modELF("alias=pci:v1*", "depends=a,b-c", "alias=virtio:d1v*", "junk", "name=x"))
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
		"kernel/fs/ext4/ext4.ko.xz":          compressXZ(t, modELF("depends=mbcache,jbd2", "softdep=pre: crc32c", "alias=fs-ext4")),
		"kernel/fs/jbd2/jbd2.ko":             modELF("depends=crc16"),
		"kernel/fs/mbcache.ko.zst":           compressZstd(t, modELF("depends=")),
		"kernel/lib/crc16.ko.gz":             compressGzip(t, modELF()),
		"kernel/crypto/crc32c_generic.ko":    modELF("alias=crypto-crc32c", "alias=crc32c"),
		"kernel/drivers/net/virtio_net.ko":   modELF("alias=virtio:d00000001v*", "depends=net_failover"),
		"kernel/drivers/net/net_failover.ko": modELF("depends=failover"),
		"kernel/net/core/failover.ko":        modELF(),
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
	if !bytes.Equal(b, modELF("depends=mbcache,jbd2", "softdep=pre: crc32c", "alias=fs-ext4")) {
		t.Error("ext4.ko.xz did not decompress to the signed module byte for byte")
	}
}

func TestScanErrors(t *testing.T) {
	for name, files := range map[string]map[string][]byte{
		"missing dependency":            {"a.ko": modELF("depends=b")},
		"not ELF":                       {"a.ko": []byte("garbage")},
		"cycle is fine, missing is not": {"a.ko": modELF("depends=b"), "b.ko": modELF("depends=a,c")},
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
	f.Add(modELF("alias=fs-ext4", "depends=a,b"))
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
