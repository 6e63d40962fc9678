package main

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
	}{
		{name: "defaults", cmdline: root + "rd.retry=42", check: func(t *testing.T, got netup.Config) {
			if got.Static != nil || got.Iface != "" || got.ClientID != nil || len(got.Names) != 0 {
				t.Errorf("plain DHCP config: %+v", got)
			}
			if got.DHCPTimeout != 42*time.Second {
				t.Errorf("DHCP timeout %s, want rd.retry's 42s", got.DHCPTimeout)
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
		{name: "dhcp6", cmdline: root + "ip=dhcp6", err: "IPv6 boot networking is not supported", hint: "use ip=dhcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := bootcfg.Parse(tc.cmdline)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.cmdline, err)
			}
			nc, err := netConfig(cfg)
			if tc.err != "" {
				var h interface{ Hint() string }
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &h) || !strings.Contains(h.Hint(), tc.hint) {
					t.Fatalf("error %v, want %q with hint %q", err, tc.err, tc.hint)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, nc)
		})
	}
}
