package bootcfg

import (
	"errors"
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
		"root=nbd:[fd00::1]:10809:squashfs:ro:timeout=3 netroot=nbd:s:e root=/dev/nbd0",
		"ip=192.0.2.10::192.0.2.1:255.255.255.0:node1:eth0:none:192.0.2.53:192.0.2.54",
		"ip=[2001:db8::10]::[2001:db8::1]:64:h:eth0:none:[2001:db8::53] ip=eth0:dhcp:9000:52:54:00:12:34:56",
		"BOOTIF=01-aa-bb-cc-dd-ee-ff ifname=n0:aa:bb:cc:dd:ee:ff bootdev=n0 nameserver=[::1]",
		"rd.net.dhcp.client-id=eth0:@fdi rd.net.dhcp.client-id=01:02 rd.break=a,b rd.break rd.retry=5",
		"streamroot.manifest=sha256:" + hex64a + " streamroot.manifest.url=http://m/x streamroot.onfail=shell",
		"root=live:ftp://x rd.writable.fsimg rd.foo=bar -- rd.shell",
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
	})
}
