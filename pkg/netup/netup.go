// Package netup brings up the boot network: it picks the link (BOOTIF, a
// named interface, or the first with carrier), gets an address by DHCPv4 or
// from a static ip= line, and applies it with netlink.
//
// IPv6 (Config.V6, v6.go) comes beside or instead of IPv4: stateful DHCPv6
// (dhcp6.go, insomniacslk/dhcp's nclient6), SLAAC, or a static address.
// SLAAC is the kernel's (accept_ra, autoconf), not ours: the kernel already
// forms the address, runs DAD and keeps the routes with their lifetimes
// across switch_root, so a user-space SLAAC (mdlayher/ndp) would be a
// second owner of the same address. We only send router solicitations and
// read the advertisements ourselves (ParseRA) for what the kernel does not
// expose as data: the M/O flags, RDNSS and DNSSL; then wait, by netlink,
// until DAD has passed.
//
// The DHCP lease is never released: the real OS renews it with the same
// client identifier, so the server sees one client and hands out one address.
package netup

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config says which link to use and how to address it.
type Config struct {
	BootIF         net.HardwareAddr // PXELinux BOOTIF: the NIC the firmware booted from
	Iface          string           // a link named by ip=<iface>:… or bootdev=
	Static         *Static          // nil: DHCP
	ClientID       []byte           // DHCP option 61; nil: 01 followed by the MAC
	CarrierTimeout time.Duration    // how long to wait for a link and its carrier
	DHCPTimeout    time.Duration    // how long to keep trying DHCP; Forever: until a lease comes
	Nameservers    []net.IP         // nameserver=, used before (or instead of) DHCP's
	PeerDNS        bool             // use the DNS servers, domain and search list DHCP offers
	// RapidCommit asks for DHCPv4 rapid commit (RFC 4039) on the first
	// DISCOVER; a server that does not allow it is asked the usual way.
	RapidCommit bool
	// Requested is the address the firmware has just leased (PXELinux
	// IPAPPEND 1's ip=): DHCP asks for it first, in one round trip.
	Requested net.IP
	// Names renames links by MAC (ifname=<name>:<mac>).
	Names map[string]string
	// Predictable gives links udev's predictable names (ens3, enp0s3)
	// before they go up, so the real OS's config that matches them applies.
	Predictable bool
	// Skip names links that must not be configured (ip=<iface>:off): they
	// are never picked.
	Skip []string
	// MTU, if not 0, is set on the link and beats DHCP's option 26
	// (ip=<iface>:dhcp:<mtu>).
	MTU int
	// MAC, if not nil, is set on the link before DHCP, so the default
	// client id follows it (ip=<iface>:dhcp::<mac>).
	MAC net.HardwareAddr
	// Links are built before the boot link is chosen (vlan=, bond=,
	// bridge=); the boot link is then one of them (links.go).
	Links []Virtual
	// V6, if not nil, also addresses the link with IPv6 (v6.go).
	V6 *V6
}

// Forever as DHCPTimeout keeps trying DHCP until a lease comes
// (rd.net.timeout.dhcp=infinity).
const Forever time.Duration = math.MaxInt64

// Static is a static address from ip=<ip>::<gw>:<mask>:<host>:<iface>:none.
type Static struct {
	Addr     net.IPNet
	Gateway  net.IP
	Hostname string
	DNS      []net.IP
	MTU      int
}

// Lease is the address the node holds, and where it came from.
type Lease struct {
	Iface     string
	MAC       net.HardwareAddr
	Addr      net.IPNet
	Router    net.IP
	DNS       []net.IP
	Domain    string   // DHCP option 15, a valid domain name or ""
	Search    []string // DHCP option 119, valid domain names
	Hostname  string   // a valid host name (CheckHostname) or ""
	MTU       int
	Routes    []Route       // DHCP option 121 (classless static routes)
	ServerID  net.IP        // DHCP server identifier; nil for static
	LeaseTime time.Duration // 0 for static
	Acquired  time.Time
	ClientID  []byte // nil for static
	DHCP      bool
	// Links are the virtual links the boot built, the lease's link among
	// them, each after those it is built on; nil on a plain NIC.
	Links []Built
	V6    *Lease6 // the IPv6 configuration; nil without IPv6
}

// Route is one classless static route.
type Route struct {
	Dest    net.IPNet
	Gateway net.IP // 0.0.0.0: on-link
}

// Error is a network failure with what the operator should check.
type Error struct {
	Err  error
	hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Hint tells the operator what to check.
func (e *Error) Hint() string { return e.hint }

func fail(hint, format string, args ...any) error {
	return &Error{Err: fmt.Errorf(format, args...), hint: hint}
}

// Up brings up the boot link and addresses it.
func Up(ctx context.Context, cfg Config, log *slog.Logger) (*Lease, error) {
	if cfg.CarrierTimeout <= 0 {
		cfg.CarrierTimeout = 15 * time.Second
	}
	if cfg.DHCPTimeout <= 0 {
		cfg.DHCPTimeout = 60 * time.Second
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	var link netlink.Link
	var built []Built
	var err error
	if len(cfg.Links) > 0 {
		link, built, err = buildLinks(ctx, cfg, log)
	} else {
		link, err = pickLink(ctx, cfg, log)
	}
	if err != nil {
		return nil, err
	}
	if cfg.MAC != nil {
		// pickLink set the MAC: the attributes it listed are stale.
		if link, err = netlink.LinkByIndex(link.Attrs().Index); err != nil {
			return nil, fmt.Errorf("read link back after setting its MAC: %w", err)
		}
	}
	attrs := link.Attrs()
	log.Info("using link", "iface", attrs.Name, "mac", attrs.HardwareAddr)

	var lease *Lease
	if cfg.V6 != nil && cfg.V6.Only {
		lease = &Lease{Iface: attrs.Name, MAC: attrs.HardwareAddr, Acquired: time.Now()}
	} else if cfg.Static != nil {
		lease = staticLease(cfg.Static, attrs.Name, attrs.HardwareAddr, log)
	} else {
		id := cfg.ClientID
		if id == nil {
			id = append([]byte{1}, attrs.HardwareAddr...)
		}
		lease, err = dhcp(ctx, attrs.Name, attrs.HardwareAddr, ask{clientID: id, rapid: cfg.RapidCommit, requested: cfg.Requested, timeout: cfg.DHCPTimeout}, log)
		if err != nil {
			return nil, err
		}
		if cfg.MTU > 0 {
			lease.MTU = cfg.MTU
		}
	}
	lease.Links = built
	resolver(cfg, lease)
	if cfg.V6 == nil || !cfg.V6.Only {
		if err := apply(link, lease, log); err != nil {
			return nil, fmt.Errorf("configure %s: %w", attrs.Name, err)
		}
	}
	if cfg.V6 != nil {
		if err := up6(ctx, link, cfg, lease, log); err != nil {
			if !cfg.V6.MayFail || cfg.V6.Only || ctx.Err() != nil {
				return nil, err
			}
			log.Warn(fmt.Sprintf("booting on IPv4 alone: the IPv6 half did not come up: %v", err), "iface", attrs.Name)
		}
	}
	return lease, nil
}

// staticLease is the lease an ip=…:none line describes.
func staticLease(st *Static, iface string, mac net.HardwareAddr, log *slog.Logger) *Lease {
	l := &Lease{Iface: iface, MAC: mac, Addr: st.Addr, Router: st.Gateway,
		DNS: st.DNS, Hostname: st.Hostname, MTU: st.MTU, Acquired: time.Now()}
	if err := CheckHostname(l.Hostname); l.Hostname != "" && err != nil {
		// ip= admits any DNS name; the kernel takes 64 bytes at most.
		log.Warn(fmt.Sprintf("ignoring the host name %s of ip=: %v", quote(l.Hostname), err))
		l.Hostname = ""
	}
	return l
}

// resolver settles the lease's resolver settings: nameserver= first, then
// DHCP's servers; with rd.peerdns=0 none of DHCP's servers, domain or
// search list (a domain alone would still reach resolv.conf's search line).
func resolver(cfg Config, l *Lease) {
	if l.DHCP && !cfg.PeerDNS {
		l.DNS, l.Domain, l.Search = nil, "", nil
	}
	l.DNS = append(slices.Clone(cfg.Nameservers), l.DNS...)
}

// candidates are the Ethernet links a node could boot from.
func candidates() ([]netlink.Link, error) {
	all, err := redump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []netlink.Link
	for _, l := range all {
		a := l.Attrs()
		if l.Type() != "device" || a.EncapType != "ether" || len(a.HardwareAddr) != 6 {
			continue
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b netlink.Link) int { return a.Attrs().Index - b.Attrs().Index })
	return out, nil
}

func describe(links []netlink.Link) string {
	if len(links) == 0 {
		return "none"
	}
	var s []string
	for _, l := range links {
		s = append(s, fmt.Sprintf("%s (%s)", l.Attrs().Name, l.Attrs().HardwareAddr))
	}
	return strings.Join(s, ", ")
}

func hasCarrier(name string) bool {
	b, err := os.ReadFile("/sys/class/net/" + name + "/carrier")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// pickLink waits (bounded by CarrierTimeout) for the link the config asks
// for, brings it up and waits for its carrier.
func pickLink(ctx context.Context, cfg Config, log *slog.Logger) (netlink.Link, error) {
	deadline := time.Now().Add(cfg.CarrierTimeout)
	upped := map[string]bool{}
	named := map[int]bool{}
	kn := kernelNames{}
	said := map[string]bool{}
	asked := cfg
	var r race
	var links []netlink.Link
	for {
		var err error
		links, err = candidates()
		if err != nil {
			return nil, err
		}
		kn.note(links)
		if renameLinks(links, named, cfg, log) {
			if links, err = candidates(); err != nil {
				return nil, err
			}
		}
		cfg = byKernelNames(asked, links, kn, said, log)
		want := wanted(links, cfg)
		// Bring every candidate up: without that, no carrier is reported.
		for _, l := range want {
			if !upped[l.Attrs().Name] {
				setMAC(l, cfg.MAC, log)
				if err := netlink.LinkSetUp(l); err != nil {
					log.Warn("cannot bring link up", "iface", l.Attrs().Name, "err", err)
				}
				upped[l.Attrs().Name] = true
			}
		}
		if l, wait, err := r.pick(ctx, cfg, want, deadline, log); l != nil || err != nil {
			return l, err
		} else if wait {
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return nil, err
			}
			continue
		}
		for _, l := range want {
			if hasCarrier(l.Attrs().Name) {
				// Links we only woke to look for carrier go back down, so the
				// real OS finds them as the firmware left them.
				for _, o := range want {
					if o.Attrs().Index != l.Attrs().Index {
						_ = netlink.LinkSetDown(o)
					}
				}
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			switch {
			case cfg.BootIF != nil && len(want) == 0:
				return nil, fail("BOOTIF comes from PXELinux IPAPPEND 2 / iPXE; check it names this machine's NIC, or that its driver is in the initramfs",
					"no network interface has the BOOTIF MAC %s (found: %s)", cfg.BootIF, describe(links))
			case len(want) == 0 && len(links) > 0 && len(cfg.Skip) > 0 && cfg.BootIF == nil && cfg.Iface == "":
				return nil, fail("ip=<iface>:off leaves a link unconfigured; name the boot link with ip=<iface>:dhcp or bootdev=",
					"every network interface is switched off by ip=<iface>:off (found: %s; off: %s)", describe(links), strings.Join(cfg.Skip, ", "))
			case cfg.Iface != "" && len(want) == 0:
				return nil, fail("check the interface name in ip=/bootdev=: the kernel's (eth0) or the one the boot gives the link (ens3, ifname=); with vlan=/bond=/bridge= it is the link they build",
					"no network interface named %s (found: %s)", cfg.Iface, describe(links))
			case len(links) == 0:
				return nil, fail("the NIC driver may be missing from the initramfs: rebuild it with the driver in NIC=…",
					"no Ethernet interface appeared within %s", cfg.CarrierTimeout)
			default:
				return nil, fail("check the cable/switch port; rd.net.timeout.carrier=<s> waits longer",
					"no carrier on %s within %s", describe(want), cfg.CarrierTimeout)
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wanted returns the links pickLink may use, in order: the one with the
// BOOTIF MAC, else the named one, else all; never one in cfg.Skip.
func wanted(links []netlink.Link, cfg Config) []netlink.Link {
	var want []netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if slices.Contains(cfg.Skip, a.Name) {
			continue
		}
		switch {
		case cfg.BootIF != nil:
			if slices.Equal(a.HardwareAddr, cfg.BootIF) {
				want = append(want, l)
			}
		case cfg.Iface != "":
			if a.Name == cfg.Iface {
				want = append(want, l)
			}
		default:
			want = append(want, l)
		}
	}
	return want
}

// setMAC gives a link the MAC ip= asks for, before it first goes up (the
// kernel refuses to change the address of a running link on most NICs).
func setMAC(l netlink.Link, mac net.HardwareAddr, log *slog.Logger) {
	a := l.Attrs()
	if mac == nil || slices.Equal(a.HardwareAddr, mac) {
		return
	}
	if a.Flags&net.FlagUp != 0 {
		_ = netlink.LinkSetDown(l)
	}
	if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
		log.Warn(fmt.Sprintf("cannot set MAC %s on %s (ip=); keeping %s", mac, a.Name, a.HardwareAddr), "err", err)
		return
	}
	log.Info("set MAC", "iface", a.Name, "mac", mac, "was", a.HardwareAddr)
}

// apply puts the lease on the link: address, MTU, routes, host name. Only
// the address is required: an MTU the NIC refuses, a route the kernel
// refuses (a gateway not on the link) or a host name it refuses is warned
// about and dropped from the lease, and the boot goes on; a route the root
// needs then fails in the stage that needs it, naming the server.
func apply(link netlink.Link, l *Lease, log *slog.Logger) error {
	name := link.Attrs().Name
	if l.MTU >= minMTU && l.MTU != link.Attrs().MTU {
		if err := netlink.LinkSetMTU(link, l.MTU); err != nil {
			log.Warn(fmt.Sprintf("cannot set MTU %d on %s (DHCP option 26 or ip=); keeping %d", l.MTU, name, link.Attrs().MTU), "err", err)
			l.MTU = 0
		}
	}
	addr := &netlink.Addr{IPNet: &l.Addr}
	if l.DHCP && l.LeaseTime > 0 {
		// A DHCP address carries its lease's lifetime, as dhclient and
		// networkd set it: NetworkManager only takes over (and renews) a
		// link whose address is dynamic; a permanent one it leaves
		// "externally managed", and the lease would silently expire.
		secs := int(l.LeaseTime.Seconds())
		addr.ValidLft, addr.PreferedLft = secs, secs
	}
	if ip4 := l.Addr.IP.To4(); ip4 != nil && len(l.Addr.Mask) == 4 {
		bc := make(net.IP, 4)
		for i := range bc {
			bc[i] = ip4[i] | ^l.Addr.Mask[i]
		}
		addr.Broadcast = bc
	}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("add address %s: %w", l.Addr.String(), err)
	}
	// RFC 3442: with classless static routes, the router option is ignored.
	if len(l.Routes) > 0 {
		l.Routes = addRoutes(link, l.Routes, log)
	} else if l.Router != nil && !l.Router.IsUnspecified() {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: l.Router}
		if err := netlink.RouteReplace(r); err != nil {
			log.Warn(fmt.Sprintf("cannot add the default route via %s on %s (DHCP option 3 or ip=); going on without it", l.Router, name), "err", err)
			l.Router = nil
		}
	}
	if l.Hostname != "" {
		// The real OS keeps the kernel's hostname unless it sets its own.
		if err := unix.Sethostname([]byte(l.Hostname)); err != nil {
			log.Warn(fmt.Sprintf("cannot set the host name %s", quote(l.Hostname)), "err", err)
			l.Hostname = ""
		}
	}
	return nil
}

// addRoutes adds option 121's routes and returns those the kernel took. A
// route whose gateway is reachable only through a later route of the list
// is tried again once the others are in.
func addRoutes(link netlink.Link, routes []Route, log *slog.Logger) []Route {
	add := func(rt Route) error {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &rt.Dest}
		if rt.Gateway == nil || rt.Gateway.IsUnspecified() {
			r.Scope = netlink.SCOPE_LINK
		} else {
			r.Gw = rt.Gateway
		}
		if ones, _ := rt.Dest.Mask.Size(); ones == 0 {
			r.Dst = nil // the default route
		}
		return netlink.RouteReplace(r)
	}
	var ok, failed []Route
	for _, rt := range routes {
		if add(rt) != nil {
			failed = append(failed, rt)
		} else {
			ok = append(ok, rt)
		}
	}
	for _, rt := range failed {
		if err := add(rt); err != nil {
			log.Warn(fmt.Sprintf("cannot add route %s via %s on %s (DHCP option 121); going on without it", rt.Dest.String(), rt.Gateway, link.Attrs().Name), "err", err)
			continue
		}
		ok = append(ok, rt)
	}
	return ok
}

// ResolvConf renders the resolver configuration for the lease: the search
// domains, then at most MaxNameservers servers. It writes only names that
// pass CheckDomain, whoever filled the lease, so no value can add a line.
func ResolvConf(l *Lease) []byte {
	var search []string
	for _, d := range append([]string{l.Domain}, l.Search...) {
		if len(search) < MaxSearch && CheckDomain(d) == nil && !slices.Contains(search, d) {
			search = append(search, d)
		}
	}
	var b strings.Builder
	b.WriteString("# written by streamroot from the boot network's lease\n")
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	n := 0
	for _, d := range l.DNS {
		if n == MaxNameservers {
			break
		}
		if d == nil || d.IsUnspecified() {
			continue
		}
		fmt.Fprintf(&b, "nameserver %s\n", d)
		n++
	}
	return []byte(b.String())
}

// renameLinks gives new links the name the real OS will use; it must run
// while they are down (the kernel refuses to rename a running link). It
// reports whether any name changed.
func renameLinks(links []netlink.Link, done map[int]bool, cfg Config, log *slog.Logger) bool {
	changed := false
	for _, l := range links {
		a := l.Attrs()
		if done[a.Index] {
			continue
		}
		done[a.Index] = true
		want, why := cfg.Names[a.HardwareAddr.String()], "ifname="
		if want == "" && cfg.Predictable {
			want, why = PredictableName("/sys", a.Name), "predictable name"
		}
		if want == "" || want == a.Name {
			continue
		}
		if a.Flags&net.FlagUp != 0 {
			_ = netlink.LinkSetDown(l)
		}
		if err := netlink.LinkSetName(l, want); err != nil {
			log.Warn("cannot rename link", "iface", a.Name, "to", want, "err", err)
			continue
		}
		log.Info("renamed link", "from", a.Name, "to", want, "mac", a.HardwareAddr, "why", why)
		changed = true
	}
	return changed
}
