package bootcfg

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The examples of issue 18 and the forms Foreman, CoreOS, RHCOS and
// anaconda write: each is parsed into Config (want) or refused with one
// ArgError naming it (bad, reason).
func TestGrammar(t *testing.T) {
	cidr := func(n, bits int) net.IPMask { return net.CIDRMask(n, bits) }
	tests := []struct {
		in   string
		want func(c *Config) // nil: refused
		bad  string          // the token the error names
		why  string          // in its reason
	}{
		// Method lists.
		{in: "ip=dhcp,dhcp6", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=dhcp,dhcp6", Method: IPDHCP, Also: []IPMethod{IPDHCP6}}}
		}},
		{in: "ip=eth0:dhcp,dhcp6:1666", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=eth0:dhcp,dhcp6:1666", Iface: "eth0", Method: IPDHCP, Also: []IPMethod{IPDHCP6}, MTU: 1666}}
		}},
		{in: "ip=:dhcp6,dhcp:1499", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=:dhcp6,dhcp:1499", Method: IPDHCP, Also: []IPMethod{IPDHCP6}, MTU: 1499}}
		}},
		{in: "ip=dhcp6,auto6", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=dhcp6,auto6", Method: IPDHCP6, Also: []IPMethod{IPAuto6}}}
		}},
		{in: "ip=dhcp,dhcp", want: func(c *Config) { c.Net.IP = []IPConf{{Arg: "ip=dhcp,dhcp", Method: IPDHCP}} }},
		{in: "ip=dhcp,bogus", bad: "ip=dhcp,bogus", why: `unknown method "bogus"`},
		{in: "ip=dhcp,off", bad: "ip=dhcp,off", why: "cannot be combined"},
		{in: "ip=bootp", bad: "ip=bootp", why: "not supported"},
		{in: "ip=dhcp,ibft", bad: "ip=dhcp,ibft", why: "not supported"},

		// auto.
		{in: "ip=auto", want: func(c *Config) { c.Net.IP = []IPConf{{Arg: "ip=auto", Method: IPAuto}} }},
		{in: "ip=bridge123:auto:1500:52:54:00:12:34:56", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=bridge123:auto:1500:52:54:00:12:34:56", Iface: "bridge123", Method: IPAuto, MTU: 1500, MAC: mac("52:54:00:12:34:56")}}
		}},

		// Static without a method field.
		{in: "ip=203.0.113.2::203.0.113.1:26:hostname1.example.com:eth4", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=203.0.113.2::203.0.113.1:26:hostname1.example.com:eth4", Iface: "eth4", Method: IPNone,
				Addr: ip("203.0.113.2"), Gateway: ip("203.0.113.1"), Mask: cidr(26, 32), Hostname: "hostname1.example.com"}}
		}},
		{in: "ip=172.25.1.100::172.25.1.1:24::eno2", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=172.25.1.100::172.25.1.1:24::eno2", Iface: "eno2", Method: IPNone,
				Addr: ip("172.25.1.100"), Gateway: ip("172.25.1.1"), Mask: cidr(24, 32)}}
		}},
		{in: "ip=1.2.3.4::1.2.3.1:24", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=1.2.3.4::1.2.3.1:24", Method: IPNone, Addr: ip("1.2.3.4"), Gateway: ip("1.2.3.1"), Mask: cidr(24, 32)}}
		}},

		// A prefix length inside the address field.
		{in: "ip=192.0.2.2/16:::::eth0", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=192.0.2.2/16:::::eth0", Iface: "eth0", Method: IPNone, Addr: ip("192.0.2.2"), Mask: cidr(16, 32)}}
		}},
		{in: "ip=[2001:db8::2]/56::[2001:db8::1]::host6:eth0:none", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=[2001:db8::2]/56::[2001:db8::1]::host6:eth0:none", Iface: "eth0", Method: IPNone,
				Addr: ip("2001:db8::2"), Gateway: ip("2001:db8::1"), Mask: cidr(56, 128), Hostname: "host6"}}
		}},
		{in: "ip=192.0.2.2/24::192.0.2.1:255.255.255.0::eth0:none", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=192.0.2.2/24::192.0.2.1:255.255.255.0::eth0:none", Iface: "eth0", Method: IPNone,
				Addr: ip("192.0.2.2"), Gateway: ip("192.0.2.1"), Mask: cidr(24, 32)}}
		}},
		{in: "ip=192.0.2.2/24::192.0.2.1:16::eth0:none", bad: "ip=192.0.2.2/24::192.0.2.1:16::eth0:none", why: "disagree"},
		{in: "ip=192.0.2.2/33:::::eth0", bad: "ip=192.0.2.2/33:::::eth0", why: "out of range"},
		{in: "ip=192.0.2.2/:::::eth0", bad: "ip=192.0.2.2/:::::eth0", why: "empty prefix"},
		{in: "ip=[2001:db8::2]/x:::::eth0", bad: "ip=[2001:db8::2]/x:::::eth0", why: "not a number"},
		{in: "ip=1.2.3.4::[2001:db8::1]/5:24::eth0:none", bad: "ip=1.2.3.4::[2001:db8::1]/5:24::eth0:none", why: "takes no /prefix"},

		// Interfaces switched off.
		{in: "ip=ens3:off", want: func(c *Config) { c.Net.IP = []IPConf{{Arg: "ip=ens3:off", Iface: "ens3", Method: IPOff}} }},
		{in: "ip=ens3:none ip=ens4:dhcp", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=ens3:none", Iface: "ens3", Method: IPNone}, {Arg: "ip=ens4:dhcp", Iface: "ens4", Method: IPDHCP}}
		}},
		{in: "ip=:::::ens4:off", want: func(c *Config) { c.Net.IP = []IPConf{{Arg: "ip=:::::ens4:off", Iface: "ens4", Method: IPOff}} }},
		{in: "ip=10.0.0.8:::::ens4:off", bad: "ip=10.0.0.8:::::ens4:off", why: "needs a netmask"},
		{in: "ip=ens3:off:1500", bad: "ip=ens3:off:1500", why: "takes no MTU"},
		{in: "ip=:::::ens4:dhcp6,off", bad: "ip=:::::ens4:dhcp6,off", why: "cannot be combined"},

		// Empty method: DHCP, as dracut reads it.
		{in: "ip=::::::", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=::::::", Method: IPDHCP}}
			c.Warnings = []Warning{{Arg: "ip=::::::", Reason: "no method given: DHCP, as dracut does"}}
		}},
		{in: "ip=1.2.3.4::1.2.3.1:24::eth0:dhcp", bad: "ip=1.2.3.4::1.2.3.1:24::eth0:dhcp", why: "needs method none or off"},
		{in: "ip=eth0:", bad: "ip=eth0:", why: "expected <iface>:<method>"},

		// The interface by MAC (dracut's ifup).
		{in: "ip=10.0.0.2::10.0.0.1:24::52-54-00-12-34-56:none", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=10.0.0.2::10.0.0.1:24::52-54-00-12-34-56:none", IfaceMAC: mac("52:54:00:12:34:56"), Method: IPNone,
				Addr: ip("10.0.0.2"), Gateway: ip("10.0.0.1"), Mask: cidr(24, 32)}}
		}},

		// anaconda's cluster.
		{in: "ip=192.0.2.10 netmask=255.255.255.0 gateway=192.0.2.1 hostname=n1 ksdevice=eth1 mtu=9000", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=192.0.2.10", Iface: "eth1", Method: IPNone, Addr: ip("192.0.2.10"), Gateway: ip("192.0.2.1"),
				Mask: cidr(24, 32), Hostname: "n1", MTU: 9000}}
		}},
		{in: "ip=192.0.2.10 netmask=24 ksdevice=52:54:00:12:34:56", want: func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=192.0.2.10", IfaceMAC: mac("52:54:00:12:34:56"), Method: IPNone, Addr: ip("192.0.2.10"), Mask: cidr(24, 32)}}
		}},
		{in: "netmask=24 gateway=x hostname=h ksdevice=eth0", want: func(c *Config) {}},
		{in: "ip=192.0.2.10 gateway=192.0.2.1", bad: "ip=192.0.2.10", why: "needs netmask="},
		{in: "ip=192.0.2.10 netmask=24 gateway=nope", bad: "gateway=nope", why: "not an IPv4 address"},
		{in: "ip=192.0.2.10 ip=192.0.2.11 netmask=24", bad: "ip=192.0.2.11", why: "a second anaconda-style"},

		// Timeouts.
		{in: "rd.net.timeout.dhcp=infinity", want: func(c *Config) { c.Net.DHCPTimeout = Forever }},
		{in: "rd.net.timeout.dhcp=soon", want: func(c *Config) {
			c.Warnings = []Warning{{Arg: "rd.net.timeout.dhcp=soon", Reason: "not a whole number of seconds: the default (rd.retry) applies"}}
		}},
		{in: "rd.net.timeout.carrier=-3", want: func(c *Config) {
			c.Warnings = []Warning{{Arg: "rd.net.timeout.carrier=-3", Reason: "not a whole number of seconds: the default (15 s) applies"}}
		}},
		{in: "rd.net.timeout.carrier=99999999999999999999", want: func(c *Config) {
			c.Warnings = []Warning{{Arg: "rd.net.timeout.carrier=99999999999999999999", Reason: "number of seconds is too large: the default (15 s) applies"}}
		}},
		{in: "rd.net.timeout.dhcp=20 rd.net.timeout.carrier=30", want: func(c *Config) {
			c.Net.DHCPTimeout, c.Net.CarrierTimeout = 20*time.Second, 30*time.Second
		}},

		// BOOTIF with any hardware type; rd.bootif=0.
		{in: "BOOTIF=00-52-54-00-12-34-56", want: func(c *Config) { c.Net.BootIF = mac("52:54:00:12:34:56") }},
		{in: "BOOTIF=06-52-54-00-12-34-56", want: func(c *Config) { c.Net.BootIF = mac("52:54:00:12:34:56") }},
		{in: "BOOTIF=20-52:54:00:12:34:56", want: func(c *Config) { c.Net.BootIF = mac("52:54:00:12:34:56") }},
		{in: "BOOTIF=zz-52-54-00-12-34-56", bad: "BOOTIF=zz-52-54-00-12-34-56", why: "hardware type"},
		{in: "BOOTIF=01-52-54-00-12-34-56 rd.bootif=0", want: func(c *Config) {
			c.Net.BootIF, c.Net.UseBootIF = mac("52:54:00:12:34:56"), false
		}},

		// Client ids in both spellings.
		{in: "rd.net.dhcp.client-id=eth0:01-aa-bb-cc-dd-ee-ff rd.net.dhcp.client-id=01:AA:BB:CC:DD:EE:FF rd.net.dhcp.client-id=ff-00", want: func(c *Config) {
			c.Net.ClientIDs = []ClientID{
				{Iface: "eth0", Kind: ClientIDBytes, Bytes: []byte{1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}},
				{Kind: ClientIDBytes, Bytes: []byte{1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}},
				{Kind: ClientIDBytes, Bytes: []byte{0xff, 0}},
			}
		}},
		{in: "rd.net.dhcp.client-id=eth0:01-aa:bb", bad: "rd.net.dhcp.client-id=eth0:01-aa:bb", why: "client id"},

		// Virtual links: parsed, for the network stage to refuse by name.
		{in: "vlan=eth0.100:eth0 ip=eth0.100:dhcp", want: func(c *Config) {
			c.Net.Links = []Link{{Arg: "vlan=eth0.100:eth0", Kind: LinkVLAN, Name: "eth0.100", Parents: []string{"eth0"}}}
			c.Net.IP = []IPConf{{Arg: "ip=eth0.100:dhcp", Iface: "eth0.100", Method: IPDHCP}}
		}},
		{in: "bond=bond0:eth0,eth1:mode=balance-rr:9000", want: func(c *Config) {
			c.Net.Links = []Link{{Arg: "bond=bond0:eth0,eth1:mode=balance-rr:9000", Kind: LinkBond, Name: "bond0",
				Parents: []string{"eth0", "eth1"}, Options: "mode=balance-rr", MTU: 9000}}
		}},
		{in: "bridge=bridge0:eth0,eth1", want: func(c *Config) {
			c.Net.Links = []Link{{Arg: "bridge=bridge0:eth0,eth1", Kind: LinkBridge, Name: "bridge0", Parents: []string{"eth0", "eth1"}}}
		}},
		{in: "team=team0:eth0,eth1", want: func(c *Config) {
			c.Net.Links = []Link{{Arg: "team=team0:eth0,eth1", Kind: LinkTeam, Name: "team0", Parents: []string{"eth0", "eth1"}}}
		}},
		{in: "ib.pkey=ib0.8004", want: func(c *Config) {
			c.Net.Links = []Link{{Arg: "ib.pkey=ib0.8004", Kind: LinkPKey, Name: "ib0.8004", Parents: []string{"ib0"}}}
		}},
		{in: "bond bridge team", want: func(c *Config) {
			c.Net.Links = []Link{
				{Arg: "bond", Kind: LinkBond, Name: "bond0", Parents: []string{"eth0", "eth1"}, Options: "mode=balance-rr"},
				{Arg: "bridge", Kind: LinkBridge, Name: "br0", Parents: []string{"eth0"}},
				{Arg: "team", Kind: LinkTeam, Name: "team0", Parents: []string{"eth0", "eth1"}, Options: "activebackup"},
			}
		}},
		{in: "bond=bond0", want: func(c *Config) { c.Net.Links = []Link{{Arg: "bond=bond0", Kind: LinkBond, Name: "bond0"}} }},
		{in: "vlan=eth0.100", bad: "vlan=eth0.100", why: "missing the links"},
		{in: "vlan=v:eth0,eth1", bad: "vlan=v:eth0,eth1", why: "exactly one parent"},
		{in: "bond=bond0:eth0:mode=x:9000:extra", bad: "bond=bond0:eth0:mode=x:9000:extra", why: "too many"},
		{in: "bond=bond0:eth0::20", bad: "bond=bond0:eth0::20", why: "MTU"},
		{in: "ib.pkey=ib0", bad: "ib.pkey=ib0", why: "<parent>.<pkey>"},
		{in: "ib.pkey=ib0.xyz", bad: "ib.pkey=ib0.xyz", why: "<parent>.<pkey>"},
		{in: "rd.ethtool=eth0:on:1000", want: func(c *Config) {
			c.Net.Ethtool = []Ethtool{{Arg: "rd.ethtool=eth0:on:1000", Iface: "eth0", Autoneg: "on", Speed: 1000}}
		}},
		{in: "rd.ethtool=eth0", bad: "rd.ethtool=eth0", why: "neither"},
		{in: "rd.ethtool=eth0:maybe", bad: "rd.ethtool=eth0:maybe", why: "autoneg"},

		// Routes.
		{in: "rd.route=192.168.200.0/24:192.168.100.222:ens10 rd.route=[2001:DB8:3::/8]:[2001:DB8:2::1]", want: func(c *Config) {
			_, n4, _ := net.ParseCIDR("192.168.200.0/24")
			_, n6, _ := net.ParseCIDR("2001:db8:3::/8")
			c.Net.Routes = []RouteConf{
				{Arg: "rd.route=192.168.200.0/24:192.168.100.222:ens10", Dest: *n4, Gateway: ip("192.168.100.222"), Iface: "ens10"},
				{Arg: "rd.route=[2001:DB8:3::/8]:[2001:DB8:2::1]", Dest: *n6, Gateway: ip("2001:db8:2::1")},
			}
		}},
		{in: "rd.route=192.168.200.0:1.2.3.4", bad: "rd.route=192.168.200.0:1.2.3.4", why: "not <net>/<prefix>"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if tt.want != nil {
				checkParse(t, tt.in, tt.want)
				return
			}
			_, err := Parse(tt.in)
			errs := ArgErrors(err)
			if len(errs) != 1 {
				t.Fatalf("Parse(%q): want one error naming %q, got %v", tt.in, tt.bad, err)
			}
			if errs[0].Arg != tt.bad || !strings.Contains(errs[0].Reason, tt.why) || errs[0].Hint() == "" {
				t.Errorf("Parse(%q): error %q (hint %q), want it to name %q and say %q", tt.in, errs[0], errs[0].Hint(), tt.bad, tt.why)
			}
		})
	}
}

func TestIPConfMethods(t *testing.T) {
	c, err := Parse("ip=dhcp,dhcp6 ip=auto ip=dhcp6,auto6 ip=ens3:off ip=1.2.3.4::1.2.3.1:24::eth0:none")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		v6  []IPMethod
		off bool
	}{
		{[]IPMethod{IPDHCP6}, false}, {[]IPMethod{IPAuto}, false}, {[]IPMethod{IPDHCP6, IPAuto6}, false}, {nil, true}, {nil, false},
	}
	for i, w := range want {
		ipc := c.Net.IP[i]
		if got := ipc.IPv6Methods(); !reflect.DeepEqual(got, w.v6) || ipc.Off() != w.off {
			t.Errorf("%s: IPv6Methods %v Off %v, want %v %v", ipc.Arg, got, ipc.Off(), w.v6, w.off)
		}
	}
	if !IPAuto.IPv4() || !IPOn.IPv4() || IPDHCP6.IPv4() || IPOff.IPv4() || IPDHCP.IPv6() {
		t.Error("IPv4/IPv6 classification wrong")
	}
}
