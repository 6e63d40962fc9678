package qemutests

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// Data-centre links (issue 15): the boot builds dracut's bond= and
// bridge= with the guest kernel's drivers, on NICs named by their kernel
// names although it renamed them, and a node with several cabled ports
// and no BOOTIF boots from the one a DHCP server answers on.

const (
	portMAC2 = "52:54:00:aa:00:02"
	portMAC3 = "52:54:00:aa:00:03"
)

// ipLink returns the `ip -o link` line of the link named name.
func ipLink(r *harness.Report, name string) string {
	for _, line := range strings.Split(r.Links, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			if n, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@"); n == name {
				return line
			}
		}
	}
	return ""
}

// consoleHas asserts each pattern matches a console line.
func consoleHas(t *testing.T, vm *harness.VM, patterns ...string) {
	t.Helper()
	con := vm.Console()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(con) {
			t.Errorf("console lacks %q", p)
		}
	}
}

// A bridge over an active-backup bond of two NICs (a virtualisation
// host's uplink), the ports named as dracut users write them (eth0, eth1)
// though the boot renames them: the lease is the bridge's, with the
// client id of the bond's (its first port's) MAC, and both NICs are in
// the bond. The active port's cable is pulled (QEMU's set_link off) as
// soon as the lease is bound: the image is fetched, the root mounted and
// the fill done over the backup port.
func TestLinksBridgeOverBond(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url := n.serve(t, "plain.squashfs", n.fx.Plain)
	sock := filepath.Join(t.TempDir(), "monitor.sock")
	vm := n.boot(t, harness.BootOptions{
		NICs: []harness.NIC{{MAC: harness.BootMAC, Bridge: harness.Bridge0}, {MAC: otherMAC, Bridge: harness.Bridge0}},
		Append: "bond=bond0:eth0,eth1:mode=active-backup,miimon=100 bridge=br0:bond0 ip=br0:dhcp root=live:" + url +
			" rd.shell BOOTIF=01-52-54-00-12-34-56",
		QEMUArgs: []string{"-monitor", "unix:" + sock + ",server=on,wait=off"},
	})
	if _, err := vm.WaitFor(regexp.MustCompile(`bound \S+ on br0`), harness.DefaultBootTimeout); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("QEMU monitor: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("set_link n0 off\n")); err != nil {
		t.Fatal(err)
	}
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	// busybox's ip prints MASTER and SLAVE as hex flags: the ports'
	// "master <link>" says what they are.
	if l := ipLink(r, "bond0"); !strings.Contains(l, ",UP,") || !strings.Contains(l, "master br0") {
		t.Errorf("bond0 is not an up port of br0: %q\n%s", l, r.Links)
	}
	ports := 0
	for _, l := range r.LinkList() {
		if strings.Contains(ipLink(r, l.Name), "master bond0") {
			ports++
			if !strings.HasPrefix(l.Name, "ens") && !strings.HasPrefix(l.Name, "enp") {
				t.Errorf("port %s of bond0 kept its kernel name", l.Name)
			}
		}
	}
	if ports != 2 {
		t.Errorf("bond0 has %d ports, want 2:\n%s", ports, r.Links)
	}
	checkLeaseOn(t, n.dhcp, r, harness.BootMAC, "br0")
	if got := r.IPv4On("bond0"); len(got) != 0 {
		t.Errorf("bond0 (a port of br0) has IPv4 addresses %v", got)
	}
	consoleHas(t, vm, `eth0 is en\w+ \(52:54:00:12:34:56\), by the kernel's name for it`,
		`eth1 is en\w+ \(52:54:00:aa:00:01\), by the kernel's name for it`,
		`built bond bond0 \(miimon=100,mode=active-backup\) on en\w+, en\w+`, `built bridge br0 on bond0`,
		`bond0: \(slave en\w+\): link status definitely down`, `bond0: \(slave en\w+\): making interface the new active one`)
	if !strings.Contains(r.RunInitramfs, "net.br0.json") {
		t.Errorf("no net.br0.json in /run/initramfs:\n%s", r.RunInitramfs)
	}
}

// An 802.3ad bond against a LACP partner (in user space: this host has no
// bonding driver): the boot waits for the partner within the carrier
// timeout, the aggregator has both ports, and the lease is the bond's.
func TestLinksLACP(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url := n.serve(t, "plain.squashfs", n.fx.Plain)
	lacp := harness.StartLACPPartner(t, n.ns, 2)
	vm := n.boot(t, harness.BootOptions{
		NICs: []harness.NIC{
			{MAC: harness.BootMAC, Bridge: lacp.Bridges[0], Model: harness.LACPNICModel},
			{MAC: otherMAC, Bridge: lacp.Bridges[1], Model: harness.LACPNICModel},
		},
		Append: "bond=bond0:eth0,eth1:mode=802.3ad,lacp_rate=fast ip=bond0:dhcp root=live:" + url + " rd.shell",
	})
	lacp.Attach()
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	checkLeaseOn(t, n.dhcp, r, harness.BootMAC, "bond0")
	consoleHas(t, vm, `built bond bond0 \(lacp_rate=fast,miimon=100,mode=802\.3ad\) on en\w+, en\w+`,
		`bond0: LACP partner 02:00:00:00:11:11, aggregator \d+ with 2 ports`)
	if strings.Contains(vm.Console(), "not all of it") {
		t.Errorf("the boot went on without all of the bond:\n%s", harness.Tail(vm.Console(), 40))
	}
	if lacp.Answered.Load() == 0 {
		t.Errorf("the partner answered no LACPDU")
	}
}

// Four NICs with carrier, a DHCP server only behind the third, no BOOTIF
// and plain ip=dhcp: discovery runs on all four, the third wins, and the
// server holds one lease (the others never requested one).
func TestLinksFourNICsNoBootIF(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url := n.serve(t, "plain.squashfs", n.fx.Plain)
	vm := n.boot(t, harness.BootOptions{
		NICs: []harness.NIC{
			{MAC: otherMAC, Bridge: harness.Bridge1},
			{MAC: portMAC2, Bridge: harness.Bridge1},
			{MAC: harness.BootMAC, Bridge: harness.Bridge0},
			{MAC: portMAC3, Bridge: harness.Bridge1},
		},
		Append: "ip=dhcp root=live:" + url + " rd.shell",
	})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	checkLease(t, n.dhcp, r, harness.BootMAC)
	for _, mac := range []string{otherMAC, portMAC2, portMAC3} {
		if got := r.IPv4On(mac); len(got) != 0 {
			t.Errorf("port %s (no DHCP server) has IPv4 addresses %v", mac, got)
		}
	}
	consoleHas(t, vm, `several links have carrier and none is named`,
		`boot link en\w+ \(52:54:00:12:34:56\): the first DHCP offer \(10\.77\.0\.\d+ from 10\.77\.0\.1\) among the links with carrier; no lease requested on en\w+, en\w+, en\w+`)
}

// vlanNet is a namespace whose DHCP and HTTP servers are reachable only
// on VLAN 100: the guest's NIC is on the relay's bridge.
func vlanNet(t *testing.T) (*testNet, *harness.VLANRelay) {
	t.Helper()
	n := setup(t, netOptions{})
	return n, harness.StartVLANRelay(t, n.ns, 100)
}

// dracut 059's VLAN line, unchanged (vlan=vlan100:eth0 ip=vlan100:dhcp,
// the port by its kernel name), on the Debian systemd-networkd root: the
// servers answer only on VLAN 100 (a user-space relay tags and untags);
// the boot leases on vlan100, networkd takes the VLAN over from the
// .netdev/.network files the boot wrote and renews that lease on it (one
// lease, two transactions), and the untagged NIC stays without an address.
func TestLinksVLANNetworkd(t *testing.T) {
	t.Parallel()
	testVLANRoot(t, harness.FixtureNetworkd, "networkd")
}

// The same on the Debian NetworkManager root, whose own "primary"
// profile matches any Ethernet link: the boot's VLAN and port profiles
// win, and NetworkManager renews the lease on vlan100. It adds a Debian
// boot (about 1.5 min under TCG) to make test's budget for these links,
// so it runs only with STREAMROOT_LINKS_NM=1.
func TestLinksVLANNetworkManager(t *testing.T) {
	t.Parallel()
	if os.Getenv("STREAMROOT_LINKS_NM") != "1" {
		t.Skip("a second Debian boot; STREAMROOT_LINKS_NM=1 runs it")
	}
	testVLANRoot(t, harness.FixtureNM, "NetworkManager")
}

func testVLANRoot(t *testing.T, fixtureName, client string) {
	env.Require(t)
	fixture := env.LeaseFixture(t, fixtureName)
	n, relay := vlanNet(t)
	url := n.serve(t, fixtureName, fixture)
	vm := n.boot(t, harness.BootOptions{
		NICs:      []harness.NIC{{MAC: harness.BootMAC, Bridge: relay.Bridge, Model: harness.RelayNICModel}},
		Append:    "vlan=vlan100:eth0 ip=vlan100:dhcp root=live:" + url + " rd.neednet=1",
		MemoryMiB: 1536,
		Timeout:   300 * time.Second,
	})
	r := vm.ExpectReport(t)
	lr, err := harness.ParseLeaseReport(r.Raw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("--- os state:\n%s\n--- os log:\n%s\n--- handover:\n%s\n--- links:\n%s\n--- addrs:\n%s", lr.OSState, lr.OSLog, lr.Handover, lr.Links, lr.Addrs)
		}
	}()
	// The report finds the boot link by MAC, the last in /sys/class/net
	// order: vlan100 (after ens3, which carries the same MAC).
	if lr.OSLink != "vlan100" || !lr.OSBound {
		t.Errorf("%s bound=%v on %q, want a lease on vlan100", client, lr.OSBound, lr.OSLink)
	}
	if lr.EnvVar("LINKS") != "vlan100" || lr.EnvVar("LINK0_KIND") != "vlan" || lr.EnvVar("LINK0_VLAN_ID") != "100" || lr.EnvVar("LINK0_PORTS") != "ens3" {
		t.Errorf("net.vlan100.env does not describe the VLAN:\n%s", lr.Env)
	}
	checkLeaseOn(t, n.dhcp, r, harness.BootMAC, "vlan100")
	if got := r.IPv4On("ens3"); len(got) != 0 {
		t.Errorf("the untagged NIC ens3 has IPv4 addresses %v", got)
	}
	if !strings.Contains(ipLink(r, "vlan100"), "vlan100@ens3") {
		t.Errorf("vlan100 is not on ens3:\n%s", r.Links)
	}
	if relay.Tagged.Load() == 0 {
		t.Errorf("the relay carried no tagged frame from the guest")
	}
	consoleHas(t, vm, `eth0 is ens3 \(52:54:00:12:34:56\), by the kernel's name for it`, `built vlan vlan100 \(VLAN 100\) on ens3`)
	acks, err := dnsmasqAcks(n.dhcp.Log(), harness.BootMAC, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	xids := map[string]bool{}
	for _, a := range acks {
		xids[a.XID] = true
	}
	if len(xids) < 2 {
		t.Errorf("dnsmasq acknowledged %s in %d transactions, want ≥ 2 (the initramfs, then %s on vlan100): %s", harness.BootMAC, len(xids), client, fmtExchanges(acks))
	}
}
