package qemutests

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// The block daemon is a root storage daemon: systemd's full shutdown (stop
// units, kill every process, unmount) must leave it alone, or a lazily read
// root would fail under the shutdown itself.
func TestBlockDaemonSurvivesSystemdShutdown(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	fixture := env.LeaseFixture(t, harness.FixtureNetworkd)
	url := n.serve(t, "debian-networkd.squashfs", fixture)
	vm := n.boot(t, harness.BootOptions{
		Append:    "ip=dhcp root=live:" + url + " streamroot.fetch=lazy fixture.shutdown=graceful",
		MemoryMiB: 1536,
		Timeout:   400 * time.Second,
	})
	if _, err := vm.WaitFor(regexp.MustCompile(`STREAMROOT-REPORT `), 300*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(200 * time.Second); err != nil {
		t.Fatal(err)
	}
	con := vm.Console()
	if !strings.Contains(con, "reboot: Power down") {
		t.Error("the guest did not reach the kernel's power-down")
	}
	for _, bad := range []string{"I/O error", "SQUASHFS error", "the kernel closed the device", "Killing process"} {
		for _, line := range strings.Split(con, "\n") {
			if strings.Contains(line, bad) && (bad != "Killing process" || strings.Contains(line, "streamroot")) {
				t.Errorf("shutdown: %s", strings.TrimSpace(line))
			}
		}
	}
	// The full shutdown ran (units stopped, filesystems unmounted, then
	// systemd-shutdown's kill spree): the daemon was spared, not bypassed.
	for _, want := range []string{"Unmount All Filesystems", "System Power Off"} {
		if !strings.Contains(con, want) {
			t.Errorf("no %q on the console: the shutdown was not the full one", want)
		}
	}
}
