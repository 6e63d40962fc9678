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

// duidArg parses rd.net.dhcp.duid=[<iface>:]<duid>.
func (p *parser) duidArg(t token) {
	d, iface, ok := ifaceValue(p, t, parseDUID, "not a DUID", func(string) string { return "DUID is not ll or 3 to 130 hex bytes" }, duidHint)
	if ok {
		d.Iface = iface
		p.cfg.Net.DUIDs = append(p.cfg.Net.DUIDs, d)
	}
}

// ifaceValue parses [<iface>:]<value> for a value that may hold ':'
// itself (hex bytes): the whole value is tried first; only if parse
// refuses it is it split at the first ':' into <iface>:<value>. On a
// refusal it fails t (bad says why the value after the interface is
// refused) and returns false.
func ifaceValue[T any](p *parser, t token, parse func(string) (T, bool), notOne string, bad func(string) string, hint string) (T, string, bool) {
	if v, ok := parse(t.val); ok {
		return v, "", true
	}
	var zero T
	iface, rest, ok := strings.Cut(t.val, ":")
	if !ok {
		p.fail(t, notOne, hint)
		return zero, "", false
	}
	if r := ifNameProblem(iface); r != "" {
		p.fail(t, "interface name "+r, hint)
		return zero, "", false
	}
	v, ok := parse(rest)
	if !ok {
		p.fail(t, bad(rest), hint)
		return zero, "", false
	}
	return v, iface, true
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
