package qemutests

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// IPv6 end to end (issue 14): the node gets its address by DHCPv6 or
// SLAAC from dnsmasq's router advertisements, fetches the image from an
// http://[v6]/ URL, and the root holds the initramfs's address. The
// DHCPv6 identity is DUID-LL from the MAC and the MAC's last four bytes as
// IAID, which the handover gives the real OS.

const (
	bootDUID = "00:03:00:01:" + harness.BootMAC // DUID-LL of BootMAC
	bootIAID = 0x00123456                       // BootMAC's last four bytes
)

// v6Cmdline is the seed's line with ip= replaced and the image on IPv6.
func v6Cmdline(ip, rootURL string, extra ...string) string {
	return strings.Join(append([]string{ip, "root=live:" + rootURL,
		"rd.shell ro rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0 rd.debug=1 BOOTIF=01-52-54-00-12-34-56"}, extra...), " ")
}

// v6Netns is a test's network namespace with IPv6 on.
func v6Netns(t *testing.T) *harness.Netns {
	t.Helper()
	env.Require(t)
	ns := env.NewNetns(t)
	harness.EnableIPv6(t, ns)
	return ns
}

// v6Net is a namespace with IPv6 on br0, dnsmasq advertising and leasing,
// and nginx on [ServerIP6]:80 serving the plain busybox root.
func v6Net(t *testing.T, o harness.Dnsmasq6Options) (*harness.Netns, *harness.Dnsmasq6, string) {
	t.Helper()
	ns := v6Netns(t)
	fx := env.Fixtures(t)
	d := harness.StartDnsmasq6(t, ns, o)
	web := harness.StartNginx(t, ns, harness.NginxOptions{Listen: "[" + harness.ServerIP6 + "]:80"})
	if err := web.AddFile(fx.Plain, "plain.squashfs"); err != nil {
		t.Fatal(err)
	}
	return ns, d, web.URL("plain.squashfs")
}

// bootV6 boots the plain image over v6Net's link with the ip= arguments
// given, checks the root, and returns the server and the root's report.
func bootV6(t *testing.T, o harness.Dnsmasq6Options, ip string) (*harness.Dnsmasq6, *harness.Report) {
	t.Helper()
	ns, d, url := v6Net(t, o)
	vm := env.Boot(t, harness.BootOptions{Netns: ns, Append: v6Cmdline(ip, url)})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	return d, r
}

// globalV6On returns the guest's global IPv6 addresses on mac's link.
func globalV6On(r *harness.Report, mac string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range r.AddrOn(mac) {
		if p.Addr().Is6() && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p)
		}
	}
	return out
}

// v6Lease is a DHCPv6 lease in a server's database, whichever the server.
type v6Lease struct {
	IP, DUID string
	IAID     uint32
}

// v6Server is what the tests need from dnsmasq or Kea.
type v6Server struct {
	name   string
	leases func() ([]v6Lease, error) // the live leases
	// transactions counts the exchanges that leased to duid: dnsmasq's
	// REPLY transaction ids, Kea's exchanges in its lease file.
	transactions func(duid string) int
	log          func() string
}

func dnsmasq6Server(d *harness.Dnsmasq6) *v6Server {
	return &v6Server{name: "dnsmasq",
		leases: leasesAs(d.Leases6, func(l harness.Lease6) v6Lease { return v6Lease{l.IP, l.DUID, l.IAID} }),
		transactions: func(duid string) int {
			xids := map[string]bool{}
			for _, x := range d.Replies6(duid) {
				xids[x] = true
			}
			return len(xids)
		},
		log: d.Log}
}

func kea6Server(k *harness.Kea6) *v6Server {
	return &v6Server{name: "kea",
		leases:       leasesAs(k.Leases, func(l harness.Kea6Lease) v6Lease { return v6Lease{l.Address, l.DUID, l.IAID} }),
		transactions: k.Exchanges, log: k.Log}
}

// checkV6Lease asserts that the server holds exactly one DHCPv6 lease,
// the node's (DUID-LL, IAID from the MAC), and that the guest holds its
// address.
func checkV6Lease(t *testing.T, srv *v6Server, r *harness.Report) v6Lease {
	t.Helper()
	leases, err := srv.leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 1 {
		t.Fatalf("%s holds %d DHCPv6 leases, want 1: %+v\nlog:\n%s", srv.name, len(leases), leases, tailLines(srv.log(), 40))
	}
	l := leases[0]
	if l.DUID != bootDUID || l.IAID != bootIAID {
		t.Errorf("%s: DHCPv6 lease for DUID %s IAID %#x, want %s IAID %#x", srv.name, l.DUID, l.IAID, bootDUID, bootIAID)
	}
	held := false
	for _, p := range globalV6On(r, harness.BootMAC) {
		held = held || p.Addr().String() == l.IP
	}
	if !held {
		t.Errorf("guest has %v on the boot link, want %s's %s\naddrs:\n%s", globalV6On(r, harness.BootMAC), srv.name, l.IP, r.Addrs)
	}
	return l
}

// TestIPv6OnlyDHCPv6: no IPv4 on the link at all; DHCPv6 (the RA's M flag)
// gives the address, the image comes over http://[fd00:77::1]/.
func TestIPv6OnlyDHCPv6(t *testing.T) {
	t.Parallel()
	d, r := bootV6(t, harness.Dnsmasq6Options{}, "ip=dhcp6")
	checkV6Lease(t, dnsmasq6Server(d), r)
	if v4 := r.IPv4On(harness.BootMAC); len(v4) != 0 {
		t.Errorf("IPv4 %v on the boot link of an IPv6-only boot", v4)
	}
	if !strings.Contains(r.ResolvConf, "nameserver "+harness.DNSServer6) || !strings.Contains(r.ResolvConf, harness.Domain6) {
		t.Errorf("resolv.conf lacks the DHCPv6/RA DNS server %s and domain %s:\n%s", harness.DNSServer6, harness.Domain6, r.ResolvConf)
	}
	for _, f := range []string{"net.", ".json", ".env"} {
		if !strings.Contains(r.RunInitramfs, f) {
			t.Errorf("/run/initramfs lacks the lease files (%s):\n%s", f, r.RunInitramfs)
		}
	}
}

// TestIPv6SLAAC: ip=auto6 with an RA-only prefix: the kernel's SLAAC
// address (EUI-64 from the MAC), DNS from the RA's RDNSS and DNSSL, no
// DHCPv6 lease at all.
func TestIPv6SLAAC(t *testing.T) {
	t.Parallel()
	d, r := bootV6(t, harness.Dnsmasq6Options{SLAAC: true}, "ip=auto6")
	// EUI-64 of 52:54:00:12:34:56: the U/L bit flipped, ff:fe in the middle.
	const want = "fd00:77::5054:ff:fe12:3456"
	got := globalV6On(r, harness.BootMAC)
	if len(got) != 1 || got[0].Addr().String() != want || got[0].Bits() != 64 {
		t.Errorf("guest has %v on the boot link, want exactly %s/64 (SLAAC)\naddrs:\n%s", got, want, r.Addrs)
	}
	if !strings.Contains(r.ResolvConf, "nameserver "+harness.DNSServer6) || !strings.Contains(r.ResolvConf, harness.Domain6) {
		t.Errorf("resolv.conf lacks the RA's RDNSS %s and DNSSL %s:\n%s", harness.DNSServer6, harness.Domain6, r.ResolvConf)
	}
	if ls, _ := d.Leases6(); len(ls) != 0 {
		t.Errorf("dnsmasq holds DHCPv6 leases %+v for a SLAAC-only boot", ls)
	}
}

// TestIPv6DualStack: ip=dhcp ip=dhcp6 on one link: one DHCPv4 and one
// DHCPv6 lease, both addresses on the link; the image over IPv6.
func TestIPv6DualStack(t *testing.T) {
	t.Parallel()
	d, r := bootV6(t, harness.Dnsmasq6Options{IPv4: true}, "ip=dhcp ip=dhcp6")
	checkV6Lease(t, dnsmasq6Server(d), r)
	checkDualStackV4(t, d, r)
}

// TestIPv6OneLease: IPv6 boots into the Debian roots; their own client
// must renew the initramfs's DHCPv6 lease with the handed-over DUID and
// IAID: one lease in the server's database after the root's client talked
// to it, with the address the initramfs got, still on the link. Each root
// runs against dnsmasq and Kea (with radvd's M flag; the initramfs's first
// exchange is Kea's rapid commit); networkd × dnsmasq is the dual-stack
// row (ip=dhcp ip=dhcp6: one DHCPv4 lease as well). The busybox root has
// no row: Debian 12's busybox has no udhcpc6 applet (qemu-tests/README);
// its subtest skips saying so, and fails once the host's busybox has one.
func TestIPv6OneLease(t *testing.T) {
	t.Parallel()
	t.Run("udhcpc", func(t *testing.T) {
		out, err := exec.Command(harness.HostBusybox, "--list").Output()
		if err != nil {
			t.Skipf("no host busybox (%s): %v", harness.HostBusybox, err)
		}
		if slices.Contains(strings.Fields(string(out)), "udhcpc6") {
			t.Fatalf("%s has udhcpc6 now: the busybox root can renew the DHCPv6 lease; add its row (udhcpc6 with the DUID of net.<iface>.env's IPV6_DUID)", harness.HostBusybox)
		}
		t.Skipf("%s has no udhcpc6 applet (Debian 12's busybox-static): no DHCPv6 client in the busybox root, so no busybox row", harness.HostBusybox)
	})
	for _, tc := range []struct {
		c      leaseClient
		server string
		dual   bool
	}{
		{leaseClients[0], "kea", false},
		{leaseClients[0], "dnsmasq", true},
		{leaseClients[1], "dnsmasq", false},
		{leaseClients[1], "kea", false},
	} {
		name := tc.c.name + "-" + tc.server
		if tc.dual {
			name += "-dualstack"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testIPv6OneLease(t, tc.c, tc.server, tc.dual)
		})
	}
}

func testIPv6OneLease(t *testing.T, c leaseClient, server string, dual bool) {
	ns := v6Netns(t)
	fixture := env.LeaseFixture(t, c.fixture)
	var srv *v6Server
	var d *harness.Dnsmasq6
	if server == "kea" {
		harness.StartRadvd(t, ns, harness.RadvdOptions{})
		srv = kea6Server(harness.StartKea6(t, ns))
	} else {
		d = harness.StartDnsmasq6(t, ns, harness.Dnsmasq6Options{IPv4: dual})
		srv = dnsmasq6Server(d)
	}
	web := harness.StartNginx(t, ns, harness.NginxOptions{Listen: "[" + harness.ServerIP6 + "]:80"})
	if err := web.AddFile(fixture, c.fixture); err != nil {
		t.Fatal(err)
	}
	ip := "ip=dhcp6"
	if dual {
		ip = "ip=dhcp ip=dhcp6"
	}
	// The report waits until the root's client holds the DHCPv6 (and in
	// dual stack the DHCPv4) lease, at most its default two minutes.
	vm := env.Boot(t, harness.BootOptions{Netns: ns, MemoryMiB: c.mem, Timeout: c.timeout,
		Append: v6Cmdline(ip, web.URL(c.fixture))})
	r := vm.ExpectReport(t)
	lr := leaseReportOf(t, r)
	defer func() {
		if t.Failed() {
			t.Logf("--- os state:\n%s\n--- os log:\n%s\n--- handover:\n%s\n--- addrs:\n%s\n--- %s log (tail):\n%s",
				lr.OSState, lr.OSLog, lr.Handover, lr.Addrs, server, tailLines(srv.log(), 40))
		}
	}()
	if lr.Fixture != c.id || lr.OSDHCP != c.name {
		t.Fatalf("booted fixture %q reporting %q, want %q with %q", lr.Fixture, lr.OSDHCP, c.id, c.name)
	}
	if c.link != "" && lr.OSLink != c.link {
		t.Errorf("the boot NIC is %q in the root, want %s", lr.OSLink, c.link)
	}
	if !lr.OSBound {
		t.Errorf("the root's %s did not hold the lease(s) within %ds", c.name, lr.OSWait)
	}
	l := checkV6Lease(t, srv, lr.Report)
	if got := lr.EnvVar("IPV6_ADDRESS"); got != l.IP {
		t.Errorf("net.*.env IPV6_ADDRESS %q, want the leased %s", got, l.IP)
	}
	// The initramfs's exchange and at least one of the root's client, all
	// for the one DUID.
	if n := srv.transactions(bootDUID); n < 2 {
		t.Errorf("%s leased to %s %d times, want ≥ 2 (the initramfs, then the root's %s): the root's client never renewed with the handed-over DUID",
			server, bootDUID, n, c.name)
	}
	if dual {
		if ip4 := checkDualStackV4(t, d, lr.Report); lr.EnvVar("ADDRESS") != ip4 {
			t.Errorf("net.*.env ADDRESS %q, want the leased %s", lr.EnvVar("ADDRESS"), ip4)
		}
	}
	t.Logf("%s × %s: %d DHCPv6 exchanges for %s; lease %s, the root has %v; its client held the lease(s) after %ds (report at %.1fs guest uptime)",
		c.name, server, srv.transactions(bootDUID), bootDUID, l.IP, globalV6On(lr.Report, harness.BootMAC), lr.OSWait, lr.Uptime)
}

// checkDualStackV4 asserts dnsmasq's one DHCPv4 lease beside the DHCPv6
// one, the node's (client id 01+MAC), and that the guest holds its address
// (and no other IPv4 one); it returns the address.
func checkDualStackV4(t *testing.T, d *harness.Dnsmasq6, r *harness.Report) string {
	t.Helper()
	v4, err := d.Leases4()
	if err != nil {
		t.Fatal(err)
	}
	if len(v4) != 1 || v4[0].MAC != harness.BootMAC || v4[0].ClientID != "01:"+harness.BootMAC {
		t.Fatalf("DHCPv4 leases %+v, want one for %s with client id 01+MAC", v4, harness.BootMAC)
	}
	if got := r.IPv4On(harness.BootMAC); len(got) != 1 || got[0] != v4[0].IP {
		t.Errorf("guest has IPv4 %v, want exactly the leased %s", got, v4[0].IP)
	}
	return v4[0].IP
}

// TestIPv6OnlyNBD: an IPv6-only node whose root is an NBD export on
// [fd00:77::1] (root=nbd:[v6]:export).
func TestIPv6OnlyNBD(t *testing.T) {
	t.Parallel()
	ns := v6Netns(t)
	fx := env.Fixtures(t)
	d := harness.StartDnsmasq6(t, ns, harness.Dnsmasq6Options{})
	harness.StartNBDServerOn(t, ns, harness.ServerIP6, map[string]string{"discovery": fx.Plain})
	vm := env.Boot(t, harness.BootOptions{Netns: ns,
		Append: "ip=dhcp6 root=nbd:[" + harness.ServerIP6 + "]:discovery:squashfs ro rd.shell rd.debug=1 BOOTIF=01-52-54-00-12-34-56"})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	if !strings.Contains(r.Mounts, "/dev/nbd0 ") {
		t.Errorf("root not from nbd:\n%s", r.Mounts)
	}
	checkV6Lease(t, dnsmasq6Server(d), r)
}

// TestIPv6Static: a static IPv6 address and host name from
// ip=[v6]:::<plen>:<host>::none, no DHCP server and no router on the link;
// DNS from nameserver=[v6].
func TestIPv6Static(t *testing.T) {
	t.Parallel()
	ns := v6Netns(t)
	fx := env.Fixtures(t)
	web := harness.StartNginx(t, ns, harness.NginxOptions{Listen: "[" + harness.ServerIP6 + "]:80"})
	if err := web.AddFile(fx.Plain, "plain.squashfs"); err != nil {
		t.Fatal(err)
	}
	vm := env.Boot(t, harness.BootOptions{Netns: ns,
		Append: v6Cmdline("ip=[fd00:77::7]:::64:node6::none", web.URL("plain.squashfs"), "nameserver=["+harness.DNSServer6+"]")})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	if got := globalV6On(r, harness.BootMAC); len(got) != 1 || got[0].String() != "fd00:77::7/64" {
		t.Errorf("guest has %v on the boot link, want exactly fd00:77::7/64\naddrs:\n%s", got, r.Addrs)
	}
	if !strings.Contains(r.ResolvConf, "nameserver "+harness.DNSServer6) {
		t.Errorf("resolv.conf lacks nameserver= %s:\n%s", harness.DNSServer6, r.ResolvConf)
	}
	if got := strings.TrimSpace(r.Hostname); got != "node6" {
		t.Errorf("host name %q, want ip='s node6", got)
	}
}

// TestIPv6Failures: the network stage's IPv6 failures, each one block
// naming what is missing: no router advertisement (ip=auto6 on a link
// without a router), no DHCPv6 server (ip=dhcp6 with an RA-only router),
// and a static address another node holds (DAD).
func TestIPv6Failures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, ip string
		setup    func(t *testing.T, ns *harness.Netns)
		want     []string
	}{
		{"no RA", "ip=auto6", func(t *testing.T, ns *harness.Netns) {}, []string{"no IPv6 router advertisement on", "solicitations sent"}},
		{"no DHCPv6", "ip=dhcp6", func(t *testing.T, ns *harness.Netns) {
			harness.StartDnsmasq6(t, ns, harness.Dnsmasq6Options{SLAAC: true})
		}, []string{"no DHCPv6 lease on", "DUID 0003000152540012345"}},
		{"DAD", "ip=[fd00:77::7]:::64:::none", func(t *testing.T, ns *harness.Netns) {
			if err := ns.IP("addr", "add", "fd00:77::7/64", "dev", harness.Bridge0, "nodad"); err != nil {
				t.Fatal(err)
			}
		}, []string{"duplicate address detection failed for fd00:77::7/64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := v6Netns(t)
			tc.setup(t, ns)
			line := strings.Replace(harness.FailureCmdline("live:http://["+harness.ServerIP6+"]/plain.squashfs", "rd.retry=8", "rd.net.timeout.dhcp=4"), "ip=dhcp", tc.ip, 1)
			vm := env.Boot(t, harness.BootOptions{Netns: ns, Append: line})
			vm.ExpectFailure(t, "network", tc.want...)
		})
	}
}
