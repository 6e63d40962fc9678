package bootcfg

import (
	"errors"
	"net"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The seed lines from Foreman's "Booting Discovery over HTTP" write-up,
// verbatim (BOOTIF as PXELinux's IPAPPEND 2 appends it).
const (
	foremanHTTP = "ip=dhcp root=live:http://SERVER/squashfs.img rd.shell ro acpi=force rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0 rd.shell rd.debug=1 nomodeset proxy.url=https://FOREMAN proxy.type=foreman BOOTIF=01-52-54-00-12-34-56"
	foremanNBD  = "ip=dhcp root=nbd:TFTP_SERVER:discovery:squashfs ro"
)

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// ip returns the canonical form Parse stores (4 bytes for IPv4).
func ip(s string) net.IP { return canonIP(net.ParseIP(s)) }

func sha(c byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = c
	}
	return b
}

var hex64a = strings.Repeat("aa", 32)

// TestParse checks whole Configs: each case edits a default Config into the
// expected one, so an unexpected side effect on any field fails the test.
func TestParse(t *testing.T) {
	live := func(arg, u string) Root {
		return Root{Kind: RootLive, Arg: arg, URL: mustURL(u)}
	}
	tests := []struct {
		name string
		in   string
		want func(c *Config)
	}{
		{"empty", "", func(c *Config) {}},
		{"only whitespace and newline", " \t\n", func(c *Config) {}},
		{"foreman http seed", foremanHTTP, func(c *Config) {
			c.Root = live("root=live:http://SERVER/squashfs.img", "http://SERVER/squashfs.img")
			c.Net.IP = []IPConf{{Arg: "ip=dhcp", Method: IPDHCP}}
			c.Shell, c.Debug = true, true
			c.Net.BootIF = mac("52:54:00:12:34:56")
		}},
		{"foreman nbd seed", foremanNBD, func(c *Config) {
			c.Root = Root{Kind: RootNBD, Arg: "root=nbd:TFTP_SERVER:discovery:squashfs",
				NBDServer: "TFTP_SERVER", NBDPort: 10809, NBDExport: "discovery"}
			c.Net.IP = []IPConf{{Arg: "ip=dhcp", Method: IPDHCP}}
		}},
		{"/proc/cmdline trailing newline", "root=live:https://s/i.img\n", func(c *Config) {
			c.Root = live("root=live:https://s/i.img", "https://s/i.img")
		}},

		// Root forms.
		{"https live", "root=live:https://boot.example.com:8443/img/rootfs.img?x=1", func(c *Config) {
			c.Root = live("root=live:https://boot.example.com:8443/img/rootfs.img?x=1", "https://boot.example.com:8443/img/rootfs.img?x=1")
		}},
		{"http alias", "root=http://10.0.0.1/squashfs.img", func(c *Config) {
			c.Root = live("root=http://10.0.0.1/squashfs.img", "http://10.0.0.1/squashfs.img")
		}},
		{"https alias upper-case scheme", "root=HTTPS://s/x.img", func(c *Config) {
			c.Root = live("root=HTTPS://s/x.img", "https://s/x.img")
		}},
		{"iso", "root=live:http://s/Fedora-Live.ISO rd.live.dir=/boot/live/ rd.live.squashimg=rootfs.sqfs", func(c *Config) {
			c.Root = live("root=live:http://s/Fedora-Live.ISO", "http://s/Fedora-Live.ISO")
			c.LiveDir, c.SquashImg = "boot/live", "rootfs.sqfs"
		}},
		{"iso at image root", "rd.live.dir=/", func(c *Config) { c.LiveDir = "." }},
		{"ipv6 url", "root=live:http://[fd00::1]:8080/s.img", func(c *Config) {
			c.Root = live("root=live:http://[fd00::1]:8080/s.img", "http://[fd00::1]:8080/s.img")
		}},
		{"nbd port", "root=nbd:10.0.0.1:2000", func(c *Config) {
			c.Root = Root{Kind: RootNBD, Arg: "root=nbd:10.0.0.1:2000", NBDServer: "10.0.0.1", NBDPort: 2000}
		}},
		{"nbd all fields", "root=nbd:srv.example:root:ext4:ro,noatime:timeout=30", func(c *Config) {
			c.Root = Root{Kind: RootNBD, Arg: "root=nbd:srv.example:root:ext4:ro,noatime:timeout=30",
				NBDServer: "srv.example", NBDPort: 10809, NBDExport: "root"}
		}},
		{"nbd ipv6", "root=nbd:[fd00::1]:exp", func(c *Config) {
			c.Root = Root{Kind: RootNBD, Arg: "root=nbd:[fd00::1]:exp", NBDServer: "fd00::1", NBDPort: 10809, NBDExport: "exp"}
		}},
		{"nbd ipv6 zone and port", "root=nbd:[fe80::1%eth0]:10809:squashfs", func(c *Config) {
			c.Root = Root{Kind: RootNBD, Arg: "root=nbd:[fe80::1%eth0]:10809:squashfs", NBDServer: "fe80::1%eth0", NBDPort: 10809}
		}},
		{"netroot nbd, root placeholder", "root=/dev/nbd0 netroot=nbd:srv:exp", func(c *Config) {
			c.Root = Root{Kind: RootNBD, Arg: "netroot=nbd:srv:exp", NBDServer: "srv", NBDPort: 10809, NBDExport: "exp"}
		}},
		{"netroot and identical root", "root=nbd:srv:exp netroot=nbd:srv:exp", func(c *Config) {
			c.Root = Root{Kind: RootNBD, Arg: "netroot=nbd:srv:exp", NBDServer: "srv", NBDPort: 10809, NBDExport: "exp"}
		}},
		{"root last wins, bad one overridden", "root=/dev/sda1 root=live:http://s/a.img", func(c *Config) {
			c.Root = live("root=live:http://s/a.img", "http://s/a.img")
		}},
		{"root flags have no effect", "rootfstype=squashfs rootflags=ro,noatime rw init=/usr/lib/systemd/systemd", func(c *Config) {
			c.Init = "/usr/lib/systemd/systemd"
		}},
		{"foreman's root flags", "rootflags=loop rootfstype=auto ro rd.neednet=0", func(c *Config) {
			c.Warnings = []Warning{{Arg: "rd.neednet=0", Reason: "no effect: the root is remote, so the network comes up all the same"}}
		}},

		// Quoting.
		{"quoted value with space", `root="live:http://s/my image.img" rd.shell`, func(c *Config) {
			c.Root = live(`root="live:http://s/my image.img"`, "http://s/my image.img")
			c.Shell = true
		}},
		{"whole token quoted", `"init=/a b" rd.debug`, func(c *Config) {
			c.Init, c.Debug = "/a b", true
		}},
		{"unterminated quote runs to end", `rd.debug init="/a b rd.shell`, func(c *Config) {
			c.Init, c.Debug = "/a b rd.shell", true
		}},
		{"value with = splits at first", "init=/a=b,c=d", func(c *Config) { c.Init = "/a=b,c=d" }},
		{"-- ends our arguments", "rd.debug -- rd.shell single", func(c *Config) { c.Debug = true }},

		// Live options and ours.
		{"live options", "rd.live.overlay.size=4096 rd.live.image rd.live.overlay.overlayfs rd.live.ram=1", func(c *Config) {
			c.OverlaySize, c.Fetch = 4096, FetchRAM
		}},
		{"rd.live.ram=0", "rd.live.ram=0", func(c *Config) {}},
		{"streamroot.fetch beats rd.live.ram", "streamroot.fetch=lazy rd.live.ram", func(c *Config) { c.Fetch = FetchLazy }},
		{"fetch stream", "streamroot.fetch=stream", func(c *Config) { c.Fetch = FetchStream }},
		{"fetch last wins", "streamroot.fetch=bogus streamroot.fetch=ram", func(c *Config) { c.Fetch = FetchRAM }},
		{"digests", "streamroot.sha256=" + strings.Repeat("AB", 32) + " streamroot.manifest=sha256:" + hex64a, func(c *Config) {
			c.SHA256, c.Manifest = sha(0xab), sha(0xaa)
		}},
		{"manifest url", "streamroot.manifest.url=https://s/img.manifest", func(c *Config) { c.ManifestURL = "https://s/img.manifest" }},
		{"trust", "streamroot.trust=8f1a2b3c4d5e6f70,1,0000000000000001", func(c *Config) { c.Trust = []string{"8F1A2B3C4D5E6F70", "0000000000000001"} }},
		{"trust narrows", "streamroot.trust=A,B,C streamroot.trust=c,a,D", func(c *Config) { c.Trust = []string{"000000000000000C", "000000000000000A"} }},
		{"min version highest", "streamroot.min_version=7 streamroot.min_version=3", func(c *Config) { c.MinVersion = 7 }},
		{"cache bound", "streamroot.cache=32", func(c *Config) { c.CacheMiB = 32 }},
		{"cache bound last wins", "streamroot.cache=8 streamroot.cache=1048576", func(c *Config) { c.CacheMiB = 1 << 20 }},
		{"onfail halt", "streamroot.onfail=halt streamroot.reboot.delay=0", func(c *Config) {
			c.OnFail, c.RebootDelay = OnFailHalt, 0
		}},
		{"onfail shell", "streamroot.onfail=shell streamroot.reboot.delay=5", func(c *Config) {
			c.OnFail, c.RebootDelay = OnFailShell, 5*time.Second
		}},
		{"tpm required", "streamroot.tpm=required", func(c *Config) { c.TPM = TPMRequired }},
		{"tpm off, last wins", "streamroot.tpm=required streamroot.tpm=off", func(c *Config) { c.TPM = TPMOff }},
		{"tpm auto", "streamroot.tpm=auto", func(c *Config) {}},
		{"writable fsimg off is fine", "rd.writable.fsimg=0", func(c *Config) {}},

		// Debug and policy.
		{"rd.shell=1", "rd.shell=1", func(c *Config) { c.Shell = true }},
		{"rd.shell then rd.shell=0", "rd.shell rd.shell=0", func(c *Config) {}},
		{"rd.shell=no", "rd.shell=no", func(c *Config) {}},
		{"rd.debug", "rd.debug", func(c *Config) { c.Debug = true }},
		{"rd.debug=off", "rd.debug=off", func(c *Config) {}},
		{"retry", "rd.retry=0", func(c *Config) { c.Retry = 0 }},
		{"retry last wins", "rd.retry=-1 rd.retry=60", func(c *Config) { c.Retry = time.Minute }},
		{"noverifyssl", "rd.noverifyssl", func(c *Config) { c.NoVerifySSL = true }},
		{"bare break", "rd.break", func(c *Config) { c.Break = []string{"switch"} }},
		{"breaks accumulate", "rd.break=pre-mount,network rd.break=network rd.break", func(c *Config) {
			c.Break = []string{"pre-mount", "network", "switch"}
		}},

		// Unknown and no-op arguments.
		{"unknown rd args ignored once", "rd.udev.log_level=3 rd.plymouth=0 rd.udev.log_level=3 rd.luks=1 rd.live.overlay=LABEL=x", func(c *Config) {
			c.Ignored = []string{"rd.plymouth=0", "rd.udev.log_level=3", "rd.luks=1", "rd.live.overlay=LABEL=x"}
		}},
		{"foreign args pass", "console=ttyS0,115200n8 quiet fdi.pxauto=1 fdi.pxip=1.2.3.4/24 BOOT_IMAGE=/vmlinuz rd.lvm=0 =x x=", func(c *Config) {}},

		// Network.
		{"ip methods", "ip=on ip=any ip=dhcp6 ip=auto6 ip=off ip=none ip=single-dhcp ip=either6 ip=link6 ip=auto", func(c *Config) {
			c.Net.IP = []IPConf{
				{Arg: "ip=on", Method: IPOn}, {Arg: "ip=any", Method: IPAny},
				{Arg: "ip=dhcp6", Method: IPDHCP6}, {Arg: "ip=auto6", Method: IPAuto6},
				{Arg: "ip=off", Method: IPOff}, {Arg: "ip=none", Method: IPNone},
				{Arg: "ip=single-dhcp", Method: IPDHCP},
				{Arg: "ip=either6", Method: IPEither6}, {Arg: "ip=link6", Method: IPLink6},
				{Arg: "ip=auto", Method: IPAuto},
			}
		}},
		{"ip iface:method", "ip=eth0:dhcp ip=:dhcp6", func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=eth0:dhcp", Iface: "eth0", Method: IPDHCP}, {Arg: "ip=:dhcp6", Method: IPDHCP6}}
		}},
		{"ip iface:method:mtu:mac", "ip=eth0:dhcp:9000:52:54:00:12:34:56", func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=eth0:dhcp:9000:52:54:00:12:34:56", Iface: "eth0", Method: IPDHCP,
				MTU: 9000, MAC: mac("52:54:00:12:34:56")}}
		}},
		{"ip iface:method::mac", "ip=enp1s0:on::52-54-00-12-34-56", func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=enp1s0:on::52-54-00-12-34-56", Iface: "enp1s0", Method: IPOn, MAC: mac("52:54:00:12:34:56")}}
		}},
		{"ip static with dns", "ip=192.0.2.10::192.0.2.1:255.255.255.0:node1:eth0:none:192.0.2.53:192.0.2.54", func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=192.0.2.10::192.0.2.1:255.255.255.0:node1:eth0:none:192.0.2.53:192.0.2.54",
				Iface: "eth0", Method: IPNone, Addr: ip("192.0.2.10"), Gateway: ip("192.0.2.1"),
				Mask: net.CIDRMask(24, 32), Hostname: "node1", DNS: []net.IP{ip("192.0.2.53"), ip("192.0.2.54")}}}
		}},
		{"ip static prefix, off, mtu, mac", "ip=10.1.2.3:10.1.2.1:10.1.2.254:16::eth1:off:1400:52:54:00:AB:CD:EF", func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=10.1.2.3:10.1.2.1:10.1.2.254:16::eth1:off:1400:52:54:00:AB:CD:EF",
				Iface: "eth1", Method: IPOff, Addr: ip("10.1.2.3"), Peer: ip("10.1.2.1"), Gateway: ip("10.1.2.254"),
				Mask: net.CIDRMask(16, 32), MTU: 1400, MAC: mac("52:54:00:ab:cd:ef")}}
		}},
		{"ip from PXELinux IPAPPEND 1", "ip=dhcp ip=10.77.0.94:10.77.0.1:10.77.0.1:255.255.255.0", func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=dhcp", Method: IPDHCP},
				{Arg: "ip=10.77.0.94:10.77.0.1:10.77.0.1:255.255.255.0", Method: IPDHCP, Firmware: true,
					Addr: ip("10.77.0.94"), Gateway: ip("10.77.0.1"), Mask: net.CIDRMask(24, 32)}}
		}},
		{"ip from IPAPPEND 1, no router", "ip=10.77.0.94:10.77.0.1:0.0.0.0:255.255.0.0", func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=10.77.0.94:10.77.0.1:0.0.0.0:255.255.0.0", Method: IPDHCP, Firmware: true,
				Addr: ip("10.77.0.94"), Mask: net.CIDRMask(16, 32)}}
		}},
		{"ip static empty method", "ip=10.0.0.2::10.0.0.1:255.0.0.0:::", func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=10.0.0.2::10.0.0.1:255.0.0.0:::", Method: IPNone,
				Addr: ip("10.0.0.2"), Gateway: ip("10.0.0.1"), Mask: net.CIDRMask(8, 32)}}
		}},
		{"ip static ipv6", "ip=[2001:db8::10]::[2001:db8::1]:64:h.example.com:eth0:none:[2001:db8::53]", func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=[2001:db8::10]::[2001:db8::1]:64:h.example.com:eth0:none:[2001:db8::53]",
				Iface: "eth0", Method: IPNone, Addr: ip("2001:db8::10"), Gateway: ip("2001:db8::1"),
				Mask: net.CIDRMask(64, 128), Hostname: "h.example.com", DNS: []net.IP{ip("2001:db8::53")}}}
		}},
		{"ip long form dhcp", "ip=:::::eth0:dhcp", func(c *Config) {
			c.Net.IP = []IPConf{{Arg: "ip=:::::eth0:dhcp", Iface: "eth0", Method: IPDHCP}}
		}},
		{"bootif forms", "BOOTIF=AA-BB-CC-DD-EE-FF", func(c *Config) { c.Net.BootIF = mac("aa:bb:cc:dd:ee:ff") }},
		{"bootif upper with type", "BOOTIF=01-AA-BB-CC-DD-EE-0F", func(c *Config) { c.Net.BootIF = mac("aa:bb:cc:dd:ee:0f") }},
		{"bootif colons (GRUB $net_default_mac)", "BOOTIF=52:54:00:12:34:56", func(c *Config) { c.Net.BootIF = mac("52:54:00:12:34:56") }},
		{"bootif type + colons", "BOOTIF=01-52:54:00:12:34:56", func(c *Config) { c.Net.BootIF = mac("52:54:00:12:34:56") }},
		{"bootif empty", "BOOTIF=", func(c *Config) {}},
		{"ifname", "ifname=net0:52:54:00:12:34:56 ifname=bootnic:AA:BB:CC:DD:EE:FF bootdev=bootnic", func(c *Config) {
			c.Net.IfNames = []IfName{{"net0", mac("52:54:00:12:34:56")}, {"bootnic", mac("aa:bb:cc:dd:ee:ff")}}
			c.Net.BootDev = "bootnic"
		}},
		{"nameservers", "nameserver=192.0.2.53 nameserver=[2001:db8::53] nameserver=2001:db8::54", func(c *Config) {
			c.Net.Nameservers = []net.IP{ip("192.0.2.53"), ip("2001:db8::53"), ip("2001:db8::54")}
		}},
		{"net flags", "rd.neednet rd.peerdns=0 rd.net.timeout.dhcp=10 rd.net.timeout.carrier=5", func(c *Config) {
			c.Net.PeerDNS = false
			c.Net.DHCPTimeout, c.Net.CarrierTimeout = 10*time.Second, 5*time.Second
		}},
		{"rd.neednet=0", "rd.neednet=0 rd.peerdns=1", func(c *Config) {
			c.Warnings = []Warning{{Arg: "rd.neednet=0", Reason: "no effect: the root is remote, so the network comes up all the same"}}
		}},
		{"rapid commit off", "rd.net.dhcp.rapid-commit=0", func(c *Config) { c.Net.RapidCommit = false }},
		{"rapid commit on", "rd.net.dhcp.rapid-commit rd.net.dhcp.rapid-commit=1", func(c *Config) {}},
		{"net.ifnames=0", "net.ifnames=0", func(c *Config) { c.Net.Predictable = false }},
		{"net.ifnames=1", "net.ifnames=1", func(c *Config) {}},
		{"client ids", "rd.net.dhcp.client-id=mac rd.net.dhcp.client-id=01:52:54:00:12:34:56 rd.net.dhcp.client-id=eth0:mac " +
			"rd.net.dhcp.client-id=eth1:@fdi rd.net.dhcp.client-id=@a:b rd.net.dhcp.client-id=eth2:ff:00", func(c *Config) {
			c.Net.ClientIDs = []ClientID{
				{Kind: ClientIDMAC},
				{Kind: ClientIDBytes, Bytes: []byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56}},
				{Iface: "eth0", Kind: ClientIDMAC},
				{Iface: "eth1", Kind: ClientIDText, Bytes: []byte("\x00fdi")},
				{Kind: ClientIDText, Bytes: []byte("\x00a:b")},
				{Iface: "eth2", Kind: ClientIDBytes, Bytes: []byte{0xff, 0}},
			}
		}},
		{"duids", "rd.net.dhcp.duid=ll rd.net.dhcp.duid=00:03:00:01:52:54:00:12:34:56 rd.net.dhcp.duid=eth0:00-04-ff rd.net.dhcp.duid=eth1:ll", func(c *Config) {
			c.Net.DUIDs = []DUID{
				{},
				{Bytes: []byte{0, 3, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56}},
				{Iface: "eth0", Bytes: []byte{0, 4, 0xff}},
				{Iface: "eth1"},
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkParse(t, tt.in, tt.want) })
	}
}

// checkParse parses in and compares the whole Config with the defaults as
// edit changes them.
func checkParse(t *testing.T, in string, edit func(c *Config)) {
	t.Helper()
	got, err := Parse(in)
	if err != nil {
		t.Fatalf("Parse(%q): %v", in, err)
	}
	want := defaults()
	edit(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(%q)\n got %+v\nwant %+v", in, got, want)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Root.Kind != RootNone || c.Retry != 180*time.Second || c.RebootDelay != 30*time.Second ||
		c.LiveDir != "LiveOS" || c.SquashImg != "squashfs.img" || c.OnFail != OnFailReboot ||
		!c.Net.PeerDNS || !c.Net.RapidCommit || !c.Net.UseBootIF || c.Fetch != FetchDefault || c.Shell || len(c.Ignored) != 0 {
		t.Errorf("defaults wrong: %+v", c)
	}
}

// TestErrors checks that each bad token is reported as an ArgError naming
// exactly that token, with a reason containing want.
func TestErrors(t *testing.T) {
	tests := []struct {
		in, bad, want string
	}{
		// Roots.
		{"root=live:ftp://x/s.img", "root=live:ftp://x/s.img", `scheme "ftp"`},
		{"root=live:tftp://x/s.img", "root=live:tftp://x/s.img", `scheme "tftp"`},
		{"root=live:nfs:srv:/exports/s.img", "root=live:nfs:srv:/exports/s.img", `scheme "nfs"`},
		{"root=live:file:///s.img", "root=live:file:///s.img", `scheme "file"`},
		{"root=live:http:///s.img", "root=live:http:///s.img", "no host"},
		{"root=live:http://:80/s.img", "root=live:http://:80/s.img", "no host"},
		{"root=live:http:s.img", "root=live:http:s.img", "no host"},
		{"root=live:", "root=live:", "empty URL"},
		{"root=", "root=", "empty root"},
		{"root=live:http://a%zz/", "root=live:http://a%zz/", "cannot parse URL"},
		{"root=live:server/s.img", "root=live:server/s.img", "not a URL"},
		{"root=live:CDLABEL=Fedora-Live", "root=live:CDLABEL=Fedora-Live", "local roots are not supported"},
		{"root=live:/dev/sr0", "root=live:/dev/sr0", "local roots are not supported"},
		{"root=/dev/sda1", "root=/dev/sda1", "local roots are not supported"},
		{"root=UUID=1234", "root=UUID=1234", "local roots are not supported"},
		{"root=nfs:srv:/x", "root=nfs:srv:/x", "unsupported root"},
		{"root=ftp://srv/x", "root=ftp://srv/x", `scheme "ftp"`},
		{"root=dhcp", "root=dhcp", "unsupported root"},
		{"root=nbd:", "root=nbd:", "missing NBD server"},
		{"root=nbd::exp", "root=nbd::exp", "missing NBD server"},
		{"root=nbd:srv", "root=nbd:srv", "missing NBD port or export"},
		{"root=nbd:srv:", "root=nbd:srv:", "missing NBD port or export"},
		{"root=nbd:srv:0", "root=nbd:srv:0", "out of range"},
		{"root=nbd:srv:65536", "root=nbd:srv:65536", "out of range"},
		{"root=nbd:srv:99999999999999999999999", "root=nbd:srv:99999999999999999999999", "out of range"},
		{"root=nbd:[fd00::1", "root=nbd:[fd00::1", "unterminated"},
		{"root=nbd:[10.0.0.1]:x", "root=nbd:[10.0.0.1]:x", "not an IPv6"},
		{"root=nbd:[fd00::1]x:e", "root=nbd:[fd00::1]x:e", "expected ':'"},
		{"root=nbd:a/b:e", "root=nbd:a/b:e", "not a host name"},
		{"netroot=nfs:srv:/x", "netroot=nfs:srv:/x", "unsupported netroot"},
		{"netroot=", "netroot=", "empty netroot"},
		{"netroot=nbd:srv", "netroot=nbd:srv", "missing NBD port"},
		{"root=live:http://a/b netroot=nbd:s:e", "root=live:http://a/b", "conflicts with"},
		{"rd.writable.fsimg", "rd.writable.fsimg", "not supported"},
		{"rd.writable.fsimg=1", "rd.writable.fsimg=1", "not supported"},
		{"init=sbin/init", "init=sbin/init", "absolute"},

		// Live options.
		{"rd.live.dir=", "rd.live.dir=", "empty path"},
		{"rd.live.dir=../x", "rd.live.dir=../x", ".."},
		{"rd.live.squashimg=/", "rd.live.squashimg=/", "must name a file"},
		{"rd.live.overlay.size=0", "rd.live.overlay.size=0", "greater than 0"},
		{"rd.live.overlay.size=-5", "rd.live.overlay.size=-5", "whole number"},
		{"rd.live.overlay.size=1G", "rd.live.overlay.size=1G", "whole number"},
		{"rd.live.overlay.size=+5", "rd.live.overlay.size=+5", "whole number"},

		// Ours.
		{"streamroot.fetch=fast", "streamroot.fetch=fast", "unknown fetch mode"},
		{"streamroot.fetch", "streamroot.fetch", "unknown fetch mode"},
		{"streamroot.onfail=poweroff", "streamroot.onfail=poweroff", "unknown failure policy"},
		{"streamroot.tpm=yes", "streamroot.tpm=yes", "unknown TPM policy"},
		{"streamroot.tpm", "streamroot.tpm", "unknown TPM policy"},
		{"streamroot.sha256=abc", "streamroot.sha256=abc", "exactly 64"},
		{"streamroot.sha256=" + strings.Repeat("zz", 32), "streamroot.sha256=" + strings.Repeat("zz", 32), "not hex"},
		{"streamroot.manifest=" + hex64a, "streamroot.manifest=" + hex64a, `start with "sha256:"`},
		{"streamroot.manifest=sha256:" + hex64a + "00", "streamroot.manifest=sha256:" + hex64a + "00", "exactly 64"},
		{"streamroot.manifest.url=ftp://x/m", "streamroot.manifest.url=ftp://x/m", `scheme "ftp"`},
		{"streamroot.manifest.url=", "streamroot.manifest.url=", "empty URL"},
		{"streamroot.reboot.delay=-1", "streamroot.reboot.delay=-1", "whole number of seconds"},
		{"streamroot.trust=", "streamroot.trust=", "not up to 16 hex digits"},
		{"streamroot.trust=xyz", "streamroot.trust=xyz", "not up to 16 hex digits"},
		{"streamroot.trust=A,,B", "streamroot.trust=A,,B", "not up to 16 hex digits"},
		{"streamroot.trust=12345678901234567", "streamroot.trust=12345678901234567", "not up to 16 hex digits"},
		{"streamroot.trust=A streamroot.trust=B", "streamroot.trust=B", "no key would be trusted"},
		{"streamroot.min_version=0", "streamroot.min_version=0", "whole number from 1"},
		{"streamroot.min_version=-1", "streamroot.min_version=-1", "whole number from 1"},
		{"streamroot.min_version=99999999999999999999", "streamroot.min_version=99999999999999999999", "whole number from 1"},
		{"streamroot.cache=0", "streamroot.cache=0", "at least 1 MiB"},
		{"streamroot.cache=", "streamroot.cache=", "whole number of MiB"},
		{"streamroot.cache", "streamroot.cache", "whole number of MiB"},
		{"streamroot.cache=-5", "streamroot.cache=-5", "whole number of MiB"},
		{"streamroot.cache=64M", "streamroot.cache=64M", "whole number of MiB"},
		{"streamroot.cache=1048577", "streamroot.cache=1048577", "too large"},
		{"streamroot.cache=99999999999999999999", "streamroot.cache=99999999999999999999", "too large"},
		{"streamroot.sha265=x", "streamroot.sha265=x", "unknown streamroot argument"},

		// Numbers.
		{"rd.retry=-1", "rd.retry=-1", "whole number of seconds"},
		{"rd.retry=abc", "rd.retry=abc", "whole number of seconds"},
		{"rd.retry=1.5", "rd.retry=1.5", "whole number of seconds"},
		{"rd.retry=", "rd.retry=", "whole number of seconds"},
		{"rd.retry=99999999999", "rd.retry=99999999999", "too large"},
		{"rd.break=,", "rd.break=,", "no stage"},

		// ip=.
		{"ip=", "ip=", "empty ip="},
		{"ip=bogus", "ip=bogus", `unknown method "bogus"`},
		{"ip=ibft", "ip=ibft", "not supported"},
		{"ip=eth0:foo", "ip=eth0:foo", "expected <iface>:<method>"},
		{"ip=[dhcp]", "ip=[dhcp]", "must not be in []"},
		{"ip=this-is-too-long-ifname:dhcp", "ip=this-is-too-long-ifname:dhcp", "longer than 15"},
		{"ip=eth0:dhcp:20", "ip=eth0:dhcp:20", "MTU"},
		{"ip=eth0:dhcp:1500:zz", "ip=eth0:dhcp:1500:zz", "MAC address"},
		{"ip=1.2.3:::24::eth0:none", "ip=1.2.3:::24::eth0:none", `client IP "1.2.3"`},
		{"ip=1.2.3.4:x::24::eth0:none", "ip=1.2.3.4:x::24::eth0:none", `peer "x"`},
		{"ip=1.2.3.4::1.2.3.999:24::eth0:none", "ip=1.2.3.4::1.2.3.999:24::eth0:none", `gateway "1.2.3.999"`},
		{"ip=1.2.3.4::1.2.3.1:255.0.255.0::eth0:none", "ip=1.2.3.4::1.2.3.1:255.0.255.0::eth0:none", "not contiguous"},
		{"ip=1.2.3.4::1.2.3.1:33::eth0:none", "ip=1.2.3.4::1.2.3.1:33::eth0:none", "out of range"},
		{"ip=1.2.3.4::1.2.3.1:mask::eth0:none", "ip=1.2.3.4::1.2.3.1:mask::eth0:none", "neither a dotted netmask"},
		{"ip=[fd00::2]::[fd00::1]:255.255.255.0::eth0:none", "ip=[fd00::2]::[fd00::1]:255.255.255.0::eth0:none", "use a prefix length"},
		{"ip=1.2.3.4::1.2.3.1:::eth0:none", "ip=1.2.3.4::1.2.3.1:::eth0:none", "needs a netmask"},
		{"ip=::1.2.3.1:24::eth0:none", "ip=::1.2.3.1:24::eth0:none", "needs a client IP"},
		{"ip=10.0.0.2::[fd00::1]:24::eth0:none", "ip=10.0.0.2::[fd00::1]:24::eth0:none", "same IP version"},
		{"ip=1.2.3.4::1.2.3.1:24:bad_host!:eth0:none", "ip=1.2.3.4::1.2.3.1:24:bad_host!:eth0:none", "hostname"},
		{"ip=1.2.3.4::1.2.3.1:24::a/b:none", "ip=1.2.3.4::1.2.3.1:24::a/b:none", "interface name"},
		{"ip=1.2.3.4::1.2.3.1:24::eth0:static", "ip=1.2.3.4::1.2.3.1:24::eth0:static", `unknown method "static"`},
		{"ip=1.2.3.4::1.2.3.1:24::eth0:none:8.8.8.8:nope", "ip=1.2.3.4::1.2.3.1:24::eth0:none:8.8.8.8:nope", "DNS server 2"},
		{"ip=1.2.3.4::1.2.3.1:24::eth0:none:8.8.8.8:8.8.4.4:1.1.1.1", "ip=1.2.3.4::1.2.3.1:24::eth0:none:8.8.8.8:8.8.4.4:1.1.1.1", "too many"},
		{"ip=fd00::2::fd00::1:64::eth0:none", "ip=fd00::2::fd00::1:64::eth0:none", "IPv6 goes in [brackets]"},
		{"ip=[fd00::2", "ip=[fd00::2", "unterminated ["},
		{"ip=[fd00::2]x:dhcp", "ip=[fd00::2]x:dhcp", "expected ':' after ]"},
		{"ip=1.2.3.4::1.2.3.1:24:[h]:eth0:none", "ip=1.2.3.4::1.2.3.1:24:[h]:eth0:none", "not an IP address field"},

		// Other network arguments.
		{"BOOTIF=01-52-54-00-12-34", "BOOTIF=01-52-54-00-12-34", "multicast"},
		{"BOOTIF=52-54-00-12-34", "BOOTIF=52-54-00-12-34", "not an Ethernet MAC"},
		{"ifname=net0", "ifname=net0", "missing :<mac>"},
		{"ifname=:52:54:00:12:34:56", "ifname=:52:54:00:12:34:56", "is empty"},
		{"ifname=a/b:52:54:00:12:34:56", "ifname=a/b:52:54:00:12:34:56", "contains '/'"},
		{"ifname=net0:xx", "ifname=net0:xx", "MAC address"},
		{"bootdev=", "bootdev=", "is empty"},
		{"bootdev=0123456789abcdef", "bootdev=0123456789abcdef", "longer than 15"},
		{"nameserver=dns.example", "nameserver=dns.example", "not an IP"},
		{"rd.net.dhcp.client-id=", "rd.net.dhcp.client-id=", "not a client id"},
		{"rd.net.dhcp.client-id=01", "rd.net.dhcp.client-id=01", "not a client id"},
		{"rd.net.dhcp.client-id=eth0:01", "rd.net.dhcp.client-id=eth0:01", "at least 2"},
		{"rd.net.dhcp.client-id=eth0:@", "rd.net.dhcp.client-id=eth0:@", "client id"},
		{"rd.net.dhcp.client-id=a/b:mac", "rd.net.dhcp.client-id=a/b:mac", "interface name"},
		{"rd.net.dhcp.duid=", "rd.net.dhcp.duid=", "not a DUID"},
		{"rd.net.dhcp.duid=00:03", "rd.net.dhcp.duid=00:03", "3 to 130 hex bytes"},
		{"rd.net.dhcp.duid=eth0:00:03", "rd.net.dhcp.duid=eth0:00:03", "3 to 130 hex bytes"},
		{"rd.net.dhcp.duid=eth0:@x", "rd.net.dhcp.duid=eth0:@x", "3 to 130 hex bytes"},
		{"rd.net.dhcp.duid=a/b:ll", "rd.net.dhcp.duid=a/b:ll", "interface name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			line := "ip=dhcp " + tt.in + " rd.shell rd.debug"
			c, err := Parse(line)
			if err == nil {
				t.Fatalf("Parse(%q): no error", line)
			}
			var ae *ArgError
			if !errors.As(err, &ae) {
				t.Fatalf("Parse(%q): error %v is not an *ArgError", line, err)
			}
			if ae.Arg != tt.bad {
				t.Errorf("ArgError.Arg = %q, want %q", ae.Arg, tt.bad)
			}
			if !strings.Contains(ae.Reason, tt.want) {
				t.Errorf("ArgError.Reason = %q, want it to contain %q", ae.Reason, tt.want)
			}
			if ae.Hint() == "" {
				t.Errorf("ArgError for %q has no hint", ae.Arg)
			}
			if !strings.HasPrefix(err.Error(), `kernel argument "`) {
				t.Errorf("Error() = %q", err.Error())
			}
			// Best effort: the failure policy is still readable.
			if c == nil || !c.Shell || !c.Debug || len(c.Net.IP) != 1 {
				t.Errorf("config not usable after error: %+v", c)
			}
		})
	}
}

func TestAllErrorsReported(t *testing.T) {
	c, err := Parse(`root=live:ftp://x rd.retry=x "rd.live.dir=../a" rd.shell`)
	got := ArgErrors(err)
	want := []string{`rd.retry=x`, `"rd.live.dir=../a"`, `root=live:ftp://x`}
	if len(got) != len(want) {
		t.Fatalf("got %d errors (%v), want %d", len(got), err, len(want))
	}
	for i, ae := range got {
		if ae.Arg != want[i] {
			t.Errorf("error %d names %q, want %q", i, ae.Arg, want[i])
		}
	}
	if !c.Shell || c.Retry != DefaultRetry || c.LiveDir != DefaultLiveDir || c.Root.Kind != RootNone {
		t.Errorf("best-effort config wrong: %+v", c)
	}
	if ArgErrors(nil) != nil {
		t.Error("ArgErrors(nil) != nil")
	}
}

func TestArgErrorMessage(t *testing.T) {
	e := &ArgError{Arg: "root=live:ftp://x", Reason: "bad"}
	if got, want := e.Error(), `kernel argument "root=live:ftp://x": bad`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestStringers(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{RootNone.String(), "none"}, {RootLive.String(), "live"}, {RootNBD.String(), "nbd"},
		{RootKind(9).String(), "RootKind(?)"},
		{ClientIDMAC.String(), "mac"}, {ClientIDBytes.String(), "bytes"}, {ClientIDText.String(), "text"},
		{ClientIDKind(0).String(), "ClientIDKind(?)"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestStatic(t *testing.T) {
	c, err := Parse("ip=10.0.0.2::10.0.0.1:24::eth0:none ip=eth0:dhcp ip=off")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, false} {
		if got := c.Net.IP[i].Static(); got != want {
			t.Errorf("%s: Static() = %v, want %v", c.Net.IP[i].Arg, got, want)
		}
	}
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []token
	}{
		{`a b=c  "d=e f" g="h i"j` + "\t--\tk", []token{
			{raw: "a", key: "a"},
			{raw: "b=c", key: "b", val: "c", hasVal: true},
			{raw: `"d=e f"`, key: "d", val: "e f", hasVal: true},
			{raw: `g="h i"j`, key: "g", val: "h ij", hasVal: true},
		}},
		{`x= "--"`, []token{{raw: "x=", key: "x", hasVal: true}}},
		{`--=1 y`, []token{{raw: "--=1", key: "--", val: "1", hasVal: true}, {raw: "y", key: "y"}}},
	}
	for _, tt := range tests {
		if got := tokenize(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("tokenize(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
