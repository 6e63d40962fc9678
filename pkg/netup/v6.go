package netup

// IPv6: the kernel does SLAAC, we watch and check.
//
// SLAAC is left to the kernel (accept_ra=1, autoconf=1): it forms the
// address from the advertised prefix, runs DAD, installs the default route
// and the on-link prefix routes, and keeps them with their lifetimes after
// switch_root until the real OS's client (networkd, NetworkManager: both
// handle RAs in user space) takes over. Doing it in user space as well
// (mdlayher/ndp) would duplicate the kernel's state machine and leave two
// owners for one address. What the kernel does not give us as data — the
// M/O flags, RDNSS and DNSSL — we read from the same advertisements on a
// raw ICMPv6 socket (ParseRA, fuzzed), and we send our own router
// solicitations so a missed first RA costs a second, not the kernel's 4 s
// interval. Addresses are then read back by netlink: the boot waits until
// DAD says the address is ours (tentative → usable) and fails clearly when
// DAD finds it taken (dadfailed).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// V6Method is how the link gets its IPv6 address.
type V6Method string

// IPv6 methods, as ip= spells them.
const (
	V6DHCP   V6Method = "dhcp6"  // stateful DHCPv6 (IA_NA); the RA only for routes
	V6Auto   V6Method = "auto6"  // SLAAC, plus DHCPv6 when the RA's M flag says so
	V6Static V6Method = "static" // ip=[addr]::[gw]:plen:…
)

// V6 says how to address the link with IPv6.
type V6 struct {
	Method V6Method
	// Only: no IPv4 at all on the link (ip=dhcp6 alone); the IPv6 lease
	// is then the node's lease (Lease.Addr, DNS, search).
	Only bool
	// Static is the address for V6Static (Addr with a /prefix, Gateway,
	// DNS, Hostname); nil otherwise.
	Static *Static
	// DUID is the DHCPv6 client DUID; nil: DUID-LL from the link's MAC.
	DUID []byte
	// Timeout bounds the wait for an RA and for DHCPv6 (0: 60 s).
	Timeout time.Duration
	// MayFail: IPv4 carries the boot, so an IPv6 failure is a warning,
	// not the boot's end (dual stack, as NetworkManager's may-fail).
	MayFail bool
}

// Lease6 is the IPv6 configuration the node holds, and where it came from.
type Lease6 struct {
	Method   V6Method
	Addrs    []Addr6 // usable (DAD passed) global addresses, the DHCPv6 one first
	Router   net.IP  // default router (link-local), or nil
	RA       *RA     // the router advertisement that configured the link, or nil
	DNS      []net.IP
	Search   []string
	DUID     []byte // DHCPv6 client DUID (also set for SLAAC: the real OS's identity)
	IAID     uint32
	ServerID []byte        // DHCPv6 server DUID; nil without DHCPv6
	T1, T2   time.Duration // DHCPv6 renew and rebind times
	Acquired time.Time
	DHCP     bool   // an address came from DHCPv6
	Hostname string // ip='s host name of a static address, valid (CheckHostname) or ""
}

// Addr6 is one IPv6 address on the link.
type Addr6 struct {
	Net       net.IPNet
	Valid     time.Duration // Forever for static
	Preferred time.Duration
	From      string // "dhcp6", "slaac" or "static"
}

// DUIDLL is the DUID-LL (RFC 8415 §11.4) of an Ethernet MAC: what
// NetworkManager's ipv6.dhcp-duid=ll and networkd's DUIDType=link-layer
// derive from the same MAC.
func DUIDLL(mac net.HardwareAddr) []byte {
	return append([]byte{0, 3, 0, 1}, mac...)
}

// IAIDFor is the IA_NA identifier: the MAC's last four bytes, big-endian
// (NetworkManager's ipv6.dhcp-iaid=mac; written out as a number for both
// NetworkManager and networkd, whose defaults differ).
func IAIDFor(mac net.HardwareAddr) uint32 {
	if len(mac) < 4 {
		return 0
	}
	b := mac[len(mac)-4:]
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// up6 addresses the link with IPv6 as cfg says and records it in the
// lease; with v6 only, the lease's own address and resolver fields too.
func up6(ctx context.Context, link netlink.Link, cfg Config, lease *Lease, log *slog.Logger) error {
	v := *cfg.V6
	if v.Timeout <= 0 {
		v.Timeout = 60 * time.Second
	}
	a := link.Attrs()
	l6 := &Lease6{Method: v.Method, DUID: v.DUID, IAID: IAIDFor(a.HardwareAddr), Acquired: time.Now()}
	if l6.DUID == nil {
		l6.DUID = DUIDLL(a.HardwareAddr)
	}
	// The kernel forms SLAAC addresses only for auto6; with dhcp6 and
	// static it still learns routes from RAs, but adds no address the
	// server did not give.
	autoconf := "0"
	if v.Method == V6Auto {
		autoconf = "1"
	}
	for k, val := range map[string]string{"disable_ipv6": "0", "accept_ra": "1", "autoconf": autoconf} {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+a.Name+"/"+k, []byte(val), 0o644); err != nil {
			return fail("the kernel needs IPv6 (CONFIG_IPV6) and must not boot with ipv6.disable=1",
				"enable IPv6 on %s (%s=%s): %w", a.Name, k, val, err)
		}
	}
	if _, err := waitAddr(ctx, link, func(ip net.IP) bool { return ip.IsLinkLocalUnicast() }, v.Timeout, "link-local"); err != nil {
		return err
	}
	var err error
	switch v.Method {
	case V6Static:
		err = static6(ctx, link, v, l6, log)
	default:
		err = dynamic6(ctx, link, v, l6, log)
	}
	if err != nil {
		return err
	}
	lease.V6 = l6
	if cfg.PeerDNS || v.Method == V6Static {
		for _, d := range l6.DNS {
			lease.DNS = addDNS6(lease.DNS, d, "IPv6", func(string, ...any) {})
		}
		lease.Search = addSearch(lease.Search, l6.Search, "IPv6", func(string, ...any) {})
	}
	if v.Only {
		lease.Addr = l6.Addrs[0].Net
		lease.Router = l6.Router
		// With IPv4 apply set ip='s host name; without, it is set here.
		if lease.Hostname == "" && l6.Hostname != "" {
			if err := unix.Sethostname([]byte(l6.Hostname)); err != nil {
				log.Warn(fmt.Sprintf("cannot set the host name %s", quote(l6.Hostname)), "err", err)
			} else {
				lease.Hostname = l6.Hostname
			}
		}
	}
	for _, ad := range l6.Addrs {
		log.Info("IPv6 address", "iface", a.Name, "addr", ad.Net.String(), "from", ad.From, "valid", ad.Valid)
	}
	return nil
}

// static6 puts ip='s IPv6 address and gateway on the link.
func static6(ctx context.Context, link netlink.Link, v V6, l6 *Lease6, log *slog.Logger) error {
	st := v.Static
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: &st.Addr}); err != nil {
		return fmt.Errorf("add address %s: %w", st.Addr.String(), err)
	}
	if _, err := waitAddr(ctx, link, st.Addr.IP.Equal, v.Timeout, "static"); err != nil {
		return err
	}
	l6.Addrs = []Addr6{{Net: st.Addr, Valid: Forever, Preferred: Forever, From: "static"}}
	if st.Hostname != "" {
		if err := CheckHostname(st.Hostname); err != nil {
			log.Warn(fmt.Sprintf("ignoring the host name %s of ip=: %v", quote(st.Hostname), err))
		} else {
			l6.Hostname = st.Hostname
		}
	}
	if st.Gateway != nil && !st.Gateway.IsUnspecified() {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: st.Gateway, Family: netlink.FAMILY_V6}
		if err := netlink.RouteReplace(r); err != nil {
			log.Warn(fmt.Sprintf("cannot add the IPv6 default route via %s (ip=); going on without it", st.Gateway), "err", err)
		} else {
			l6.Router = st.Gateway
		}
	}
	for _, d := range st.DNS {
		if d.To4() == nil {
			l6.DNS = addDNS6(l6.DNS, d, "ip=", func(string, ...any) {})
		}
	}
	return nil
}

// dynamic6 solicits an RA, then lets the kernel's SLAAC and/or DHCPv6
// give the address, and waits until it is usable.
func dynamic6(ctx context.Context, link netlink.Link, v V6, l6 *Lease6, log *slog.Logger) error {
	name := link.Attrs().Name
	// dhcp6 needs no RA to lease an address, only for the routes: wait
	// for one briefly, then go on.
	raWait := v.Timeout
	if v.Method == V6DHCP {
		raWait = min(v.Timeout, 10*time.Second)
	}
	ra, err := solicit(ctx, link, raWait, log)
	switch {
	case err != nil && v.Method == V6Auto:
		return err
	case err != nil:
		log.Info("no router advertisement; DHCPv6 without one (no default route from an RA)", "iface", name, "err", err)
	default:
		l6.RA = ra
		if ra.Lifetime > 0 {
			l6.Router = ra.Router
		}
		l6.DNS, l6.Search = append(l6.DNS, ra.DNS...), append(l6.Search, ra.Search...)
		log.Info("router advertisement", "iface", name, "router", ra.Router, "managed", ra.Managed, "other", ra.Other,
			"prefixes", len(ra.Prefixes), "dns", len(ra.DNS), "lifetime", ra.Lifetime)
	}
	if v.Method == V6Auto && ra != nil {
		if err := slaac(ctx, link, v.Timeout, ra, l6); err != nil {
			return err
		}
	}
	stateful := v.Method == V6DHCP || ra != nil && ra.Managed
	switch {
	case stateful:
		if err := dhcp6(ctx, link, v.Timeout, l6, log); err != nil {
			if len(l6.Addrs) == 0 {
				return err
			}
			// SLAAC gave an address: the boot can go on without DHCPv6's.
			log.Warn("DHCPv6 failed; keeping the SLAAC address", "iface", name, "err", err)
		}
	case ra != nil && ra.Other:
		info6(ctx, link, l6, log)
	}
	if len(l6.Addrs) == 0 {
		return fail("the router advertises no prefix with the A flag and not the M flag: give it a SLAAC prefix or a DHCPv6 server (ip=dhcp6)",
			"no IPv6 address on %s: the router advertisement from %s offers neither SLAAC nor DHCPv6", name, ra.Router)
	}
	return nil
}

// slaac waits for the kernel's addresses in the RA's autonomous prefixes.
func slaac(ctx context.Context, link netlink.Link, timeout time.Duration, ra *RA, l6 *Lease6) error {
	var auto []Prefix
	for _, p := range ra.Prefixes {
		if p.Autonomous && p.Valid > 0 {
			auto = append(auto, p)
		}
	}
	if len(auto) == 0 {
		return nil // the M flag may still give one
	}
	in := func(ip net.IP) bool {
		for _, p := range auto {
			if p.Net.Contains(ip) {
				return true
			}
		}
		return false
	}
	got, err := waitAddr(ctx, link, in, timeout, "SLAAC")
	if err != nil {
		return err
	}
	l6.Addrs = append(l6.Addrs, Addr6{Net: *got.IPNet, Valid: lft(got.ValidLft), Preferred: lft(got.PreferedLft), From: "slaac"})
	return nil
}

func lft(s int) time.Duration {
	if s < 0 || uint32(s) == 0xffffffff {
		return Forever
	}
	return time.Duration(s) * time.Second
}

// waitAddr waits until an address on the link that match accepts has
// passed DAD; an address whose DAD failed is an error at once.
func waitAddr(ctx context.Context, link netlink.Link, match func(net.IP) bool, timeout time.Duration, what string) (*netlink.Addr, error) {
	name := link.Attrs().Name
	deadline := time.Now().Add(timeout)
	for {
		addrs, err := redump(func() ([]netlink.Addr, error) { return netlink.AddrList(link, netlink.FAMILY_V6) })
		if err != nil {
			return nil, fmt.Errorf("list IPv6 addresses on %s: %w", name, err)
		}
		tentative := ""
		for _, ad := range addrs {
			if !match(ad.IP) {
				continue
			}
			switch {
			case ad.Flags&unix.IFA_F_DADFAILED != 0:
				return nil, fail("another node on the link holds this address (a duplicate MAC, a static address reused, or a DHCPv6 server handing one address twice): find it by the address",
					"IPv6 duplicate address detection failed for %s (%s) on %s", ad.IPNet.String(), what, name)
			case ad.Flags&unix.IFA_F_TENTATIVE != 0:
				tentative = ad.IPNet.String()
			default:
				return &ad, nil
			}
		}
		if time.Now().After(deadline) {
			if tentative != "" {
				return nil, fail("duplicate address detection did not finish; check the link's multicast (MLD snooping on the switch)",
					"IPv6 address %s on %s still tentative after %s", tentative, name, timeout)
			}
			return nil, fail("check the router's advertised prefixes (A flag) and that the link carries IPv6",
				"no %s IPv6 address on %s within %s", what, name, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// solicit sends router solicitations and returns the first valid router
// advertisement with a default router or prefixes.
func solicit(ctx context.Context, link netlink.Link, timeout time.Duration, log *slog.Logger) (*RA, error) {
	a := link.Attrs()
	ifi, err := net.InterfaceByIndex(a.Index)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", a.Name, err)
	}
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("ICMPv6 socket for router solicitation on %s: %w", a.Name, err)
	}
	defer c.Close()
	p := c.IPv6PacketConn()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterAdvertisement)
	if err := p.SetICMPFilter(&f); err != nil {
		return nil, fmt.Errorf("ICMPv6 filter: %w", err)
	}
	if err := p.SetControlMessage(ipv6.FlagInterface|ipv6.FlagHopLimit, true); err != nil {
		return nil, fmt.Errorf("ICMPv6 control messages: %w", err)
	}
	// RFC 4861 §6.1.1: a solicitation is sent with hop limit 255.
	_ = p.SetMulticastHopLimit(255)
	_ = p.SetMulticastInterface(ifi)
	rs, _ := (&icmp.Message{Type: ipv6.ICMPTypeRouterSolicitation, Body: &icmp.RawBody{
		Data: append([]byte{0, 0, 0, 0, optSourceLL, 1}, a.HardwareAddr...)}}).Marshal(nil)
	allRouters := &net.IPAddr{IP: net.ParseIP("ff02::2"), Zone: a.Name}

	deadline := time.Now().Add(timeout)
	interval := time.Second
	buf := make([]byte, 1500)
	for sent := 0; ; sent++ {
		if _, err := p.WriteTo(rs, nil, allRouters); err != nil && sent == 0 {
			log.Warn("cannot send a router solicitation; waiting for the router's own advertisements", "iface", a.Name, "err", err)
		}
		next := time.Now().Add(interval)
		interval = min(2*interval, 4*time.Second) // RFC 4861's RTR_SOLICITATION_INTERVAL
		for time.Now().Before(next) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if time.Now().After(deadline) {
				return nil, fail("check that a router (or radvd/dnsmasq --enable-ra) advertises on this link; ip=dhcp6 leases without one, a static ip=[<v6>]… needs none",
					"no IPv6 router advertisement on %s within %s (%d solicitations sent)", a.Name, timeout, sent+1)
			}
			until := next
			if deadline.Before(until) {
				until = deadline
			}
			_ = p.SetReadDeadline(until)
			n, cm, src, err := p.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					time.Sleep(100 * time.Millisecond) // bounded by next: never spin
				}
				continue // the deadline: solicit again
			}
			if cm == nil || cm.IfIndex != a.Index || cm.HopLimit != 255 {
				continue // another link's, or forwarded: RFC 4861 §6.1.2
			}
			from, _ := src.(*net.IPAddr)
			if from == nil {
				continue
			}
			ra, notes, err := ParseRA(buf[:n], from.IP)
			for _, s := range notes {
				log.Warn("ignoring part of a router advertisement: "+s, "iface", a.Name, "router", from.IP)
			}
			if err != nil {
				log.Warn("ignoring an invalid router advertisement", "iface", a.Name, "from", from.IP, "err", err)
				continue
			}
			if ra.Lifetime == 0 && len(ra.Prefixes) == 0 && !ra.Managed && !ra.Other {
				continue // says nothing to configure by
			}
			return ra, nil
		}
	}
}

// errNoV6 is returned by checks of peer-supplied IPv6 addresses.
var errNoV6 = errors.New("not a global unicast IPv6 address")
