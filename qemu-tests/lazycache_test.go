package qemutests

import (
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// Lazy mode with streamroot.cache=1: room for one 1 MiB chunk, kept and
// in flight together, while the kernel issues many reads at once. The root
// boots and the whole 48 MiB /data/random.bin, read through that cache,
// hashes right: demand reads take turns instead of deadlocking or failing,
// and the cache does not thrash (the server sends each byte about once).
func TestLazySmallCacheBound(t *testing.T) {
	t.Parallel()
	n, fx, url := streamNet(t, netOptions{})
	vm := n.boot(t, harness.BootOptions{
		Append:    "ip=dhcp root=live:" + url + " streamroot.fetch=lazy streamroot.cache=1 fixture.mode=hash",
		MemoryMiB: 1024,
		Timeout:   400 * time.Second,
	})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	if !strings.Contains(r.Mounts, "/dev/nbd0 /run/initramfs/squashfs") {
		t.Errorf("the squashfs is not mounted from the block daemon's nbd device:\n%s", r.Mounts)
	}
	m := rawReport(t, vm)
	if m["data_sha256"] != fx.DataSHA256 {
		t.Errorf("/data/random.bin read through a one-chunk cache: sha256 %v, want %s", m["data_sha256"], fx.DataSHA256)
	}
	console := vm.Console()
	if !strings.Contains(console, "lazy cache bound") || !strings.Contains(console, "1.0 MiB") {
		t.Error("the block daemon did not log the lazy cache bound from streamroot.cache=1")
	}
	for _, bad := range []string{"no room in the lazy cache", "returning EIO to the kernel", "declared bad"} {
		if strings.Contains(console, bad) {
			t.Errorf("console has %q", bad)
		}
	}
	sent, size := n.web.BytesSent("/stream.squashfs"), fileSize(t, fx.Stream)
	t.Logf("the server sent %d bytes for a %d-byte image", sent, size)
	if sent < 48<<20 {
		t.Errorf("the server sent %d bytes, less than the 48 MiB file hashed", sent)
	}
	if sent > 4*size {
		t.Errorf("the server sent %d bytes for a %d-byte image: the small cache thrashes", sent, size)
	}
}
