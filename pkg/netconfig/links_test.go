package netconfig

import (
	"reflect"
	"testing"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/netup"
)

func TestVirtualLinks(t *testing.T) {
	const root = "root=live:http://10.77.0.1/img.squashfs "
	for _, tc := range []struct {
		name    string
		cmdline string
		want    []netup.Virtual
		iface   string
		notes   []string
		err     string // substring of the error; "" for none
		hint    string
	}{
		{name: "dracut 059's VLAN line", cmdline: root + "vlan=vlan100:eth0 ip=vlan100:dhcp", iface: "vlan100",
			want: []netup.Virtual{{Arg: "vlan=vlan100:eth0", Kind: netup.KindVLAN, Name: "vlan100", Parents: []string{"eth0"}, VLANID: 100}}},
		{name: "vlan padded", cmdline: root + "vlan=vlan0005:ens3", want: []netup.Virtual{{Arg: "vlan=vlan0005:ens3", Kind: netup.KindVLAN, Name: "vlan0005", Parents: []string{"ens3"}, VLANID: 5}}},
		{name: "vlan dev plus vid", cmdline: root + "vlan=eth0.0042:eth0", want: []netup.Virtual{{Arg: "vlan=eth0.0042:eth0", Kind: netup.KindVLAN, Name: "eth0.0042", Parents: []string{"eth0"}, VLANID: 42}}},
		{name: "vlan over a bond", cmdline: root + "vlan=bond0.7:bond0 bond=bond0:eth0,eth1:mode=802.3ad,lacp_rate=1:9000 ip=bond0.7:dhcp", iface: "bond0.7",
			want: []netup.Virtual{
				{Arg: "vlan=bond0.7:bond0", Kind: netup.KindVLAN, Name: "bond0.7", Parents: []string{"bond0"}, VLANID: 7},
				{Arg: "bond=bond0:eth0,eth1:mode=802.3ad,lacp_rate=1:9000", Kind: netup.KindBond, Name: "bond0", Parents: []string{"eth0", "eth1"}, MTU: 9000,
					Bond: netup.BondOptions{"mode": "802.3ad", "lacp_rate": "fast", "miimon": "100"}},
			}},
		{name: "bond numeric mode, own miimon", cmdline: root + "bond=bond0:ens3,ens4:mode=1,miimon=250,fail_over_mac=active,xmit_hash_policy=layer3+4",
			want: []netup.Virtual{{Arg: "bond=bond0:ens3,ens4:mode=1,miimon=250,fail_over_mac=active,xmit_hash_policy=layer3+4", Kind: netup.KindBond, Name: "bond0", Parents: []string{"ens3", "ens4"},
				Bond: netup.BondOptions{"mode": "active-backup", "miimon": "250", "fail_over_mac": "active", "xmit_hash_policy": "layer3+4"}}}},
		{name: "bare bond: dracut's defaults", cmdline: root + "bond", want: []netup.Virtual{{Arg: "bond", Kind: netup.KindBond, Name: "bond0", Parents: []string{"eth0", "eth1"},
			Bond: netup.BondOptions{"mode": "balance-rr", "miimon": "100"}}}},
		{name: "bond without ports", cmdline: root + "bond=bond1", want: []netup.Virtual{{Arg: "bond=bond1", Kind: netup.KindBond, Name: "bond1", Parents: []string{"eth0", "eth1"},
			Bond: netup.BondOptions{"mode": "balance-rr", "miimon": "100"}}}},
		{name: "arp monitoring needs no miimon", cmdline: root + "bond=bond0:eth0:arp_interval=200,arp_ip_target=10.0.0.1;10.0.0.2",
			want: []netup.Virtual{{Arg: "bond=bond0:eth0:arp_interval=200,arp_ip_target=10.0.0.1;10.0.0.2", Kind: netup.KindBond, Name: "bond0", Parents: []string{"eth0"},
				Bond: netup.BondOptions{"mode": "balance-rr", "arp_interval": "200", "arp_ip_target": "10.0.0.1;10.0.0.2"}}}},
		{name: "bridge", cmdline: root + "bridge=br0:eth0,eth1 ip=br0:dhcp", iface: "br0",
			want: []netup.Virtual{{Arg: "bridge=br0:eth0,eth1", Kind: netup.KindBridge, Name: "br0", Parents: []string{"eth0", "eth1"}}}},
		{name: "team as a bond", cmdline: root + "team=team0:eth0,eth1:lacp",
			want:  []netup.Virtual{{Arg: "team=team0:eth0,eth1:lacp", Kind: netup.KindBond, Name: "team0", Parents: []string{"eth0", "eth1"}, Bond: netup.BondOptions{"mode": "802.3ad", "miimon": "100"}}},
			notes: []string{"team=team0:eth0,eth1:lacp: built as a bond team0 with mode=802.3ad (this initramfs has no teamd); the real OS gets a bond"}},

		{name: "vlan id not in the name", cmdline: root + "vlan=prov:eth0", err: "vlan=prov:eth0: the VLAN id is not in the name prov", hint: "vlan<id>"},
		{name: "vlan id too big", cmdline: root + "vlan=vlan4095:eth0", err: "vlan=vlan4095:eth0: the VLAN id", hint: "1 to 4094"},
		{name: "unknown bond option", cmdline: root + "bond=bond0:eth0,eth1:mode=active-backup,speed=10", err: `bond=bond0:eth0,eth1:mode=active-backup,speed=10: unknown bond option "speed"`, hint: "comma separated"},
		{name: "bad bond mode", cmdline: root + "bond=bond0:eth0,eth1:mode=fastest", err: `bond option mode="fastest"`, hint: "mode=active-backup"},
		{name: "bad miimon", cmdline: root + "bond=bond0:eth0:miimon=-1", err: `miimon="-1"`, hint: "comma separated"},
		{name: "option without value", cmdline: root + "bond=bond0:eth0:miimon", err: `"miimon" is not <name>=<value>`, hint: "comma separated"},
		{name: "bad team runner", cmdline: root + "team=team0:eth0,eth1:random", err: `team runner "random"`, hint: "bond= directly"},
		{name: "two links one name", cmdline: root + "bond=bond0:eth0 bridge=bond0:eth1", err: "bridge=bond0:eth1: a second link named bond0", hint: "its own name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, ok := fromBoot(t, tc.cmdline, tc.err, tc.hint, tc.notes)
			if !ok {
				return
			}
			if !reflect.DeepEqual(nc.Links, tc.want) {
				t.Errorf("links\n%+v\nwant\n%+v", nc.Links, tc.want)
			}
			if nc.Iface != tc.iface {
				t.Errorf("iface %q, want %q", nc.Iface, tc.iface)
			}
		})
	}
}

func TestModules(t *testing.T) {
	for cmdline, want := range map[string][]string{
		"ip=dhcp":                                         nil,
		"vlan=vlan5:eth0 bond=bond0:eth0 bond":            {"8021q", "bonding"},
		"team=team0:eth0,eth1 bridge=br0:team0":           {"bonding", "bridge"},
		"bridge=br0:eth0 vlan=br0.3:br0 ib.pkey=ib0.8004": {"bridge", "8021q"},
	} {
		cfg, err := bootcfg.Parse("root=live:http://10.77.0.1/img.squashfs " + cmdline)
		if err != nil {
			t.Fatal(err)
		}
		if got := Modules(cfg); !reflect.DeepEqual(got, want) {
			t.Errorf("Modules(%q) = %v, want %v", cmdline, got, want)
		}
	}
}
