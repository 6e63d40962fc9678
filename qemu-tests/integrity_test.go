package qemutests

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// pinned serves the stream fixture (or a corrupted copy of it) with the
// manifest of the good image, and returns the image URL and the manifest's
// kernel argument.
func pinned(t *testing.T, n *testNet, corruptAt int64) (string, string, int64) {
	t.Helper()
	fx := env.StreamFixtures(t)
	good, err := os.ReadFile(fx.Stream)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fx.Stream)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := manifest.Build(f, int64(len(good)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	data := m.Marshal()
	dir := t.TempDir()
	img := filepath.Join(dir, "stream.squashfs")
	if corruptAt >= 0 {
		good[corruptAt] ^= 0x40
	}
	if err := os.WriteFile(img, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img+".manifest", data, 0o644); err != nil {
		t.Fatal(err)
	}
	url := n.serve(t, "stream.squashfs", img)
	n.serve(t, "stream.squashfs.manifest", img+".manifest")
	return url, manifest.KernelArg(data), int64(len(good))
}

// A pinned manifest: every chunk is verified before the kernel sees it.
func TestManifestVerifiedBoot(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url, arg, _ := pinned(t, n, -1)
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url + " " + arg})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	if !strings.Contains(vm.Console(), "every chunk is verified against the manifest") {
		t.Error("the block daemon did not say it verifies chunks")
	}
}

// A corrupt chunk in ram mode stops the boot before anything is mounted,
// naming the chunk and its offset.
func TestManifestCorruptChunkRAM(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url, arg, _ := pinned(t, n, 20<<20+12345)
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, arg, "rd.live.ram=1")})
	vm.ExpectFailure(t, "fetch", "chunk 20", "bytes 20971520-", "stream.squashfs")
}

// In stream mode a corrupt chunk the boot does not read lets the root come
// up, but its bytes never reach the kernel: reading them fails.
func TestManifestCorruptChunkStream(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url, arg, _ := pinned(t, n, 20<<20+12345)
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url + " " + arg + " streamroot.io.timeout=10 fixture.mode=afterfill", Timeout: 240 * time.Second})
	// The fill stops at the bad chunk; the root sees that, the server goes
	// away, and the root hashes what it can read.
	if err := vm.WaitForString("STREAMROOT-FILL-DONE", 200*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n.web.Stop(); err != nil {
		t.Fatal(err)
	}
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	m := rawReport(t, vm)
	if m["data_sha256"] == env.StreamFixtures(t).DataSHA256 {
		t.Error("the root read the corrupted file without error: the bad chunk reached the kernel")
	}
	if !strings.Contains(vm.Console(), "refusing a corrupt chunk") || !strings.Contains(vm.Console(), "chunk 20 (bytes 20971520-") {
		t.Error("the block daemon did not name the refused chunk")
	}
}

// The manifest on the server does not match the pinned digest: refused
// before any mount.
func TestManifestDigestMismatch(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url, _, _ := pinned(t, n, -1)
	wrong := "streamroot.manifest=sha256:" + hex.EncodeToString(make([]byte, 32))
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, wrong)})
	vm.ExpectFailure(t, "fetch", "stream.squashfs.manifest")
	if strings.Contains(vm.Console(), "layers: mounted") {
		t.Error("something was mounted before the manifest was refused")
	}
}
