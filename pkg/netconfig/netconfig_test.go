package netconfig

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/netup"
)

func TestNetConfig(t *testing.T) {
	const root = "root=live:http://10.77.0.1/img.squashfs "
	for _, tc := range []struct {
		name    string
		cmdline string
		check   func(t *testing.T, got netup.Config)
		err     string // substring of the error; "" for none
		hint    string
		notes   []string // the notes FromBoot returns, exactly
	}{
		{name: "defaults", cmdline: root + "rd.retry=42", check: func(t *testing.T, got netup.Config) {
			if got.Static != nil || got.Iface != "" || got.ClientID != nil || len(got.Names) != 0 || !got.RapidCommit || !got.PeerDNS {
				t.Errorf("plain DHCP config: %+v", got)
			}
			if got.DHCPTimeout != 42*time.Second {
				t.Errorf("DHCP timeout %s, want rd.retry's 42s", got.DHCPTimeout)
			}
		}},
		{name: "the firmware's address (IPAPPEND 3)", cmdline: root + "ip=dhcp ip=10.77.0.94:10.77.0.1:10.77.0.1:255.255.255.0 BOOTIF=01-52-54-00-12-34-56", check: func(t *testing.T, got netup.Config) {
			if got.Static != nil || !got.Requested.Equal(net.IPv4(10, 77, 0, 94)) || got.BootIF.String() != "52:54:00:12:34:56" {
				t.Errorf("DHCP asking for the firmware's 10.77.0.94 on the BOOTIF NIC: static %+v requested %v bootif %v", got.Static, got.Requested, got.BootIF)
			}
		}},
		{name: "a static ip= beside the firmware's", cmdline: root + "ip=10.77.0.94:10.77.0.1:10.77.0.1:255.255.255.0 ip=192.0.2.10::192.0.2.1:24::ens3:none", check: func(t *testing.T, got netup.Config) {
			if got.Static == nil || got.Static.Addr.String() != "192.0.2.10/24" {
				t.Errorf("static %+v, want 192.0.2.10/24", got.Static)
			}
		}},
		{name: "rapid commit off", cmdline: root + "rd.net.dhcp.rapid-commit=0", check: func(t *testing.T, got netup.Config) {
			if got.RapidCommit {
				t.Error("rd.net.dhcp.rapid-commit=0 left rapid commit on")
			}
		}},
		{name: "dhcp timeout wins over rd.retry", cmdline: root + "rd.retry=42 rd.net.timeout.dhcp=7", check: func(t *testing.T, got netup.Config) {
			if got.DHCPTimeout != 7*time.Second {
				t.Errorf("DHCP timeout %s, want 7s", got.DHCPTimeout)
			}
		}},
		{name: "static", cmdline: root + "ip=10.0.0.7::10.0.0.1:255.255.255.0:node1:ens3:none:10.0.0.53", check: func(t *testing.T, got netup.Config) {
			s := got.Static
			if s == nil {
				t.Fatal("no static config")
			}
			if s.Addr.String() != "10.0.0.7/24" || !s.Gateway.Equal(net.ParseIP("10.0.0.1")) || s.Hostname != "node1" || got.Iface != "ens3" {
				t.Errorf("static %+v iface %q", s, got.Iface)
			}
			if len(s.DNS) != 1 || !s.DNS[0].Equal(net.ParseIP("10.0.0.53")) {
				t.Errorf("DNS %v", s.DNS)
			}
		}},
		{name: "ifname and bootdev", cmdline: root + "ifname=boot0:52:54:00:12:34:56 bootdev=boot0", check: func(t *testing.T, got netup.Config) {
			if got.Names["52:54:00:12:34:56"] != "boot0" || got.Iface != "boot0" {
				t.Errorf("names %v iface %q", got.Names, got.Iface)
			}
		}},
		{name: "client id for the link", cmdline: root + "ip=ens3:dhcp rd.net.dhcp.client-id=ens3:@node7", check: func(t *testing.T, got netup.Config) {
			if string(got.ClientID) != "\x00node7" && !strings.HasSuffix(string(got.ClientID), "node7") {
				t.Errorf("client id %q", got.ClientID)
			}
		}},
		{name: "client id for another link", cmdline: root + "ip=ens3:dhcp rd.net.dhcp.client-id=ens4:@node7", check: func(t *testing.T, got netup.Config) {
			if got.ClientID != nil {
				t.Errorf("client id %q for another link applied", got.ClientID)
			}
		}},
		{name: "mac client id is the default", cmdline: root + "rd.net.dhcp.client-id=mac", check: func(t *testing.T, got netup.Config) {
			if got.ClientID != nil {
				t.Errorf("client id %q, want none (netup's 01+MAC)", got.ClientID)
			}
		}},
		{name: "network off", cmdline: root + "ip=off", err: "ip=off: the network is switched off, but root=", hint: "use ip=dhcp"},
		{name: "network none", cmdline: root + "ip=none", err: "ip=none: the network is switched off, but root=live:", hint: "use ip=dhcp"},
		// IPv6 (issue 14).
		{name: "dhcp6 alone is IPv6-only", cmdline: root + "ip=dhcp6", check: func(t *testing.T, got netup.Config) {
			if got.V6 == nil || got.V6.Method != netup.V6DHCP || !got.V6.Only || got.V6.DUID != nil {
				t.Errorf("v6 %+v", got.V6)
			}
		}},
		{name: "v6-only list", cmdline: root + "ip=dhcp6,auto6", notes: []string{"ip=dhcp6,auto6: IPv6 by dhcp6; the later IPv6 method (auto6) is not used"}, check: func(t *testing.T, got netup.Config) {
			if got.V6 == nil || got.V6.Method != netup.V6DHCP || !got.V6.Only {
				t.Errorf("v6 %+v", got.V6)
			}
		}},
		{name: "either6 is auto6", cmdline: root + "ip=eth0:either6 rd.net.timeout.dhcp=9", check: func(t *testing.T, got netup.Config) {
			if got.V6 == nil || got.V6.Method != netup.V6Auto || !got.V6.Only || got.Iface != "eth0" || got.V6.Timeout != 9*time.Second {
				t.Errorf("v6 %+v iface %q", got.V6, got.Iface)
			}
		}},
		{name: "link6", cmdline: root + "ip=link6", err: "ip=link6: a link-local IPv6 address alone", hint: "ip=auto6"},
		{name: "dual stack in a list", cmdline: root + "ip=dhcp,dhcp6", check: func(t *testing.T, got netup.Config) {
			if got.Static != nil || got.Iface != "" || got.V6 == nil || got.V6.Method != netup.V6DHCP || got.V6.Only {
				t.Errorf("dual stack: %+v v6 %+v", got, got.V6)
			}
			if got.V6.Timeout != DualStackV6Wait || !got.V6.MayFail {
				t.Errorf("dual stack IPv6 wait %s, want the best-effort %s (rd.retry's 180 s bounds IPv4 only)", got.V6.Timeout, DualStackV6Wait)
			}
		}},
		{name: "dual stack, short rd.retry", cmdline: root + "ip=dhcp,dhcp6 rd.retry=7", check: func(t *testing.T, got netup.Config) {
			if got.V6 == nil || got.V6.Timeout != 7*time.Second {
				t.Errorf("dual stack IPv6 wait %+v, want rd.retry's 7s (shorter than the cap)", got.V6)
			}
		}},
		{name: "dual stack in two ip=", cmdline: root + "ip=ens3:dhcp ip=ens3:auto6", check: func(t *testing.T, got netup.Config) {
			if got.Iface != "ens3" || got.V6 == nil || got.V6.Method != netup.V6Auto || got.V6.Only {
				t.Errorf("dual stack: iface %q v6 %+v", got.Iface, got.V6)
			}
		}},
		{name: "static v6", cmdline: root + "ip=[fd00:77::7]::[fd00:77::1]:64:node6:ens3:none nameserver=[fd00:77::53]", check: func(t *testing.T, got netup.Config) {
			v := got.V6
			if got.Static != nil || v == nil || v.Method != netup.V6Static || !v.Only || v.Static.Addr.String() != "fd00:77::7/64" ||
				!v.Static.Gateway.Equal(net.ParseIP("fd00:77::1")) || v.Static.Hostname != "node6" || got.Iface != "ens3" {
				t.Errorf("static v6 %+v (v4 static %+v)", v, got.Static)
			}
			if len(got.Nameservers) != 1 || !got.Nameservers[0].Equal(net.ParseIP("fd00:77::53")) {
				t.Errorf("nameservers %v", got.Nameservers)
			}
		}},
		{name: "static v4 and v6", cmdline: root + "ip=10.0.0.7::10.0.0.1:24::ens3:none ip=[fd00:77::7]:::64::ens3:none", check: func(t *testing.T, got netup.Config) {
			if got.Static == nil || got.Static.Addr.String() != "10.0.0.7/24" || got.V6 == nil || got.V6.Only || got.V6.Static.Addr.String() != "fd00:77::7/64" {
				t.Errorf("static %+v v6 %+v", got.Static, got.V6)
			}
			if got.V6.Timeout == DualStackV6Wait || got.V6.MayFail {
				t.Errorf("a static IPv6 address beside IPv4 is not best effort: wait %s", got.V6.Timeout)
			}
		}},
		{name: "duid", cmdline: root + "ip=dhcp6 rd.net.dhcp.duid=00:04:01:02:03 rd.net.dhcp.duid=ens9:00:02:00:00:00:09:01", check: func(t *testing.T, got netup.Config) {
			if got.V6 == nil || string(got.V6.DUID) != "\x00\x04\x01\x02\x03" {
				t.Errorf("v6 %+v", got.V6)
			}
		}},
		{name: "duid ll is the default", cmdline: root + "ip=auto6 rd.net.dhcp.duid=ll", check: func(t *testing.T, got netup.Config) {
			if got.V6 == nil || got.V6.DUID != nil {
				t.Errorf("v6 %+v", got.V6)
			}
		}},
		{name: "no IPv6 without a v6 method", cmdline: root + "ip=dhcp", check: func(t *testing.T, got netup.Config) {
			if got.V6 != nil {
				t.Errorf("v6 %+v for ip=dhcp", got.V6)
			}
		}},

		// Issue 18's forms the network stage honours.
		{name: "auto with mtu and mac", cmdline: root + "ip=ens3:auto:1400:52:54:00:aa:bb:cc", notes: []string{"ip=ens3:auto:1400:52:54:00:aa:bb:cc: DHCPv4 only; the IPv6 part (auto) is not supported yet"},
			check: func(t *testing.T, got netup.Config) {
				if got.Iface != "ens3" || got.MTU != 1400 || got.MAC.String() != "52:54:00:aa:bb:cc" || got.Static != nil {
					t.Errorf("iface %q MTU %d MAC %s static %v", got.Iface, got.MTU, got.MAC, got.Static)
				}
			}},
		{name: "static without method, cidr", cmdline: root + "ip=10.0.0.7/26:::::ens4", check: func(t *testing.T, got netup.Config) {
			if got.Static == nil || got.Static.Addr.String() != "10.0.0.7/26" || got.Iface != "ens4" {
				t.Errorf("static %+v iface %q", got.Static, got.Iface)
			}
		}},
		{name: "links off are skipped", cmdline: root + "ip=ens3:off ip=:::::ens5:none ip=ens4:dhcp", check: func(t *testing.T, got netup.Config) {
			if strings.Join(got.Skip, ",") != "ens3,ens5" || got.Iface != "ens4" {
				t.Errorf("skip %v iface %q", got.Skip, got.Iface)
			}
		}},
		{name: "off by MAC", cmdline: root + "ip=:::::52-54-00-12-34-56:off", err: "off by its MAC", hint: "ip=<iface>:off"},
		{name: "iface by MAC", cmdline: root + "ip=10.0.0.7::10.0.0.1:24::52-54-00-12-34-56:none", check: func(t *testing.T, got netup.Config) {
			if got.BootIF.String() != "52:54:00:12:34:56" || got.Static == nil {
				t.Errorf("bootif %s static %v", got.BootIF, got.Static)
			}
		}},
		{name: "dhcp forever", cmdline: root + "rd.retry=42 rd.net.timeout.dhcp=infinity", check: func(t *testing.T, got netup.Config) {
			if got.DHCPTimeout != netup.Forever {
				t.Errorf("DHCP timeout %s, want forever", got.DHCPTimeout)
			}
		}},
		{name: "bootif any type", cmdline: root + "BOOTIF=00-52-54-00-12-34-56", check: func(t *testing.T, got netup.Config) {
			if got.BootIF.String() != "52:54:00:12:34:56" {
				t.Errorf("bootif %s", got.BootIF)
			}
		}},
		{name: "rd.bootif=0", cmdline: root + "BOOTIF=01-52-54-00-12-34-56 rd.bootif=0",
			notes: []string{"rd.bootif=0: not picking the NIC by BOOTIF=52:54:00:12:34:56 (it stays on the command line for the real OS)"},
			check: func(t *testing.T, got netup.Config) {
				if got.BootIF != nil {
					t.Errorf("bootif %s used despite rd.bootif=0", got.BootIF)
				}
			}},
		{name: "dashed client id", cmdline: root + "ip=ens3:dhcp rd.net.dhcp.client-id=ens3:01-aa-bb-cc-dd-ee-ff", check: func(t *testing.T, got netup.Config) {
			if string(got.ClientID) != "\x01\xaa\xbb\xcc\xdd\xee\xff" {
				t.Errorf("client id %x", got.ClientID)
			}
		}},
		{name: "mac with BOOTIF", cmdline: root + "BOOTIF=01-52-54-00-12-34-56 ip=ens3:dhcp::52:54:00:aa:bb:cc", err: "needs the link named", hint: "rd.bootif=0"},
		{name: "mac without iface", cmdline: root + "ip=:dhcp::52:54:00:aa:bb:cc", err: "needs the link named", hint: "drop the MAC"},
		{name: "peer", cmdline: root + "ip=10.0.0.7:10.0.0.9:10.0.0.1:24::ens3:none", err: "point-to-point", hint: "peer field"},

		// Arguments the network stage refuses by name.
		{name: "ib.pkey", cmdline: root + "ib.pkey=ib0.8004", err: "ib.pkey=ib0.8004: ib.pkey links are not supported", hint: "not InfiniBand partitions"},
		{name: "ethtool", cmdline: root + "rd.ethtool=eth0:off:1000", err: "rd.ethtool=eth0:off:1000: link settings", hint: "drop rd.ethtool="},
		{name: "route", cmdline: root + "rd.route=192.168.200.0/24:192.168.100.222", err: "static routes are not supported yet", hint: "option 121"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, ok := fromBoot(t, tc.cmdline, tc.err, tc.hint, tc.notes)
			if ok {
				tc.check(t, nc)
			}
		})
	}
}

// fromBoot runs FromBoot on cmdline and checks its error (a substring of
// it and of its hint; "" for none) and notes (exactly); ok: the config
// is there to check.
func fromBoot(t *testing.T, cmdline, wantErr, wantHint string, wantNotes []string) (netup.Config, bool) {
	t.Helper()
	cfg, err := bootcfg.Parse(cmdline)
	if err != nil {
		t.Fatalf("Parse(%q): %v", cmdline, err)
	}
	nc, notes, err := FromBoot(cfg)
	if wantErr != "" {
		var h interface{ Hint() string }
		if err == nil || !strings.Contains(err.Error(), wantErr) || !errors.As(err, &h) || !strings.Contains(h.Hint(), wantHint) {
			t.Fatalf("error %v, want %q with hint %q", err, wantErr, wantHint)
		}
		return nc, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(notes, "\n") != strings.Join(wantNotes, "\n") {
		t.Errorf("notes %q, want %q", notes, wantNotes)
	}
	return nc, true
}
