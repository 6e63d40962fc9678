package qemutests

import (
	"encoding/binary"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
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

// A node powered off while the block daemon's background fill is receiving
// must power off. Linux's virtio-net before 0d0eff39ceb3 (Debian 12's 6.1
// among them) spins for ever in virtnet_poll_cleantx when a receive
// interrupt follows device_shutdown(), which the fill's traffic makes
// likely: the guest hangs in ksoftirqd instead of powering off. The init
// loads virtio_net with napi_tx=0 (unless the kernel line says otherwise),
// which keeps the driver out of that loop. From the switch to the real
// init on (its report and poweroff follow at once), the host also pings the
// guest as fast as a bounded loop allows, so that receive interrupts keep
// coming through the shutdown whatever the fill's pace.
func TestPoweroffDuringFill(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	fx := env.StreamFixtures(t)
	url := n.serve(t, "huge.squashfs", fx.Huge)
	vm := n.boot(t, harness.BootOptions{
		Append:    "ip=dhcp root=live:" + url,
		MemoryMiB: 2560,
		Timeout:   400 * time.Second,
	})
	lease, err := n.dhcp.WaitLease(harness.BootMAC, 300*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Started at the switch, not at the report: on a quiet host the guest
	// can be gone within a millisecond of its report.
	if err := vm.WaitForString("switch: starting ", 300*time.Second); err != nil {
		t.Fatal(err)
	}
	sent := floodPing(t, n.ns, lease.IP, vm.Done())
	r := vm.ExpectReport(t)
	checkRoot(t, r, "huge")
	if !strings.Contains(vm.Console(), "reboot: Power down") {
		t.Error("the guest did not reach the kernel's power-down")
	}
	var during int64
	for _, e := range n.web.Requests("/huge.squashfs") {
		during += e.BodyBytes
	}
	t.Logf("echo requests sent to the guest between the switch and its exit: %d; image bytes sent: %d of %d", sent.Load(), during, fileSize(t, fx.Huge))
	if sent.Load() == 0 {
		t.Error("no echo request was sent while the guest shut down: the shutdown was not under traffic")
	}
	if during >= fileSize(t, fx.Huge) {
		t.Error("the fill had completed before the poweroff: the shutdown was not during the fill")
	}
}

// floodPing sends ICMP echo requests with 1 KiB of payload to ip from
// inside ns, 16 per millisecond at most, until done closes, the test ends
// or 5 minutes pass, and returns the count so far. Each request makes the
// guest receive and send (its echo reply), as a download does.
func floodPing(t *testing.T, ns *harness.Netns, ip string, done <-chan struct{}) *atomic.Int64 {
	t.Helper()
	var c net.PacketConn
	if err := ns.Do(func() error {
		var err error
		c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	dst := &net.IPAddr{IP: net.ParseIP(ip)}
	var sent atomic.Int64
	stop, stopped := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-stopped })
	go func() {
		defer close(stopped)
		defer c.Close()
		go func() { // drain the replies so the socket's queue stays short
			b := make([]byte, 2048)
			for {
				if _, _, err := c.ReadFrom(b); err != nil {
					return
				}
			}
		}()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		limit := time.After(5 * time.Minute)
		for seq := 0; ; {
			for range 16 { // a batch at once, then one a millisecond
				seq++
				if _, err := c.WriteTo(echoRequest(seq), dst); err == nil {
					sent.Add(1)
				}
			}
			select {
			case <-done:
				return
			case <-stop:
				return
			case <-limit:
				return
			case <-tick.C:
			}
		}
	}()
	return &sent
}

// echoRequest is an ICMP echo request (type 8) with 1 KiB of payload.
func echoRequest(seq int) []byte {
	b := make([]byte, 8+1024)
	b[0] = 8
	binary.BigEndian.PutUint16(b[4:], 0x5352) // identifier: "SR"
	binary.BigEndian.PutUint16(b[6:], uint16(seq))
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[2:], ^uint16(sum))
	return b
}
