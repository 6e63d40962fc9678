package qemutests

import (
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/bootlog"
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

// bootBond boots on the two NICs of an active-backup bond, both on
// Bridge0 (QEMU's n0 is the boot MAC's), with QEMU's human monitor at the
// socket it returns, for monitor: the tests pull a port through it.
func (n *testNet) bootBond(t *testing.T, appendArgs string, memoryMiB int) (*harness.VM, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "monitor.sock")
	vm := n.boot(t, harness.BootOptions{
		NICs:      []harness.NIC{{MAC: harness.BootMAC, Bridge: harness.Bridge0}, {MAC: otherMAC, Bridge: harness.Bridge0}},
		Append:    appendArgs,
		QEMUArgs:  []string{"-monitor", "unix:" + sock + ",server=on,wait=off"},
		MemoryMiB: memoryMiB,
		Timeout:   300 * time.Second,
	})
	return vm, sock
}

// monitor runs one command on QEMU's human monitor at sock and waits
// (bounded) for the prompt after it, so that it has taken effect.
func monitor(t *testing.T, sock, cmd string) {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("QEMU monitor: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(cmd + "\n")); err != nil {
		t.Fatalf("QEMU monitor: %v", err)
	}
	var out []byte
	buf := make([]byte, 4096)
	// The banner's prompt, then the one after the command.
	for strings.Count(string(out), "(qemu)") < 2 {
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("QEMU monitor after %q: %v (read %q)", cmd, err, out)
		}
		out = append(out, buf[:k]...)
	}
}

// A bridge over an active-backup bond of two NICs (a virtualisation
// host's uplink), the ports named as dracut users write them (eth0, eth1)
// though the boot renames them: the lease is the bridge's, with the
// client id of the bond's (its first port's) MAC, and both NICs are in
// the bond. The active port's cable is pulled (QEMU's set_link off) while
// the background fill runs (its progress line is on the console; nginx
// is held to 700 KiB/s a connection, so the 48 MiB image takes a while): the bond fails
// over and the fill completes over the backup port, the whole image
// intact, and the root carries on.
func TestLinksBridgeOverBond(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{nginx: harness.NginxOptions{LimitRate: "700k"}})
	fx := env.StreamFixtures(t)
	url := n.serve(t, "stream.squashfs", fx.Stream)
	serveAlive(t, n)
	vm, sock := n.bootBond(t, "bond=bond0:eth0,eth1:mode=active-backup,miimon=100 bridge=br0:bond0 ip=br0:dhcp root=live:"+url+
		" rd.shell BOOTIF=01-52-54-00-12-34-56 fixture.mode=afterfill", 1024)
	line, err := vm.WaitFor(regexp.MustCompile(`streamroot: blockd: fill: [^\r\n]*`), 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := bootlog.ParseFill(line); !ok || f.Percent >= 100 {
		t.Fatalf("fill progress %q (parsed %v): want a fill still under way", line, ok)
	}
	monitor(t, sock, "set_link n0 off")
	if strings.Contains(vm.Console(), "fill complete") {
		t.Fatalf("the fill was over before the cable went:\n%s", harness.Tail(vm.Console(), 20))
	}
	r := reportAfterFill(t, n, vm, 240*time.Second)
	if m := rawReport(t, vm); m["tree_sha256"] != fx.TreeSHA256 {
		t.Errorf("digest over all files %v, want %s", m["tree_sha256"], fx.TreeSHA256)
	}
	// The root's init silences the kernel's console (the bond's failover
	// lines): the links say it. The active port has no carrier, yet it is
	// still in the bond, which is up over the other.
	active := regexp.MustCompile(`eth0 is (en\w+) `).FindStringSubmatch(vm.Console())
	if active == nil {
		t.Fatalf("no console line names eth0's link")
	}
	if l := ipLink(r, active[1]); !strings.Contains(l, "NO-CARRIER") || !strings.Contains(l, "master bond0") {
		t.Errorf("the pulled port %s is not a port of bond0 without carrier: %q", active[1], l)
	}
	if l := ipLink(r, "bond0"); !strings.Contains(l, "LOWER_UP") {
		t.Errorf("bond0 lost its link with one port left: %q", l)
	}
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
		`bond0: \(slave en\w+\): making interface the new active one`)
	if !strings.Contains(r.RunInitramfs, "net.br0.json") {
		t.Errorf("no net.br0.json in /run/initramfs:\n%s", r.RunInitramfs)
	}
}

// lacpNICs are the two NICs of a bond against the LACP partner.
func lacpNICs(lacp *harness.LACPPartner) []harness.NIC {
	return []harness.NIC{
		{MAC: harness.BootMAC, Bridge: lacp.Bridges[0], Model: harness.LACPNICModel},
		{MAC: otherMAC, Bridge: lacp.Bridges[1], Model: harness.LACPNICModel},
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
		NICs:   lacpNICs(lacp),
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

// fourNICs is a node with four cabled NICs and a DHCP server only behind
// the third (Bridge1 has none).
func fourNICs() []harness.NIC {
	return []harness.NIC{
		{MAC: otherMAC, Bridge: harness.Bridge1},
		{MAC: portMAC2, Bridge: harness.Bridge1},
		{MAC: harness.BootMAC, Bridge: harness.Bridge0},
		{MAC: portMAC3, Bridge: harness.Bridge1},
	}
}

// checkOthersUnaddressed asserts fourNICs' ports without a server have
// no IPv4 address.
func checkOthersUnaddressed(t *testing.T, r *harness.Report) {
	t.Helper()
	for _, mac := range []string{otherMAC, portMAC2, portMAC3} {
		if got := r.IPv4On(mac); len(got) != 0 {
			t.Errorf("port %s (no DHCP server) has IPv4 addresses %v", mac, got)
		}
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
		NICs:   fourNICs(),
		Append: "ip=dhcp root=live:" + url + " rd.shell",
	})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	checkLease(t, n.dhcp, r, harness.BootMAC)
	checkOthersUnaddressed(t, r)
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
// win, and NetworkManager renews the lease on vlan100.
func TestLinksVLANNetworkManager(t *testing.T) {
	t.Parallel()
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
	lr := expectLeaseReport(t, vm)
	r := lr.Report
	// The report finds the boot link by MAC, the last without a master
	// in /sys/class/net order: vlan100 (after ens3, which carries the
	// same MAC).
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
	checkManagerKinds(t, lr, map[string]string{"vlan100": "vlan", "ens3": "ether"})
	if relay.Tagged.Load() == 0 {
		t.Errorf("the relay carried no tagged frame from the guest")
	}
	consoleHas(t, vm, `eth0 is ens3 \(52:54:00:12:34:56\), by the kernel's name for it`, `built vlan vlan100 \(VLAN 100\) on ens3`)
	checkRenewed(t, n, client, "vlan100")
}

// A bridge over an 802.3ad bond against the user-space LACP partner (the
// bridge, LACP and bond cases in one boot), on each Debian root:
//
//   - networkd takes bond0 and br0 over from the .netdev/.network files
//     the boot wrote, with both NICs still in the aggregator, and renews
//     the lease on br0 (one lease, two transactions);
//   - NetworkManager does the same from the boot's bond, bridge and port
//     profiles, which win over the root's "primary" one: the handover's
//     /run/NetworkManager/devices/<ifindex> files name them, and its
//     keep-configuration=no has NetworkManager take them as they are
//     (without them NetworkManager 1.42 keeps the bridge, the bond and its
//     ports as "external" and runs no DHCP on br0; see docs/boot.md).
func TestLinksBridgeOverLACPRoots(t *testing.T) {
	t.Parallel()
	forRoots(t, testBridgeOverLACPRoot)
}

// debianRoots are the Debian roots each link case ends on: the lease
// fixture and the name of its own DHCP client.
var debianRoots = []struct{ fixture, client string }{{harness.FixtureNetworkd, "networkd"}, {harness.FixtureNM, "NetworkManager"}}

// rootNet is a network whose nginx serves the Debian root fixtureName at
// the URL returned.
func rootNet(t *testing.T, fixtureName string) (*testNet, string) {
	t.Helper()
	env.Require(t)
	fixture := env.LeaseFixture(t, fixtureName)
	n := setup(t, netOptions{})
	return n, n.serve(t, fixtureName, fixture)
}

// forRoots runs test on each Debian root as a parallel subtest named for
// its client.
func forRoots(t *testing.T, test func(t *testing.T, fixtureName, client string)) {
	for _, root := range debianRoots {
		t.Run(root.client, func(t *testing.T) {
			t.Parallel()
			test(t, root.fixture, root.client)
		})
	}
}

func testBridgeOverLACPRoot(t *testing.T, fixtureName, client string) {
	n, url := rootNet(t, fixtureName)
	lacp := harness.StartLACPPartner(t, n.ns, 2)
	vm := n.boot(t, harness.BootOptions{
		NICs:      lacpNICs(lacp),
		Append:    "bond=bond0:eth0,eth1:mode=802.3ad,lacp_rate=fast bridge=br0:bond0 ip=br0:dhcp root=live:" + url + " rd.neednet=1",
		MemoryMiB: 1536,
		Timeout:   300 * time.Second,
	})
	lacp.Attach()
	lr := expectLeaseReport(t, vm)
	r := lr.Report
	// The report finds the boot link by MAC among the links without a
	// master: br0 (bond0 and its ports carry the same MAC).
	if lr.OSLink != "br0" || !lr.OSBound {
		t.Errorf("%s bound=%v on %q, want a lease on br0", client, lr.OSBound, lr.OSLink)
	}
	if lr.EnvVar("LINKS") != "bond0 br0" || lr.EnvVar("LINK0_KIND") != "bond" || lr.EnvVar("LINK0_PORTS") != "ens3 ens4" ||
		lr.EnvVar("LINK1_KIND") != "bridge" || lr.EnvVar("LINK1_PORTS") != "bond0" {
		t.Errorf("net.br0.env does not describe the bridge over the bond:\n%s", lr.Env)
	}
	checkLeaseOn(t, n.dhcp, r, harness.BootMAC, "br0")
	// What the root has at the end: the same links, members and kinds
	// (the kind as its own network manager reports it).
	for link, master := range map[string]string{"bond0": "br0", "ens3": "bond0", "ens4": "bond0"} {
		if l := ipLink(r, link); !strings.Contains(l, "master "+master) || !strings.Contains(l, "UP") {
			t.Errorf("%s is not an up port of %s: %q\n%s", link, master, l, r.Links)
		}
	}
	for _, link := range []string{"bond0", "ens3", "ens4"} {
		if got := r.IPv4On(link); len(got) != 0 {
			t.Errorf("%s (a port) has IPv4 addresses %v", link, got)
		}
	}
	checkManagerKinds(t, lr, map[string]string{"br0": "bridge", "bond0": "bond", "ens3": "ether", "ens4": "ether"})
	if lacp.Answered.Load() == 0 {
		t.Errorf("the partner answered no LACPDU")
	}
	consoleHas(t, vm, `built bond bond0 \(lacp_rate=fast,miimon=100,mode=802\.3ad\) on ens3, ens4`, `built bridge br0 on bond0`,
		`bond0: LACP partner 02:00:00:00:11:11, aggregator \d+ with 2 ports`)
	checkRenewed(t, n, client, "br0")
}

// The FDI's case on each Debian root (networkd, NetworkManager): four
// NICs with carrier, a DHCP server only behind the third, no BOOTIF and
// plain ip=dhcp. The third wins the race, the root's own client renews
// the lease on it, and the server holds that one lease: neither the
// initramfs nor the root got one elsewhere.
func TestLinksFourNICsRoots(t *testing.T) {
	t.Parallel()
	forRoots(t, testFourNICsRoot)
}

func testFourNICsRoot(t *testing.T, fixtureName, client string) {
	n, url := rootNet(t, fixtureName)
	vm := n.boot(t, harness.BootOptions{
		NICs:      fourNICs(),
		Append:    "ip=dhcp root=live:" + url + " rd.neednet=1",
		MemoryMiB: 1536,
		Timeout:   300 * time.Second,
	})
	lr := expectLeaseReport(t, vm)
	if lr.OSLink != lr.LinkName(harness.BootMAC) || !lr.OSBound {
		t.Errorf("%s bound=%v on %q, want a lease on the third NIC %q", client, lr.OSBound, lr.OSLink, lr.LinkName(harness.BootMAC))
	}
	checkLease(t, n.dhcp, lr.Report, harness.BootMAC)
	checkOthersUnaddressed(t, lr.Report)
	consoleHas(t, vm, `boot link en\w+ \(52:54:00:12:34:56\): the first DHCP offer \(10\.77\.0\.\d+ from 10\.77\.0\.1\) among the links with carrier`)
	checkRenewed(t, n, client, lr.OSLink)
}

// expectLeaseReport is the LEASE REPORT of a Debian root; the root's
// network state goes to the log if the test fails.
func expectLeaseReport(t *testing.T, vm *harness.VM) *harness.LeaseReport {
	t.Helper()
	lr := leaseReportOf(t, vm.ExpectReport(t))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- os state:\n%s\n--- os log:\n%s\n--- handover:\n%s\n--- links:\n%s\n--- addrs:\n%s", lr.OSState, lr.OSLog, lr.Handover, lr.Links, lr.Addrs)
		}
	})
	return lr
}

// checkManagerKinds asserts the root's network manager has each link as
// the kind given (networkd's TYPE in networkctl list: bond, bridge,
// ether, vlan; NetworkManager's profile type in nmcli connection show:
// bond, bridge, ethernet, vlan), from the boot's files.
func checkManagerKinds(t *testing.T, lr *harness.LeaseReport, kinds map[string]string) {
	t.Helper()
	for link, kind := range kinds {
		switch lr.OSDHCP {
		case "networkd":
			// IDX LINK TYPE OPERATIONAL SETUP
			re := regexp.MustCompile(`(?m)^\s*\d+\s+` + regexp.QuoteMeta(link) + `\s+` + kind + `\s+\S+\s+(configured|configuring)\s*$`)
			if !re.MatchString(lr.OSState) {
				t.Errorf("networkctl list has no %s of type %s that networkd configured", link, kind)
			}
		case "NetworkManager":
			if kind == "ether" {
				kind = "ethernet"
			}
			// NAME UUID TYPE DEVICE ACTIVE FILENAME
			re := regexp.MustCompile(`(?m)^streamroot-\S+\s+\S+\s+` + kind + `\s+` + regexp.QuoteMeta(link) + `\s+yes\s`)
			if !re.MatchString(lr.OSState) {
				t.Errorf("nmcli connection show has no active streamroot %s profile on %s", kind, link)
			}
		}
	}
}

// checkRenewed asserts the root's own DHCP client renewed the initramfs's
// lease: dnsmasq acknowledged the boot MAC in two transactions or more.
func checkRenewed(t *testing.T, n *testNet, client, link string) {
	t.Helper()
	acks, err := dnsmasqAcks(n.dhcp.Log(), harness.BootMAC, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	xids := map[string]bool{}
	for _, a := range acks {
		xids[a.XID] = true
	}
	if len(xids) < 2 {
		t.Errorf("dnsmasq acknowledged %s in %d transactions, want ≥ 2 (the initramfs, then %s on %s): %s", harness.BootMAC, len(xids), client, link, fmtExchanges(acks))
	}
}

// An active-backup bond of two NICs on each Debian root, the image read
// lazily over it (streamroot.fetch=lazy): once the root's own lease
// report runs (its network manager started from the boot's bond and port
// files), the active port's cable is pulled (QEMU's set_link off). The
// bond fails over, the root keeps reading its image, and it ends with the
// bond, both ports (the pulled one without carrier) and the one lease,
// renewed by its own client over the backup port.
func TestLinksActiveBackupRoots(t *testing.T) {
	t.Parallel()
	forRoots(t, testActiveBackupRoot)
}

func testActiveBackupRoot(t *testing.T, fixtureName, client string) {
	n, url := rootNet(t, fixtureName)
	vm, sock := n.bootBond(t, "bond=bond0:eth0,eth1:mode=active-backup,miimon=100 ip=bond0:dhcp root=live:"+url+
		" streamroot.fetch=lazy rd.neednet=1", 1536)
	if _, err := vm.WaitFor(regexp.MustCompile(`lease-report: waiting for DHCPv4`), 240*time.Second); err != nil {
		t.Fatal(err)
	}
	monitor(t, sock, "set_link n0 off")
	lr := expectLeaseReport(t, vm)
	r := lr.Report
	if lr.OSLink != "bond0" || !lr.OSBound {
		t.Errorf("%s bound=%v on %q, want a lease on bond0", client, lr.OSBound, lr.OSLink)
	}
	if lr.EnvVar("LINKS") != "bond0" || lr.EnvVar("LINK0_KIND") != "bond" || lr.EnvVar("LINK0_PORTS") != "ens3 ens4" {
		t.Errorf("net.bond0.env does not describe the bond:\n%s", lr.Env)
	}
	checkLeaseOn(t, n.dhcp, r, harness.BootMAC, "bond0")
	if l := ipLink(r, "ens3"); !strings.Contains(l, "NO-CARRIER") || !strings.Contains(l, "master bond0") {
		t.Errorf("the pulled port ens3 is not a port of bond0 without carrier: %q\n%s", l, r.Links)
	}
	if l := ipLink(r, "ens4"); !strings.Contains(l, "LOWER_UP") || !strings.Contains(l, "master bond0") {
		t.Errorf("the backup port ens4 is not an up port of bond0: %q\n%s", l, r.Links)
	}
	if l := ipLink(r, "bond0"); !strings.Contains(l, "LOWER_UP") {
		t.Errorf("bond0 lost its link with one port left: %q", l)
	}
	for _, link := range []string{"ens3", "ens4"} {
		if got := r.IPv4On(link); len(got) != 0 {
			t.Errorf("%s (a port) has IPv4 addresses %v", link, got)
		}
	}
	checkManagerKinds(t, lr, map[string]string{"bond0": "bond", "ens3": "ether", "ens4": "ether"})
	consoleHas(t, vm, `built bond bond0 \(miimon=100,mode=active-backup\) on ens3, ens4`,
		`bond0: \(slave ens3\): making interface the new active one`)
	checkRenewed(t, n, client, "bond0")
}
