package netup

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/wanterr"
)

// raMsg builds a router advertisement: header with flags and lifetime, then
// the options as given (each already type, length, body).
func raMsg(flags byte, lifetime uint16, opts ...[]byte) []byte {
	b := []byte{icmpRA, 0, 0, 0, 64, flags, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[6:], lifetime)
	for _, o := range opts {
		b = append(b, o...)
	}
	return b
}

func prefixOpt(p string, flags byte, valid, preferred uint32) []byte {
	_, n, _ := net.ParseCIDR(p)
	ones, _ := n.Mask.Size()
	o := []byte{optPrefixInfo, 4, byte(ones), flags}
	o = binary.BigEndian.AppendUint32(o, valid)
	o = binary.BigEndian.AppendUint32(o, preferred)
	o = append(o, 0, 0, 0, 0)
	return append(o, n.IP.To16()...)
}

func rdnssOpt(lifetime uint32, ips ...string) []byte {
	o := []byte{optRDNSS, byte(1 + 2*len(ips)), 0, 0}
	o = binary.BigEndian.AppendUint32(o, lifetime)
	for _, s := range ips {
		o = append(o, net.ParseIP(s).To16()...)
	}
	return o
}

func dnsslOpt(lifetime uint32, names ...string) []byte {
	var body []byte
	for _, n := range names {
		for _, l := range strings.Split(n, ".") {
			body = append(body, byte(len(l)))
			body = append(body, l...)
		}
		body = append(body, 0)
	}
	size := (8 + len(body) + 7) / 8 * 8
	o := []byte{optDNSSL, byte(size / 8), 0, 0}
	o = binary.BigEndian.AppendUint32(o, lifetime)
	o = append(o, body...)
	return append(o, make([]byte, size-len(o))...)
}

func TestParseRA(t *testing.T) {
	router := net.ParseIP("fe80::1")
	for _, tc := range []struct {
		name  string
		msg   []byte
		from  net.IP
		err   string // substring; "" = valid
		check func(t *testing.T, ra *RA, notes []string)
	}{
		{name: "slaac with dns", msg: raMsg(0, 1800, prefixOpt("fd00:77::/64", 0xc0, 86400, 14400), rdnssOpt(600, "fd00:77::53"), dnsslOpt(600, "v6.test", "lab.example")),
			check: func(t *testing.T, ra *RA, notes []string) {
				if ra.Managed || ra.Other || ra.Lifetime != 1800*time.Second || !ra.Router.Equal(router) {
					t.Errorf("ra %+v", ra)
				}
				if len(ra.Prefixes) != 1 || ra.Prefixes[0].Net.String() != "fd00:77::/64" || !ra.Prefixes[0].OnLink || !ra.Prefixes[0].Autonomous ||
					ra.Prefixes[0].Valid != 24*time.Hour || ra.Prefixes[0].Preferred != 4*time.Hour {
					t.Errorf("prefixes %+v", ra.Prefixes)
				}
				if len(ra.DNS) != 1 || ra.DNS[0].String() != "fd00:77::53" || strings.Join(ra.Search, " ") != "v6.test lab.example" || len(notes) != 0 {
					t.Errorf("dns %v search %v notes %v", ra.DNS, ra.Search, notes)
				}
			}},
		{name: "managed, infinite prefix", msg: raMsg(0xc0, 0, prefixOpt("fd00:77::/64", 0x80, 0xffffffff, 0xffffffff)),
			check: func(t *testing.T, ra *RA, notes []string) {
				if !ra.Managed || !ra.Other || ra.Lifetime != 0 || ra.Prefixes[0].Autonomous || ra.Prefixes[0].Valid != Forever {
					t.Errorf("ra %+v", ra)
				}
			}},
		{name: "unusable values dropped", msg: raMsg(0, 60,
			prefixOpt("fe80::/64", 0xc0, 1, 1), prefixOpt("fd00:1::/56", 0xc0, 1, 1),
			rdnssOpt(600, "fe80::53", "ff02::1", "::", "fd00::1", "fd00::1", "fd00::2", "fd00::3", "fd00::4"),
			dnsslOpt(600, "ok.test", "bad_-.x-"), []byte{optMTU, 1, 0, 0, 0, 0, 1, 0}),
			check: func(t *testing.T, ra *RA, notes []string) {
				if len(ra.Prefixes) != 1 || ra.Prefixes[0].Autonomous {
					t.Errorf("prefixes %+v: want the /56 only, not for SLAAC", ra.Prefixes)
				}
				if len(ra.DNS) != MaxNameservers || strings.Join(ra.Search, " ") != "ok.test" || ra.MTU != 0 {
					t.Errorf("dns %v search %v mtu %d", ra.DNS, ra.Search, ra.MTU)
				}
				// fe80 prefix, /56, 3 servers, one more past the bound, a domain, the MTU.
				if len(notes) != 8 {
					t.Errorf("notes %d: %q", len(notes), notes)
				}
			}},
		{name: "withdrawn rdnss", msg: raMsg(0, 60, rdnssOpt(0, "fd00::1"), dnsslOpt(0, "gone.test")), check: func(t *testing.T, ra *RA, notes []string) {
			if len(ra.DNS) != 0 || len(ra.Search) != 0 {
				t.Errorf("dns %v search %v with lifetime 0", ra.DNS, ra.Search)
			}
		}},
		{name: "mtu", msg: raMsg(0, 60, []byte{optMTU, 1, 0, 0, 0, 0, 0x05, 0xdc}), check: func(t *testing.T, ra *RA, notes []string) {
			if ra.MTU != 1500 {
				t.Errorf("mtu %d", ra.MTU)
			}
		}},
		{name: "short", msg: []byte{icmpRA, 0, 0}, err: "at least 16"},
		{name: "not an RA", msg: append([]byte{133, 0}, make([]byte, 14)...), err: "not a router advertisement"},
		{name: "global source", msg: raMsg(0, 60), from: net.ParseIP("fd00::1"), err: "not a link-local"},
		{name: "zero-length option", msg: raMsg(0, 60, []byte{optRDNSS, 0, 0, 0, 0, 0, 0, 0}), err: "zero-length"},
		{name: "option past the end", msg: raMsg(0, 60, []byte{optRDNSS, 3, 0, 0}), err: "truncated"},
		{name: "prefix length", msg: raMsg(0, 60, func() []byte { o := prefixOpt("fd00::/64", 0xc0, 1, 1); o[2] = 129; return o }()), err: "prefix length 129"},
		{name: "rdnss size", msg: raMsg(0, 60, []byte{optRDNSS, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}), err: "RDNSS option of 16 bytes"},
		{name: "dnssl compression", msg: raMsg(0, 60, []byte{optDNSSL, 2, 0, 0, 0, 0, 1, 0, 0xc0, 12, 0, 0, 0, 0, 0, 0}), err: "compression"},
		{name: "dnssl unterminated", msg: raMsg(0, 60, []byte{optDNSSL, 2, 0, 0, 0, 0, 1, 0, 7, 'a', 'b', 'c', 'd', 'e', 'f', 'g'}), err: "terminating zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.from
			if from == nil {
				from = router
			}
			ra, notes, err := ParseRA(tc.msg, from)
			if wanterr.Check(t, err, tc.err) {
				return
			}
			tc.check(t, ra, notes)
		})
	}
}

// FuzzParseRA: whatever a router sends, a parsed RA holds only usable
// resolver addresses, valid domain names, bounded lists and sane prefixes.
func FuzzParseRA(f *testing.F) {
	f.Add(raMsg(0xc0, 1800, prefixOpt("fd00:77::/64", 0xc0, 86400, 14400), rdnssOpt(600, "fd00:77::53", "fe80::1"), dnsslOpt(600, "v6.test", "x"), []byte{optMTU, 1, 0, 0, 0, 0, 5, 0xdc}))
	f.Add(raMsg(0, 0, []byte{optDNSSL, 2, 0, 0, 0, 0, 1, 0, 0xc0, 12, 0, 0, 0, 0, 0, 0}))
	from := net.ParseIP("fe80::1")
	f.Fuzz(func(t *testing.T, b []byte) {
		ra, _, err := ParseRA(b, from)
		if err != nil {
			return
		}
		if len(ra.Prefixes) > maxPrefixes {
			t.Fatalf("unbounded: %d prefixes", len(ra.Prefixes))
		}
		checkResolver6(t, ra.DNS, ra.Search)
		for _, p := range ra.Prefixes {
			ones, bits := p.Net.Mask.Size()
			if bits != 128 || p.Autonomous && ones != 64 || p.Net.IP.IsLinkLocalUnicast() {
				t.Fatalf("prefix %+v kept", p)
			}
		}
		if ra.MTU != 0 && (ra.MTU < minMTU6 || ra.MTU > 65535) {
			t.Fatalf("MTU %d kept", ra.MTU)
		}
	})
}

// checkResolver6 fails t unless the DNS servers and search domains a peer
// supplied are bounded, usable and valid.
func checkResolver6(t *testing.T, dns []net.IP, search []string) {
	t.Helper()
	if len(dns) > MaxNameservers || len(search) > MaxSearch {
		t.Fatalf("unbounded: %d dns, %d search", len(dns), len(search))
	}
	for _, d := range dns {
		if usableDNS6(d) != nil {
			t.Fatalf("unusable DNS server %v kept", d)
		}
	}
	for _, s := range search {
		if CheckDomain(s) != nil {
			t.Fatalf("invalid domain %q kept", s)
		}
	}
}
