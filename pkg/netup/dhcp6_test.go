package netup

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}

// reply6 is a REPLY to testMAC's DUID-LL and IAID with the modifiers' options.
func reply6(t testing.TB, mods ...dhcpv6.Modifier) *dhcpv6.Message {
	t.Helper()
	m, err := dhcpv6.NewMessage(append([]dhcpv6.Modifier{
		dhcpv6.WithClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: testMAC}),
		dhcpv6.WithServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.MessageType = dhcpv6.MessageTypeReply
	return m
}

func iana6(iaid uint32, t1 time.Duration, addrs ...dhcpv6.OptIAAddress) dhcpv6.Modifier {
	return func(d dhcpv6.DHCPv6) {
		o := &dhcpv6.OptIANA{IaId: [4]byte{byte(iaid >> 24), byte(iaid >> 16), byte(iaid >> 8), byte(iaid)}, T1: t1, T2: 2 * t1}
		for i := range addrs {
			o.Options.Add(&addrs[i])
		}
		d.AddOption(o)
	}
}

func addr6(s string, valid time.Duration) dhcpv6.OptIAAddress {
	return dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP(s), ValidLifetime: valid, PreferredLifetime: valid / 2}
}

func TestLeaseFrom6(t *testing.T) {
	iaid := IAIDFor(testMAC)
	if iaid != 0x00123456 {
		t.Fatalf("IAID %#x, want the MAC's last four bytes", iaid)
	}
	if got := DUIDLL(testMAC); string(got) != "\x00\x03\x00\x01\x52\x54\x00\x12\x34\x56" {
		t.Fatalf("DUID-LL %x", got)
	}
	for _, tc := range []struct {
		name  string
		msg   *dhcpv6.Message
		err   string
		notes int
		check func(t *testing.T, l6 *Lease6)
	}{
		{name: "address, dns, search", msg: reply6(t, iana6(iaid, time.Hour, addr6("fd00:77::1a5", 2*time.Hour)),
			dhcpv6.WithDNS(net.ParseIP("fd00:77::53"), net.ParseIP("fe80::1")), dhcpv6.WithDomainSearchList("v6.test", "bad..name")),
			notes: 2, check: func(t *testing.T, l6 *Lease6) {
				a := l6.Addrs[0]
				if a.Net.String() != "fd00:77::1a5/128" || a.Valid != 2*time.Hour || a.Preferred != time.Hour || a.From != "dhcp6" {
					t.Errorf("address %+v", a)
				}
				if !l6.DHCP || l6.T1 != time.Hour || l6.T2 != 2*time.Hour || len(l6.ServerID) != 10 {
					t.Errorf("lease %+v", l6)
				}
				if len(l6.DNS) != 1 || l6.DNS[0].String() != "fd00:77::53" || strings.Join(l6.Search, ",") != "v6.test" {
					t.Errorf("dns %v search %v", l6.DNS, l6.Search)
				}
			}},
		{name: "skips unusable addresses", msg: reply6(t, iana6(iaid, 0, addr6("fe80::9", time.Hour), addr6("ff02::1", time.Hour), addr6("fd00::2", 0), addr6("fd00::3", time.Hour))),
			notes: 3, check: func(t *testing.T, l6 *Lease6) {
				if l6.Addrs[0].Net.IP.String() != "fd00::3" {
					t.Errorf("address %v", l6.Addrs[0].Net)
				}
			}},
		{name: "another IAID", msg: reply6(t, iana6(iaid+1, 0, addr6("fd00::3", time.Hour))), err: "no address for IAID"},
		{name: "no usable address", msg: reply6(t, iana6(iaid, 0, addr6("::1", time.Hour))), err: "no usable address", notes: 1},
		{name: "status", msg: reply6(t, dhcpv6.WithOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "pool\nempty"})), err: `("pool\nempty")`},
		{name: "another client", msg: func() *dhcpv6.Message {
			m := reply6(t, iana6(iaid, 0, addr6("fd00::3", time.Hour)))
			m.UpdateOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{1, 2, 3, 4, 5, 6}}))
			return m
		}(), err: "another client"},
		{name: "no server id", msg: func() *dhcpv6.Message {
			m := reply6(t, iana6(iaid, 0, addr6("fd00::3", time.Hour)))
			m.Options.Del(dhcpv6.OptionServerID)
			return m
		}(), err: "without a server id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l6 := &Lease6{DUID: DUIDLL(testMAC), IAID: iaid}
			var notes []string
			err := leaseFrom6(tc.msg, l6, func(s string) { notes = append(notes, s) })
			if len(notes) != tc.notes {
				t.Errorf("notes %q, want %d", notes, tc.notes)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if len(l6.Addrs) != 0 || l6.ServerID != nil {
					t.Errorf("a refused reply changed the lease: %+v", l6)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, l6)
		})
	}
}

// FuzzLeaseFrom6 feeds arbitrary DHCPv6 messages through leaseFrom6: an
// accepted reply gives one global unicast address and only usable,
// bounded DNS servers and valid domains.
func FuzzLeaseFrom6(f *testing.F) {
	iaid := IAIDFor(testMAC)
	f.Add(reply6(f, iana6(iaid, time.Hour, addr6("fd00:77::1a5", time.Hour)), dhcpv6.WithDNS(net.ParseIP("fd00::53")), dhcpv6.WithDomainSearchList("v6.test")).ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv6.MessageFromBytes(b)
		if err != nil {
			return
		}
		l6 := &Lease6{DUID: DUIDLL(testMAC), IAID: iaid}
		if leaseFrom6(m, l6, func(string) {}) != nil {
			return
		}
		if len(l6.Addrs) != 1 || !l6.Addrs[0].Net.IP.IsGlobalUnicast() || l6.Addrs[0].Net.IP.To4() != nil || l6.Addrs[0].Valid <= 0 {
			t.Fatalf("addresses %+v", l6.Addrs)
		}
		if len(l6.ServerID) > MaxDUID {
			t.Fatalf("server id of %d bytes", len(l6.ServerID))
		}
		checkResolver6(t, l6.DNS, l6.Search)
	})
}
