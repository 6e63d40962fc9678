package kmod

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func testLoader(t *testing.T) *Loader {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules/6.1.0-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"modules.dep":     "kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio.ko:\nkernel/fs/ext4/ext4.ko:\n",
		"modules.alias":   "# Aliases extracted from modules themselves.\nalias virtio:d00000001v* virtio_net\nalias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias crypto-crc32c crc32c_intel\nalias crypto-crc32c crc32c-generic\nalias fs-ext4 ext4\n",
		"modules.softdep": "softdep ext4 pre: crypto-crc32c\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Open(root, "6.1.0-test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestResolve(t *testing.T) {
	l := testLoader(t)
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"virtio:d00000001v00001AF4", []string{"virtio_net"}},
		{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", []string{"virtio_pci"}},
		{"crypto-crc32c", []string{"crc32c_intel", "crc32c_generic"}},
		{"fs-ext4", []string{"ext4"}},
		{"squash-fs", []string{"squash_fs"}},
		{"pci:v00008086d0000100Esv*", nil},
	} {
		if got := l.Resolve(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Resolve(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := l.softdeps["ext4"].Pre; !slices.Equal(got, []string{"crypto-crc32c"}) {
		t.Errorf("softdep ext4 pre = %v", got)
	}
}

func TestOpenWrongRelease(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "lib/modules/5.14.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Open(root, "6.1.0", slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("Open succeeded without modules for the release")
	}
	if got := err.Error(); !strings.Contains(got, "5.14.0") || !strings.Contains(got, "KVER=6.1.0") {
		t.Errorf("error %q should name the releases present and the fix", got)
	}
}

func TestModaliases(t *testing.T) {
	sysfs := t.TempDir()
	dev := func(bus, name, alias string) {
		t.Helper()
		d := filepath.Join(sysfs, "bus", bus, "devices", name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if alias != "" {
			if err := os.WriteFile(filepath.Join(d, "modalias"), []byte(alias+"\n"), 0o444); err != nil {
				t.Fatal(err)
			}
		}
	}
	dev("pci", "0000:00:03.0", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	dev("pci", "0000:00:04.0", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00") // same alias twice
	dev("pci", "0000:00:05.0", "")                                                      // no modalias
	dev("cpu", "cpu0", "cpu:type:x86,ven0000fam0006mod003F:feature:,0000")
	if err := os.MkdirAll(filepath.Join(sysfs, "bus", "nodevices"), 0o755); err != nil {
		t.Fatal(err)
	}

	read := map[string]bool{}
	for i, step := range []struct {
		add  func()
		want []string
	}{
		{nil, []string{"cpu:type:x86,ven0000fam0006mod003F:feature:,0000", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"}},
		// Nothing new: every device with a modalias was read once.
		{nil, nil},
		// A load created a virtio device: only it is read.
		{func() { dev("virtio", "virtio0", "virtio:d00000001v00001AF4") }, []string{"virtio:d00000001v00001AF4"}},
	} {
		if step.add != nil {
			step.add()
		}
		got, err := modaliases(sysfs, read)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, step.want) {
			t.Errorf("round %d: %v, want %v", i+1, got, step.want)
		}
	}
	if len(read) != 4 {
		t.Errorf("read %d devices, want 4 (the one without a modalias is not marked): %v", len(read), read)
	}
	if _, err := modaliases(filepath.Join(sysfs, "missing"), map[string]bool{}); err == nil {
		t.Error("a sysfs without buses is not an error")
	}
}
