package qemutests

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

var startingInit = regexp.MustCompile(`streamroot: switch: starting /`)

// rawReport returns the report's JSON fields, including the ones only the
// stream fixtures' init writes.
func rawReport(t *testing.T, vm *harness.VM) map[string]any {
	t.Helper()
	js, ok := harness.FindReport(vm.Console())
	if !ok {
		t.Fatal("no report line")
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatalf("report: %v", err)
	}
	return m
}

// reportAfterFill waits (at most wait) for a stream root booted with
// fixture.mode=afterfill to say the block daemon's fill is done, stops the
// web server, and returns the root's report, checked as the stream
// fixture's.
func reportAfterFill(t *testing.T, n *testNet, vm *harness.VM, wait time.Duration) *harness.Report {
	t.Helper()
	if err := vm.WaitForString("STREAMROOT-FILL-DONE", wait); err != nil {
		t.Fatal(err)
	}
	if err := n.web.Stop(); err != nil {
		t.Fatal(err)
	}
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	return r
}

// serveAlive gives the stream init something to poll: when it stops
// answering, the server is gone.
func serveAlive(t *testing.T, n *testNet) {
	t.Helper()
	p := n.ns.Dir + "/alive"
	if err := os.WriteFile(p, []byte("yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.web.AddFile(p, "alive"); err != nil {
		t.Fatal(err)
	}
}

// reportAfterInit waits (up to wait) for the real init to start, then for
// its report from the fixture root: seen is when the switch line came, so
// what a server sent by then is what the boot cost.
func reportAfterInit(t *testing.T, vm *harness.VM, wait time.Duration, fixture string) (*harness.Report, time.Time) {
	t.Helper()
	if _, err := vm.WaitFor(startingInit, wait); err != nil {
		t.Fatal(err)
	}
	seen := time.Now()
	r := vm.ExpectReport(t)
	checkRoot(t, r, fixture)
	return r, seen
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// Default (stream) mode: boot from the nbd device at once, fill the rest in
// the background; once the fill is complete the server is stopped and every
// file of the image still reads back correctly.
func TestStreamFillThenServerGone(t *testing.T) {
	t.Parallel()
	n, fx, url := streamNet(t, netOptions{})
	serveAlive(t, n)
	vm := n.boot(t, harness.BootOptions{
		Append:    "ip=dhcp root=live:" + url + " fixture.mode=afterfill",
		MemoryMiB: 1024,
		Timeout:   300 * time.Second,
	})
	r := reportAfterFill(t, n, vm, 240*time.Second)
	if !r.HasMount("squashfs", "/run/initramfs/squashfs") || !strings.Contains(r.Mounts, "/dev/nbd0 /run/initramfs/squashfs") {
		t.Errorf("the squashfs is not mounted from the block daemon's nbd device:\n%s", r.Mounts)
	}
	m := rawReport(t, vm)
	if m["server_gone"] != true {
		t.Fatalf("the guest still reached the server after it was stopped")
	}
	if m["tree_sha256"] != fx.TreeSHA256 {
		t.Errorf("digest over all files %v, want %s", m["tree_sha256"], fx.TreeSHA256)
	}
	if m["data_sha256"] != fx.DataSHA256 {
		t.Errorf("/data/random.bin %v, want %s", m["data_sha256"], fx.DataSHA256)
	}
	if !strings.Contains(vm.Console(), "the server is no longer needed") {
		t.Error("no fill-complete line from the block daemon")
	}
}

// Lazy mode with the server gone: a block never read before fails with an
// I/O error after streamroot.io.timeout, not a hang.
func TestLazyServerGoneGivesIOError(t *testing.T) {
	t.Parallel()
	n, fx, url := streamNet(t, netOptions{})
	serveAlive(t, n)
	vm := n.boot(t, harness.BootOptions{
		Append:  "ip=dhcp root=live:" + url + " streamroot.fetch=lazy streamroot.io.timeout=5 fixture.mode=lazyfail",
		Timeout: 300 * time.Second,
	})
	if err := vm.WaitForString("STREAMROOT-BOOTED", 200*time.Second); err != nil {
		t.Fatal(err)
	}
	sent := n.web.BytesSent("/stream.squashfs")
	if err := n.web.Stop(); err != nil {
		t.Fatal(err)
	}
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	m := rawReport(t, vm)
	if m["server_gone"] != true {
		t.Fatal("the guest still reached the server after it was stopped")
	}
	if m["lazy_read_ok"] != false {
		t.Fatal("reading never-fetched blocks with the server gone succeeded")
	}
	took := m["lazy_read_end"].(float64) - m["lazy_read_start"].(float64)
	t.Logf("the failing read took %.1f s (guest clock); %d of %d bytes were fetched by then", took, sent, fileSize(t, fx.Stream))
	if took < 4 || took > 90 {
		t.Errorf("the failing read took %.1f s; with streamroot.io.timeout=5 it must wait about that long per request, bounded", took)
	}
	if !strings.Contains(vm.Console(), "returning EIO to the kernel") {
		t.Error("the block daemon did not log why the read failed")
	}
	if sent >= fileSize(t, fx.Stream) {
		t.Errorf("lazy mode fetched %d bytes of a %d-byte image", sent, fileSize(t, fx.Stream))
	}
}

// A 1 GiB image of which the boot reads a few MiB: lazy and stream modes
// reach the real init after the server sent < 5 % of it; ram mode after all
// of it, verified against streamroot.sha256.
func TestHugeImage(t *testing.T) {
	t.Parallel()
	fx := env.StreamFixtures(t)
	size := fileSize(t, fx.Huge)
	for _, tc := range []struct {
		mode, extra string
		maxShare    float64
		minShare    float64
		memMiB      int
		warn        string
	}{
		{"lazy", "streamroot.fetch=lazy", 0.05, 0, 2560, ""},
		{"stream", "", 0.05, 0, 2560, ""},
		{"ram", "rd.live.ram=1 streamroot.sha256=" + fx.HugeSHA256, 1.01, 1, 2560, ""},
		// 1 GiB cannot be held in 1 GiB of RAM: lazy instead of an OOM.
		{"ram-lowmem", "rd.live.ram=1", 0.05, 0, 1024, "falling back to streamroot.fetch=lazy"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			n := setup(t, netOptions{})
			url := n.serve(t, "huge.squashfs", fx.Huge)
			vm := n.boot(t, harness.BootOptions{
				Append:    "ip=dhcp root=live:" + url + " " + tc.extra,
				MemoryMiB: tc.memMiB,
				Timeout:   400 * time.Second,
			})
			// The bytes that count are those sent before the real init
			// started, not those of the fill that follows it.
			_, seen := reportAfterInit(t, vm, 300*time.Second, "huge")
			before := sentBefore(n, "/huge.squashfs", seen)
			share := float64(before) / float64(size)
			t.Logf("%s: nginx had sent %d bytes (%.2f %% of %d) when the real init reported", tc.mode, before, 100*share, size)
			if share > tc.maxShare || share < tc.minShare {
				t.Errorf("%s: server sent %.2f %% of the image before the real init; want %.0f–%.0f %%", tc.mode, 100*share, 100*tc.minShare, 100*tc.maxShare)
			}
			if tc.mode == "ram" && !strings.Contains(vm.Console(), "whole-image sha256 verified") {
				t.Error("ram mode did not verify the whole image")
			}
			if tc.warn != "" && !strings.Contains(vm.Console(), tc.warn) {
				t.Errorf("no console warning %q", tc.warn)
			}
		})
	}
}

// root=live:…/live.iso (the Fedora/CentOS live layout: ISO ⊃
// LiveOS/squashfs.img ⊃ LiveOS/rootfs.img, over 1 GiB) in the default
// stream mode: only the ISO's metadata and the blocks that are read are
// fetched before the real init, no extraction step.
func TestISO(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	fx := env.StreamFixtures(t)
	url := n.serve(t, "live.iso", fx.ISO)
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url, MemoryMiB: 2560, Timeout: 300 * time.Second})
	r, seen := reportAfterInit(t, vm, 240*time.Second, "iso")
	for _, fs := range []string{"iso9660", "squashfs", "ext4"} {
		if !r.HasMount(fs, "") {
			t.Errorf("no %s layer mounted:\n%s", fs, r.Mounts)
		}
	}
	before := sentBefore(n, "/live.iso", seen)
	size := fileSize(t, fx.ISO)
	t.Logf("nginx sent %d bytes (%.2f %% of the %d-byte ISO) before the real init", before, 100*float64(before)/float64(size), size)
	if before > size/10 {
		t.Errorf("the ISO boot fetched %.1f %% before the real init; want < 10 %%", 100*float64(before)/float64(size))
	}
}

// The seed's NBD line against Debian's nbd-server, with a writable overlay
// (dracut's nbd module gives a read-only root), and the server restarted
// while the root is in use: the daemon reconnects.
func TestNBDRoot(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{noHTTP: true})
	fx := env.StreamFixtures(t)
	srv := harness.StartNBDServer(t, n.ns, map[string]string{"discovery": fx.Stream})
	vm := n.boot(t, harness.BootOptions{
		Append:  "ip=dhcp root=nbd:10.77.0.1:discovery:squashfs ro streamroot.fetch=lazy fixture.mode=sleepread",
		Timeout: 300 * time.Second,
	})
	if err := vm.WaitForString("STREAMROOT-BOOTED", 200*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	if !strings.Contains(r.Mounts, "/dev/nbd0 /run/initramfs/squashfs squashfs") {
		t.Errorf("root not from nbd:\n%s", r.Mounts)
	}
	m := rawReport(t, vm)
	if m["late_read_ok"] != true || m["data_sha256"] != fx.DataSHA256 {
		t.Errorf("after the nbd-server restart: read ok %v, data %v (want %s)", m["late_read_ok"], m["data_sha256"], fx.DataSHA256)
	}
	if !strings.Contains(vm.Console(), "reconnected to NBD server") {
		t.Error("the block daemon did not log a reconnect")
	}
}

// streamNet sets up a test network with o and serves the stream fixture
// on it as stream.squashfs: the network, the stream fixtures and the
// image's URL.
func streamNet(t *testing.T, o netOptions) (*testNet, *harness.StreamFixtures, string) {
	t.Helper()
	n := setup(t, o)
	fx := env.StreamFixtures(t)
	return n, fx, n.serve(t, "stream.squashfs", fx.Stream)
}
