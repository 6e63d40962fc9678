package bootcfg

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		foremanHTTP,
		foremanNBD,
		"",
		`root="live:http://s/a b.iso" rd.live.dir=x rd.live.squashimg=y`,
		"root=live:https://[fd00::1]:8443/s.img streamroot.fetch=lazy streamroot.sha256=" + hex64a,
		"streamroot.fetch=lazy streamroot.cache=64 streamroot.cache=0 streamroot.cache=1048577",
		"streamroot.trust=8f1a2b3c4d5e6f70,1 streamroot.trust=1 streamroot.min_version=3 streamroot.min_version=18446744073709551615",
		"root=nbd:[fd00::1]:10809:squashfs:ro:timeout=3 netroot=nbd:s:e root=/dev/nbd0",
		"ip=192.0.2.10::192.0.2.1:255.255.255.0:node1:eth0:none:192.0.2.53:192.0.2.54",
		"ip=[2001:db8::10]::[2001:db8::1]:64:h:eth0:none:[2001:db8::53] ip=eth0:dhcp:9000:52:54:00:12:34:56",
		"BOOTIF=01-aa-bb-cc-dd-ee-ff ifname=n0:aa:bb:cc:dd:ee:ff bootdev=n0 nameserver=[::1]",
		"rd.net.dhcp.client-id=eth0:@fdi rd.net.dhcp.client-id=01:02 rd.break=a,b rd.break rd.retry=5",
		"streamroot.manifest=sha256:" + hex64a + " streamroot.manifest.url=http://m/x streamroot.onfail=shell",
		"root=live:ftp://x rd.writable.fsimg rd.foo=bar -- rd.shell",
		"ip=dhcp,dhcp6 ip=eth0:dhcp,dhcp6:1666 ip=:dhcp6,dhcp:1499 ip=auto ip=bridge123:auto:1500:52:54:00:12:34:56",
		"ip=203.0.113.2::203.0.113.1:26:hostname1.example.com:eth4 ip=172.25.1.100::172.25.1.1:24::eno2",
		"ip=192.0.2.2/16:::::eth0 ip=[2001:db8::2]/56::[2001:db8::1]::h:eth0:none ip=ens3:off ip=10.0.0.8:::::ens4:off",
		"rd.net.timeout.dhcp=infinity rd.net.timeout.carrier=x rd.net.timeout.ipv6dad=5 rd.net.dhcp.retry=3",
		"BOOTIF=00-52-54-00-12-34-56 rd.bootif=0 rd.net.dhcp.client-id=eth0:01-aa-bb-cc-dd-ee-ff",
		"vlan=eth0.100:eth0 ip=eth0.100:dhcp bond=bond0:eth0,eth1:mode=balance-rr:9000 bridge=bridge0:eth0,eth1",
		"team=team0:eth0,eth1 ib.pkey=ib0.8004 bond bridge team rd.ethtool=eth0:off:1000",
		"rd.route=[2001:DB8:3::/8]:[2001:DB8:2::1]:ens10 ip=10.0.0.2::10.0.0.1:24::52-54-00-12-34-56:none",
		"ip=192.0.2.10 netmask=255.255.255.0 gateway=192.0.2.1 hostname=n1 ksdevice=bootif mtu=9000",
		"rootflags=loop rootfstype=auto ro rd.neednet=0 biosdevname=0 ip=:::::eth0:",
		foremanTemplate,
		"root=live:/fdi.iso root=live:/dev/sr0 root=live:/ root=live:CDLABEL=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(in)
		if c == nil {
			t.Fatal("nil Config")
		}
		if err == nil && c.Root.Kind == RootLive {
			u := c.Root.URL
			if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
				t.Fatalf("accepted live root %v from %q", u, in)
			}
		}
		if err == nil && c.Root.Kind == RootNBD && (c.Root.NBDServer == "" || c.Root.NBDPort < 1 || c.Root.NBDPort > 65535) {
			t.Fatalf("accepted NBD root %+v from %q", c.Root, in)
		}
		// With an image URL built in, a path root is that URL and nothing
		// else; every other root is as without it.
		const baked = "http://10.77.0.1/fdi.iso"
		bc, berr := ParseWith(in, Defaults{ImageURL: baked})
		if berr == nil && bc.Root.Kind == RootLive && bc.Root.Path != "" && bc.Root.URL.String() != baked {
			t.Fatalf("path root %q resolved to %v, not the built-in %s", bc.Root.Path, bc.Root.URL, baked)
		}
		if err == nil && (berr != nil || bc.Root.Path != "" || !reflect.DeepEqual(bc, c)) {
			t.Fatalf("a built-in URL changed the parse of %q: %+v, %v", in, bc.Root, berr)
		}
		if err != nil {
			var ae *ArgError
			if !errors.As(err, &ae) {
				t.Fatalf("error is not an ArgError: %v", err)
			}
			all := ArgErrors(err)
			if len(all) == 0 {
				t.Fatalf("no ArgErrors in %v", err)
			}
			for _, ae := range all {
				if ae.Arg == "" || !strings.Contains(in, ae.Arg) {
					t.Fatalf("ArgError.Arg %q does not occur in %q", ae.Arg, in)
				}
				if ae.Reason == "" {
					t.Fatalf("ArgError for %q has no reason", ae.Arg)
				}
			}
		}
		for _, s := range c.Ignored {
			if !strings.Contains(in, s) {
				t.Fatalf("Ignored %q does not occur in %q", s, in)
			}
		}
		for _, w := range c.Warnings {
			if w.Arg == "" || !strings.Contains(in, w.Arg) || w.Reason == "" {
				t.Fatalf("Warning %+v does not name a token of %q or has no reason", w, in)
			}
		}
		for _, ipc := range c.Net.IP {
			if ipc.Method == "" {
				t.Fatalf("%s: empty method", ipc.Arg)
			}
			if ipc.Static() && err == nil && ipc.Mask == nil {
				t.Fatalf("%s: static without a netmask accepted", ipc.Arg)
			}
		}
	})
}
