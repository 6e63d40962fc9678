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

// What each pin protects (docs/kernel-args.md, "Integrity"): a whole-image hash
// (streamroot.sha256=) never lets bytes that fail it reach the kernel
// unnoticed, in any fetch mode.

// fileSHA256 is the hex SHA-256 of the file at p.
func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	sum, err := harness.SHA256File(p)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// sentBefore is what nginx sent of path in requests that ended by seen.
func sentBefore(n *testNet, path string, seen time.Time) int64 {
	var before int64
	for _, e := range n.web.Requests(path) {
		if !e.Time.After(seen) {
			before += e.BodyBytes
		}
	}
	return before
}

// The default (stream) mode with a whole-image hash and no manifest boots
// as ram mode: the whole image is downloaded and verified before anything
// is mounted, and the console says why.
func TestPinSHA256DefaultBootsFromRAM(t *testing.T) {
	t.Parallel()
	n, fx, url := streamNet(t, netOptions{})
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url + " streamroot.sha256=" + fileSHA256(t, fx.Stream) + " fixture.mode=hash"})
	r, seen := reportAfterInit(t, vm, 240*time.Second, "stream")
	size := fileSize(t, fx.Stream)
	if before := sentBefore(n, "/stream.squashfs", seen); before < size {
		t.Errorf("nginx had sent %d of %d bytes when the real init started: the image was not fetched whole first", before, size)
	}
	if strings.Contains(r.Mounts, "/dev/nbd") {
		t.Errorf("the root is served by the block daemon, not from RAM:\n%s", r.Mounts)
	}
	if m := rawReport(t, vm); m["data_sha256"] != fx.DataSHA256 {
		t.Errorf("/data/random.bin %v, want %s", m["data_sha256"], fx.DataSHA256)
	}
	con := vm.Console()
	note := strings.Index(con, "streamroot.sha256= can only be checked on the whole image: fetching it into RAM first")
	verified := strings.Index(con, "whole-image sha256 verified")
	mounted := strings.Index(con, "root assembled")
	switch {
	case note < 0:
		t.Error("the console does not say why the image is fetched into RAM")
	case verified < 0:
		t.Error("the console does not say the whole image was verified")
	case mounted >= 0 && verified > mounted:
		t.Error("the root was assembled before the whole image was verified")
	}
	if !strings.Contains(con, "streamroot.manifest=") {
		t.Error("the console does not point at manifests")
	}
}

// The default mode with a wrong whole-image hash: BOOT FAILED in the fetch
// stage, nothing mounted.
func TestPinSHA256DefaultWrong(t *testing.T) {
	t.Parallel()
	n, fx, url := streamNet(t, netOptions{})
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, "streamroot.sha256="+fx.HugeSHA256)})
	vm.ExpectFailure(t, "fetch", "stream.squashfs", "streamroot.sha256 wants "+fx.HugeSHA256)
	checkConsoleLacks(t, vm, "the image was used before its hash was refused", "root assembled", "layers: mounted", "block daemon started")
}

// An explicit streaming mode with a whole-image hash and no manifest cannot
// keep the promise: refused in the config stage, before the network is
// touched, naming both arguments and the way out.
func TestPinSHA256StreamingRefused(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"lazy", "stream"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			n, fx, url := streamNet(t, netOptions{})
			vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url,
				"streamroot.fetch="+mode, "streamroot.sha256="+fileSHA256(t, fx.Stream))})
			vm.ExpectFailure(t, "config", "streamroot.fetch="+mode, "streamroot.sha256=",
				"streamroot manifest IMAGE", "streamroot.manifest=sha256:")
			if reqs := n.web.Requests("/stream.squashfs"); len(reqs) != 0 {
				t.Errorf("the guest asked for the image %d times before refusing the pins", len(reqs))
			}
		})
	}
}

// A whole-image hash with no manifest, and an image that does not fit in
// RAM: refused (the size, the memory, the hint), not streamed unverified.
func TestPinSHA256TooBigForRAM(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	fx := env.StreamFixtures(t)
	url := n.serve(t, "huge.squashfs", fx.Huge)
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, "streamroot.sha256="+fx.HugeSHA256), MemoryMiB: 1024})
	vm.ExpectFailure(t, "fetch", "huge.squashfs", "does not fit in RAM", "MiB available", "streamroot.manifest=")
	if sent, size := n.web.BytesSent("/huge.squashfs"), fileSize(t, fx.Huge); sent > size/20 {
		t.Errorf("nginx sent %d of %d bytes before the boot was refused", sent, size)
	}
	checkConsoleLacks(t, vm, "the image was to be streamed unverified", "falling back to streamroot.fetch=lazy")
}

// A manifest and a whole-image hash that pin different images: refused
// before anything is mounted, instead of booting and failing after the fill.
func TestPinManifestDisagreesWithSHA256(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	fx := env.StreamFixtures(t)
	url, arg, _ := pinned(t, n, -1)
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, arg, "streamroot.sha256="+fx.HugeSHA256)})
	vm.ExpectFailure(t, "fetch", "streamroot.sha256=", "streamroot.manifest=", fx.HugeSHA256)
	checkConsoleLacks(t, vm, "the root was assembled with pins that disagree", "root assembled")
}

// Stream mode with a manifest whose whole-image line (and the kernel line's
// streamroot.sha256=) is another image's: every chunk passes, the root
// boots, then the hash after the fill fails. That is permanent: the daemon
// stops serving, reads of blocks never read fail with EIO, the fault is in
// blockd.fault and on the console.
func TestPinSHA256MismatchAfterFillRevokes(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	fx := env.StreamFixtures(t)
	f, err := os.Open(fx.Stream)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := manifest.Build(f, fileSize(t, fx.Stream), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	other, err := hex.DecodeString(fx.HugeSHA256)
	if err != nil || len(other) != 32 {
		t.Fatalf("huge.squashfs digest %q", fx.HugeSHA256)
	}
	copy(m.SHA256[:], other)
	data := m.Marshal()
	mp := filepath.Join(t.TempDir(), "stream.squashfs.manifest")
	if err := os.WriteFile(mp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	url := n.serve(t, "stream.squashfs", fx.Stream)
	n.serve(t, "stream.squashfs.manifest", mp)
	vm := n.boot(t, harness.BootOptions{
		Append:  "ip=dhcp root=live:" + url + " " + manifest.KernelArg(data) + " streamroot.sha256=" + fx.HugeSHA256 + " fixture.mode=afterfill",
		Timeout: 300 * time.Second,
	})
	if err := vm.WaitForString("STREAMROOT-FILL-DONE", 240*time.Second); err != nil {
		t.Fatal(err)
	}
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	rep := rawReport(t, vm)
	if d := rep["data_sha256"]; d != "" {
		t.Errorf("/data/random.bin (never read before the fill) hashed to %q after the whole-image hash failed: want EIO", d)
	}
	if d := rep["tree_sha256"]; d == fx.TreeSHA256 {
		t.Error("every file still read back after the whole-image hash failed")
	}
	con := vm.Console()
	if !strings.Contains(con, "every chunk is verified against the manifest") {
		t.Error("the block daemon did not verify chunks")
	}
	if !strings.Contains(con, "blockd: ERROR: background fill failed: the whole image does not match streamroot.sha256=") ||
		!strings.Contains(con, "streamroot.sha256 wants "+fx.HugeSHA256) {
		t.Error("no console ERROR line saying the whole-image hash failed")
	}
	if !strings.Contains(con, "returning EIO to the kernel") {
		t.Error("the block daemon did not say it returned EIO")
	}
	if strings.Contains(con, "the server is no longer needed") {
		t.Error("the daemon claimed a complete fill for an image that failed its hash")
	}
	if !strings.Contains(r.RunInitramfs, "blockd.fault") {
		t.Errorf("no /run/initramfs/blockd.fault for the booted system:\n%s", r.RunInitramfs)
	}
}
