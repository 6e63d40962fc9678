package handover

import (
	"crypto/sha256"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/streamroot/streamroot/pkg/netup"
)

// The virtual links the boot built (vlan=, bond=, bridge=) are handed over
// as NetworkManager profiles and systemd-networkd .netdev/.network files
// describing the same links, so the real OS adopts them as they are (a
// link that exists already is taken over, not rebuilt) and renews the lease
// on the same link with the same client id. The lease's link is matched by
// name (virtual links have no MAC of their own: a bond and a VLAN carry
// their first port's); the NICs under them by their permanent MAC.

// nmKind is NetworkManager's connection type for each kind.
var nmKind = map[netup.LinkKind]string{netup.KindVLAN: "vlan", netup.KindBond: "bond", netup.KindBridge: "bridge"}

// networkdBond maps the kernel's bond option names onto networkd's [Bond]
// settings; the value is the kernel's unless conv says otherwise.
var networkdBond = []struct {
	opt, key string
	conv     func(string) string
}{
	{"mode", "Mode", nil},
	{"miimon", "MIIMonitorSec", ms},
	{"updelay", "UpDelaySec", ms},
	{"downdelay", "DownDelaySec", ms},
	{"arp_interval", "ARPIntervalSec", ms},
	{"arp_ip_target", "ARPIPTargets", func(v string) string { return strings.ReplaceAll(v, ";", " ") }},
	{"arp_validate", "ARPValidate", nil},
	{"lacp_rate", "LACPTransmitRate", nil},
	{"xmit_hash_policy", "TransmitHashPolicy", nil},
	{"fail_over_mac", "FailOverMACPolicy", nil},
	{"primary_reselect", "PrimaryReselectPolicy", nil},
	{"ad_select", "AdSelect", nil},
	{"min_links", "MinLinks", nil},
	{"all_slaves_active", "AllSlavesActive", func(v string) string { return map[string]string{"0": "no", "1": "yes"}[v] }},
}

func ms(v string) string { return v + "ms" }

// topologyFiles are the NetworkManager and networkd files for a lease on a
// virtual link. nmID is the NetworkManager client id ("" for a static
// lease), ndID networkd's ("" when it has no spelling for it: networkd
// then gets the links but no DHCP, rather than a second lease).
// index is a link's ifindex by its name now (0: not found).
func topologyFiles(l *netup.Lease, nmID, ndID string, index func(name string) int) []File {
	var files []File
	nm := func(name string, body string) {
		files = append(files, File{fmt.Sprintf("NetworkManager/system-connections/streamroot-%s.nmconnection", name), 0o600,
			[]byte("# streamroot: a link the initramfs built, kept as it is\n" + body)})
	}
	nd := func(file, body string) {
		files = append(files, File{"systemd/network/" + file, 0o644, []byte("# streamroot: a link the initramfs built, kept as it is\n" + body)})
	}
	// portOf[nic MAC] is what each NIC under the links carries.
	type nicUse struct {
		name, master, kind string
		vlans              []string
	}
	var nics []*nicUse
	nicFor := func(p netup.Port) *nicUse {
		for _, n := range nics {
			if n.name == p.Name {
				return n
			}
		}
		n := &nicUse{name: p.Name}
		nics = append(nics, n)
		return n
	}
	macOf := map[string]string{}
	vlansOn := map[string][]string{} // a virtual link's VLANs
	for _, b := range l.Links {
		for _, p := range b.Ports {
			switch {
			case !p.Virtual:
				macOf[p.Name] = p.MAC.String()
				n := nicFor(p)
				if b.Kind == netup.KindVLAN {
					n.vlans = append(n.vlans, b.Name)
				} else {
					n.master, n.kind = b.Name, string(b.Kind)
				}
			case b.Kind == netup.KindVLAN:
				vlansOn[p.Name] = append(vlansOn[p.Name], b.Name)
			}
		}
	}
	masterOf := map[string]netup.Built{} // a virtual link in a bond or bridge
	for _, b := range l.Links {
		for _, p := range b.Ports {
			if p.Virtual && b.Kind != netup.KindVLAN {
				masterOf[p.Name] = b
			}
		}
	}

	for _, b := range l.Links {
		top := b.Name == l.Iface
		// NetworkManager
		var s strings.Builder
		fmt.Fprintf(&s, "[connection]\nid=streamroot-%s\nuuid=%s\ntype=%s\ninterface-name=%s\nautoconnect=true\nautoconnect-priority=100\n", b.Name, uuidForName(b.Name), nmKind[b.Kind], b.Name)
		if m, ok := masterOf[b.Name]; ok {
			fmt.Fprintf(&s, "master=%s\nslave-type=%s\n", m.Name, m.Kind)
		}
		switch b.Kind {
		case netup.KindBond:
			s.WriteString("\n[bond]\n")
			for _, k := range b.Bond.Keys() {
				fmt.Fprintf(&s, "%s=%s\n", k, b.Bond[k])
			}
		case netup.KindVLAN:
			fmt.Fprintf(&s, "\n[vlan]\nid=%d\nparent=%s\n", b.VLANID, b.Ports[0].Name)
		case netup.KindBridge:
			s.WriteString("\n[bridge]\nstp=false\n")
		}
		if b.MTU > 0 {
			fmt.Fprintf(&s, "\n[ethernet]\nmtu=%d\n", b.MTU)
		}
		if _, enslaved := masterOf[b.Name]; !enslaved {
			s.WriteString(nmIP(l, top, nmID))
		}
		nm(b.Name, s.String())

		// networkd: the link, then what goes on it.
		var d strings.Builder
		fmt.Fprintf(&d, "[NetDev]\nName=%s\nKind=%s\n", b.Name, b.Kind)
		if b.MTU > 0 {
			fmt.Fprintf(&d, "MTUBytes=%d\n", b.MTU)
		}
		switch b.Kind {
		case netup.KindBond:
			d.WriteString("\n[Bond]\n")
			for _, o := range networkdBond {
				if v, ok := b.Bond[o.opt]; ok {
					if o.conv != nil {
						v = o.conv(v)
					}
					fmt.Fprintf(&d, "%s=%s\n", o.key, v)
				}
			}
		case netup.KindVLAN:
			fmt.Fprintf(&d, "\n[VLAN]\nId=%d\n", b.VLANID)
		case netup.KindBridge:
			d.WriteString("\n[Bridge]\nSTP=no\n")
		}
		nd(fmt.Sprintf("10-streamroot-%s.netdev", b.Name), d.String())
		var n strings.Builder
		fmt.Fprintf(&n, "[Match]\nName=%s\n\n[Network]\n", b.Name)
		if m, ok := masterOf[b.Name]; ok {
			fmt.Fprintf(&n, "%s=%s\n", map[netup.LinkKind]string{netup.KindBond: "Bond", netup.KindBridge: "Bridge"}[m.Kind], m.Name)
		}
		for _, v := range vlansOn[b.Name] {
			fmt.Fprintf(&n, "VLAN=%s\n", v)
		}
		n.WriteString(networkdIP(l, top, ndID))
		nd(fmt.Sprintf("10-streamroot-%s.network", b.Name), n.String())
	}

	if networkdDHCP(l) != "no" {
		var links []nmLink
		for _, b := range l.Links {
			links = append(links, nmLink{b.Name, uuidForName(b.Name), "interface-name:" + b.Name})
		}
		for _, u := range nics {
			links = append(links, nmLink{u.name, uuidForName("port " + macOf[u.name]), "mac:" + macOf[u.name]})
		}
		files = append(files, nmAssume(links, index)...)
	}

	for _, u := range nics {
		mac := macOf[u.name]
		var s strings.Builder
		fmt.Fprintf(&s, "[connection]\nid=streamroot-%s\nuuid=%s\ntype=ethernet\nautoconnect=true\nautoconnect-priority=100\n", u.name, uuidForName("port "+mac))
		if u.master != "" {
			fmt.Fprintf(&s, "master=%s\nslave-type=%s\n", u.master, u.kind)
		}
		fmt.Fprintf(&s, "\n[ethernet]\nmac-address=%s\n", mac)
		if u.master == "" {
			// A VLAN's parent carries no address of its own: without a
			// profile NetworkManager would run DHCP on the untagged LAN.
			s.WriteString("\n[ipv4]\nmethod=disabled\n\n[ipv6]\nmethod=ignore\n")
		}
		nm(u.name, s.String())

		var n strings.Builder
		// A bond gives its ports its own MAC: only the permanent one is theirs.
		fmt.Fprintf(&n, "[Match]\nPermanentMACAddress=%s\n\n[Network]\n", mac)
		if u.master != "" {
			fmt.Fprintf(&n, "%s=%s\n", map[string]string{"bond": "Bond", "bridge": "Bridge"}[u.kind], u.master)
		}
		for _, v := range u.vlans {
			fmt.Fprintf(&n, "VLAN=%s\n", v)
		}
		n.WriteString("LinkLocalAddressing=no\nKeepConfiguration=yes\n")
		nd(fmt.Sprintf("10-streamroot-%s.network", u.name), n.String())
	}
	return files
}

// nmLink is a link the boot configured, its profile and how NetworkManager
// matches the device.
type nmLink struct{ name, uuid, match string }

// nmAssume makes NetworkManager take the boot's links over with the boot's
// profiles, as it does after NetworkManager in an initramfs: the device
// state file (/run/NetworkManager/devices/<ifindex>) names the profile
// the link has, and keep-configuration=no has it take that profile as it
// is ("indicated") instead of comparing it with one generated from the
// kernel's state. That comparison fails for a bridge (NetworkManager
// 1.42 writes multicast-startup-query-interval=3125, the kernel reads it
// back as 3124), so the bridge, the bond under it and their ports stayed
// "external", without DHCP. keep-configuration=no without the state
// files made it activate them from scratch instead (the address dropped,
// the bond's options refused while it has ports). All or nothing: with a
// state directory NetworkManager takes this for a restart and guesses no
// profile for a link without a file.
func nmAssume(links []nmLink, index func(name string) int) []File {
	var files []File
	var match []string
	for _, k := range links {
		i := index(k.name)
		if i <= 0 {
			return nil
		}
		files = append(files, File{fmt.Sprintf("NetworkManager/devices/%d", i), 0o644, []byte(fmt.Sprintf(
			"# streamroot: %s, a link the initramfs built, has this profile\n[device]\nmanaged=true\nconnection-uuid=%s\n", k.name, k.uuid))})
		match = append(match, k.match)
	}
	return append(files, File{"NetworkManager/conf.d/15-streamroot-links.conf", 0o644, []byte(
		"# streamroot: take the links the initramfs built over with the profiles\n" +
			"# their device state files name, as they are.\n" +
			"[device-streamroot-links]\nmatch-device=" + strings.Join(match, ";") + "\nkeep-configuration=no\n")})
}

// nmIP is a profile's address sections: the lease's on its link (IPv4,
// and IPv6 with the initramfs's DUID and IAID), none on the links under it.
func nmIP(l *netup.Lease, top bool, id string) string {
	if !top {
		return "\n[ipv4]\nmethod=disabled\n\n[ipv6]\nmethod=ignore\n"
	}
	ip6 := "[ipv6]\nmethod=auto\n"
	if l.V6 != nil {
		ip6 = nmIPv6(l.V6)
	}
	switch {
	case onlyV6(l):
		return "\n[ipv4]\nmethod=disabled\n\n" + ip6
	case l.DHCP:
		return fmt.Sprintf("\n[ipv4]\nmethod=auto\ndhcp-client-id=%s\n\n", id) + ip6
	}
	ones, _ := l.Addr.Mask.Size()
	s := fmt.Sprintf("\n[ipv4]\nmethod=manual\naddress1=%s/%d", l.Addr.IP, ones)
	if l.Router != nil {
		s += "," + l.Router.String()
	}
	s += "\n"
	if dns := dnsList(l.DNS); dns != "" {
		s += "dns=" + strings.ReplaceAll(dns, " ", ";") + ";\n"
	}
	return s + "\n" + ip6
}

// networkdIP is a .network's addressing: the lease's on its link (the
// address never dropped: the root may live on it), none under it. IPv6
// goes beside IPv4 with the initramfs's DUID and IAID (networkd6).
func networkdIP(l *netup.Lease, top bool, id string) string {
	if !top {
		return "LinkLocalAddressing=no\nKeepConfiguration=yes\n"
	}
	dhcp := networkdDHCP(l)
	if l.DHCP && id == "" {
		// networkd cannot send this client id: keep the IPv4 address, ask
		// nothing for it.
		dhcp = map[string]string{"yes": "ipv6", "ipv4": "no"}[dhcp]
	}
	var s strings.Builder
	if dhcp != "no" {
		fmt.Fprintf(&s, "DHCP=%s\n", dhcp)
	}
	if !l.DHCP && l.Addr.IP.To4() != nil {
		ones, _ := l.Addr.Mask.Size()
		fmt.Fprintf(&s, "Address=%s/%d\n", l.Addr.IP, ones)
		if l.Router != nil {
			fmt.Fprintf(&s, "Gateway=%s\n", l.Router)
		}
		if dns := dnsList(l.DNS); dns != "" {
			fmt.Fprintf(&s, "DNS=%s\n", dns)
		}
	}
	if l.V6 != nil {
		s.WriteString("IPv6AcceptRA=yes\n" + networkdStatic6(l.V6))
	}
	s.WriteString("KeepConfiguration=yes\n")
	if l.DHCP && id != "" {
		fmt.Fprintf(&s, "\n[DHCPv4]\nClientIdentifier=%s\n", id)
	}
	return s.String() + networkd6(l)
}

func dnsList(ips []net.IP) string {
	var s []string
	for _, ip := range ips {
		if ip != nil && !ip.IsUnspecified() && !slices.Contains(s, ip.String()) {
			s = append(s, ip.String())
		}
	}
	return strings.Join(s, " ")
}

// uuidForName derives a stable UUID for a profile from what it is for.
func uuidForName(what string) string {
	sum := sha256.Sum256([]byte("streamroot " + what))
	return uuidString(sum[:16])
}

// linkDoc is one virtual link in net.<iface>.json.
type linkDoc struct {
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	MAC    string            `json:"mac,omitempty"`
	VLANID int               `json:"vlan_id,omitempty"`
	Bond   map[string]string `json:"bond_options,omitempty"`
	MTU    int               `json:"mtu,omitempty"`
	Ports  []portDoc         `json:"ports"`
}

type portDoc struct {
	Name string `json:"name"`
	MAC  string `json:"mac"`
}

func linkDocs(l *netup.Lease) []linkDoc {
	var out []linkDoc
	for _, b := range l.Links {
		d := linkDoc{Kind: string(b.Kind), Name: b.Name, VLANID: b.VLANID, MTU: b.MTU}
		if b.MAC != nil {
			d.MAC = b.MAC.String()
		}
		if len(b.Bond) > 0 {
			d.Bond = b.Bond
		}
		for _, p := range b.Ports {
			d.Ports = append(d.Ports, portDoc{Name: p.Name, MAC: p.MAC.String()})
		}
		out = append(out, d)
	}
	return out
}

// linkVars are the virtual links as shell variables: LINKS (their names)
// and LINK<n>_KIND, _NAME, _PORTS, _VLAN_ID, _BOND_OPTIONS, n from 0.
func linkVars(l *netup.Lease, vars map[string]string) {
	var names []string
	for i, b := range l.Links {
		names = append(names, b.Name)
		var ports []string
		for _, p := range b.Ports {
			ports = append(ports, p.Name)
		}
		p := fmt.Sprintf("LINK%d_", i)
		vars[p+"KIND"], vars[p+"NAME"], vars[p+"PORTS"] = string(b.Kind), b.Name, strings.Join(ports, " ")
		if b.VLANID > 0 {
			vars[p+"VLAN_ID"] = fmt.Sprint(b.VLANID)
		}
		if len(b.Bond) > 0 {
			vars[p+"BOND_OPTIONS"] = b.Bond.String()
		}
	}
	if len(names) > 0 {
		vars["LINKS"] = strings.Join(names, " ")
	}
}
