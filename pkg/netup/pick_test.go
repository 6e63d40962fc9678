package netup

import (
	"log/slog"
	"net"
	"slices"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
)

func dev(name, mac string) netlink.Link {
	m, _ := net.ParseMAC(mac)
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: m}}
}

func names(ls []netlink.Link) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Attrs().Name)
	}
	return out
}

// ip=<iface>:off links are never candidates, whichever way the boot link
// is chosen.
func TestWanted(t *testing.T) {
	links := []netlink.Link{dev("ens3", "52:54:00:00:00:03"), dev("ens4", "52:54:00:00:00:04"), dev("ens5", "52:54:00:00:00:05")}
	bootif, _ := net.ParseMAC("52:54:00:00:00:04")
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"all", Config{}, []string{"ens3", "ens4", "ens5"}},
		{"off skipped", Config{Skip: []string{"ens3"}}, []string{"ens4", "ens5"}},
		{"named", Config{Iface: "ens5", Skip: []string{"ens3"}}, []string{"ens5"}},
		{"named but off", Config{Iface: "ens3", Skip: []string{"ens3"}}, nil},
		{"bootif", Config{BootIF: bootif, Skip: []string{"ens3"}}, []string{"ens4"}},
		{"all off", Config{Skip: []string{"ens3", "ens4", "ens5"}}, nil},
	} {
		if got := names(wanted(links, tc.cfg)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// ip=<iface>:dhcp::<mac> sets the MAC on the link, even one that is up.
func TestSetMAC(t *testing.T) {
	l := testNetns(t)
	want, _ := net.ParseMAC("52:54:00:aa:bb:cc")
	setMAC(l, want, slog.New(slog.DiscardHandler))
	got, err := netlink.LinkByName("sr0")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Attrs().HardwareAddr, want) {
		t.Errorf("MAC %s, want %s", got.Attrs().HardwareAddr, want)
	}
	setMAC(got, nil, slog.New(slog.DiscardHandler)) // nil: leave it alone
	if again, _ := netlink.LinkByName("sr0"); !slices.Equal(again.Attrs().HardwareAddr, want) {
		t.Errorf("a nil MAC changed it to %s", again.Attrs().HardwareAddr)
	}
}

// rd.net.timeout.dhcp=infinity: Forever is no deadline, not one that has
// already passed or the 60 s default.
func TestDHCPForever(t *testing.T) {
	l := testNetns(t)
	fakeServer(t, func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 { return answer(t, m, dhcpv4.MessageTypeAck) })
	mac := l.Attrs().HardwareAddr
	lease, err := dhcp(t.Context(), "sr0", mac, ask{clientID: append([]byte{1}, mac...), rapid: true, timeout: Forever}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !lease.Addr.IP.Equal(clientIP) {
		t.Errorf("lease %s, want %s", lease.Addr.IP, clientIP)
	}
}
