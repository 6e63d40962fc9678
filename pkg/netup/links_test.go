package netup

import (
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/streamroot/streamroot/internal/wanterr"
)

func TestBuildOrderAndTop(t *testing.T) {
	vlan := Virtual{Arg: "vlan=bond0.7:bond0", Kind: KindVLAN, Name: "bond0.7", Parents: []string{"bond0"}, VLANID: 7}
	bond := Virtual{Arg: "bond=bond0:eth0,eth1", Kind: KindBond, Name: "bond0", Parents: []string{"eth0", "eth1"}}
	other := Virtual{Arg: "vlan=vlan9:eth2", Kind: KindVLAN, Name: "vlan9", Parents: []string{"eth2"}, VLANID: 9}
	for _, tc := range []struct {
		name      string
		vs        []Virtual
		iface     string
		bootPort  string
		order     []string
		phys      []string
		top       string
		topOK     bool
		orderErr  string
		notBuilds bool
	}{
		{name: "vlan over bond, written first", vs: []Virtual{vlan, bond}, order: []string{"bond0", "bond0.7"}, phys: []string{"eth0", "eth1"}, top: "bond0.7", topOK: true},
		{name: "named link", vs: []Virtual{vlan, bond}, iface: "bond0", order: []string{"bond0", "bond0.7"}, phys: []string{"eth0", "eth1"}, top: "bond0", topOK: true},
		{name: "named link not built", vs: []Virtual{bond}, iface: "br0", order: []string{"bond0"}, phys: []string{"eth0", "eth1"}, top: "br0", topOK: false},
		{name: "BOOTIF port picks its stack", vs: []Virtual{vlan, bond, other}, bootPort: "eth1", order: []string{"bond0", "vlan9", "bond0.7"}, phys: []string{"eth0", "eth1", "eth2"}, top: "bond0.7", topOK: true},
		{name: "BOOTIF port under the other", vs: []Virtual{vlan, bond, other}, bootPort: "eth2", order: []string{"bond0", "vlan9", "bond0.7"}, phys: []string{"eth0", "eth1", "eth2"}, top: "vlan9", topOK: true},
		{name: "without BOOTIF the last top", vs: []Virtual{vlan, bond, other}, order: []string{"bond0", "vlan9", "bond0.7"}, phys: []string{"eth0", "eth1", "eth2"}, top: "vlan9", topOK: true},
		{name: "BOOTIF port under none", vs: []Virtual{bond}, bootPort: "eth5", order: []string{"bond0"}, phys: []string{"eth0", "eth1"}, topOK: false},
		{name: "a loop", vs: []Virtual{
			{Arg: "bond=a:b", Kind: KindBond, Name: "a", Parents: []string{"b"}},
			{Arg: "bond=b:a", Kind: KindBond, Name: "b", Parents: []string{"a"}},
		}, orderErr: "bond=a:b: a is built on a link that is built on it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order, err := buildOrder(tc.vs)
			if wanterr.Check(t, err, tc.orderErr) {
				return
			}
			var names []string
			for _, v := range order {
				names = append(names, v.Name)
			}
			if !slices.Equal(names, tc.order) {
				t.Errorf("order %v, want %v", names, tc.order)
			}
			if got := physicalNames(tc.vs); !slices.Equal(got, tc.phys) {
				t.Errorf("physical %v, want %v", got, tc.phys)
			}
			top, ok := topLink(tc.vs, tc.iface, tc.bootPort)
			if top != tc.top || ok != tc.topOK {
				t.Errorf("top %q %v, want %q %v", top, ok, tc.top, tc.topOK)
			}
		})
	}
}

func TestKernelNames(t *testing.T) {
	link := func(i int, name string) netlink.Link {
		return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: i, Name: name}}
	}
	kn := kernelNames{}
	kn.note([]netlink.Link{link(2, "eth0"), link(3, "eth1")})
	// Renamed: eth0 → eth1 (ifname=), eth1 → ens4. A name a link has now
	// wins over the kernel's name for another link.
	now := []netlink.Link{link(2, "eth1"), link(3, "ens4")}
	kn.note(now)
	for name, want := range map[string]int{"eth1": 2, "ens4": 3, "eth0": 2, "ens9": 0} {
		got := 0
		if l := kn.find(now, name); l != nil {
			got = l.Attrs().Index
		}
		if got != want {
			t.Errorf("find(%q) = link %d, want %d", name, got, want)
		}
	}
}

func TestParseBondOptions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want BondOptions
		err  string
	}{
		{"", BondOptions{"mode": "balance-rr", "miimon": "100"}, ""},
		{"mode=4,lacp_rate=1,xmit_hash_policy=1", BondOptions{"mode": "802.3ad", "lacp_rate": "fast", "xmit_hash_policy": "layer3+4", "miimon": "100"}, ""},
		{"mode=active-backup,primary=eth1,miimon=0", BondOptions{"mode": "active-backup", "primary": "eth1", "miimon": "0"}, ""},
		{"arp_interval=100,arp_ip_target=10.0.0.1;10.0.0.002", nil, "arp_ip_target"},
		{"arp_interval=100,arp_ip_target=10.0.0.1;10.0.0.2", BondOptions{"mode": "balance-rr", "arp_interval": "100", "arp_ip_target": "10.0.0.1;10.0.0.2"}, ""},
		{"mode=7", nil, `mode="7"`},
		{"miimon=+5", nil, `miimon="+5"`},
		{"use_carrier=2", nil, `use_carrier="2"`},
		{"frobnicate=1", nil, `unknown bond option "frobnicate"`},
		{"mode=active-backup,", nil, `"" is not <name>=<value>`},
		{"primary=a/b", nil, "primary"},
	} {
		got, err := ParseBondOptions(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestNetlinkBond(t *testing.T) {
	o, err := ParseBondOptions("mode=802.3ad,lacp_rate=fast,xmit_hash_policy=layer2+3,miimon=50,updelay=200,fail_over_mac=follow,ad_select=count,min_links=1,arp_validate=all")
	if err != nil {
		t.Fatal(err)
	}
	b := o.netlinkBond("bond0", 9000)
	if b.Mode != netlink.BOND_MODE_802_3AD || b.LacpRate != netlink.BOND_LACP_RATE_FAST || b.XmitHashPolicy != netlink.BOND_XMIT_HASH_POLICY_LAYER2_3 ||
		b.Miimon != 50 || b.UpDelay != 200 || b.DownDelay != -1 || b.FailOverMac != netlink.BOND_FAIL_OVER_MAC_FOLLOW ||
		b.AdSelect != netlink.BOND_AD_SELECT_COUNT || b.MinLinks != 1 || b.ArpValidate != netlink.BOND_ARP_VALIDATE_ALL || b.MTU != 9000 || b.Name != "bond0" {
		t.Errorf("bond %+v", b)
	}
	// Options not given stay the kernel's (-1: not sent).
	if b.PrimaryReselect != -1 || b.ArpInterval != -1 || b.UseCarrier != -1 {
		t.Errorf("unset options sent: %+v", b)
	}
	a, _ := ParseBondOptions("arp_interval=100,arp_ip_target=10.0.0.1;10.0.0.2")
	if got := a.netlinkBond("b", 0).ArpIpTargets; len(got) != 2 || !got[1].Equal(net.IPv4(10, 0, 0, 2)) {
		t.Errorf("arp targets %v", got)
	}
}

func FuzzBondOptions(f *testing.F) {
	for _, s := range []string{"", "mode=1,miimon=100", "arp_ip_target=1.2.3.4;5.6.7.8", "mode=,", "=", "primary=eth0,lacp_rate=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseBondOptions(s)
		if err != nil {
			return
		}
		// What was accepted renders and parses back to itself, and every
		// value is one the driver takes.
		again, err := ParseBondOptions(o.String())
		if err != nil || !reflect.DeepEqual(again, o) {
			t.Fatalf("%q → %q → %v %v", s, o.String(), again, err)
		}
		if netlink.StringToBondMode(o["mode"]) == netlink.BOND_MODE_UNKNOWN {
			t.Fatalf("mode %q", o["mode"])
		}
		_ = o.netlinkBond("bond0", 0)
	})
}

func TestByKernelNames(t *testing.T) {
	link := func(i int, name string) netlink.Link {
		return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: i, Name: name, HardwareAddr: net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)}}}
	}
	kn := kernelNames{}
	kn.note([]netlink.Link{link(2, "eth0"), link(3, "eth1"), link(4, "eth2")})
	now := []netlink.Link{link(2, "ens3"), link(3, "ens4"), link(4, "eth2")}
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	said := map[string]bool{}
	cfg := Config{Iface: "eth0", Skip: []string{"eth1", "eth2", "nosuch"}}
	for range 2 {
		got := byKernelNames(cfg, now, kn, said, log)
		if got.Iface != "ens3" || !slices.Equal(got.Skip, []string{"ens4", "eth2", "nosuch"}) {
			t.Errorf("iface %q skip %v, want ens3 and [ens4 eth2 nosuch]", got.Iface, got.Skip)
		}
	}
	if cfg.Skip[0] != "eth1" {
		t.Errorf("the caller's Skip was changed: %v", cfg.Skip)
	}
	if n := strings.Count(logs.String(), "eth0 is ens3 (52:54:00:00:00:02), by the kernel's name for it"); n != 1 {
		t.Errorf("the mapping of eth0 logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestLACPWaits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		info    lacpInfo
		partner bool
		carrier int
		want    string
	}{
		{"no partner", lacpInfo{}, false, 2, "a LACP partner on bond0"},
		{"one of two aggregated", lacpInfo{partner: "02:00:00:00:11:11", activePorts: "1"}, true, 2, "all 2 ports with carrier in bond0's LACP aggregator (1 so far)"},
		{"both aggregated", lacpInfo{partner: "02:00:00:00:11:11", activePorts: "2"}, true, 2, ""},
		{"one port has carrier", lacpInfo{partner: "02:00:00:00:11:11", activePorts: "1"}, true, 1, ""},
		{"count unreadable", lacpInfo{partner: "02:00:00:00:11:11", activePorts: ""}, true, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(lacpWaits("bond0", tc.info, tc.partner, tc.carrier), "; "); got != tc.want {
				t.Errorf("lacpWaits = %q, want %q", got, tc.want)
			}
		})
	}
}
