package netup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// RA is what a router advertisement (RFC 4861 §4.2) tells the node, after
// every field was checked: prefixes, the router's lifetime, the M and O
// flags, and the resolver options of RFC 8106.
type RA struct {
	Router   net.IP        // the advertisement's source: a link-local address
	Lifetime time.Duration // as a default router; 0: not a default router
	Managed  bool          // M: addresses come from DHCPv6
	Other    bool          // O: other configuration (DNS) from DHCPv6
	Prefixes []Prefix
	MTU      int
	DNS      []net.IP // RDNSS (option 25)
	Search   []string // DNSSL (option 31), valid domain names
}

// Prefix is one prefix information option.
type Prefix struct {
	Net        net.IPNet
	OnLink     bool // L
	Autonomous bool // A: SLAAC may form an address in it
	Valid      time.Duration
	Preferred  time.Duration
}

// Bounds on what one advertisement may make the node keep.
const (
	maxPrefixes = 8
	raHeader    = 16 // type, code, checksum, hop limit, flags, lifetime, reachable, retrans
)

// RA and neighbour discovery option types (RFC 4861, RFC 8106).
const (
	icmpRA        = 134
	optSourceLL   = 1
	optPrefixInfo = 3
	optMTU        = 5
	optRDNSS      = 25
	optDNSSL      = 31
)

// ParseRA reads an ICMPv6 router advertisement (the ICMP message, from
// its type byte). Malformed options make the whole message invalid, as
// RFC 4861 §6.1.2 asks; values that are merely unusable (a link-local
// DNS server, a prefix longer than /64 for SLAAC, an invalid domain) are
// dropped and named in the returned notes.
func ParseRA(b []byte, from net.IP) (*RA, []string, error) {
	if len(b) < raHeader {
		return nil, nil, fmt.Errorf("router advertisement of %d bytes, at least %d", len(b), raHeader)
	}
	if b[0] != icmpRA || b[1] != 0 {
		return nil, nil, fmt.Errorf("ICMPv6 type %d code %d is not a router advertisement", b[0], b[1])
	}
	if from == nil || !from.IsLinkLocalUnicast() || from.To4() != nil {
		return nil, nil, fmt.Errorf("router advertisement from %v: not a link-local IPv6 address", from)
	}
	ra := &RA{
		Router:   from,
		Managed:  b[5]&0x80 != 0,
		Other:    b[5]&0x40 != 0,
		Lifetime: time.Duration(binary.BigEndian.Uint16(b[6:8])) * time.Second,
	}
	var notes []string
	note := func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }
	for opts := b[raHeader:]; len(opts) > 0; {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return nil, notes, errors.New("router advertisement has a truncated or zero-length option")
		}
		typ, body := opts[0], opts[2:int(opts[1])*8]
		opts = opts[int(opts[1])*8:]
		switch typ {
		case optPrefixInfo:
			if len(body) != 30 {
				return nil, notes, fmt.Errorf("prefix information option of %d bytes, want 32", len(body)+2)
			}
			plen := int(body[0])
			if plen > 128 {
				return nil, notes, fmt.Errorf("prefix length %d", plen)
			}
			p := Prefix{
				Net:        net.IPNet{IP: net.IP(append([]byte(nil), body[14:30]...)).Mask(net.CIDRMask(plen, 128)), Mask: net.CIDRMask(plen, 128)},
				OnLink:     body[1]&0x80 != 0,
				Autonomous: body[1]&0x40 != 0,
				Valid:      lifetime(binary.BigEndian.Uint32(body[2:6])),
				Preferred:  lifetime(binary.BigEndian.Uint32(body[6:10])),
			}
			switch {
			case p.Net.IP.IsLinkLocalUnicast() || p.Net.IP.IsMulticast():
				note("prefix %s: link-local or multicast", p.Net.String())
			case p.Autonomous && plen != 64:
				// RFC 4862 §5.5.3: SLAAC needs prefix + 64-bit interface id.
				note("prefix %s: not /64, no address is formed in it", p.Net.String())
				p.Autonomous = false
				fallthrough
			default:
				if len(ra.Prefixes) == maxPrefixes {
					note("prefix %s: more than %d prefixes", p.Net.String(), maxPrefixes)
					continue
				}
				ra.Prefixes = append(ra.Prefixes, p)
			}
		case optMTU:
			if len(body) != 6 {
				return nil, notes, fmt.Errorf("MTU option of %d bytes, want 8", len(body)+2)
			}
			if mtu := binary.BigEndian.Uint32(body[2:6]); mtu >= minMTU6 && mtu <= 65535 {
				ra.MTU = int(mtu)
			} else {
				note("MTU %d: not between %d and 65535", mtu, minMTU6)
			}
		case optRDNSS:
			if len(body) < 22 || (len(body)-6)%16 != 0 {
				return nil, notes, fmt.Errorf("RDNSS option of %d bytes", len(body)+2)
			}
			if binary.BigEndian.Uint32(body[2:6]) == 0 {
				continue // lifetime 0: withdraw, nothing to use
			}
			for a := body[6:]; len(a) >= 16; a = a[16:] {
				ra.DNS = addDNS6(ra.DNS, net.IP(append([]byte(nil), a[:16]...)), "RDNSS", note)
			}
		case optDNSSL:
			if len(body) < 6 {
				return nil, notes, fmt.Errorf("DNSSL option of %d bytes", len(body)+2)
			}
			if binary.BigEndian.Uint32(body[2:6]) == 0 {
				continue
			}
			names, err := dnsNames(body[6:])
			if err != nil {
				return nil, notes, fmt.Errorf("DNSSL option: %w", err)
			}
			ra.Search = addSearch(ra.Search, names, "DNSSL", note)
		}
	}
	return ra, notes, nil
}

// lifetime reads an RA lifetime in seconds; all ones is infinity.
func lifetime(s uint32) time.Duration {
	if s == 0xffffffff {
		return Forever
	}
	return time.Duration(s) * time.Second
}

// minMTU6 is IPv6's minimum link MTU (RFC 8200 §5).
const minMTU6 = 1280

// usableDNS6 reports why ip cannot be a resolver address reached from a
// resolv.conf line (a link-local address would need a zone resolv.conf
// implementations disagree on).
func usableDNS6(ip net.IP) error {
	switch {
	case len(ip) != net.IPv6len || ip.To4() != nil:
		return errors.New("not an IPv6 address")
	case ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() || ip.IsLinkLocalUnicast():
		return errors.New("not a usable unicast server address")
	}
	return nil
}

// addDNS6 adds a server to the list if it is usable, new and within
// MaxNameservers.
func addDNS6(list []net.IP, ip net.IP, opt string, note func(string, ...any)) []net.IP {
	if err := usableDNS6(ip); err != nil {
		note("%s server %s: %v", opt, ip, err)
		return list
	}
	for _, d := range list {
		if d.Equal(ip) {
			return list
		}
	}
	if len(list) == MaxNameservers {
		note("%s server %s: more than %d servers", opt, ip, MaxNameservers)
		return list
	}
	return append(list, ip)
}

// addSearch adds valid, new domain names to the list, up to MaxSearch.
func addSearch(list, names []string, opt string, note func(string, ...any)) []string {
	for _, n := range names {
		d := trimName(n)
		if err := CheckDomain(d); err != nil {
			note("%s domain %s: not a valid domain name (%v)", opt, quote(n), err)
			continue
		}
		dup := false
		for _, s := range list {
			dup = dup || strings.EqualFold(s, d)
		}
		switch {
		case dup:
		case len(list) == MaxSearch:
			note("%s domain %s: more than %d domains", opt, d, MaxSearch)
		default:
			list = append(list, d)
		}
	}
	return list
}

// dnsNames reads DNSSL's domain names: uncompressed RFC 1035 names, the
// option padded with zero bytes to its 8-byte size.
func dnsNames(b []byte) ([]string, error) {
	var names []string
	var labels []string
	for i := 0; i < len(b); {
		n := int(b[i])
		i++
		if n == 0 {
			if len(labels) == 0 {
				continue // padding, or an empty name
			}
			names = append(names, strings.Join(labels, "."))
			labels = nil
			continue
		}
		if n > 63 {
			return nil, fmt.Errorf("label length %d (compression is not allowed here)", n)
		}
		if i+n > len(b) {
			return nil, errors.New("label runs past the option")
		}
		labels = append(labels, string(b[i:i+n]))
		i += n
	}
	if len(labels) > 0 {
		return nil, errors.New("name without its terminating zero")
	}
	return names, nil
}
