package netup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkKind is the kind of a virtual link the boot builds.
type LinkKind string

// The virtual links netup builds (dracut's vlan=, bond=, bridge=).
const (
	KindVLAN   LinkKind = "vlan"
	KindBond   LinkKind = "bond"
	KindBridge LinkKind = "bridge"
)

// Virtual is one link to build before the boot link is chosen.
type Virtual struct {
	Arg  string // the kernel argument, for messages
	Kind LinkKind
	Name string
	// Parents are the links it is built on, as the kernel line names
	// them: a kernel name (eth0), the name the boot gives the link
	// (ens3, ifname=), or an earlier Virtual's name.
	Parents []string
	VLANID  int         // KindVLAN: 1-4094
	Bond    BondOptions // KindBond
	MTU     int         // 0: the kernel's
}

// Built is a virtual link as the boot left it, for the real OS to keep.
type Built struct {
	Kind   LinkKind
	Name   string
	MAC    net.HardwareAddr
	VLANID int
	Bond   BondOptions
	MTU    int
	Ports  []Port // the links it is built on, by the names they have now
}

// Port is a link a virtual link is built on.
type Port struct {
	Name string
	// MAC is the port's permanent address: a bond gives its ports its
	// own, so only this one tells them apart.
	MAC     net.HardwareAddr
	Virtual bool // an earlier Built, not a NIC
}

// kernelNames remembers the name the kernel gave each link (eth0) before
// the boot renamed it, so dracut's lines, written with kernel names, find
// their links.
type kernelNames map[int]string

func (k kernelNames) note(links []netlink.Link) {
	for _, l := range links {
		if _, ok := k[l.Attrs().Index]; !ok {
			k[l.Attrs().Index] = l.Attrs().Name
		}
	}
}

// find returns the link named name now or, failing that, by the kernel.
func (k kernelNames) find(links []netlink.Link, name string) netlink.Link {
	for _, l := range links {
		if l.Attrs().Name == name {
			return l
		}
	}
	for _, l := range links {
		if k[l.Attrs().Index] == name {
			return l
		}
	}
	return nil
}

// physicalNames are the parents no Virtual of the list is named after.
func physicalNames(vs []Virtual) []string {
	var out []string
	for _, v := range vs {
		for _, p := range v.Parents {
			if !slices.ContainsFunc(vs, func(o Virtual) bool { return o.Name == p }) && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// buildOrder sorts the virtual links so each comes after those it is
// built on (a VLAN over a bond, written in either order).
func buildOrder(vs []Virtual) ([]Virtual, error) {
	var out []Virtual
	done := map[string]bool{}
	for _, p := range physicalNames(vs) {
		done[p] = true
	}
	for len(out) < len(vs) {
		progress := false
		for _, v := range vs {
			if done[v.Name] || !allTrue(done, v.Parents) {
				continue
			}
			out, done[v.Name], progress = append(out, v), true, true
		}
		if !progress {
			for _, v := range vs {
				if !done[v.Name] {
					return nil, fail("a virtual link cannot be built on itself, directly or through another",
						"%s: %s is built on a link that is built on it", v.Arg, v.Name)
				}
			}
		}
	}
	return out, nil
}

func allTrue(m map[string]bool, keys []string) bool {
	for _, k := range keys {
		if !m[k] {
			return false
		}
	}
	return true
}

// topLink is the virtual link the boot addresses: the one ip= or
// bootdev= names; else the one built over the BOOTIF port; else the last
// one nothing else is built on.
func topLink(vs []Virtual, iface string, bootPort string) (string, bool) {
	if iface != "" {
		return iface, slices.ContainsFunc(vs, func(v Virtual) bool { return v.Name == iface })
	}
	over := func(v Virtual, port string) bool { return slices.Contains(v.Parents, port) }
	usedBy := func(name string) bool {
		return slices.ContainsFunc(vs, func(v Virtual) bool { return over(v, name) })
	}
	top := ""
	for _, v := range vs {
		if usedBy(v.Name) {
			continue
		}
		if bootPort != "" && !builtOver(vs, v, bootPort) {
			continue
		}
		top = v.Name
	}
	return top, top != ""
}

// builtOver says whether v is built, directly or through other virtual
// links, on port.
func builtOver(vs []Virtual, v Virtual, port string) bool {
	for _, p := range v.Parents {
		if p == port {
			return true
		}
		if i := slices.IndexFunc(vs, func(o Virtual) bool { return o.Name == p }); i >= 0 && builtOver(vs, vs[i], port) {
			return true
		}
	}
	return false
}

// buildLinks waits (within CarrierTimeout) for the NICs the virtual links
// are built on, renaming them first as pickLink does, builds the links
// with netlink, and waits for the boot link's carrier and its bond ports.
func buildLinks(ctx context.Context, cfg Config, log *slog.Logger) (netlink.Link, []Built, error) {
	deadline := time.Now().Add(cfg.CarrierTimeout)
	order, err := buildOrder(cfg.Links)
	if err != nil {
		return nil, nil, err
	}
	kn := kernelNames{}
	named := map[int]bool{}
	resolved := map[string]netlink.Link{} // as written → the NIC
	phys := physicalNames(cfg.Links)
	for {
		links, err := candidates()
		if err != nil {
			return nil, nil, err
		}
		kn.note(links)
		if renameLinks(links, named, cfg, log) {
			if links, err = candidates(); err != nil {
				return nil, nil, err
			}
		}
		var missing []string
		for _, p := range phys {
			l := kn.find(links, p)
			if l == nil {
				missing = append(missing, p)
				continue
			}
			if resolved[p] == nil {
				resolved[p] = l
				how := "its name"
				if l.Attrs().Name != p {
					how = "the kernel's name for it"
				}
				log.Info(fmt.Sprintf("%s is %s (%s), by %s", p, l.Attrs().Name, l.Attrs().HardwareAddr, how))
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			arg := ""
			for _, v := range cfg.Links {
				if slices.Contains(v.Parents, missing[0]) {
					arg = v.Arg
					break
				}
			}
			return nil, nil, fail("name the port by its kernel name (eth0) or the name the boot gives it (ens3, or ifname=<name>:<mac>); check its NIC driver is in the initramfs",
				"%s: no network interface named %s (found: %s)", arg, missing[0], describeKnown(links, kn))
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, nil, err
		}
	}

	var boot string
	if cfg.BootIF != nil {
		for p, l := range resolved {
			if slices.Equal(l.Attrs().HardwareAddr, cfg.BootIF) {
				boot = p
			}
		}
	}
	top, ok := topLink(cfg.Links, cfg.Iface, boot)
	if !ok {
		switch {
		case cfg.Iface != "":
			return nil, nil, fail("with vlan=, bond= or bridge=, give ip=<name>:dhcp (or a static ip=) for the link they build",
				"ip=/bootdev= names %s, which none of %s builds", cfg.Iface, virtualNames(cfg.Links))
		case cfg.BootIF != nil:
			return nil, nil, fail("BOOTIF names the NIC the machine booted from; build the VLAN or bond on that NIC, or name the boot link with ip=<name>:dhcp",
				"no virtual link of %s is built on the BOOTIF NIC %s", virtualNames(cfg.Links), cfg.BootIF)
		}
		return nil, nil, fail("give ip=<name>:dhcp for the link to boot from", "no virtual link of %s to boot from", virtualNames(cfg.Links))
	}

	made := map[string]netlink.Link{}
	var built []Built
	for _, v := range order {
		b, l, err := build(v, resolved, made, log)
		if err != nil {
			return nil, nil, err
		}
		made[v.Name] = l
		built = append(built, b)
	}
	link := made[top]
	if err := waitLinks(ctx, top, order, made, deadline, log); err != nil {
		return nil, nil, err
	}
	// Read it back: the bond's MAC is its first port's, set at enslave.
	if l, err := netlink.LinkByIndex(link.Attrs().Index); err == nil {
		link = l
	}
	for i := range built {
		if l, err := netlink.LinkByName(built[i].Name); err == nil {
			built[i].MAC = l.Attrs().HardwareAddr
		}
	}
	return link, built, nil
}

func virtualNames(vs []Virtual) string {
	var s []string
	for _, v := range vs {
		s = append(s, v.Arg)
	}
	return strings.Join(s, " ")
}

func describeKnown(links []netlink.Link, kn kernelNames) string {
	if len(links) == 0 {
		return "none"
	}
	var s []string
	for _, l := range links {
		a := l.Attrs()
		if k := kn[a.Index]; k != "" && k != a.Name {
			s = append(s, fmt.Sprintf("%s (was %s, %s)", a.Name, k, a.HardwareAddr))
		} else {
			s = append(s, fmt.Sprintf("%s (%s)", a.Name, a.HardwareAddr))
		}
	}
	return strings.Join(s, ", ")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// build creates one virtual link on links that exist now.
func build(v Virtual, nics, made map[string]netlink.Link, log *slog.Logger) (Built, netlink.Link, error) {
	b := Built{Kind: v.Kind, Name: v.Name, VLANID: v.VLANID, Bond: v.Bond, MTU: v.MTU}
	var ports []netlink.Link
	for _, p := range v.Parents {
		l, virtual := made[p], true
		if l == nil {
			l, virtual = nics[p], false
		}
		ports = append(ports, l)
		b.Ports = append(b.Ports, Port{Name: l.Attrs().Name, MAC: permanentMAC(l), Virtual: virtual})
	}
	bad := func(err error, what string) (Built, netlink.Link, error) {
		return Built{}, nil, fail("check the argument; the kernel's own words are in the message", "%s: %s %s: %v", v.Arg, what, v.Name, err)
	}
	attrs := netlink.LinkAttrs{Name: v.Name, MTU: v.MTU}
	var nl netlink.Link
	switch v.Kind {
	case KindVLAN:
		attrs.ParentIndex = ports[0].Attrs().Index
		nl = &netlink.Vlan{LinkAttrs: attrs, VlanId: v.VLANID, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}
	case KindBond:
		bond := v.Bond.netlinkBond(v.Name, v.MTU)
		if p := v.Bond["primary"]; p != "" {
			i := slices.Index(v.Parents, p)
			if i < 0 {
				// primary= may name the port as renamed.
				i = slices.IndexFunc(b.Ports, func(pt Port) bool { return pt.Name == p })
			}
			if i < 0 {
				return Built{}, nil, fail("primary= names one of the bond's ports", "%s: primary=%s is not a port of %s", v.Arg, p, v.Name)
			}
			bond.Primary = ports[i].Attrs().Index
		}
		nl = bond
	case KindBridge:
		nl = &netlink.Bridge{LinkAttrs: attrs}
	default:
		return Built{}, nil, fail("use vlan=, bond= or bridge=", "%s: cannot build a %s link", v.Arg, v.Kind)
	}
	if err := netlink.LinkAdd(nl); err != nil {
		if !errors.Is(err, errExist) {
			return bad(err, "create "+string(v.Kind))
		}
		// Already there (a bonding module loaded without max_bonds=0
		// makes bond0): take it if it is the same kind.
		old, lerr := netlink.LinkByName(v.Name)
		if lerr != nil || old.Type() != nl.Type() {
			return bad(err, "create "+string(v.Kind))
		}
		log.Info("link already exists; using it", "link", v.Name, "kind", v.Kind)
	}
	l, err := netlink.LinkByName(v.Name)
	if err != nil {
		return bad(err, "read back")
	}
	for _, p := range ports {
		switch v.Kind {
		case KindVLAN:
			if err := netlink.LinkSetUp(p); err != nil {
				return bad(err, "bring up "+p.Attrs().Name+" under")
			}
		default:
			// A port must be down to join a bond (the kernel opens it).
			_ = netlink.LinkSetDown(p)
			if err := netlink.LinkSetMasterByIndex(p, l.Attrs().Index); err != nil {
				return bad(err, "add port "+p.Attrs().Name+" to")
			}
			if err := netlink.LinkSetUp(p); err != nil {
				return bad(err, "bring up port "+p.Attrs().Name+" of")
			}
		}
	}
	if v.Kind == KindBridge {
		// A bridge takes its ports' MAC but keeps the kernel's "random"
		// address type, so udev's MACAddressPolicy=persistent in the real
		// root gives it another one, and the lease's client id (01+MAC)
		// no longer matches it. Set explicitly, the MAC stays.
		if cur, err := netlink.LinkByIndex(l.Attrs().Index); err == nil && len(cur.Attrs().HardwareAddr) > 0 {
			if err := netlink.LinkSetHardwareAddr(cur, cur.Attrs().HardwareAddr); err != nil {
				return bad(err, "keep the MAC of")
			}
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return bad(err, "bring up")
	}
	var names []string
	for _, p := range b.Ports {
		names = append(names, p.Name)
	}
	detail := ""
	switch v.Kind {
	case KindVLAN:
		detail = fmt.Sprintf(" (VLAN %d)", v.VLANID)
	case KindBond:
		detail = " (" + v.Bond.String() + ")"
	}
	log.Info(fmt.Sprintf("built %s %s%s on %s", v.Kind, v.Name, detail, strings.Join(names, ", ")), "arg", v.Arg)
	return b, l, nil
}

var errExist = unix.EEXIST

func permanentMAC(l netlink.Link) net.HardwareAddr {
	if a := l.Attrs().PermHWAddr; len(a) == 6 && !slices.Equal(a, make(net.HardwareAddr, 6)) {
		return a
	}
	return l.Attrs().HardwareAddr
}

// waitLinks waits until the boot link has carrier, every port of a bond
// under it has carrier and an 802.3ad bond has a LACP partner, or the
// deadline. Without carrier on the boot link it fails; a port or partner
// still missing then is warned about and the boot goes on over the bond's
// other ports, as the bond itself does.
func waitLinks(ctx context.Context, top string, order []Virtual, made map[string]netlink.Link, deadline time.Time, log *slog.Logger) error {
	var bonds []Virtual
	for _, v := range order {
		if v.Kind == KindBond {
			bonds = append(bonds, v)
		}
	}
	for {
		var waiting []string
		for _, v := range bonds {
			waiting = append(waiting, bondWaits(v, made[v.Name])...)
		}
		up := hasCarrier(top)
		if up && len(waiting) == 0 {
			for _, v := range bonds {
				if info, ok := adInfo(made[v.Name]); ok {
					log.Info(fmt.Sprintf("%s: LACP partner %s, aggregator %s with %s ports", v.Name, info.partner, info.aggregator, info.activePorts))
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			if !up {
				return fail("check the cables and switch ports of the link's ports (and the switch's VLAN or LACP setup); rd.net.timeout.carrier=<s> waits longer",
					"no carrier on %s within the carrier timeout (still waiting for: %s)", top, strings.Join(append(waiting, top), "; "))
			}
			log.Warn(fmt.Sprintf("%s is up, but within the carrier timeout not all of it: %s; going on", top, strings.Join(waiting, "; ")))
			return nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// bondWaits says what of a bond is not there yet: a port without carrier,
// an 802.3ad bond without a LACP partner.
func bondWaits(v Virtual, l netlink.Link) []string {
	var out []string
	all, err := redump(netlink.LinkList)
	if err != nil {
		return []string{"the link list: " + err.Error()}
	}
	carrier := 0
	for _, p := range all {
		if p.Attrs().MasterIndex != l.Attrs().Index {
			continue
		}
		if hasCarrier(p.Attrs().Name) {
			carrier++
		} else {
			out = append(out, "carrier on "+p.Attrs().Name+" (port of "+v.Name+")")
		}
	}
	if v.Bond["mode"] != "802.3ad" {
		return out
	}
	info, ok := adInfo(l)
	return append(out, lacpWaits(v.Name, info, ok, carrier)...)
}

// lacpWaits says what an 802.3ad bond still lacks once its ports with
// carrier are counted: a partner, and every such port in the active
// aggregator. A partner answers the first port's LACPDU before it has
// taken the others in; booting then would leave the lease and the fill on
// one port of a pair under load.
func lacpWaits(bond string, info lacpInfo, partner bool, carrier int) []string {
	if !partner {
		return []string{"a LACP partner on " + bond}
	}
	if n, err := strconv.Atoi(info.activePorts); err == nil && n < carrier {
		return []string{fmt.Sprintf("all %d ports with carrier in %s's LACP aggregator (%d so far)", carrier, bond, n)}
	}
	return nil
}

// lacpInfo is an 802.3ad bond's aggregator as the bonding driver's sysfs
// shows it (netlink's IFLA_BOND_AD_INFO is not decoded by the netlink
// package); ok false until it has a partner.
type lacpInfo struct {
	partner     string
	aggregator  string
	activePorts string
}

func adInfo(l netlink.Link) (lacpInfo, bool) {
	dir := "/sys/class/net/" + l.Attrs().Name + "/bonding/"
	read := func(f string) string {
		b, _ := os.ReadFile(dir + f)
		return strings.TrimSpace(string(b))
	}
	i := lacpInfo{partner: read("ad_partner_mac"), aggregator: read("ad_aggregator"), activePorts: read("ad_num_ports")}
	mac, err := net.ParseMAC(i.partner)
	return i, err == nil && !slices.Equal(mac, make(net.HardwareAddr, len(mac)))
}
