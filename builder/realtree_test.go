package builder

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/builder/buildertest"
)

// realModDir is the module tree `make kernel` unpacks (make test fetches it
// before the unit tests run); the test below is skipped where it is absent.
func realModDir() string {
	dirs, _ := filepath.Glob("../build/kernel/lib/modules/*")
	if len(dirs) == 0 {
		return "../build/kernel/lib/modules/none"
	}
	return dirs[0]
}

// buildDummyInit compiles a tiny static Go program to stand in for /init.
func buildDummyInit(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain in PATH")
	}
	src := t.TempDir()
	buildertest.WriteFile(t, filepath.Join(src, "go.mod"), []byte("module dummyinit\n\ngo 1.22\n"))
	buildertest.WriteFile(t, filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { println(\"dummy init\") }\n"))
	out := filepath.Join(t.TempDir(), "init")
	cmd := exec.Command(goBin, "build", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building dummy init: %v\n%s", err, b)
	}
	return out
}

func TestRealKernelTree(t *testing.T) {
	if _, err := os.Stat(filepath.Join(realModDir(), "modules.dep")); err != nil {
		t.Skipf("no test kernel tree: %v", err)
	}
	if testing.Short() {
		t.Skip("builds a real image")
	}
	dir := t.TempDir()
	args := []string{"-init", buildDummyInit(t), "-moddir", realModDir(), "-o", filepath.Join(dir, "initramfs.img")}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		args = append(args, "-shell", "none")
	}
	if _, err := os.Stat(CABundlePath); err != nil {
		args = append(args, "-ca", "none")
	}
	// Go through the flag defaults: they are what `make initramfs` uses.
	opts, _, err := ParseFlags(args, func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	res, err := Build(opts, testLogger(&logs))
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, logs.String())
	}
	t.Log(res.Summary())
	a := readArchive(t, opts.Out, "zstd")
	checkModuleIndex(t, a, opts.KVer)

	base := "lib/modules/" + opts.KVer + "/"
	for _, p := range []string{
		"kernel/drivers/net/virtio_net.ko",
		"kernel/drivers/virtio/virtio_pci.ko",
		"kernel/fs/squashfs/squashfs.ko",
		"kernel/fs/overlayfs/overlay.ko",
		"kernel/drivers/block/loop.ko",
		"kernel/fs/ext4/ext4.ko",
		"kernel/lib/crc16.ko",
		"kernel/fs/mbcache.ko",
		"kernel/fs/jbd2/jbd2.ko",
		"kernel/drivers/block/nbd.ko",
		"kernel/drivers/char/hw_random/virtio-rng.ko",
	} {
		r, ok := a.recs[base+p]
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		if b := a.content(t, base+p); !bytes.HasPrefix(b, []byte("\x7fELF")) || r.FileSize < 1000 {
			t.Errorf("%s: not a module (%d bytes)", p, r.FileSize)
		}
	}
	// ext4 and jbd2 have "softdep pre: crypto-crc32c"; some provider of
	// that alias must have come along.
	var crc32c []string
	for _, p := range []string{"kernel/crypto/crc32c_generic.ko", "kernel/arch/x86/crypto/crc32c-intel.ko"} {
		if _, ok := a.recs[base+p]; ok {
			crc32c = append(crc32c, p)
		}
	}
	if len(crc32c) == 0 {
		t.Error("no crc32c provider for ext4's softdep")
	}
	alias := string(a.content(t, base+"modules.alias"))
	if !strings.Contains(alias, "alias crypto-crc32c ") || strings.Contains(alias, " btrfs\n") {
		t.Error("modules.alias not filtered to the included modules")
	}
	if !strings.Contains(string(a.content(t, base+"modules.softdep")), "softdep ext4 pre: crypto-crc32c") {
		t.Error("ext4 softdep missing from modules.softdep")
	}
	if res.Modules < 20 || res.Size > 32<<20 {
		t.Errorf("%d modules, %d bytes: unexpected", res.Modules, res.Size)
	}

	// The synthetic reproducibility test fits in one zstd block; this
	// one spans many, with the encoder's concurrency in play.
	first, err := os.ReadFile(opts.Out)
	if err != nil {
		t.Fatal(err)
	}
	opts.Out = filepath.Join(dir, "again.img")
	if _, err := Build(opts, testLogger(new(bytes.Buffer))); err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(opts.Out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Error("two builds from the real tree differ")
	}
}
