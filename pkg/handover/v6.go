package handover

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/netup"
)

// IPv6: one DHCPv6 lease per node. The initramfs's DUID and IAID go to
// NetworkManager (a conf.d default for every profile that sets none, and
// the boot link's own profile) and to networkd, so the real OS's DHCPv6
// client renews the initramfs's lease instead of taking a second one (NM
// defaults to a DUID-UUID from the machine id, networkd to DUID-EN: both
// differ from what any initramfs could send). SLAAC addresses stay the
// same when the real OS forms them the kernel's way (EUI-64), so NM is
// told addr-gen-mode=eui64 (its default is stable-privacy).

// files6 are the IPv6 handover files: NM's defaults always; with IPv6
// only, the boot link's NM profile and networkd file too (with IPv4 the
// IPv4 writer's profile and .network carry both, see networkdDHCP).
func files6(l *netup.Lease) []File {
	v := l.V6
	if v == nil {
		return nil
	}
	var out []File
	var conf strings.Builder
	conf.WriteString("# streamroot: the initramfs's IPv6 identity; profiles that set none use it,\n" +
		"# so the DHCPv6 server sees one client and the SLAAC address stays the same.\n[connection]\n")
	if v.Method != netup.V6Static {
		fmt.Fprintf(&conf, "ipv6.dhcp-duid=%s\nipv6.dhcp-iaid=%d\n", colonHex(v.DUID), v.IAID)
	}
	conf.WriteString("ipv6.addr-gen-mode=eui64\n")
	out = append(out, File{"NetworkManager/conf.d/16-streamroot-ipv6.conf", 0o644, []byte(conf.String())})
	if !onlyV6(l) || len(l.Links) > 0 {
		// With DHCPv4 its profile and .network carry IPv6 too; beside a
		// static IPv4 address the root's own config applies, as for IPv4.
		// On a virtual link the topology's files carry it (topology.go).
		return out
	}
	mac := l.MAC.String()
	// NM takes over a link it finds configured only through a profile
	// that matches what it sees: a dynamic IPv6 address reads as "auto"
	// (so dhcp6 is "auto" too: with the RA's M flag NM runs DHCPv6), the
	// kernel's EUI-64 link-local as addr-gen-mode=eui64. A profile that
	// differs leaves the link "externally managed": no DHCPv6 client, and
	// the lease silently expires.
	out = append(out, File{fmt.Sprintf("NetworkManager/system-connections/streamroot-%s.nmconnection", l.Iface), 0o600, []byte(fmt.Sprintf(
		"# streamroot: the boot link (IPv6 only), for roots that have no profile of their own\n"+
			"[connection]\nid=streamroot-%s\nuuid=%s\ntype=ethernet\nautoconnect=true\nautoconnect-priority=-100\n\n"+
			"[ethernet]\nmac-address=%s\n\n[ipv4]\nmethod=disabled\n\n%s",
		l.Iface, uuidFor(l.MAC), mac, nmIPv6(v)))})
	var nd strings.Builder
	fmt.Fprintf(&nd, "# streamroot: keep the initramfs's IPv6 address (same DUID and IAID)\n[Match]\nMACAddress=%s\n\n[Network]\nDHCP=%s\nIPv6AcceptRA=yes\nLinkLocalAddressing=ipv6\n"+
		"# the root may live on this network: never drop the address\nKeepConfiguration=yes\n", mac, networkdDHCP(l))
	nd.WriteString(networkdStatic6(v))
	nd.WriteString(networkd6(l))
	out = append(out, File{fmt.Sprintf("systemd/network/10-streamroot-%s.network", l.Iface), 0o644, []byte(nd.String())})
	return out
}

// nmIPv6 is a profile's [ipv6] section for the lease's link: see files6
// for why it must match what NetworkManager finds on the link.
func nmIPv6(v *netup.Lease6) string {
	var b strings.Builder
	if v.Method == netup.V6Static {
		b.WriteString("[ipv6]\nmethod=manual\naddr-gen-mode=eui64\n")
		gw := ""
		if v.Router != nil {
			gw = "," + v.Router.String()
		}
		ones, _ := v.Addrs[0].Net.Mask.Size()
		fmt.Fprintf(&b, "address1=%s/%d%s\n", v.Addrs[0].Net.IP, ones, gw)
		if dns := ipList(v.DNS, ";"); dns != "" {
			fmt.Fprintf(&b, "dns=%s;\n", dns)
		}
		return b.String()
	}
	// A dynamic IPv6 address reads as "auto" (so dhcp6 is "auto" too: with
	// the RA's M flag NM runs DHCPv6).
	fmt.Fprintf(&b, "[ipv6]\nmethod=auto\naddr-gen-mode=eui64\ndhcp-duid=%s\ndhcp-iaid=%d\n", colonHex(v.DUID), v.IAID)
	return b.String()
}

// networkdStatic6 is a .network's static IPv6 address, gateway and DNS;
// "" unless the method is static.
func networkdStatic6(v *netup.Lease6) string {
	if v == nil || v.Method != netup.V6Static {
		return ""
	}
	ones, _ := v.Addrs[0].Net.Mask.Size()
	s := fmt.Sprintf("Address=%s/%d\n", v.Addrs[0].Net.IP, ones)
	if v.Router != nil {
		s += fmt.Sprintf("Gateway=%s\n", v.Router)
	}
	if dns := ipList(v.DNS, " "); dns != "" {
		s += fmt.Sprintf("DNS=%s\n", dns)
	}
	return s
}

func onlyV6(l *netup.Lease) bool { return l.V6 != nil && l.Addr.IP.To4() == nil }

// networkdDHCP is the .network's DHCP= for the lease: DHCPv4 and/or DHCPv6.
func networkdDHCP(l *netup.Lease) string {
	v6 := l.V6 != nil && l.V6.Method != netup.V6Static
	switch {
	case l.DHCP && v6:
		return "yes"
	case v6:
		return "ipv6"
	case l.DHCP:
		return "ipv4"
	}
	return "no"
}

// networkd6 is the .network's [DHCPv6] section: the DUID (networkd
// composes it of DUIDType= and DUIDRawData=, so the type's two bytes are
// split off) and the IAID. A DUID type networkd has no name for gets no
// DUID lines: networkd's own DUID applies then, and the log says so.
func networkd6(l *netup.Lease) string {
	v := l.V6
	if v == nil || v.Method == netup.V6Static {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n[DHCPv6]\n")
	if len(v.DUID) > 2 {
		typ := int(v.DUID[0])<<8 | int(v.DUID[1])
		if name := map[int]string{1: "link-layer-time", 2: "vendor", 3: "link-layer", 4: "uuid"}[typ]; name != "" {
			fmt.Fprintf(&b, "DUIDType=%s\nDUIDRawData=%s\n", name, colonHex(v.DUID[2:]))
		} else {
			fmt.Fprintf(&b, "# DUID type %d has no networkd name: networkd sends its own DUID\n", typ)
		}
	}
	fmt.Fprintf(&b, "IAID=%d\n", v.IAID)
	if v.Method == netup.V6DHCP {
		// ip=dhcp6: lease by DHCPv6 whatever the RA's M flag says, as the
		// initramfs did.
		b.WriteString("WithoutRA=solicit\n")
	}
	return b.String()
}

// ipList joins the addresses with sep.
func ipList(ips []net.IP, sep string) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, sep)
}

func secs(d time.Duration) int64 {
	if d == netup.Forever {
		return -1
	}
	return int64(d.Seconds())
}

// Lease6JSON is the IPv6 part of net.<iface>.json and of the boot report
// (/run/initramfs/streamroot.json); nil without IPv6.
func Lease6JSON(l *netup.Lease) *bootlog.ReportLease6 {
	v := l.V6
	if v == nil {
		return nil
	}
	d := &bootlog.ReportLease6{Method: string(v.Method), DUID: colonHex(v.DUID), IAID: v.IAID, T1: secs(v.T1), T2: secs(v.T2)}
	if v.ServerID != nil {
		d.ServerID = colonHex(v.ServerID)
	}
	if v.RA != nil {
		d.Managed, d.Other = v.RA.Managed, v.RA.Other
	}
	for _, a := range v.Addrs {
		ones, _ := a.Net.Mask.Size()
		d.Addresses = append(d.Addresses, bootlog.ReportAddr6{Address: a.Net.IP.String(), Prefix: ones, From: a.From, Valid: secs(a.Valid), Preferred: secs(a.Preferred)})
	}
	if v.Router != nil {
		d.Router = v.Router.String()
	}
	for _, s := range v.DNS {
		d.DNS = append(d.DNS, s.String())
	}
	for _, s := range v.Search {
		if netup.CheckDomain(s) == nil && len(d.Search) < netup.MaxSearch {
			d.Search = append(d.Search, s)
		}
	}
	return d
}

// env6 is the IPv6 part of net.<iface>.env.
func env6(l *netup.Lease) map[string]string {
	d := Lease6JSON(l)
	if d == nil {
		return nil
	}
	vars := map[string]string{"IPV6_METHOD": d.Method, "IPV6_ROUTER": d.Router, "IPV6_DNS": strings.Join(d.DNS, " "),
		"IPV6_SEARCH": strings.Join(d.Search, " "), "IPV6_DUID": d.DUID, "IPV6_IAID": strconv.FormatUint(uint64(d.IAID), 10),
		"IPV6_SERVER_DUID": d.ServerID, "IPV6_T1": fmt.Sprint(d.T1), "IPV6_T2": fmt.Sprint(d.T2)}
	var addrs []string
	for _, a := range d.Addresses {
		addrs = append(addrs, fmt.Sprintf("%s/%d", a.Address, a.Prefix))
	}
	vars["IPV6_ADDRESSES"] = strings.Join(addrs, " ")
	if len(d.Addresses) > 0 {
		vars["IPV6_ADDRESS"], vars["IPV6_PREFIX"] = d.Addresses[0].Address, fmt.Sprint(d.Addresses[0].Prefix)
		vars["IPV6_VALID_SECONDS"] = fmt.Sprint(d.Addresses[0].Valid)
	}
	return vars
}
