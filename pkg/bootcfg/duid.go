package bootcfg

import "strings"

const duidHint = "use rd.net.dhcp.duid=[<iface>:]<duid> with duid ll (DUID-LL from the MAC, the default) or hex bytes like 00:03:00:01:52:54:00:12:34:56 (type first)"

// DUID is one rd.net.dhcp.duid=[<iface>:]<duid>: the DHCPv6 client DUID
// the initramfs and the real OS present (NetworkManager's ipv6.dhcp-duid).
type DUID struct {
	Iface string // "" = all interfaces
	// Bytes is the DUID, type first; nil for "ll" (DUID-LL from the MAC).
	Bytes []byte
}

// duidArg parses rd.net.dhcp.duid=; like the client id, the whole value is
// first tried as a DUID, then split at the first ':' into <iface>:<duid>.
func (p *parser) duidArg(t token) {
	if d, ok := parseDUID(t.val); ok {
		p.cfg.Net.DUIDs = append(p.cfg.Net.DUIDs, d)
		return
	}
	iface, v, ok := strings.Cut(t.val, ":")
	if !ok {
		p.fail(t, "not a DUID", duidHint)
		return
	}
	if r := ifNameProblem(iface); r != "" {
		p.fail(t, "interface name "+r, duidHint)
		return
	}
	d, ok := parseDUID(v)
	if !ok {
		p.fail(t, "DUID is not ll or 3 to 130 hex bytes", duidHint)
		return
	}
	d.Iface = iface
	p.cfg.Net.DUIDs = append(p.cfg.Net.DUIDs, d)
}

// parseDUID reads ll or hex bytes (RFC 8415 §11.1: a 2-byte type and at
// most 128 bytes after it).
func parseDUID(v string) (DUID, bool) {
	if v == "ll" {
		return DUID{}, true
	}
	id, ok := parseClientID(v)
	if !ok || id.Kind != ClientIDBytes || len(id.Bytes) < 3 || len(id.Bytes) > 130 {
		return DUID{}, false
	}
	return DUID{Bytes: id.Bytes}, true
}
