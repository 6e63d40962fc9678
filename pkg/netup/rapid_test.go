package netup

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// rapidAnswer is a rapid-commit server's ACK to a DISCOVER: answer's ACK
// with the DISCOVER's transaction, changed by mods.
func rapidAnswer(t *testing.T, m *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	all := append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithServerIP(serverIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)), dhcpv4.WithBroadcast(true),
		dhcpv4.WithYourIP(clientIP), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(serverIP), dhcpv4.WithLeaseTime(3600)}, mods...)
	r, err := dhcpv4.NewReplyFromRequest(m, all...)
	if err != nil {
		t.Errorf("reply: %v", err)
		return nil
	}
	return r
}

var withRapid = dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionRapidCommit, nil))

// Rapid commit (RFC 4039) against servers that allow it, do not, answer
// it wrongly or mishandle it: the client takes a valid rapid ACK at once
// (no REQUEST), falls back to the four-message exchange otherwise, never
// takes an ACK without option 80 or with an unusable address, and with
// rapid commit off never asks for it.
func TestDHCPRapidCommit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rapid bool
		// server answers a DISCOVER that asked for rapid commit (asked) or
		// not; a REQUEST always gets answer's ACK.
		server       func(t *testing.T, m *dhcpv4.DHCPv4, asked bool) []*dhcpv4.DHCPv4
		wantRequests int32  // REQUESTs the server saw
		wantAsked    bool   // the first DISCOVER carried option 80
		wantLog      string // a line the client logged
		timeout      time.Duration
	}{
		{
			name: "server allows it", rapid: true, wantAsked: true, wantLog: "leased by rapid commit",
			server: func(t *testing.T, m *dhcpv4.DHCPv4, asked bool) []*dhcpv4.DHCPv4 {
				if asked {
					return []*dhcpv4.DHCPv4{rapidAnswer(t, m, withRapid)}
				}
				return []*dhcpv4.DHCPv4{answer(t, m, dhcpv4.MessageTypeAck)}
			},
		},
		{
			name: "server does not", rapid: true, wantAsked: true, wantRequests: 1,
			server: func(t *testing.T, m *dhcpv4.DHCPv4, _ bool) []*dhcpv4.DHCPv4 {
				return []*dhcpv4.DHCPv4{answer(t, m, dhcpv4.MessageTypeAck)}
			},
		},
		{
			name: "off", rapid: false, wantAsked: false, wantRequests: 1,
			server: func(t *testing.T, m *dhcpv4.DHCPv4, asked bool) []*dhcpv4.DHCPv4 {
				if asked {
					return []*dhcpv4.DHCPv4{rapidAnswer(t, m, withRapid)}
				}
				return []*dhcpv4.DHCPv4{answer(t, m, dhcpv4.MessageTypeAck)}
			},
		},
		{
			// RFC 4039 §4: an ACK to a DISCOVER without option 80 is
			// ignored; the OFFER that follows is taken the usual way.
			name: "ACK without option 80", rapid: true, wantAsked: true, wantRequests: 1,
			wantLog: "ignoring a DHCPACK to a DISCOVER without rapid commit",
			server: func(t *testing.T, m *dhcpv4.DHCPv4, _ bool) []*dhcpv4.DHCPv4 {
				if m.MessageType() == dhcpv4.MessageTypeDiscover {
					return []*dhcpv4.DHCPv4{rapidAnswer(t, m, dhcpv4.WithYourIP(net.IPv4(10, 99, 0, 66))), answer(t, m, dhcpv4.MessageTypeAck)}
				}
				return []*dhcpv4.DHCPv4{answer(t, m, dhcpv4.MessageTypeAck)}
			},
		},
		{
			name: "rapid ACK of an unusable address", rapid: true, wantAsked: true, wantRequests: 1,
			wantLog: "ignoring a rapid-commit DHCPACK: DHCP server 10.99.0.1 leased the unusable address 255.255.255.255",
			server: func(t *testing.T, m *dhcpv4.DHCPv4, _ bool) []*dhcpv4.DHCPv4 {
				if m.MessageType() == dhcpv4.MessageTypeDiscover {
					return []*dhcpv4.DHCPv4{rapidAnswer(t, m, withRapid, dhcpv4.WithYourIP(net.IPv4bcast)), answer(t, m, dhcpv4.MessageTypeAck)}
				}
				return []*dhcpv4.DHCPv4{answer(t, m, dhcpv4.MessageTypeAck)}
			},
		},
		{
			name: "rapid ACK with a non-contiguous mask", rapid: true, wantAsked: true, wantRequests: 1,
			wantLog: "with the unusable subnet mask 255.0.255.0",
			server: func(t *testing.T, m *dhcpv4.DHCPv4, _ bool) []*dhcpv4.DHCPv4 {
				if m.MessageType() == dhcpv4.MessageTypeDiscover {
					return []*dhcpv4.DHCPv4{rapidAnswer(t, m, withRapid, dhcpv4.WithNetmask(net.IPv4Mask(255, 0, 255, 0))), answer(t, m, dhcpv4.MessageTypeAck)}
				}
				return []*dhcpv4.DHCPv4{answer(t, m, dhcpv4.MessageTypeAck)}
			},
		},
		{
			// A server that drops a DISCOVER with option 80 (as some
			// providers' did when systemd 255 turned it on): one attempt
			// is lost, then the client asks without it.
			name: "server drops it", rapid: true, wantAsked: true, wantRequests: 1,
			wantLog: "asking without rapid commit from now on", timeout: 30 * time.Second,
			server: func(t *testing.T, m *dhcpv4.DHCPv4, asked bool) []*dhcpv4.DHCPv4 {
				if asked {
					return nil
				}
				return []*dhcpv4.DHCPv4{answer(t, m, dhcpv4.MessageTypeAck)}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link := testNetns(t)
			var first atomic.Int32 // 0 unseen, 1 asked, 2 not asked
			requests := fakeServerN(t, func(m *dhcpv4.DHCPv4) []*dhcpv4.DHCPv4 {
				asked := m.Options.Has(dhcpv4.OptionRapidCommit)
				if m.MessageType() == dhcpv4.MessageTypeDiscover {
					v := int32(2)
					if asked {
						v = 1
					}
					first.CompareAndSwap(0, v)
				}
				if m.MessageType() == dhcpv4.MessageTypeRequest && asked {
					t.Errorf("a REQUEST carried option 80")
				}
				return tc.server(t, m, asked)
			})
			log, rec := newLog()
			mac := link.Attrs().HardwareAddr
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 20 * time.Second
			}
			l, err := dhcp(t.Context(), "sr0", mac, ask{clientID: append([]byte{1}, mac...), rapid: tc.rapid, timeout: timeout}, log)
			if err != nil {
				t.Fatalf("no lease: %v\n%s", err, rec.text())
			}
			if !l.Addr.IP.Equal(clientIP) || l.Addr.Mask.String() != net.CIDRMask(24, 32).String() || !l.Router.Equal(serverIP) {
				t.Errorf("lease %s router %s, want %s/24 via %s", l.Addr.String(), l.Router, clientIP, serverIP)
			}
			if got := first.Load() == 1; got != tc.wantAsked {
				t.Errorf("the first DISCOVER asked for rapid commit: %v, want %v", got, tc.wantAsked)
			}
			if n := requests.Load(); n != tc.wantRequests {
				t.Errorf("the server saw %d REQUESTs, want %d\n%s", n, tc.wantRequests, rec.text())
			}
			if tc.wantLog != "" && !strings.Contains(rec.text(), tc.wantLog) {
				t.Errorf("the log lacks %q:\n%s", tc.wantLog, rec.text())
			}
		})
	}
}

// An ACK to a REQUEST whose address cannot go on a link is not a lease: the
// client keeps asking and, at the deadline, says what the server leased.
func TestDHCPUnusableAck(t *testing.T) {
	link := testNetns(t)
	fakeServer(t, func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		r := answer(t, m, dhcpv4.MessageTypeAck)
		if r != nil && m.MessageType() == dhcpv4.MessageTypeRequest {
			r.YourIPAddr = net.IPv4zero
		}
		return r
	})
	log, _ := newLog()
	mac := link.Attrs().HardwareAddr
	_, err := dhcp(t.Context(), "sr0", mac, ask{clientID: append([]byte{1}, mac...), timeout: 4 * time.Second}, log)
	if err == nil || !strings.Contains(err.Error(), "leased the unusable address 0.0.0.0") {
		t.Fatalf("err %v, want the unusable address named", err)
	}
}

func TestUsableAck(t *testing.T) {
	for _, tc := range []struct {
		ip   net.IP
		mask net.IPMask
		ok   bool
	}{
		{net.IPv4(10, 0, 0, 5), net.CIDRMask(24, 32), true},
		{net.IPv4(10, 0, 0, 5), net.CIDRMask(32, 32), true},
		{net.IPv4(10, 0, 0, 5), nil, true},
		{net.IPv4zero, net.CIDRMask(24, 32), false},
		{net.IPv4bcast, nil, false},
		{net.IPv4(224, 0, 0, 1), nil, false},
		{net.IPv4(127, 0, 0, 1), nil, false},
		{net.IPv4(169, 254, 1, 1), nil, false},
		{net.IPv4(10, 0, 0, 5), net.IPv4Mask(255, 0, 255, 0), false},
		{net.IPv4(10, 0, 0, 5), net.CIDRMask(0, 32), false},
	} {
		m, err := dhcpv4.New(dhcpv4.WithYourIP(tc.ip))
		if err != nil {
			t.Fatal(err)
		}
		if tc.mask != nil {
			m.UpdateOption(dhcpv4.OptSubnetMask(tc.mask))
		}
		if err := usableAck(m); (err == nil) != tc.ok {
			t.Errorf("%s mask %v: err %v, want ok=%v", tc.ip, tc.mask, err, tc.ok)
		}
	}
}

// The firmware's address (PXELinux IPAPPEND 1) is asked for first with an
// INIT-REBOOT REQUEST: a server that ACKs it leases in one round trip, with
// no DISCOVER; a NAK, silence or an ACK of another address falls back to
// discovery, which still ends in a lease.
func TestDHCPInitReboot(t *testing.T) {
	other := net.IPv4(10, 99, 0, 77).To4()
	for _, tc := range []struct {
		name      string
		requested net.IP
		// initReboot answers the REQUEST without a server id (nil: none).
		initReboot    func(t *testing.T, m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4
		wantDiscovers bool
		wantLog       string
	}{
		{"the server ACKs it", clientIP, func(t *testing.T, m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 { return answer(t, m, dhcpv4.MessageTypeAck) },
			false, "leased the firmware's address again (INIT-REBOOT: REQUEST, ACK)"},
		{"the server NAKs it", clientIP, func(t *testing.T, m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 { return answer(t, m, dhcpv4.MessageTypeNak) },
			true, `refused the firmware's address (NAK); discovering (server says "no lease for you\x1b[2J\r\nstreamroot: fake line")`},
		{"no answer", clientIP, func(*testing.T, *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 { return nil },
			true, "no answer to the REQUEST for the firmware's address; discovering"},
		{"an ACK of another address", other, func(t *testing.T, m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 { return answer(t, m, dhcpv4.MessageTypeAck) },
			true, "the DHCP server acknowledged 10.99.0.50, not the firmware's 10.99.0.77; discovering"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link := testNetns(t)
			var discovers, initReboots atomic.Int32
			fakeServer(t, func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
				switch {
				case m.MessageType() == dhcpv4.MessageTypeDiscover:
					discovers.Add(1)
				case m.MessageType() == dhcpv4.MessageTypeRequest && m.ServerIdentifier() == nil:
					initReboots.Add(1)
					if !m.RequestedIPAddress().Equal(tc.requested) || !m.ClientIPAddr.IsUnspecified() {
						t.Errorf("INIT-REBOOT REQUEST for %s, ciaddr %s; want %s and 0.0.0.0", m.RequestedIPAddress(), m.ClientIPAddr, tc.requested)
					}
					return tc.initReboot(t, m)
				}
				return answer(t, m, dhcpv4.MessageTypeAck)
			})
			log, rec := newLog()
			mac := link.Attrs().HardwareAddr
			l, err := dhcp(t.Context(), "sr0", mac, ask{clientID: append([]byte{1}, mac...), requested: tc.requested, timeout: 20 * time.Second}, log)
			if err != nil {
				t.Fatalf("no lease: %v\n%s", err, rec.text())
			}
			if !l.Addr.IP.Equal(clientIP) {
				t.Errorf("leased %s, want %s", l.Addr.IP, clientIP)
			}
			if n := initReboots.Load(); n < 1 {
				t.Errorf("no INIT-REBOOT REQUEST")
			}
			if got := discovers.Load() > 0; got != tc.wantDiscovers {
				t.Errorf("DISCOVERs sent: %v, want %v\n%s", got, tc.wantDiscovers, rec.text())
			}
			logged := rec.text()
			if !strings.Contains(logged, tc.wantLog) {
				t.Errorf("the log lacks %q:\n%s", tc.wantLog, logged)
			}
			if strings.ContainsAny(logged, "\x1b\r") {
				t.Errorf("the server's text reached the log raw:\n%q", logged)
			}
		})
	}
}
