package bootcfg

import (
	"net"
	"strconv"
	"strings"
)

// linkDefaults are dracut's values for a bare bond, team or bridge
// (dracut.cmdline(7)).
var linkDefaults = map[string]string{
	"bond":   "bond0:eth0,eth1:mode=balance-rr",
	"team":   "team0:eth0,eth1:activebackup",
	"bridge": "br0:eth0",
}

// linkArg parses vlan=, bond=, team=, bridge= and ib.pkey= into a Link.
// The network stage does not build virtual links yet; it refuses them by
// name, so they are parsed in full here rather than passed over.
func (p *parser) linkArg(t token) {
	kind := LinkKind(t.key)
	v := t.val
	if v == "" && !t.hasVal {
		v = linkDefaults[t.key]
	}
	hint := map[LinkKind]string{
		LinkVLAN:   "use vlan=<name>:<parent>, e.g. vlan=eth0.100:eth0",
		LinkBond:   "use bond=<name>[:<ports>[:<options>[:<mtu>]]], e.g. bond=bond0:eth0,eth1:mode=active-backup",
		LinkTeam:   "use team=<name>:<ports>[:<runner>], e.g. team=team0:eth0,eth1",
		LinkBridge: "use bridge=<name>:<ports>, e.g. bridge=br0:eth0",
		LinkPKey:   "use ib.pkey=<parent>.<pkey>, e.g. ib.pkey=ib0.8004",
	}[kind]
	l := Link{Arg: t.raw, Kind: kind}
	if kind == LinkPKey {
		parent, pkey, ok := strings.Cut(v, ".")
		if !ok || ifNameProblem(parent) != "" || !validPKey(pkey) {
			p.fail(t, "not <parent>.<pkey> with a hex partition key", hint)
			return
		}
		l.Name, l.Parents = v, []string{parent}
		p.cfg.Net.Links = append(p.cfg.Net.Links, l)
		return
	}
	f := strings.Split(v, ":")
	max := map[LinkKind]int{LinkVLAN: 2, LinkBond: 4, LinkTeam: 3, LinkBridge: 2}[kind]
	if len(f) > max {
		p.fail(t, "too many ':'-separated fields", hint)
		return
	}
	if r := ifNameProblem(f[0]); r != "" {
		p.fail(t, "link name "+r, hint)
		return
	}
	l.Name = f[0]
	if len(f) < 2 || f[1] == "" {
		if kind != LinkBond {
			p.fail(t, "missing the links it is built on", hint)
			return
		}
	} else {
		for _, port := range strings.Split(f[1], ",") {
			if r := ifNameProblem(port); r != "" {
				p.fail(t, "port name "+r, hint)
				return
			}
			l.Parents = append(l.Parents, port)
		}
	}
	if kind == LinkVLAN && len(l.Parents) != 1 {
		p.fail(t, "a VLAN has exactly one parent", hint)
		return
	}
	if len(f) > 2 {
		l.Options = f[2]
	}
	if len(f) > 3 && f[3] != "" {
		n, err := strconv.Atoi(f[3])
		if err != nil || !allDigits(f[3]) || n < 68 || n > 65535 {
			p.fail(t, "MTU "+strconv.Quote(f[3])+" is not a number from 68 to 65535", hint)
			return
		}
		l.MTU = n
	}
	p.cfg.Net.Links = append(p.cfg.Net.Links, l)
}

// validPKey accepts an InfiniBand partition key: up to four hex digits,
// optionally 0x-prefixed.
func validPKey(s string) bool {
	s = strings.TrimPrefix(strings.ToLower(s), "0x")
	if s == "" || len(s) > 4 {
		return false
	}
	_, err := strconv.ParseUint(s, 16, 16)
	return err == nil
}

// ethtoolArg parses NetworkManager's rd.ethtool=<iface>:[<autoneg>][:<speed>].
func (p *parser) ethtoolArg(t token) {
	const hint = "use rd.ethtool=<iface>:[on|off][:<speed in Mbit/s>], e.g. rd.ethtool=eth0:off:1000"
	f := strings.Split(t.val, ":")
	if r := ifNameProblem(f[0]); r != "" {
		p.fail(t, "interface name "+r, hint)
		return
	}
	if len(f) > 3 {
		p.fail(t, "too many ':'-separated fields", hint)
		return
	}
	e := Ethtool{Arg: t.raw, Iface: f[0]}
	if len(f) > 1 && f[1] != "" {
		switch f[1] {
		case "on", "1", "yes", "true":
			e.Autoneg = "on"
		case "off", "0", "no", "false":
			e.Autoneg = "off"
		default:
			p.fail(t, "autoneg "+strconv.Quote(f[1])+" is not on or off", hint)
			return
		}
	}
	if len(f) > 2 && f[2] != "" {
		n, err := strconv.Atoi(f[2])
		if err != nil || !allDigits(f[2]) || n == 0 {
			p.fail(t, "speed "+strconv.Quote(f[2])+" is not a number of Mbit/s", hint)
			return
		}
		e.Speed = n
	}
	if e.Autoneg == "" && e.Speed == 0 {
		p.fail(t, "neither autoneg nor speed given", hint)
		return
	}
	p.cfg.Net.Ethtool = append(p.cfg.Net.Ethtool, e)
}

// routeArg parses dracut's rd.route=<net>/<prefix>:[<gateway>][:<iface>],
// IPv6 addresses in [brackets].
func (p *parser) routeArg(t token) {
	const hint = "use rd.route=<net>/<prefix>:[<gateway>][:<iface>], e.g. rd.route=192.168.200.0/24:192.168.100.222:ens10"
	f, r := splitIPFields(t.val)
	if r != "" || len(f) < 2 || len(f) > 3 {
		p.fail(t, "expected <net>/<prefix>:[<gateway>][:<iface>]", hint)
		return
	}
	dest := f[0].s + f[0].prefix
	if f[0].bracketed && f[0].prefix == "" {
		// dracut's example writes the prefix inside: [2001:DB8:3::/8].
		dest = f[0].s
	}
	_, n, err := net.ParseCIDR(dest)
	if err != nil {
		p.fail(t, "destination "+strconv.Quote(dest)+" is not <net>/<prefix>", hint)
		return
	}
	rc := RouteConf{Arg: t.raw, Dest: *n}
	if rc.Gateway, r = optIP(f[1].s, "gateway"); r != "" {
		p.fail(t, r, hint)
		return
	}
	if rc.Gateway != nil && (rc.Gateway.To4() == nil) != (n.IP.To4() == nil) {
		p.fail(t, "gateway and destination are not the same IP version", hint)
		return
	}
	if len(f) == 3 && f[2].s != "" {
		if r := ifNameProblem(f[2].s); r != "" {
			p.fail(t, "interface name "+r, hint)
			return
		}
		rc.Iface = f[2].s
	}
	p.cfg.Net.Routes = append(p.cfg.Net.Routes, rc)
}

// resolveCluster completes anaconda's ip=<address> from netmask=,
// gateway=, hostname=, ksdevice= and mtu= (dracut's ip_to_var reads them
// only for that form).
func (p *parser) resolveCluster() {
	if p.clusterIP < 0 {
		return
	}
	c := &p.cfg.Net.IP[p.clusterIP]
	bad := func(t *token, reason, hint string) {
		p.fail(*t, reason+" (for "+c.Arg+")", hint)
	}
	if t := p.cluster["netmask"]; t != nil {
		m, r := parseMask(t.val, c.Addr)
		if r != "" {
			bad(t, r, "e.g. netmask=255.255.255.0")
		}
		c.Mask = m
	} else {
		p.fail(token{raw: c.Arg}, "anaconda's ip=<address> needs netmask= beside it", "add netmask=<dotted netmask>, or use ip=<ip>::<gw>:<mask>:<host>:<iface>:none")
	}
	if t := p.cluster["gateway"]; t != nil {
		gw, r := optIP(t.val, "gateway")
		if r != "" || gw == nil || gw.To4() == nil {
			bad(t, "gateway is not an IPv4 address", "e.g. gateway=192.0.2.1")
		}
		c.Gateway = gw
	}
	if t := p.cluster["hostname"]; t != nil && t.val != "" {
		if !validHost(t.val) {
			bad(t, "not a valid host name", "e.g. hostname=node1.example.com")
		} else {
			c.Hostname = t.val
		}
	}
	if t := p.cluster["mtu"]; t != nil && t.val != "" {
		if r := mtuAndMAC(c, []ipField{{s: t.val}}); r != "" {
			bad(t, r, "e.g. mtu=9000")
		}
	}
	if t := p.cluster["ksdevice"]; t != nil {
		switch v := t.val; v {
		case "bootif", "BOOTIF", "link", "ibft", "":
			// bootif: the BOOTIF= NIC, which is the default choice anyway;
			// link and ibft: dracut leaves the choice open too.
		default:
			if m, err := net.ParseMAC(v); err == nil {
				c.IfaceMAC = m
			} else if r := ifNameProblem(v); r != "" {
				bad(t, "interface name "+r, "e.g. ksdevice=eth0, ksdevice=bootif or a MAC")
			} else {
				c.Iface = v
			}
		}
	}
}
