package kmodtree

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// moduleBody is the fake content of a module file: an ELF magic (the
// reader checks it) and the name, so a test can tell files apart.
func moduleBody(name string) []byte { return []byte("\x7fELF fake module " + name) }

func compressXZ(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.CRC64}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compressZstd(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func compressGzip(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const testDep = `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/fs/squashfs/squashfs.ko.xz: kernel/lib/xz_dec.ko.zst
kernel/lib/xz_dec.ko.zst:
kernel/drivers/foo/foo.ko.gz:
kernel/drivers/net/ethernet/realtek/r8169.ko:
kernel/drivers/net/phy/realtek.ko:
kernel/drivers/char/ipmi/ipmi_msghandler.ko:
kernel/drivers/char/ipmi/ipmi_devintf.ko:
kernel/drivers/ghost/ghost.ko:
kernel/unrelated/unrelated.ko:
`

const testAlias = `# Aliases extracted from modules themselves.
alias crypto-crc32c-intel crc32c_intel
alias crypto-crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crypto-crc32c ghost
alias virtio:d00000001v* virtio_net
alias pci:v000010ECd00008168sv*sd*bc*sc*i* r8169
alias unrel unrelated
`

const testSoftdep = `# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep jbd2 pre: no-such-thing
softdep cifs gcm
softdep ipmi_msghandler post: ipmi_devintf
softdep r8169 pre: realtek
`

// writeTestTree lays out the synthetic tree above in a temporary
// directory: plain, xz, zstd and gzip modules, a module listed in
// modules.dep whose file is missing (ghost), two builtins, one of them
// with an alias known only from modules.builtin.modinfo.
func writeTestTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lib", "modules", "6.1.0-test")
	files := map[string][]byte{
		"modules.dep":             []byte(testDep),
		"modules.alias":           []byte(testAlias),
		"modules.softdep":         []byte(testSoftdep),
		"modules.builtin":         []byte("kernel/net/packet/af_packet.ko\nkernel/drivers/block/loop.ko\n"),
		"modules.builtin.modinfo": []byte("loop.alias=block-major-7-*\x00loop.license=GPL\x00af_packet.alias=net-pf-17\x00"),
		"modules.order":           []byte("kernel/fs/ext4/ext4.ko\nkernel/fs/squashfs/squashfs.ko\nkernel/unrelated/unrelated.ko\n"),
	}
	for _, line := range strings.Split(strings.TrimSpace(testDep), "\n") {
		p, _, _ := strings.Cut(line, ":")
		body := moduleBody(NameFromPath(p))
		switch {
		case strings.HasSuffix(p, "ghost.ko"):
			continue
		case strings.HasSuffix(p, ".xz"):
			body = compressXZ(t, body)
		case strings.HasSuffix(p, ".zst"):
			body = compressZstd(t, body)
		case strings.HasSuffix(p, ".gz"):
			body = compressGzip(t, body)
		}
		files[p] = body
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestClosure(t *testing.T) {
	tree, err := Load(writeTestTree(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		add         []string
		wantMods    []string
		wantBuiltin bool
		wantFound   bool
		wantWarn    string
	}{
		{name: "deps", add: []string{"virtio_net"}, wantFound: true,
			wantMods: []string{"failover", "net_failover", "virtio", "virtio_net"}},
		{name: "dash spelling", add: []string{"virtio-net"}, wantFound: true,
			wantMods: []string{"failover", "net_failover", "virtio", "virtio_net"}},
		{name: "softdep pre via alias, missing file and missing softdep", add: []string{"ext4"}, wantFound: true,
			wantMods: []string{"crc16", "crc32c_generic", "crc32c_intel", "ext4", "jbd2"},
			wantWarn: "no-such-thing"},
		{name: "softdep post", add: []string{"ipmi_msghandler"}, wantFound: true,
			wantMods: []string{"ipmi_devintf", "ipmi_msghandler"}},
		{name: "softdep pre by name", add: []string{"r8169"}, wantFound: true,
			wantMods: []string{"r8169", "realtek"}},
		{name: "alias", add: []string{"crypto-crc32c"}, wantFound: true,
			wantMods: []string{"crc32c_generic", "crc32c_intel"}},
		{name: "glob alias", add: []string{"virtio:d00000001v00001AF4"}, wantFound: true,
			wantMods: []string{"failover", "net_failover", "virtio", "virtio_net"}},
		{name: "compressed deps", add: []string{"squashfs"}, wantFound: true,
			wantMods: []string{"squashfs", "xz_dec"}},
		{name: "builtin", add: []string{"af_packet"}, wantFound: true, wantBuiltin: true},
		{name: "builtin alias from modinfo", add: []string{"block-major-7-0"}, wantFound: true, wantBuiltin: true},
		{name: "unknown", add: []string{"nosuchmod"}},
		{name: "alias to missing file only", add: []string{"fs-ghost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tree.NewSet()
			var l Lookup
			for _, n := range tc.add {
				if l, err = s.Add(n); err != nil {
					t.Fatal(err)
				}
			}
			if l.Found() != tc.wantFound || l.Builtin != tc.wantBuiltin {
				t.Errorf("lookup = found %v builtin %v, want %v %v", l.Found(), l.Builtin, tc.wantFound, tc.wantBuiltin)
			}
			got := s.Names()
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tc.wantMods) {
				t.Errorf("modules = %v, want %v", got, tc.wantMods)
			}
			w := strings.Join(s.Warnings(), "\n")
			if tc.wantWarn == "" && w != "" || !strings.Contains(w, tc.wantWarn) {
				t.Errorf("warnings = %q, want %q", w, tc.wantWarn)
			}
		})
	}
}

func TestReadModuleDecompresses(t *testing.T) {
	tree, err := Load(writeTestTree(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"squashfs", "xz_dec", "foo", "ext4"} {
		m, ok := tree.Module(name)
		if !ok {
			t.Fatalf("%s not in tree", name)
		}
		b, err := tree.ReadModule(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, moduleBody(name)) {
			t.Errorf("%s: got %q", name, b)
		}
		if !strings.HasSuffix(m.StoredPath(), "/"+name+".ko") {
			t.Errorf("%s: stored path %s", name, m.StoredPath())
		}
	}
}

func TestIndexFiles(t *testing.T) {
	tree, err := Load(writeTestTree(t))
	if err != nil {
		t.Fatal(err)
	}
	s := tree.NewSet()
	for _, n := range []string{"ext4", "squashfs", "foo"} {
		if _, err := s.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := s.IndexFiles()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range idx {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"modules.alias", "modules.builtin", "modules.builtin.modinfo", "modules.dep", "modules.order", "modules.softdep"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("index files = %v, want %v", names, want)
	}

	wantDep := `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/fs/squashfs/squashfs.ko: kernel/lib/xz_dec.ko
kernel/lib/xz_dec.ko:
kernel/drivers/foo/foo.ko:
`
	if got := string(idx["modules.dep"]); got != wantDep {
		t.Errorf("modules.dep =\n%s\nwant\n%s", got, wantDep)
	}
	wantAlias := `# Aliases extracted from modules themselves.
alias crypto-crc32c-intel crc32c_intel
alias crypto-crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
`
	if got := string(idx["modules.alias"]); got != wantAlias {
		t.Errorf("modules.alias =\n%s\nwant\n%s", got, wantAlias)
	}
	wantSoftdep := `# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep jbd2 pre: no-such-thing
`
	if got := string(idx["modules.softdep"]); got != wantSoftdep {
		t.Errorf("modules.softdep =\n%s\nwant\n%s", got, wantSoftdep)
	}
	if got, want := string(idx["modules.order"]), "kernel/fs/ext4/ext4.ko\nkernel/fs/squashfs/squashfs.ko\n"; got != want {
		t.Errorf("modules.order = %q, want %q", got, want)
	}
	if !bytes.Contains(idx["modules.builtin"], []byte("af_packet.ko")) {
		t.Errorf("modules.builtin not copied: %q", idx["modules.builtin"])
	}
}

func TestLoadErrors(t *testing.T) {
	t.Run("no modules.dep", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "lib", "modules", "6.1.0-raw")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		if !errors.Is(err, ErrNoDepmod) || !strings.Contains(err.Error(), "depmod -b ") || !strings.Contains(err.Error(), " 6.1.0-raw") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("dep without entry", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("a.ko: b.ko\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tree, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tree.NewSet().Add("a"); err == nil || !strings.Contains(err.Error(), "b.ko") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("corrupt compressed module", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("a.ko.xz:\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a.ko.xz"), []byte("not xz"), 0o644); err != nil {
			t.Fatal(err)
		}
		tree, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := tree.Module("a")
		if _, err := tree.ReadModule(m); err == nil {
			t.Fatal("corrupt module read without error")
		}
	})
}
