package qemutests

import (
	"strings"
	"testing"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// A DHCP server sends a domain name (option 15) that would add a
// nameserver line to resolv.conf, a 70-byte host name (option 12, more
// than sethostname takes) and a classless static route (option 121) via a
// gateway that is not on the link. The node boots anyway; the booted
// root's resolv.conf names the server's DNS server and nothing injected;
// the host name is not the hostile one; the console names each ignored
// option. With rd.peerdns=0 and nameserver=, resolv.conf holds nameserver=
// alone: neither DHCP's server nor its (valid) domain.
func TestDHCPHostileStrings(t *testing.T) {
	t.Parallel()
	hostile := "lab\nnameserver 6.6.6.6"
	longName := strings.Repeat("h", 70)
	for _, tc := range []struct {
		name       string
		extra      []string
		append     string
		resolv     string   // the booted root's /etc/resolv.conf, after the comment line
		warnings   []string // console lines (substrings)
		sentOption string   // in dnsmasq's log: it did send the hostile value
	}{
		{
			name: "hostile",
			extra: []string{
				// dnsmasq sends a typed option's text as given (hex too):
				// from its command line, unquoted, a newline goes out raw.
				"--dhcp-option-force=15," + hostile,
				"--dhcp-option-force=12," + longName,
				"--dhcp-option=option:dns-server,10.77.0.1",
				"--dhcp-option=121,192.168.50.0/24,192.0.2.1,0.0.0.0/0,10.77.0.1",
			},
			append: "ip=dhcp",
			resolv: "nameserver 10.77.0.1\n",
			warnings: []string{
				`WARNING: ignoring DHCP option 15 (domain name) "lab\nnameserver 6.6.6.6": not a valid domain name`,
				`WARNING: ignoring DHCP option 12 (host name) "hhhhhhhh`,
				"WARNING: cannot add route 192.168.50.0/24 via 192.0.2.1 on ens3 (DHCP option 121); going on without it",
			},
			sentOption: "option: 15",
		},
		{
			name: "rd.peerdns=0",
			extra: []string{
				"--dhcp-option=option:domain-name,lab",
				"--dhcp-option=option:dns-server,10.77.0.1",
			},
			append:     "ip=dhcp rd.peerdns=0 nameserver=10.77.0.53",
			resolv:     "nameserver 10.77.0.53\n",
			sentOption: "option: 15",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env.Require(t)
			n := &testNet{fx: env.Fixtures(t)}
			n.ns = env.NewNetns(t)
			n.dhcp = harness.StartDnsmasq(t, n.ns, harness.DnsmasqOptions{Extra: tc.extra})
			n.web = harness.StartNginx(t, n.ns, harness.NginxOptions{})
			url := n.serve(t, "plain.squashfs", n.fx.Plain)
			vm := n.boot(t, harness.BootOptions{Append: tc.append + " root=live:" + url})
			r := vm.ExpectReport(t)
			checkRoot(t, r, "plain")
			checkLease(t, n.dhcp, r, harness.BootMAC)
			if !strings.Contains(n.dhcp.Log(), tc.sentOption) {
				t.Errorf("dnsmasq's log does not show it sent %q:\n%s", tc.sentOption, n.dhcp.Log())
			}
			body, ok := strings.CutPrefix(r.ResolvConf, "# written by streamroot from the boot network's lease\n")
			if !ok || body != tc.resolv {
				t.Errorf("the booted root's /etc/resolv.conf:\n%s\nwant after the comment:\n%s", r.ResolvConf, tc.resolv)
			}
			if strings.Contains(r.ResolvConf, "6.6.6.6") {
				t.Errorf("a DHCP string added a nameserver:\n%s", r.ResolvConf)
			}
			if strings.Contains(r.Hostname, "hhhh") {
				t.Errorf("the booted root's host name is the hostile one: %q", r.Hostname)
			}
			console := vm.Console()
			for _, w := range tc.warnings {
				if !strings.Contains(console, w) {
					t.Errorf("the console lacks %q", w)
				}
			}
		})
	}
}
