package handover

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/netup"
)

// v6Lease is an IPv6-only lease (netup sets Addr to the IPv6 address).
func v6Lease(method netup.V6Method, duid []byte) *netup.Lease {
	l := lease(nil)
	l.DHCP, l.ServerID, l.LeaseTime, l.Router, l.Domain = false, nil, 0, nil, ""
	a := net.IPNet{IP: net.ParseIP("fd00:77::1a5"), Mask: net.CIDRMask(64, 128)}
	l.Addr, l.DNS = a, []net.IP{net.ParseIP("fd00:77::53")}
	l.V6 = &netup.Lease6{Method: method, DUID: duid, IAID: 0x00123456, Router: net.ParseIP("fe80::1"),
		Addrs: []netup.Addr6{{Net: a, Valid: time.Hour, Preferred: 30 * time.Minute, From: string(method)}},
		DNS:   []net.IP{net.ParseIP("fd00:77::53")}, Search: []string{"v6.test"}, ServerID: []byte{0, 3, 0, 1, 2, 0, 0, 0, 0, 1},
		T1: 30 * time.Minute, T2: 48 * time.Minute, DHCP: method == netup.V6DHCP}
	return l
}

func TestFilesV6(t *testing.T) {
	ll := netup.DUIDLL(net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56})
	dual := lease([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56})
	dual.V6 = v6Lease(netup.V6DHCP, ll).V6
	static4 := lease(nil)
	static4.DHCP = false
	static4.V6 = v6Lease(netup.V6Static, ll).V6
	for _, tc := range []struct {
		name     string
		l        *netup.Lease
		nmConf   []string // in 16-streamroot-ipv6.conf
		profile  []string // in the NM profile ("" entries: no profile at all)
		networkd []string // in the .network (nil: none)
		json     string   // the top-level method
		env      []string
	}{
		{name: "dhcp6 only", l: v6Lease(netup.V6DHCP, ll),
			nmConf:   []string{"ipv6.dhcp-duid=00:03:00:01:52:54:00:12:34:56\n", "ipv6.dhcp-iaid=1193046\n", "ipv6.addr-gen-mode=eui64\n"},
			profile:  []string{"[ipv4]\nmethod=disabled\n", "[ipv6]\nmethod=auto\naddr-gen-mode=eui64\n", "dhcp-duid=00:03:00:01:52:54:00:12:34:56\n", "dhcp-iaid=1193046\n", "mac-address=52:54:00:12:34:56\n"},
			networkd: []string{"MACAddress=52:54:00:12:34:56\n", "DHCP=ipv6\n", "[DHCPv6]\nDUIDType=link-layer\nDUIDRawData=00:01:52:54:00:12:34:56\nIAID=1193046\nWithoutRA=solicit\n", "KeepConfiguration=yes\n"},
			json:     "dhcp6",
			env:      []string{"METHOD='dhcp6'", "ADDRESS='fd00:77::1a5'", "PREFIX='64'", "IPV6_DUID='00:03:00:01:52:54:00:12:34:56'", "IPV6_IAID='1193046'", "IPV6_ADDRESSES='fd00:77::1a5/64'", "IPV6_SERVER_DUID='00:03:00:01:02:00:00:00:00:01'", "IPV6_T1='1800'", "IPV6_VALID_SECONDS='3600'"}},
		{name: "auto6 only, vendor duid", l: v6Lease(netup.V6Auto, []byte{0, 2, 0, 0, 0xab, 0x11, 1, 2}),
			profile:  []string{"[ipv6]\nmethod=auto\naddr-gen-mode=eui64\n"},
			networkd: []string{"DHCP=ipv6\n", "DUIDType=vendor\nDUIDRawData=00:00:ab:11:01:02\n"},
			json:     "auto6"},
		{name: "unnamed duid type", l: v6Lease(netup.V6Auto, []byte{0, 9, 1}),
			networkd: []string{"# DUID type 9 has no networkd name", "IAID=1193046\n"}, json: "auto6"},
		{name: "static6 only", l: v6Lease(netup.V6Static, ll),
			profile:  []string{"[ipv6]\nmethod=manual\n", "address1=fd00:77::1a5/64,fe80::1\n", "dns=fd00:77::53;\n"},
			networkd: []string{"DHCP=no\n", "Address=fd00:77::1a5/64\n", "Gateway=fe80::1\n", "DNS=fd00:77::53\n"},
			json:     "static"},
		{name: "dual stack", l: dual,
			profile:  []string{"[ipv4]\nmethod=auto\n"},
			networkd: []string{"DHCP=yes\n", "ClientIdentifier=mac\n", "[DHCPv6]\nDUIDType=link-layer\n"},
			json:     "dhcp", env: []string{"METHOD='dhcp'", "ADDRESS='10.77.0.9'", "IPV6_ADDRESS='fd00:77::1a5'"}},
		{name: "static v4 beside v6", l: static4, profile: []string{""}, json: "static"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, _ := Files(tc.l)
			conf := find(run, "NetworkManager/conf.d/16-streamroot-ipv6.conf")
			if conf == nil {
				t.Fatal("no NM IPv6 defaults")
			}
			for _, w := range tc.nmConf {
				if !strings.Contains(string(conf.Data), w) {
					t.Errorf("NM conf lacks %q:\n%s", w, conf.Data)
				}
			}
			prof := find(run, "NetworkManager/system-connections/")
			for _, w := range tc.profile {
				switch {
				case w == "" && prof != nil:
					t.Errorf("a profile for this lease:\n%s", prof.Data)
				case w != "" && (prof == nil || prof.Mode != 0o600 || !strings.Contains(string(prof.Data), w)):
					t.Errorf("profile lacks %q: %+v", w, prof)
				}
			}
			nd := find(run, "systemd/network/")
			if (nd != nil) != (tc.networkd != nil) {
				t.Fatalf("networkd file present=%v", nd != nil)
			}
			for _, w := range tc.networkd {
				if !strings.Contains(string(nd.Data), w) {
					t.Errorf("networkd lacks %q:\n%s", w, nd.Data)
				}
			}
			var doc struct {
				Method string
				IPv6   *struct {
					Method    string
					DUID      string
					IAID      uint32
					Addresses []struct{ Address string }
				}
			}
			if err := json.Unmarshal(find(run, "initramfs/net.ens3.json").Data, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Method != tc.json || doc.IPv6 == nil || doc.IPv6.IAID != 0x00123456 || doc.IPv6.Addresses[0].Address != "fd00:77::1a5" {
				t.Errorf("json method %q ipv6 %+v", doc.Method, doc.IPv6)
			}
			env := string(find(run, "initramfs/net.ens3.env").Data)
			for _, w := range tc.env {
				if !strings.Contains(env, w+"\n") {
					t.Errorf("env lacks %s:\n%s", w, env)
				}
			}
		})
	}
}
