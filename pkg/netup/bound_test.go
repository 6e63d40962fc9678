package netup

import (
	"net"
	"testing"
	"time"
)

func TestBound(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	v4 := net.IPNet{IP: net.ParseIP("10.77.0.50").To4(), Mask: net.CIDRMask(24, 32)}
	_, v6, _ := net.ParseCIDR("fd00:77::50/64")
	v6.IP = net.ParseIP("fd00:77::50")
	for _, tc := range []struct {
		name  string
		lease Lease
		want  string
	}{
		{"dhcp4", Lease{Iface: "ens3", MAC: mac, Addr: v4, DHCP: true, ServerID: net.ParseIP("10.77.0.1"), LeaseTime: time.Hour, ClientID: []byte{1, 2}},
			"bound 10.77.0.50/24 on ens3 (52:54:00:12:34:56) via DHCP from 10.77.0.1, lease 1h0m0s, client id 0102"},
		{"static4", Lease{Iface: "ens3", MAC: mac, Addr: v4}, "bound 10.77.0.50/24 on ens3 (52:54:00:12:34:56) via static"},
		{"v6 only", Lease{Iface: "ens3", MAC: mac, Addr: *v6, V6: &Lease6{Addrs: []Addr6{{Net: *v6, From: "dhcp6"}}}},
			"bound fd00:77::50/64 on ens3 (52:54:00:12:34:56) via dhcp6"},
		{"dual", Lease{Iface: "ens3", MAC: mac, Addr: v4, V6: &Lease6{Addrs: []Addr6{{Net: *v6, From: "slaac"}}}},
			"bound 10.77.0.50/24, fd00:77::50/64 on ens3 (52:54:00:12:34:56) via static; slaac"},
		{"v6 none", Lease{Iface: "ens3", MAC: mac, V6: &Lease6{Method: V6Auto}}, "bound IPv6 link-local only on ens3 (52:54:00:12:34:56) via auto6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.lease.Bound(); got != tc.want {
				t.Errorf("Bound() = %q, want %q", got, tc.want)
			}
		})
	}
}
