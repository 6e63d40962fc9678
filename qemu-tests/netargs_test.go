package qemutests

import (
	"encoding/base64"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// bootLazy boots the stream image at url in lazy mode with the network
// arguments given, and returns the VM and its root's report, checked.
func (n *testNet) bootLazy(t *testing.T, netArgs, url string) (*harness.VM, *harness.Report) {
	t.Helper()
	vm := n.boot(t, harness.BootOptions{Append: netArgs + " root=live:" + url + " streamroot.fetch=lazy"})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	return vm, r
}

func b64field(t *testing.T, m map[string]any, k string) string {
	t.Helper()
	s, _ := m[k].(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	return string(b)
}

// DHCP options the initramfs acts on: classless static routes (121, which
// replace the router option), MTU (26) and the host name (12); and the
// handover's lease file records them.
func TestDHCPOptions(t *testing.T) {
	t.Parallel()
	fx := env.StreamFixtures(t)
	n := &testNet{fx: env.Fixtures(t)}
	env.Require(t)
	n.ns = env.NewNetns(t)
	n.dhcp = harness.StartDnsmasq(t, n.ns, harness.DnsmasqOptions{Extra: []string{
		"--dhcp-option=121,10.99.0.0/16,10.77.0.1,0.0.0.0/0,10.77.0.1",
		"--dhcp-option=26,1400",
		"--dhcp-host=52:54:00:12:34:56,node-17",
	}})
	n.web = harness.StartNginx(t, n.ns, harness.NginxOptions{})
	url := n.serve(t, "stream.squashfs", fx.Stream)
	vm, _ := n.bootLazy(t, "ip=dhcp", url)
	m := rawReport(t, vm)
	routes := b64field(t, m, "routes_b64")
	for _, want := range []string{"10.99.0.0/16 via 10.77.0.1", "default via 10.77.0.1"} {
		if !strings.Contains(routes, want) {
			t.Errorf("routes lack %q:\n%s", want, routes)
		}
	}
	if links := b64field(t, m, "links_b64"); !strings.Contains(links, "mtu 1400") {
		t.Errorf("MTU 1400 not applied:\n%s", links)
	}
	if m["hostname"] != "node-17" {
		t.Errorf("hostname %v, want node-17", m["hostname"])
	}
}

// A static ip= line with nameserver=: no DHCP traffic at all, though a
// DHCP server is there to see any.
func TestStaticIP(t *testing.T) {
	t.Parallel()
	n, _, url := streamNet(t, netOptions{})
	vm, r := n.bootLazy(t, "ip=10.77.0.9::10.77.0.1:255.255.255.0:static-node:ens3:none nameserver=10.77.0.53", url)
	if got := r.IPv4On(harness.BootMAC); len(got) != 1 || got[0] != "10.77.0.9" {
		t.Errorf("addresses on the boot NIC: %v, want 10.77.0.9/24", got)
	}
	if !strings.Contains(vm.Console(), "via static") {
		t.Error("the console does not say the address is static")
	}
	if log := n.dhcp.Log(); strings.Contains(strings.ToLower(log), "52:54:00:12:34:56") {
		t.Errorf("the DHCP server heard from the node despite the static ip=:\n%s", log)
	}
}

// ifname= names the link before it goes up, so the real OS sees that name.
func TestIfname(t *testing.T) {
	t.Parallel()
	n, _, url := streamNet(t, netOptions{})
	_, r := n.bootLazy(t, "ip=dhcp ifname=bootnet:52:54:00:12:34:56", url)
	if got := r.LinkName(harness.BootMAC); got != "bootnet" {
		t.Errorf("the boot link is %q in the real OS, want bootnet (ifname=)", got)
	}
	if len(r.IPv4On("bootnet")) != 1 {
		t.Errorf("no address on bootnet: %s", r.Addrs)
	}
}

// Names in root= resolve through the DNS server the lease names; a name
// that does not exist fails at once with a message naming it, instead of
// being retried for rd.retry.
func TestDNS(t *testing.T) {
	t.Parallel()
	dnsArgs := []string{
		"--local=/lab/", "--address=/boot.lab/10.77.0.1",
		"--dhcp-option=option:dns-server,10.77.0.1", "--domain=lab",
	}
	for _, tc := range []struct {
		name, host string
		ok         bool
	}{
		{"resolves", "boot.lab", true},
		{"nxdomain", "nosuch.lab", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env.Require(t)
			n := &testNet{fx: env.Fixtures(t)}
			n.ns = env.NewNetns(t)
			n.dhcp = harness.StartDnsmasq(t, n.ns, harness.DnsmasqOptions{DNS: true, Extra: dnsArgs})
			n.web = harness.StartNginx(t, n.ns, harness.NginxOptions{})
			n.serve(t, "plain.squashfs", n.fx.Plain)
			url := "http://" + tc.host + "/plain.squashfs"
			if tc.ok {
				vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url})
				checkRoot(t, vm.ExpectReport(t), "plain")
				return
			}
			// Timed from QEMU's start, not from the wait for a VM slot; a
			// retried name would fail only after rd.retry=300, so the
			// bound is wide enough for a slow guest on a busy host.
			vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, "rd.retry=300"), Timeout: 400 * time.Second})
			vm.ExpectFailure(t, "fetch", "nosuch.lab", "no such host")
			if d := time.Since(vm.Started); d > 240*time.Second {
				t.Errorf("an unknown name took %s to fail with rd.retry=300: it was retried", d)
			}
		})
	}
}

// A NIC without carrier (the cable pulled: QEMU's set_link off before the
// guest runs) fails within rd.net.timeout.carrier, naming the link.
func TestNoCarrier(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	n.serve(t, "plain.squashfs", n.fx.Plain)
	sock := filepath.Join(t.TempDir(), "monitor.sock")
	vm := n.boot(t, harness.BootOptions{
		Append:   harness.FailureCmdline("live:http://10.77.0.1/plain.squashfs", "rd.net.timeout.carrier=5"),
		QEMUArgs: []string{"-S", "-monitor", "unix:" + sock + ",server=on,wait=off"},
	})
	var conn net.Conn
	var err error
	for i := 0; i < 300; i++ { // the VM may wait for a slot before QEMU starts
		if conn, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatalf("QEMU monitor: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("set_link n0 off\ncont\n")); err != nil {
		t.Fatal(err)
	}
	vm.ExpectFailure(t, "network", "no carrier on ens3", "within 5s")
}

// A DHCP server that refuses the first REQUEST (NAK): the initramfs starts
// discovery again and boots with the second offer. The server is a few
// lines on insomniacslk/dhcp's server4: neither dnsmasq nor Kea NAKs on
// demand.
func TestDHCPNAKRestartsDiscovery(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{noDHCP: true})
	n.serve(t, "plain.squashfs", n.fx.Plain)
	var requests atomic.Int32
	handler := func(conn net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
		typ := dhcpv4.MessageTypeOffer
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
		case dhcpv4.MessageTypeRequest:
			typ = dhcpv4.MessageTypeAck
			if requests.Add(1) == 1 {
				typ = dhcpv4.MessageTypeNak
			}
		default:
			return
		}
		mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithServerIP(net.ParseIP("10.77.0.1")),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.1"))), dhcpv4.WithBroadcast(true)}
		if typ != dhcpv4.MessageTypeNak {
			mods = append(mods, dhcpv4.WithYourIP(net.ParseIP("10.77.0.77")), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
				dhcpv4.WithRouter(net.ParseIP("10.77.0.1")), dhcpv4.WithLeaseTime(3600))
		}
		reply, err := dhcpv4.NewReplyFromRequest(m, mods...)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}); err != nil {
			t.Error(err)
		}
	}
	var srv *server4.Server
	if err := n.ns.Do(func() error {
		var err error
		srv, err = server4.NewServer(harness.Bridge0, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })

	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:http://10.77.0.1/plain.squashfs"})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	if got := r.IPv4On(harness.BootMAC); len(got) != 1 || got[0] != "10.77.0.77" {
		t.Errorf("address %v, want 10.77.0.77 from the second exchange", got)
	}
	if !strings.Contains(vm.Console(), "refused the offer (NAK)") || requests.Load() < 2 {
		t.Errorf("no NAK and second request (%d requests)", requests.Load())
	}
}

// linkLine returns the `ip -o link` line of the link with that MAC.
func linkLine(r *harness.Report, mac string) string {
	for _, line := range strings.Split(r.Links, "\n") {
		if strings.Contains(strings.ToLower(line), "link/ether "+mac) {
			return line
		}
	}
	return ""
}

// Fedora CoreOS's and RHCOS's default ip=dhcp,dhcp6 boots an IPv4-only
// network on DHCPv4 (the IPv6 half is best effort: no router answers here,
// so it gives up after its bounded wait), and BOOTIF= reaches the real OS
// unchanged.
func TestNetArgsDHCPList(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url := n.serve(t, "plain.squashfs", n.fx.Plain)
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp,dhcp6 rd.neednet=1 root=live:" + url + " BOOTIF=01-52-54-00-12-34-56"})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	checkLease(t, n.dhcp, r, harness.BootMAC)
	if !strings.Contains(r.Cmdline, "ip=dhcp,dhcp6") || !strings.Contains(r.Cmdline, "BOOTIF=01-52-54-00-12-34-56") {
		t.Errorf("the real OS's /proc/cmdline lost arguments: %q", r.Cmdline)
	}
}

// The static form without a method field, the prefix length written
// after the address (anaconda, RHCOS): the address and prefix are on the
// boot link and the DHCP server never hears from the node.
func TestNetArgsStaticCIDRNoMethod(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url := n.serve(t, "plain.squashfs", n.fx.Plain)
	vm := n.boot(t, harness.BootOptions{Append: "ip=10.77.0.9/24::10.77.0.1::cidr-node:ens3 root=live:" + url})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	var v4 []string
	for _, p := range r.AddrOn(harness.BootMAC) {
		if p.Addr().Is4() {
			v4 = append(v4, p.String())
		}
	}
	if len(v4) != 1 || v4[0] != "10.77.0.9/24" {
		t.Errorf("IPv4 addresses on the boot NIC: %v, want 10.77.0.9/24\n%s", v4, r.Addrs)
	}
	if r.Hostname != "cidr-node\n" {
		t.Errorf("host name %q, want cidr-node", r.Hostname)
	}
	if log := n.dhcp.Log(); strings.Contains(strings.ToLower(log), harness.BootMAC) {
		t.Errorf("the DHCP server heard from the node despite the static ip=:\n%s", log)
	}
}

// BOOTIF= with hardware type 00 (dracut strips any type) picks the second
// NIC, as 01 does.
func TestNetArgsBootIFType00(t *testing.T) {
	t.Parallel()
	bootOnSecondNIC(t, func(url string) string { return "ip=dhcp root=live:" + url + " BOOTIF=00-52-54-00-12-34-56" })
}

// ip=<iface>:off keeps a link out of the choice: both NICs reach the DHCP
// server and the first would win, but it is switched off, so the second
// gets the lease; and ip=<iface>:dhcp:<mtu> puts the MTU on that link.
func TestNetArgsOffAndMTU(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url := n.serve(t, "plain.squashfs", n.fx.Plain)
	vm := n.boot(t, harness.BootOptions{
		NICs: []harness.NIC{
			{MAC: otherMAC, Bridge: harness.Bridge0},
			{MAC: harness.BootMAC, Bridge: harness.Bridge0},
		},
		Append: "ifname=nic0:" + otherMAC + " ifname=nic1:" + harness.BootMAC + " ip=nic0:off ip=nic1:dhcp:1400 root=live:" + url,
	})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	checkLease(t, n.dhcp, r, harness.BootMAC)
	if got := r.IPv4On(otherMAC); len(got) != 0 {
		t.Errorf("nic0 (ip=nic0:off) has IPv4 addresses %v", got)
	}
	if l := linkLine(r, harness.BootMAC); !strings.Contains(l, "mtu 1400") {
		t.Errorf("MTU 1400 from ip=nic1:dhcp:1400 not on the boot link: %q", l)
	}
}

// ip=<iface>:dhcp::<mac> sets the MAC before DHCP: the server leases to
// the new MAC, with the client id built from it, and the booted root sees
// the link with that MAC and the lease on it.
func TestNetArgsSetMAC(t *testing.T) {
	t.Parallel()
	const newMAC = "52:54:00:12:34:99"
	n := setup(t, netOptions{})
	url := n.serve(t, "plain.squashfs", n.fx.Plain)
	vm := n.boot(t, harness.BootOptions{Append: "ip=ens3:dhcp::" + newMAC + " root=live:" + url})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	checkLease(t, n.dhcp, r, newMAC)
	if r.LinkName(harness.BootMAC) != "" {
		t.Errorf("a link still has the MAC %s:\n%s", harness.BootMAC, r.Links)
	}
}
