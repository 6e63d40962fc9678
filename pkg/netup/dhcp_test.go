package netup

import (
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	serverIP = net.IPv4(10, 99, 0, 1).To4()
	clientIP = net.IPv4(10, 99, 0, 50).To4()
)

// testNetns moves the test's goroutine, locked to its OS thread, into new
// network and UTS namespaces holding a veth pair: sr0 (the client's link,
// returned) and sr1 (the fake server's, 10.99.0.1/24), both up. Sockets
// opened on this goroutine belong to that namespace, so nothing reaches
// the host's links and no sethostname the test causes renames the host.
// Cleanup returns the thread to the host's namespaces; the test's ones go
// away with their last socket. The test needs root, as `make unit` runs.
func testNetns(t *testing.T) netlink.Link {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	runtime.LockOSThread()
	var orig []int
	for _, ns := range []string{"net", "uts"} {
		fd, err := unix.Open("/proc/thread-self/ns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			t.Fatalf("open the host's %s namespace: %v", ns, err)
		}
		orig = append(orig, fd)
	}
	if err := unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWUTS); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() {
		errNet := unix.Setns(orig[0], unix.CLONE_NEWNET)
		errUTS := unix.Setns(orig[1], unix.CLONE_NEWUTS)
		unix.Close(orig[0])
		unix.Close(orig[1])
		if errNet != nil || errUTS != nil {
			// The thread stays locked and dies with the goroutine.
			t.Errorf("back to the host's namespaces: %v %v", errNet, errUTS)
			return
		}
		runtime.UnlockOSThread()
	})
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "sr0"}, PeerName: "sr1"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("veth: %v", err)
	}
	var c netlink.Link
	for _, name := range []string{"sr1", "sr0"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		if name == "sr1" {
			if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: serverIP, Mask: net.CIDRMask(24, 32)}}); err != nil {
				t.Fatal(err)
			}
		}
		c = l
	}
	if c, _ = netlink.LinkByName("sr0"); c == nil {
		t.Fatal("sr0 vanished")
	}
	return c
}

// fakeServer answers DHCP on sr1 with reply(request); a nil reply is no
// answer. It counts the REQUESTs it saw.
func fakeServer(t *testing.T, reply func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4) *atomic.Int32 {
	t.Helper()
	return fakeServerN(t, func(m *dhcpv4.DHCPv4) []*dhcpv4.DHCPv4 { return []*dhcpv4.DHCPv4{reply(m)} })
}

// fakeServerN is fakeServer sending each of replies(request) in turn (nil
// ones skipped): several servers on one segment, or one that answers twice.
func fakeServerN(t *testing.T, replies func(m *dhcpv4.DHCPv4) []*dhcpv4.DHCPv4) *atomic.Int32 {
	t.Helper()
	var requests atomic.Int32
	handler := func(conn net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
		if m.MessageType() == dhcpv4.MessageTypeRequest {
			requests.Add(1)
		}
		for _, r := range replies(m) {
			if r == nil {
				continue
			}
			if _, err := conn.WriteTo(r.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}); err != nil {
				t.Errorf("fake server: %v", err)
			}
		}
	}
	srv, err := server4.NewServer("sr1", &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
	if err != nil {
		t.Fatalf("fake DHCP server: %v", err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	return &requests
}

// answer builds an OFFER for a DISCOVER and typ (ACK, NAK) for a REQUEST.
func answer(t *testing.T, m *dhcpv4.DHCPv4, typ dhcpv4.MessageType, opts ...dhcpv4.Option) *dhcpv4.DHCPv4 {
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
	default:
		return nil
	}
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithServerIP(serverIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)), dhcpv4.WithBroadcast(true)}
	if typ != dhcpv4.MessageTypeNak {
		mods = append(mods, dhcpv4.WithYourIP(clientIP), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(serverIP), dhcpv4.WithLeaseTime(3600))
		for _, o := range opts {
			mods = append(mods, dhcpv4.WithOption(o))
		}
	} else {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptMessage("no lease for you\x1b[2J\r\nstreamroot: fake line")))
	}
	r, err := dhcpv4.NewReplyFromRequest(m, mods...)
	if err != nil {
		t.Errorf("reply: %v", err)
		return nil
	}
	return r
}

// A server that offers and then refuses every REQUEST: the client keeps
// trying with backoff, gives up when rd.net.timeout.dhcp is over (not
// later), and says that the server refused, escaping the server's text.
func TestDHCPAlwaysNAK(t *testing.T) {
	link := testNetns(t)
	requests := fakeServer(t, func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 { return answer(t, m, dhcpv4.MessageTypeNak) })
	log, rec := newLog()
	mac := link.Attrs().HardwareAddr
	const timeout = 5 * time.Second
	start := time.Now()
	l, err := dhcp(t.Context(), "sr0", mac, ask{clientID: append([]byte{1}, mac...), rapid: true, timeout: timeout}, log)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("got a lease from a server that only NAKs: %+v", l)
	}
	if took < timeout || took > timeout+5*time.Second {
		t.Errorf("gave up after %s, want %s (rd.net.timeout.dhcp) and little more", took, timeout)
	}
	var ne *Error
	if !errors.As(err, &ne) {
		t.Fatalf("error %T %v: no hint for the operator", err, err)
	}
	msg := err.Error()
	for _, want := range []string{"no DHCP lease on sr0", "DHCP server 10.99.0.1 refused", "requests (NAK)", `the last saying "no lease for you\x1b[2J\r\nstreamroot: fake line"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if !strings.Contains(ne.Hint(), "refuses to lease") {
		t.Errorf("hint %q does not say the server refuses", ne.Hint())
	}
	if n := requests.Load(); n < 2 {
		t.Errorf("the server saw %d REQUESTs: no retry after the NAK", n)
	}
	logged := rec.text()
	if !strings.Contains(logged, "refused the offer (NAK)") {
		t.Errorf("no NAK warning:\n%s", logged)
	}
	if strings.ContainsAny(msg+ne.Hint()+logged, "\x1b\r") {
		t.Errorf("the server's text reached the console raw:\n%q\n%q", msg, logged)
	}
}

// Hostile options in a real exchange: the lease dhcp returns holds none of
// them, each is warned about, and resolv.conf gets no injected line.
func TestDHCPHostileOptions(t *testing.T) {
	link := testNetns(t)
	search := []byte("\x02ok\x03lab\x00\x05bad\nx\x00")
	var dns []net.IP
	for i := range 10 {
		dns = append(dns, net.IPv4(10, 99, 0, byte(10+i)))
	}
	opts := []dhcpv4.Option{
		dhcpv4.OptGeneric(dhcpv4.OptionDomainName, []byte("lab\nnameserver 6.6.6.6")),
		dhcpv4.OptHostName(strings.Repeat("n", 100)),
		dhcpv4.OptDNS(dns...),
		dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{0, 68}),
		dhcpv4.OptGeneric(dhcpv4.OptionDNSDomainSearchList, search),
	}
	fakeServer(t, func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 { return answer(t, m, dhcpv4.MessageTypeAck, opts...) })
	log, rec := newLog()
	mac := link.Attrs().HardwareAddr
	l, err := dhcp(t.Context(), "sr0", mac, ask{clientID: append([]byte{1}, mac...), rapid: true, timeout: 20 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Addr.IP.Equal(clientIP) || l.Domain != "" || l.Hostname != "" || l.MTU != 0 || len(l.DNS) != MaxNameservers || strings.Join(l.Search, ",") != "ok.lab" {
		t.Errorf("lease keeps hostile values: %+v", l)
	}
	logged := rec.text()
	for _, want := range []string{
		`ignoring DHCP option 15 (domain name) "lab\nnameserver 6.6.6.6": not a valid domain name`,
		`ignoring DHCP option 12 (host name) "nnnn`,
		`ignoring DHCP option 119 (domain search) "bad\nx"`,
		"ignoring DHCP option 6 (DNS servers) 10.99.0.13: more than 3 servers",
		"ignoring DHCP option 26 (interface MTU) 68",
	} {
		if !strings.Contains(logged, want) {
			t.Errorf("no warning %q in:\n%s", want, logged)
		}
	}
	rc := string(ResolvConf(l))
	if strings.Contains(rc, "6.6.6.6") || strings.Count(rc, "nameserver") != MaxNameservers || !strings.Contains(rc, "search ok.lab\n") {
		t.Errorf("resolv.conf:\n%s", rc)
	}
}

// An MTU the NIC refuses, a route whose gateway is not on the link and a
// default route via an unreachable router are warned about, dropped from
// the lease, and the link is still configured; a route whose gateway only
// a later route of option 121 reaches is added.
func TestApplyKeepsGoing(t *testing.T) {
	link := testNetns(t)
	// A macvlan cannot be bigger than its lower link: the kernel refuses
	// the MTU as a NIC's driver would.
	mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "srm", ParentIndex: link.Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := netlink.LinkAdd(mv); err != nil {
		t.Fatalf("macvlan: %v", err)
	}
	nic, err := netlink.LinkByName("srm")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(nic); err != nil {
		t.Fatal(err)
	}
	cidr := func(s string) net.IPNet { _, n, _ := net.ParseCIDR(s); return *n }
	addr := net.IPNet{IP: net.IPv4(10, 98, 0, 9).To4(), Mask: net.CIDRMask(24, 32)}
	for _, tc := range []struct {
		name   string
		l      Lease
		routes []string // kernel routes on srm after apply, as "dst via gw"
		warns  []string
	}{
		{"option 121", Lease{Addr: addr, MTU: 9000, Hostname: "node-17", Routes: []Route{
			{Dest: cidr("10.50.0.0/16"), Gateway: net.IPv4(192, 0, 2, 1)},
			{Dest: cidr("0.0.0.0/0"), Gateway: net.IPv4(10, 61, 0, 1)},
			{Dest: cidr("10.61.0.0/24"), Gateway: net.IPv4zero},
		}}, []string{"default via 10.61.0.1", "10.61.0.0/24 via <nil>"}, []string{
			"cannot set MTU 9000 on srm", "cannot add route 10.50.0.0/16 via 192.0.2.1 on srm (DHCP option 121); going on without it",
		}},
		{"router", Lease{Addr: addr, Router: net.IPv4(192, 0, 2, 1)}, nil, []string{
			"cannot add the default route via 192.0.2.1 on srm",
		}},
	} {
		log, rec := newLog()
		l := tc.l
		if err := apply(nic, &l, log); err != nil {
			t.Errorf("%s: apply failed the boot: %v", tc.name, err)
			continue
		}
		logged := rec.text()
		for _, w := range tc.warns {
			if !strings.Contains(logged, w) {
				t.Errorf("%s: no warning %q in:\n%s", tc.name, w, logged)
			}
		}
		var got []string
		rs, err := netlink.RouteList(nic, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Protocol == unix.RTPROT_KERNEL {
				continue // the address's own subnet
			}
			dst := "default"
			if ones, _ := r.Dst.Mask.Size(); r.Dst != nil && ones > 0 {
				dst = r.Dst.String()
			}
			got = append(got, dst+" via "+r.Gw.String())
			if err := netlink.RouteDel(&r); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range tc.routes {
			if !strings.Contains(strings.Join(got, "\n"), want) {
				t.Errorf("%s: kernel routes %q lack %q", tc.name, got, want)
			}
		}
		if len(got) != len(tc.routes) {
			t.Errorf("%s: kernel routes %q, want %q", tc.name, got, tc.routes)
		}
		if l.MTU != 0 || len(l.Routes) != len(tc.routes) || l.Router != nil {
			t.Errorf("%s: the lease keeps what was not applied: MTU %d, routes %v, router %v", tc.name, l.MTU, l.Routes, l.Router)
		}
		addrs, _ := netlink.AddrList(nic, netlink.FAMILY_V4)
		if len(addrs) != 1 || !addrs[0].IP.Equal(addr.IP) {
			t.Errorf("%s: addresses %v", tc.name, addrs)
		}
		if tc.l.Hostname != "" {
			var u unix.Utsname
			if err := unix.Uname(&u); err != nil || unix.ByteSliceToString(u.Nodename[:]) != tc.l.Hostname {
				t.Errorf("%s: host name %q, want %q", tc.name, unix.ByteSliceToString(u.Nodename[:]), tc.l.Hostname)
			}
		}
	}
}

// rd.peerdns=0 keeps DHCP's servers, domain and search list out of
// resolv.conf; nameserver= stays, first.
func TestPeerDNS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		peerDNS bool
		static  bool
		want    string
	}{
		{"peerdns", true, false, "search lab b.lab\nnameserver 10.0.0.53\nnameserver 10.77.0.1\n"},
		{"rd.peerdns=0", false, false, "nameserver 10.0.0.53\n"},
		{"static keeps ip='s DNS", false, true, "search lab b.lab\nnameserver 10.0.0.53\nnameserver 10.77.0.1\n"},
	} {
		l := &Lease{DHCP: !tc.static, Domain: "lab", Search: []string{"b.lab"}, DNS: ips("10.77.0.1")}
		resolver(Config{PeerDNS: tc.peerDNS, Nameservers: ips("10.0.0.53")}, l)
		got, _ := strings.CutPrefix(string(ResolvConf(l)), "# written by streamroot from the boot network's lease\n")
		if got != tc.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}
