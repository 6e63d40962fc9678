package bootcfg

import (
	"encoding/hex"
	"net"
	"slices"
	"strconv"
	"strings"
)

const (
	ipHint = "use ip=<method>, ip=<iface>:<method> or " +
		"ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<hostname>:<iface>:none[:<dns1>[:<dns2>]]; " +
		"IPv6 addresses in [brackets]"
	clientIDHint = "use rd.net.dhcp.client-id=[<iface>:]<id> with id mac, @<text> or hex bytes like 01:52:54:00:12:34:56 or 01-52-54-00-12-34-56"
)

// ifNameProblem returns why s is not a valid Linux interface name (the
// kernel's dev_valid_name, plus ':' which dracut's syntax cannot carry),
// or "" if it is.
func ifNameProblem(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > 15:
		return strconv.Quote(s) + " is longer than 15 characters"
	case s == "." || s == "..":
		return strconv.Quote(s) + " is not allowed"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' || c == ':' || isSpace(c) || c < 0x20 || c == 0x7f {
			return strconv.Quote(s) + " contains " + strconv.QuoteRune(rune(c))
		}
	}
	return ""
}

// ipField is one ':'-separated field of an ip= value.
type ipField struct {
	s         string
	bracketed bool   // was written as [s]: only IP addresses may be
	prefix    string // "/<n>" written after the ] of a bracketed address
}

// splitIPFields splits at ':' except inside [...], removing the brackets,
// as dracut's ip_to_var does for IPv6 addresses. A "/<prefix>" after the ]
// ([2001:db8::2]/56) is kept apart for the address field to use.
func splitIPFields(v string) ([]ipField, string) {
	var f []ipField
	i := 0
	for {
		if i < len(v) && v[i] == '[' {
			end := strings.IndexByte(v[i:], ']')
			if end < 0 {
				return nil, "unterminated ["
			}
			end += i
			fl := ipField{s: v[i+1 : end], bracketed: true}
			i = end + 1
			if i < len(v) && v[i] == '/' {
				j := strings.IndexByte(v[i:], ':')
				if j < 0 {
					j = len(v) - i
				}
				fl.prefix, i = v[i:i+j], i+j
			}
			f = append(f, fl)
			if i == len(v) {
				return f, ""
			}
			if v[i] != ':' {
				return nil, "expected ':' after ]"
			}
			i++
			continue
		}
		j := strings.IndexByte(v[i:], ':')
		if j < 0 {
			return append(f, ipField{s: v[i:]}), ""
		}
		f = append(f, ipField{s: v[i : i+j]})
		i += j + 1
	}
}

// ipMethod recognises one method. single-dhcp is dracut's "DHCP on one
// interface only", which is what streamroot always does.
func ipMethod(s string) (IPMethod, bool) {
	switch m := IPMethod(s); m {
	case IPDHCP, IPOn, IPAny, IPDHCP6, IPAuto6, IPEither6, IPLink6, IPAuto, IPNone, IPOff:
		return m, true
	case "single-dhcp":
		return IPDHCP, true
	}
	return "", false
}

// ipMethods reads a method field: one method or a comma list (dracut's
// ifup runs each in turn; CoreOS writes ip=dhcp,dhcp6). It returns the
// method that decides the form (the first IPv4 one, else the first), the
// rest in order, and a reason when the field is not a method list.
func ipMethods(s string) (IPMethod, []IPMethod, string) {
	var all []IPMethod
	for _, w := range strings.Split(s, ",") {
		m, ok := ipMethod(w)
		switch {
		case ok:
			if !slices.Contains(all, m) {
				all = append(all, m)
			}
		case w == "ibft":
			return "", nil, "method \"ibft\" (read the NIC's configuration from the iSCSI boot firmware table) is not supported by streamroot"
		case w == "bootp" || w == "rarp" || w == "both":
			return "", nil, "method " + strconv.Quote(w) + " is not supported (dracut refuses it too)"
		default:
			return "", nil, "unknown method " + strconv.Quote(w)
		}
	}
	if len(all) > 1 && (slices.Contains(all, IPNone) || slices.Contains(all, IPOff)) {
		return "", nil, "method none/off cannot be combined with others in a list"
	}
	first := 0
	for i, m := range all {
		if m.IPv4() {
			first = i
			break
		}
	}
	rest := slices.Delete(slices.Clone(all), first, first+1)
	if len(rest) == 0 {
		rest = nil
	}
	return all[first], rest, ""
}

// isMethodList reports whether s reads as a method field, which is how
// dracut's ip_to_var tells ip=<iface>:<method>… from the long form.
func isMethodList(s string) bool {
	_, _, r := ipMethods(s)
	return r == "" || strings.Contains(r, "not supported")
}

// ipArg parses one ip= (see IPConf for the forms).
func (p *parser) ipArg(t token) {
	c, reason := parseIP(t)
	if reason != "" {
		p.fail(t, reason, ipHint)
		return
	}
	if c.Arg == "" {
		// anaconda's ip=<address>: completed in resolveCluster.
		if p.clusterIP >= 0 {
			p.fail(t, "a second anaconda-style ip=<address>: netmask= and gateway= can serve only one",
				"use the static form ip=<ip>::<gw>:<mask>:<host>:<iface>:none for each interface")
			return
		}
		p.clusterIP = len(p.cfg.Net.IP)
		c.Arg = t.raw
	}
	if c.Method == "" {
		c.Method = IPDHCP
		p.warn(t, "no method given: DHCP, as dracut does")
	}
	p.cfg.Net.IP = append(p.cfg.Net.IP, c)
}

// firmwareAddr reads PXELinux's IPAPPEND 1 form, which iPXE scripts copy:
// ip=<client-IP>:<boot-server-IP>:<gateway-IP>:<netmask>, four dotted IPv4
// fields and nothing more. It is the address the firmware has just leased,
// not a static point-to-point link (its second field is the TFTP server):
// dracut refuses it ("setting client-ip does not make sense" for its DHCP
// default), so no line that boots with dracut changes meaning. streamroot
// runs DHCP and asks for that address first (IPConf.Firmware).
func firmwareAddr(c IPConf, f []ipField) (IPConf, bool) {
	if len(f) != 4 {
		return c, false
	}
	var ips [4]net.IP
	for i, fl := range f {
		ip := net.ParseIP(fl.s)
		if fl.bracketed || fl.prefix != "" || ip == nil || ip.To4() == nil {
			return c, false
		}
		ips[i] = ip.To4()
	}
	mask := net.IPMask(ips[3])
	if ones, bits := mask.Size(); bits != 32 || ones == 0 || !ips[0].IsGlobalUnicast() {
		return c, false
	}
	c.Method, c.Firmware = IPDHCP, true
	c.Addr, c.Gateway, c.Mask = ips[0], ips[2], mask
	if ips[2].IsUnspecified() {
		c.Gateway = nil // PXELinux writes 0.0.0.0 when the lease named no router
	}
	return c, true
}

func parseIP(t token) (IPConf, string) {
	c := IPConf{Arg: t.raw}
	if t.val == "" {
		return c, "empty ip="
	}
	f, reason := splitIPFields(t.val)
	if reason != "" {
		return c, reason
	}
	// ip=<method>[,…]
	if len(f) == 1 {
		if f[0].bracketed {
			return c, "the method must not be in []"
		}
		if a := net.ParseIP(f[0].s); a != nil && a.To4() != nil {
			// anaconda's ip=<address> netmask=… gateway=… ksdevice=…
			c.Arg, c.Addr, c.Method = "", canonIP(a), IPNone
			return c, ""
		}
		var r string
		c.Method, c.Also, r = ipMethods(f[0].s)
		return c, r
	}

	// ip=<iface>:<method>[:[<mtu>][:<macaddr>]]. In the long form the
	// second field is the peer address, so a method there is unambiguous
	// (dracut's ip_to_var decides the same way). The MAC's colons may
	// make this form 7 fields or more, so the count cannot decide.
	if !f[1].bracketed && isMethodList(f[1].s) {
		var r string
		if c.Method, c.Also, r = ipMethods(f[1].s); r != "" {
			return c, r
		}
		for i, fl := range f {
			if fl.bracketed {
				return c, "field " + strconv.Itoa(i+1) + " is in [] but is not an IP address"
			}
		}
		if r := ifaceField(&c, f[0].s); r != "" {
			return c, r
		}
		if c.Off() && len(f) > 2 {
			return c, "an interface that is not configured takes no MTU or MAC address"
		}
		return c, mtuAndMAC(&c, f[2:])
	}
	if len(f) < 6 && !f[0].bracketed && net.ParseIP(strings.Split(f[0].s, "/")[0]) == nil {
		return c, "expected <iface>:<method> or the static form <client-IP>:[<peer>]:<gateway-IP>:<netmask>:<hostname>:<iface>[:<method>]; " +
			strconv.Quote(f[1].s) + " is not a method"
	}

	if fw, ok := firmwareAddr(c, f); ok {
		return fw, ""
	}

	// Only the address fields may be bracketed.
	for i, fl := range f {
		if fl.bracketed && i != 0 && i != 1 && i != 2 && i != 7 && i != 8 {
			return c, "field " + strconv.Itoa(i+1) + " is in [] but is not an IP address field"
		}
		if fl.prefix != "" && i != 0 && i != 1 {
			return c, "field " + strconv.Itoa(i+1) + " takes no /prefix"
		}
	}
	// The trailing fields may be left out: the kernel's own ip= and
	// NetworkManager read a missing method as "none" when there is an
	// address (anaconda and RHCOS write the 6-field form).
	for len(f) < 7 {
		f = append(f, ipField{})
	}

	// ip=<client-IP>[/<prefix>]:[<peer>]:<gateway-IP>:<netmask>:<hostname>:<iface>:<method>[:…]
	var r string
	addr, prefix := f[0].s, strings.TrimPrefix(f[0].prefix, "/")
	if !f[0].bracketed {
		if a, pl, ok := strings.Cut(addr, "/"); ok {
			addr, prefix = a, pl
			if prefix == "" {
				return c, "empty prefix length after the client IP's /"
			}
		}
	} else if f[0].prefix != "" && prefix == "" {
		return c, "empty prefix length after the client IP's /"
	}
	if c.Addr, r = optIP(addr, "client IP"); r != "" {
		return c, r
	}
	peer := f[1].s
	if !f[1].bracketed {
		peer, _, _ = strings.Cut(peer, "/") // dracut.cmdline(7): the peer "may be followed by a slash and a prefix length"
	}
	if c.Peer, r = optIP(peer, "peer"); r != "" {
		return c, r
	}
	if c.Gateway, r = optIP(f[2].s, "gateway"); r != "" {
		return c, r
	}
	if c.Addr != nil && c.Gateway != nil && (c.Addr.To4() == nil) != (c.Gateway.To4() == nil) {
		return c, "gateway and client IP are not the same IP version"
	}
	if prefix != "" {
		if c.Addr == nil {
			return c, "a /prefix needs a client IP"
		}
		if !allDigits(prefix) {
			return c, "prefix length " + strconv.Quote(prefix) + " after the client IP is not a number"
		}
		if c.Mask, r = parseMask(prefix, c.Addr); r != "" {
			return c, r
		}
	}
	if f[3].s != "" {
		m, r := parseMask(f[3].s, c.Addr)
		if r != "" {
			return c, r
		}
		if c.Mask != nil && !slices.Equal(m, c.Mask) {
			return c, "the client IP's /" + prefix + " and the netmask " + strconv.Quote(f[3].s) + " disagree"
		}
		c.Mask = m
	}
	if h := f[4].s; h != "" {
		if !validHost(h) {
			return c, "hostname " + strconv.Quote(h) + " is not a valid host name"
		}
		c.Hostname = h
	}
	if r := ifaceField(&c, f[5].s); r != "" {
		return c, r
	}
	switch {
	case f[6].s == "" && c.Addr != nil:
		// No method but an address: plainly static, as the kernel's ip= reads it.
		c.Method = IPNone
	case f[6].s == "":
		// dracut: "Empty autoconf values default to dhcp"; ipArg warns.
	default:
		if c.Method, c.Also, r = ipMethods(f[6].s); r != "" {
			return c, r
		}
	}
	switch {
	case c.Addr != nil && c.Method != IPNone && c.Method != IPOff:
		return c, "a client IP needs method none or off (dracut: setting a client IP makes no sense for " + string(c.Method) + ")"
	case c.Static() && c.Mask == nil:
		return c, "static address needs a netmask (4th field) or a /prefix after the address; dracut refuses it too (NetworkManager would guess a classful prefix)"
	case c.Off() && (c.Gateway != nil || c.Mask != nil || c.Peer != nil):
		return c, "static configuration (method " + string(c.Method) + ") needs a client IP (1st field)"
	case c.Off() && c.Iface == "" && c.IfaceMAC == nil:
		return c, "method " + string(c.Method) + " without a client IP or an interface configures nothing"
	}

	// dracut tells the two tails apart by the 8th field: an address means
	// DNS servers, otherwise it is an MTU (possibly empty) and a MAC.
	rest := f[7:]
	if len(rest) > 0 && (rest[0].bracketed || net.ParseIP(rest[0].s) != nil) {
		if len(rest) > 2 {
			return c, "too many fields after the DNS servers"
		}
		for i, fl := range rest {
			if fl.s == "" && i > 0 {
				continue
			}
			ip := net.ParseIP(fl.s)
			if ip == nil {
				return c, "DNS server " + strconv.Itoa(i+1) + " " + strconv.Quote(fl.s) + " is not an IP address"
			}
			c.DNS = append(c.DNS, canonIP(ip))
		}
		return c, ""
	}
	return c, mtuAndMAC(&c, rest)
}

// ifaceField reads an interface field: a name, or (dracut's ifup) the
// NIC's MAC in BOOTIF's dash form.
func ifaceField(c *IPConf, s string) string {
	if s == "" {
		return ""
	}
	if strings.Count(s, "-") == 5 && len(s) == 17 {
		if m, err := net.ParseMAC(s); err == nil {
			c.IfaceMAC = m
			return ""
		}
	}
	if r := ifNameProblem(s); r != "" {
		return "interface name " + r
	}
	c.Iface = s
	return ""
}

// mtuAndMAC parses the optional [<mtu>][:<macaddr>] tail. The MAC's own
// colons split it into six fields; they are joined back.
func mtuAndMAC(c *IPConf, f []ipField) string {
	if len(f) == 0 {
		return ""
	}
	for _, fl := range f {
		if fl.bracketed {
			return "MTU and MAC address must not be in []"
		}
	}
	if s := f[0].s; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || !allDigits(s) || n < 68 || n > 65535 {
			return "MTU " + strconv.Quote(s) + " is not a number from 68 to 65535"
		}
		c.MTU = n
	}
	parts := make([]string, 0, len(f)-1)
	for _, fl := range f[1:] {
		parts = append(parts, fl.s)
	}
	if s := strings.Join(parts, ":"); s != "" {
		mac, err := net.ParseMAC(s)
		if err != nil {
			return "MAC address " + strconv.Quote(s) + " is not valid"
		}
		c.MAC = mac
	}
	return ""
}

// canonIP stores IPv4 addresses in their 4-byte form, so callers can
// compare and print them without caring how they were parsed.
func canonIP(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}

func optIP(s, what string) (net.IP, string) {
	if s == "" {
		return nil, ""
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, what + " " + strconv.Quote(s) + " is not an IP address (IPv6 goes in [brackets])"
	}
	return canonIP(ip), ""
}

// parseMask reads a dotted IPv4 netmask or a prefix length, checked
// against the client address's family when there is one.
func parseMask(s string, addr net.IP) (net.IPMask, string) {
	bits := 32
	if addr != nil && addr.To4() == nil {
		bits = 128
	}
	if allDigits(s) {
		n, err := strconv.Atoi(s)
		if err != nil || n > bits {
			return nil, "netmask prefix length " + s + " is out of range 0-" + strconv.Itoa(bits)
		}
		return net.CIDRMask(n, bits), ""
	}
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return nil, "netmask " + strconv.Quote(s) + " is neither a dotted netmask nor a prefix length"
	}
	if bits != 32 {
		return nil, "netmask " + strconv.Quote(s) + " is dotted IPv4 but the client IP is IPv6; use a prefix length"
	}
	m := net.IPv4Mask(ip[0], ip[1], ip[2], ip[3])
	if ones, b := m.Size(); ones == 0 && b == 0 {
		return nil, "netmask " + strconv.Quote(s) + " is not contiguous"
	}
	return m, ""
}

// bootIFArg parses BOOTIF=<type>-aa-bb-cc-dd-ee-ff, as PXELinux's
// IPAPPEND 2 writes it: the ARP hardware type and then the MAC. Like
// dracut's fix_bootif, any two-digit type is stripped (NetworkManager only
// strips 01 and 00), and the bare MAC is taken too.
func (p *parser) bootIFArg(t token) {
	const hint = "expected BOOTIF=01-aa-bb-cc-dd-ee-ff (PXELinux IPAPPEND 2)"
	v := t.val
	if v == "" {
		// A boot loader that had no MAC to substitute (GRUB's empty
		// $net_default_mac): dracut ignores it too; fall back to carrier.
		return
	}
	// "01-52:54:00:12:34:56" (a colon MAC behind the type) is seen from
	// hand-written configs; NetworkManager accepts it.
	if len(v) > 3 && v[2] == '-' && isHexByte(v[:2]) && strings.Count(v[3:], ":") == 5 {
		v = v[3:]
	}
	if parts := strings.Split(v, "-"); len(parts) == 7 {
		if !isHexByte(parts[0]) {
			p.fail(t, "hardware type "+strconv.Quote(parts[0])+" is not two hex digits", hint)
			return
		}
		v = strings.Join(parts[1:], "-")
	}
	mac, err := net.ParseMAC(v)
	if err != nil || len(mac) != 6 {
		p.fail(t, "not an Ethernet MAC address", hint)
		return
	}
	// A NIC's own address never has the group bit set. Checking it also
	// catches a truncated "01-aa-bb-cc-dd-ee", which would otherwise read
	// as the MAC 01:aa:bb:cc:dd:ee.
	if mac[0]&1 != 0 {
		p.fail(t, "multicast address, not a NIC's MAC (is a byte missing after 01-?)", hint)
		return
	}
	p.cfg.Net.BootIF = mac
}

func isHexByte(s string) bool {
	_, err := hex.DecodeString(s)
	return len(s) == 2 && err == nil
}

// ifnameArg parses ifname=<name>:<mac>.
func (p *parser) ifnameArg(t token) {
	const hint = "use ifname=<name>:<mac>, e.g. ifname=net0:52:54:00:12:34:56"
	name, macs, ok := strings.Cut(t.val, ":")
	if !ok {
		p.fail(t, "missing :<mac>", hint)
		return
	}
	if r := ifNameProblem(name); r != "" {
		p.fail(t, "interface name "+r, hint)
		return
	}
	mac, err := net.ParseMAC(macs)
	if err != nil {
		p.fail(t, "MAC address "+strconv.Quote(macs)+" is not valid", hint)
		return
	}
	p.cfg.Net.IfNames = append(p.cfg.Net.IfNames, IfName{Name: name, MAC: mac})
}

// nameserverArg parses nameserver=<ip>; brackets around IPv6 are allowed.
func (p *parser) nameserverArg(t token) {
	v := t.val
	if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		v = v[1 : len(v)-1]
	}
	ip := net.ParseIP(v)
	if ip == nil {
		p.fail(t, "not an IP address", "e.g. nameserver=192.0.2.53")
		return
	}
	p.cfg.Net.Nameservers = append(p.cfg.Net.Nameservers, canonIP(ip))
}

// clientIDArg parses rd.net.dhcp.client-id=[<iface>:]<id>. Hex bytes
// contain ':' too, so the whole value is first tried as an id; only if that
// fails is it split at the first ':' into <iface>:<id>.
func (p *parser) clientIDArg(t token) {
	id, iface, ok := ifaceValue(p, t, parseClientID, "not a client id", func(v string) string {
		return "client id " + strconv.Quote(v) + " is not mac, @<text> or hex bytes (at least 2, ':' or '-' between them)"
	}, clientIDHint)
	if ok {
		id.Iface = iface
		p.cfg.Net.ClientIDs = append(p.cfg.Net.ClientIDs, id)
	}
}

// parseClientID reads mac, @<text> or hex bytes xx:xx[:…] or xx-xx[-…]
// (at least two, the first being the type; NetworkManager documents the
// dashes, dracut's dhclient the colons). The option carries at most 255
// bytes.
func parseClientID(v string) (ClientID, bool) {
	switch {
	case v == "mac":
		return ClientID{Kind: ClientIDMAC}, true
	case strings.HasPrefix(v, "@"):
		if len(v) < 2 || len(v) > 255 {
			return ClientID{}, false
		}
		return ClientID{Kind: ClientIDText, Bytes: append([]byte{0}, v[1:]...)}, true
	}
	sep := ":"
	if !strings.Contains(v, ":") {
		sep = "-"
	}
	parts := strings.Split(v, sep)
	if len(parts) < 2 || len(parts) > 255 {
		return ClientID{}, false
	}
	b := make([]byte, 0, len(parts))
	for _, s := range parts {
		if len(s) != 2 {
			return ClientID{}, false
		}
		x, err := hex.DecodeString(s)
		if err != nil {
			return ClientID{}, false
		}
		b = append(b, x[0])
	}
	return ClientID{Kind: ClientIDBytes, Bytes: b}, true
}
