package qemutests

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/testfile"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// pinned serves the stream fixture (or a corrupted copy of it) with the
// manifest of the good image, and returns the image URL and the manifest's
// kernel argument.
func pinned(t *testing.T, n *testNet, corruptAt int64) (string, string, int64) {
	t.Helper()
	fx := env.StreamFixtures(t)
	good := testfile.Read(t, fx.Stream)
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
	reportAfterFill(t, n, vm, 200*time.Second)
	m := rawReport(t, vm)
	checkCorruptChunkRefused(t, vm, m)
}

// checkCorruptChunkRefused asserts that the kernel never received the bad
// chunk of pinned(…, 20 MiB + 12345): hashing the file over it failed (an
// empty digest: sha256sum got EIO; a wrong digest would mean corrupt bytes
// were read), and the daemon fetched it again, named the chunk and returned
// EIO for it.
func checkCorruptChunkRefused(t *testing.T, vm *harness.VM, m map[string]any) {
	t.Helper()
	if d := m["data_sha256"]; d != "" {
		t.Errorf("/data/random.bin hashed to %q: want a failed read (EIO), the bad chunk reached the kernel or was never read", d)
	}
	con := vm.Console()
	if !strings.Contains(con, "refusing a corrupt chunk") || !strings.Contains(con, "chunk 20 (bytes 20971520-") {
		t.Error("the block daemon did not name the refused chunk")
	}
	if !strings.Contains(con, "returning EIO to the kernel") {
		t.Error("the block daemon did not say it returned EIO for the refused chunk")
	}
	// One bad answer must not cost the chunk: it is fetched again (over
	// a new connection) before it is declared bad, and the log says so.
	if !strings.Contains(con, "fetching it again over a new connection") || !strings.Contains(con, "chunk declared bad") {
		t.Error("the block daemon did not fetch the corrupt chunk again before declaring it bad")
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

// Lazy mode with a corrupt chunk the boot does not need: the root comes up,
// and reading the file over the bad chunk fails; the daemon names the chunk
// and its offset. The kernel never receives the bad block.
func TestManifestCorruptChunkLazy(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url, arg, _ := pinned(t, n, 20<<20+12345)
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url + " " + arg + " streamroot.fetch=lazy streamroot.io.timeout=10 fixture.mode=hash"})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	checkCorruptChunkRefused(t, vm, rawReport(t, vm))
}

// A squashfs cut short (a truncated copy) is refused before it is mounted.
func TestTruncatedSquashfs(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	data := testfile.Read(t, n.fx.Plain)
	p := filepath.Join(t.TempDir(), "cut.squashfs")
	if err := os.WriteFile(p, data[:len(data)/2&^4095], 0o644); err != nil {
		t.Fatal(err)
	}
	url := n.serve(t, "cut.squashfs", p)
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, "rd.retry=10")})
	vm.ExpectFailure(t, "layers", "cut.squashfs", "truncated")
}

// The image is replaced on the server in the middle of a ram-mode download:
// the boot stops with "image changed", never mixing the two files' bytes.
func TestImageReplacedMidDownload(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{nginx: harness.NginxOptions{LimitRate: "2m"}})
	url := n.serve(t, "big.squashfs", n.fx.Big)
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, "rd.live.ram=1", "rd.retry=20"), Timeout: 240 * time.Second})
	if _, err := vm.WaitFor(progressLine, 180*time.Second); err != nil {
		t.Fatalf("no fetch progress line: %v", err)
	}
	replaceServed(t, n, "big.squashfs", n.fx.Plain)
	vm.ExpectFailure(t, "fetch", "image changed", "big.squashfs")
}

// replaceServed swaps the docroot's entry name (not the cached fixture it
// links to) for a copy of with, atomically, as an operator's copy would.
func replaceServed(t *testing.T, n *testNet, name, with string) {
	t.Helper()
	other := testfile.Read(t, with)
	tmp := filepath.Join(n.web.Docroot, "."+name+".new")
	if err := os.WriteFile(tmp, other, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.web.Docroot, name)); err != nil {
		t.Fatal(err)
	}
}

// The image is replaced while the block daemon streams it, before the root
// is mounted (stream mode, the default): the daemon stops fetching and the
// boot stops with "image changed" in the layers stage, instead of an
// anonymous I/O error or a root assembled from two files.
func TestImageReplacedMidStream(t *testing.T) {
	t.Parallel()
	n, _, url := streamNet(t, netOptions{nginx: harness.NginxOptions{LimitRate: "512k"}})
	seen := len(n.web.Requests("/stream.squashfs")) // a rerun (-count) appends to the same log
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, "rd.retry=20"), Timeout: 240 * time.Second})
	// The daemon's first request pins the image; at 512 KiB/s the boot's
	// demand reads (1 MiB chunks) take seconds more, so the swap lands
	// before the root is mounted.
	deadline := time.Now().Add(200 * time.Second)
	for len(n.web.Requests("/stream.squashfs")) == seen {
		if time.Now().After(deadline) || vm.Exited() {
			t.Fatal("the guest never asked for the image")
		}
		time.Sleep(20 * time.Millisecond)
	}
	replaceServed(t, n, "stream.squashfs", n.fx.Plain)
	vm.ExpectFailure(t, "layers", "stream.squashfs", "image changed", "block daemon stopped reading the image")
	if !strings.Contains(vm.Console(), "the source failed for good") {
		t.Error("the block daemon did not say it stopped fetching")
	}
}

// The image is replaced after the switch, while stream mode's background
// fill runs: the fill stops at the first answer from the new file, the
// chunks fetched before still serve the root, and a read of a block never
// fetched fails at once with an I/O error instead of returning the new
// file's bytes.
func TestImageReplacedDuringFill(t *testing.T) {
	t.Parallel()
	// nginx sends the first second's worth of a response at once, so at
	// 256 KiB/s a 1 MiB chunk takes 3 s: the 4 fill workers need half a
	// minute to reach the blocks the init reads 10 s after it started.
	n, fx, url := streamNet(t, netOptions{nginx: harness.NginxOptions{LimitRate: "256k"}})
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url + " fixture.mode=sleepread", Timeout: 300 * time.Second})
	if err := vm.WaitForString("STREAMROOT-BOOTED", 200*time.Second); err != nil {
		t.Fatal(err)
	}
	replaceServed(t, n, "stream.squashfs", n.fx.Plain)
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	m := rawReport(t, vm)
	con := vm.Console()
	if !strings.Contains(con, "background fill failed: the image on the server is not the one this node booted") ||
		!strings.Contains(con, "image changed on the server") {
		t.Error("the block daemon did not say the fill stopped because the image changed")
	}
	if m["late_read_ok"] != false {
		t.Errorf("reading blocks never fetched before the change succeeded (late_read_ok %v)", m["late_read_ok"])
	}
	// A digest that is neither the pinned file's nor empty (a failed read)
	// would be bytes of the new file mixed into the old.
	if d := m["data_sha256"]; d != "" && d != fx.DataSHA256 {
		t.Errorf("/data/random.bin reads as %v: neither the booted image (%s) nor an I/O error", d, fx.DataSHA256)
	}
	if fault := r.RunInitramfs; !strings.Contains(fault, "blockd.fault") {
		t.Errorf("no /run/initramfs/blockd.fault for the booted system:\n%s", fault)
	}
}

// make initramfs IMAGE_MANIFEST=…: the digest baked into the initramfs pins
// the image though the kernel line names no manifest.
func TestBakedManifest(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url, arg, _ := pinned(t, n, 20<<20+12345)
	initrd := buildInitramfs(t, "-manifest-digest", strings.TrimPrefix(arg, "streamroot.manifest=sha256:"))
	vm := n.boot(t, harness.BootOptions{Initramfs: initrd, Append: harness.FailureCmdline("live:"+url, "rd.live.ram=1")})
	vm.ExpectFailure(t, "fetch", "chunk 20", "bytes 20971520-")
	if !strings.Contains(vm.Console(), "image manifest pinned by the initramfs") {
		t.Error("the console does not say the initramfs pinned the manifest")
	}
}
