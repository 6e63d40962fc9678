package netup

import (
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

var resolvLine = regexp.MustCompile(`^(# written by streamroot from the boot network's lease|search [A-Za-z0-9_.-]+( [A-Za-z0-9_.-]+){0,5}|nameserver [0-9.]+)$`)

// FuzzLeaseFrom feeds arbitrary ACKs through leaseFrom: whatever the server
// sends, the lease holds only valid names and bounded lists, and
// resolv.conf only well-formed lines.
func FuzzLeaseFrom(f *testing.F) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	seed, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithHwAddr(mac),
		dhcpv4.WithYourIP(net.IPv4(10, 77, 0, 9)), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionDomainName, []byte("lab\nnameserver 6.6.6.6"))),
		dhcpv4.WithOption(dhcpv4.OptHostName(strings.Repeat("n", 100))),
		dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 77, 0, 1), net.IPv4(0, 0, 0, 0))),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{5, 0xdc})),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionDNSDomainSearchList, []byte("\x02ok\x03lab\x00\xc0\x00"))),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClasslessStaticRoute, []byte{16, 10, 99, 10, 77, 0, 1, 0, 10, 77, 0, 1})),
	)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed.ToBytes())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		ack, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		// What the client takes goes on a link: a unicast address with a
		// prefix length the mask really says.
		if rapidAck(ack, log) || usableAck(ack) == nil {
			if ip := ack.YourIPAddr.To4(); ip == nil || !ip.IsGlobalUnicast() {
				t.Fatalf("took the address %v", ack.YourIPAddr)
			}
			if m := ack.SubnetMask(); m != nil {
				if ones, bits := m.Size(); bits != 32 || ones == 0 {
					t.Fatalf("took the mask %v", m)
				}
			}
		}
		l := leaseFrom("eth0", mac, []byte{1}, &nclient4.Lease{ACK: ack}, log)
		if l.Hostname != "" && CheckHostname(l.Hostname) != nil {
			t.Fatalf("host name %q", l.Hostname)
		}
		if l.Domain != "" && CheckDomain(l.Domain) != nil {
			t.Fatalf("domain %q", l.Domain)
		}
		for _, s := range l.Search {
			if CheckDomain(s) != nil {
				t.Fatalf("search %q", s)
			}
		}
		if len(l.Search) > MaxSearch || len(l.DNS) > MaxNameservers || len(l.Routes) > MaxRoutes || l.MTU != 0 && l.MTU < minMTU {
			t.Fatalf("unbounded lease: %+v", l)
		}
		rc := strings.TrimSuffix(string(ResolvConf(l)), "\n")
		for _, line := range strings.Split(rc, "\n") {
			if !resolvLine.MatchString(line) {
				t.Fatalf("resolv.conf line %q in\n%s", line, rc)
			}
		}
	})
}
