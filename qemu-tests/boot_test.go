// Package qemutests boots the streamroot initramfs in QEMU against real
// peers (dnsmasq, nginx) in a network namespace per test, and asserts on what
// the booted root reports and on what the peers saw.
//
// make test sets STREAMROOT_KERNEL, STREAMROOT_INITRAMFS and STREAMROOT_CACHE
// and runs this as root. Without STREAMROOT_KERNEL every test skips.
package qemutests

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	env = harness.NewEnv()
	code := m.Run()
	env.Close()
	os.Exit(code)
}

const otherMAC = "52:54:00:aa:00:01" // a NIC the seed's BOOTIF= does not name

// testNet is one test's namespace with its servers.
type testNet struct {
	ns   *harness.Netns
	dhcp *harness.Dnsmasq // nil without DHCP
	web  *harness.Nginx   // nil without HTTP
	fx   *harness.Fixtures
}

type netOptions struct {
	noDHCP bool
	noHTTP bool
	dhcp   harness.DnsmasqOptions
	nginx  harness.NginxOptions
}

func setup(t *testing.T, o netOptions) *testNet {
	t.Helper()
	env.Require(t)
	n := &testNet{fx: env.Fixtures(t)}
	n.ns = env.NewNetns(t)
	if !o.noDHCP {
		n.dhcp = harness.StartDnsmasq(t, n.ns, o.dhcp)
	}
	if !o.noHTTP {
		n.web = harness.StartNginx(t, n.ns, o.nginx)
	}
	return n
}

// serve puts a fixture into the docroot and returns its URL.
func (n *testNet) serve(t *testing.T, name, fixture string) string {
	t.Helper()
	if err := n.web.AddFile(fixture, name); err != nil {
		t.Fatal(err)
	}
	return n.web.URL(name)
}

func (n *testNet) boot(t *testing.T, opts harness.BootOptions) *harness.VM {
	t.Helper()
	opts.Netns = n.ns
	return env.Boot(t, opts)
}

// bootSeed serves the image at path as name, boots it with the seed's
// line and returns the report of its root, checked as fixture's.
func (n *testNet) bootSeed(t *testing.T, name, path, fixture string) *harness.Report {
	t.Helper()
	url := n.serve(t, name, path)
	vm := n.boot(t, harness.BootOptions{Append: harness.SeedCmdline(url)})
	r := vm.ExpectReport(t)
	checkRoot(t, r, fixture)
	return r
}

// checkConsoleLacks fails t for each of lines that is on vm's console,
// saying why it must not be there.
func checkConsoleLacks(t *testing.T, vm *harness.VM, why string, lines ...string) {
	t.Helper()
	con := vm.Console()
	for _, l := range lines {
		if strings.Contains(con, l) {
			t.Errorf("%q on the console: %s", l, why)
		}
	}
}

// checkRoot asserts what every successful boot must show: the fixture's
// REPORT INIT ran as PID 1 on a writable overlay.
func checkRoot(t *testing.T, r *harness.Report, fixture string) {
	t.Helper()
	if r.PID != 1 {
		t.Errorf("the root's init ran as pid %d, want 1", r.PID)
	}
	if r.Fixture != fixture {
		t.Errorf("booted fixture %q, want %q", r.Fixture, fixture)
	}
	if !r.Writable {
		t.Errorf("/ is not writable")
	}
	if r.RootFSType != "overlay" {
		t.Errorf("/ is %q, want overlay", r.RootFSType)
	}
	for _, m := range []string{"/proc", "/sys", "/dev", "/run"} {
		if !slices.Contains(r.Premounted, m) {
			t.Errorf("%s was not mounted when the root's init started (premounted: %v)", m, r.Premounted)
		}
	}
}

// checkLease asserts that dnsmasq holds exactly one lease, for mac, with the
// client id 01+MAC, and that the guest has its address on the link of mac.
func checkLease(t *testing.T, dhcp *harness.Dnsmasq, r *harness.Report, mac string) harness.Lease {
	t.Helper()
	return checkLeaseOn(t, dhcp, r, mac, mac)
}

// checkLeaseOn is checkLease with the address on link (a name or a MAC):
// a bond, bridge or VLAN carries its port's MAC, so the MAC alone does not
// name the link that holds the address.
func checkLeaseOn(t *testing.T, dhcp *harness.Dnsmasq, r *harness.Report, mac, link string) harness.Lease {
	t.Helper()
	leases, err := dhcp.Leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 1 {
		t.Fatalf("dnsmasq holds %d leases, want 1: %+v\nlog:\n%s", len(leases), leases, dhcp.Log())
	}
	l := leases[0]
	if l.MAC != mac {
		t.Errorf("lease for %s, want %s", l.MAC, mac)
	}
	if want := "01:" + mac; l.ClientID != want {
		t.Errorf("lease client id %q, want %q (dracut/NetworkManager's 01+MAC)", l.ClientID, want)
	}
	if got := r.IPv4On(link); !slices.Contains(got, l.IP) {
		t.Errorf("guest has %v on the link of %s (%q), want the leased %s\naddrs:\n%s", got, link, r.LinkName(link), l.IP, r.Addrs)
	}
	return l
}

func TestPlainSquashfs(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	r := n.bootSeed(t, "plain.squashfs", n.fx.Plain, "plain")
	if !r.HasMount("squashfs", "") {
		t.Errorf("no squashfs mount:\n%s", r.Mounts)
	}
	for _, arg := range []string{"proxy.url=https://FOREMAN", "proxy.type=foreman"} {
		if !strings.Contains(r.Cmdline, arg) {
			t.Errorf("the root's /proc/cmdline lacks %s: %q", arg, r.Cmdline)
		}
	}
	checkLease(t, n.dhcp, r, harness.BootMAC)

	reqs := n.web.Requests("/plain.squashfs")
	if len(reqs) == 0 {
		t.Fatal("nginx served no /plain.squashfs request")
	}
	for _, e := range reqs {
		if e.Status != 200 && e.Status != 206 {
			t.Errorf("nginx answered %d to %s %s (Range %q)", e.Status, e.Method, e.URI, e.Range)
		}
	}
	st, err := os.Stat(n.fx.Plain)
	if err != nil {
		t.Fatal(err)
	}
	sent := n.web.BytesSent("/plain.squashfs")
	if sent < st.Size() {
		t.Errorf("nginx sent %d body bytes of /plain.squashfs, less than its %d bytes", sent, st.Size())
	}
	t.Logf("nginx: %d requests, %d body bytes for a %d-byte image", len(reqs), sent, st.Size())
}

func TestLiveOSRootfsImg(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	r := n.bootSeed(t, "liveos.squashfs", n.fx.LiveOS, "liveos")
	if !r.HasMount("ext4", "") || !r.HasMount("squashfs", "") {
		t.Errorf("want an ext4 (LiveOS/rootfs.img) and a squashfs mount:\n%s", r.Mounts)
	}
	checkLease(t, n.dhcp, r, harness.BootMAC)
}

func TestBootIFPicksSecondNIC(t *testing.T) {
	t.Parallel()
	bootOnSecondNIC(t, harness.SeedCmdline)
}

// bootOnSecondNIC boots with a first NIC on br1, where no DHCP server
// answers, and the boot NIC second, and checks the second got the lease.
func bootOnSecondNIC(t *testing.T, cmdline func(url string) string) {
	t.Helper()
	n := setup(t, netOptions{})
	url := n.serve(t, "plain.squashfs", n.fx.Plain)
	vm := n.boot(t, harness.BootOptions{
		NICs: []harness.NIC{
			{MAC: otherMAC, Bridge: harness.Bridge1}, // first NIC: no DHCP server on br1
			{MAC: harness.BootMAC, Bridge: harness.Bridge0},
		},
		Append: cmdline(url),
	})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	checkLease(t, n.dhcp, r, harness.BootMAC)
	if r.LinkName(otherMAC) == "" {
		t.Errorf("the guest does not show the first NIC %s:\n%s", otherMAC, r.Links)
	}
	if got := r.IPv4On(otherMAC); len(got) != 0 {
		t.Errorf("the first NIC (not BOOTIF) has IPv4 addresses %v", got)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url := n.web.URL("missing.squashfs")
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, "rd.retry=10")})
	vm.ExpectFailure(t, "fetch", url, "404")
	reqs := n.web.Requests("/missing.squashfs")
	if len(reqs) == 0 {
		t.Fatal("nginx never saw a request for /missing.squashfs")
	}
	for _, e := range reqs {
		if e.Status != 404 {
			t.Errorf("nginx answered %d to %s %s", e.Status, e.Method, e.URI)
		}
	}
	// Asking again cannot make the file appear: a 404 is not retried.
	if len(reqs) != 1 {
		t.Errorf("%d requests for the missing file, want 1 (a 404 must not be retried)", len(reqs))
	}
}

var progressLine = regexp.MustCompile(`streamroot: fetch: [0-9.]+ [KMGT]?i?B / [0-9.]+ [KMGT]?i?B`)

func TestServerRestartMidDownload(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{nginx: harness.NginxOptions{LimitRate: "2m"}})
	url := n.serve(t, "big.squashfs", n.fx.Big)
	vm := n.boot(t, harness.BootOptions{
		// dracut's rd.live.ram=1: the whole image is downloaded before the
		// mount, which is the transfer this test interrupts.
		Append:  harness.SeedCmdline(url) + " rd.live.ram=1",
		Timeout: 240 * time.Second, // 48 MiB at 2 MB/s per connection, and a hash of it under TCG
	})
	line, err := vm.WaitFor(progressLine, 180*time.Second)
	if err != nil {
		t.Fatalf("no fetch progress line: %v", err)
	}
	t.Logf("first progress line: %s", line)
	if err := n.web.Stop(); err != nil {
		t.Fatal(err)
	}
	before := n.web.BytesSent("/big.squashfs")
	t.Logf("nginx killed; it had completed requests for %d body bytes (requests in flight are not logged)", before)
	time.Sleep(3 * time.Second)
	restarted := time.Now()
	if err := n.web.Start(); err != nil {
		t.Fatal(err)
	}

	r := vm.ExpectReport(t)
	checkRoot(t, r, "big")
	if r.DataSHA256 != n.fx.BigDataSHA256 {
		t.Errorf("/data/random.bin sha256 %q, want %s", r.DataSHA256, n.fx.BigDataSHA256)
	}
	var after int
	for _, e := range n.web.Requests("/big.squashfs") {
		if !e.Time.Before(restarted) {
			after++
		}
	}
	st, _ := os.Stat(n.fx.Big)
	t.Logf("nginx: %d body bytes logged for /big.squashfs (%d-byte image), %d requests after the restart",
		n.web.BytesSent("/big.squashfs"), st.Size(), after)
	if after == 0 {
		t.Errorf("no request reached nginx after its restart: the download finished before the kill, so this test tested nothing (lower limit_rate)")
	}
}

func TestNotSquashfs(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url := n.serve(t, "notsquash.img", n.fx.NotSquash)
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, "rd.retry=10")})
	vm.ExpectFailure(t, "layers", "notsquash.img")
}

func TestMalformedRoot(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{noHTTP: true})
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:ftp://10.77.0.1/x.img", "rd.retry=10")})
	vm.ExpectFailure(t, "config", "root=live:ftp://10.77.0.1/x.img")
	// The config stage comes before the network (design §1).
	if leases, _ := n.dhcp.Leases(); len(leases) != 0 {
		t.Errorf("a bad root= should fail before DHCP; dnsmasq leased %+v", leases)
	}
}

func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{noHTTP: true}) // nothing listens on 10.77.0.1:8081
	vm := n.boot(t, harness.BootOptions{
		Append: harness.FailureCmdline("live:http://10.77.0.1:8081/plain.squashfs", "rd.retry=10", "rd.net.timeout.dhcp=10"),
	})
	vm.ExpectFailure(t, "fetch", "10.77.0.1:8081")
	if _, ok, _ := n.dhcp.LeaseFor(harness.BootMAC); !ok {
		t.Errorf("no DHCP lease: the network stage should have succeeded before the fetch failed")
	}
}

func TestNoDHCP(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{noDHCP: true, noHTTP: true})
	vm := n.boot(t, harness.BootOptions{
		Append: harness.FailureCmdline("live:http://10.77.0.1/plain.squashfs", "rd.net.timeout.dhcp=10", "rd.retry=10"),
	})
	// The message names the interface, its MAC and the timeout.
	vm.ExpectFailure(t, "network", "no DHCP lease on ens3", "52:54:00:12:34:56", "within 10s")
}
