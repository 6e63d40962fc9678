package qemutests

import (
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// root= names a URL that redirects to another host: the block daemon
// follows the redirect once, before switch_root, resolving the new host
// while the initramfs still has a resolver; every range (the background
// fill after the switch included, when the daemon's root has no
// resolv.conf) goes to the pinned final URL, and the image reads back whole.
func TestRedirectToOtherHost(t *testing.T) {
	t.Parallel()
	env.Require(t)
	n := &testNet{fx: env.Fixtures(t)}
	n.ns = env.NewNetns(t)
	n.dhcp = harness.StartDnsmasq(t, n.ns, harness.DnsmasqOptions{DNS: true, Extra: []string{
		"--local=/lab/", "--address=/img.lab/10.77.0.1", "--dhcp-option=option:dns-server,10.77.0.1", "--domain=lab",
	}})
	n.web = harness.StartNginx(t, n.ns, harness.NginxOptions{
		Extra: "location = /boot.squashfs { return 302 http://img.lab/stream.squashfs; }",
	})
	fx := env.StreamFixtures(t)
	n.serve(t, "stream.squashfs", fx.Stream)
	serveAlive(t, n)
	vm := n.boot(t, harness.BootOptions{
		Append:    "ip=dhcp root=live:http://10.77.0.1/boot.squashfs fixture.mode=afterfill",
		MemoryMiB: 1024,
		Timeout:   300 * time.Second,
	})
	if err := vm.WaitForString("STREAMROOT-FILL-DONE", 240*time.Second); err != nil {
		t.Fatal(err)
	}
	redirects, ranges := len(n.web.Requests("/boot.squashfs")), len(n.web.Requests("/stream.squashfs"))
	if err := n.web.Stop(); err != nil {
		t.Fatal(err)
	}
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	m := rawReport(t, vm)
	if m["tree_sha256"] != fx.TreeSHA256 || m["data_sha256"] != fx.DataSHA256 {
		t.Errorf("the image read back as tree %v data %v, want %s %s", m["tree_sha256"], m["data_sha256"], fx.TreeSHA256, fx.DataSHA256)
	}
	if redirects != 1 {
		t.Errorf("the redirecting URL was asked %d times, want once (when the daemon opened the image)", redirects)
	}
	if ranges < 2 {
		t.Errorf("only %d requests reached the final URL", ranges)
	}
	if con := vm.Console(); !strings.Contains(con, "the server is no longer needed") || !strings.Contains(con, "http://img.lab/stream.squashfs") {
		t.Error("no fill-complete line, or the daemon did not say where the redirect led")
	}
}
