package qemutests

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// dnsmasqPacket is a DHCP message line of dnsmasq's log for one client:
// "... dnsmasq-dhcp[4711]: 2910352263 DHCPDISCOVER(br0) 52:54:00:12:34:56".
var dnsmasqPacket = regexp.MustCompile(`(?m)dnsmasq-dhcp\[\d+\]: (?:(\d+) )?(DHCP[A-Z]+)\(\S+\) (?:\S+ )?([0-9a-f:]{17})\b`)

// dhcpExchanges lists dnsmasq's message types for mac by transaction, in
// the order each began, each type once (a resent message is one).
func dhcpExchanges(log, mac string) [][]string {
	var order []string
	by := map[string][]string{}
	for _, m := range dnsmasqPacket.FindAllStringSubmatch(log, -1) {
		if !strings.EqualFold(m[3], mac) {
			continue
		}
		if _, ok := by[m[1]]; !ok {
			order = append(order, m[1])
		}
		if !slices.Contains(by[m[1]], m[2]) {
			by[m[1]] = append(by[m[1]], m[2])
		}
	}
	var out [][]string
	for _, x := range order {
		out = append(out, by[x])
	}
	return out
}

// dhcpMessages lists the DHCP message types dnsmasq logged for mac, each
// once, in the order of their first line: the client resends its DISCOVER
// while dnsmasq probes the address (3 s), and dnsmasq answers each copy.
func dhcpMessages(log, mac string) []string {
	var out []string
	for _, m := range dnsmasqPacket.FindAllStringSubmatch(log, -1) {
		if strings.EqualFold(m[3], mac) && !slices.Contains(out, m[2]) {
			out = append(out, m[2])
		}
	}
	return out
}

// DHCPv4 rapid commit (RFC 4039) against dnsmasq --dhcp-rapid-commit: the
// node leases its one address by DISCOVER and ACK alone (dnsmasq never
// sees a REQUEST from it) and the booted root holds that address; with
// rd.net.dhcp.rapid-commit=0 the same server gets the four-message
// exchange. The servers that do not allow it (every other boot test's
// dnsmasq, and Kea) get the usual exchange.
func TestDHCPRapidCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, append string
		want         []string // dnsmasq's messages for the node, in order
	}{
		{"rapid", "", []string{"DHCPDISCOVER", "DHCPACK"}},
		{"rd.net.dhcp.rapid-commit=0", "rd.net.dhcp.rapid-commit=0", []string{"DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPACK"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := setup(t, netOptions{dhcp: harness.DnsmasqOptions{Extra: []string{"--dhcp-rapid-commit"}}})
			url := n.serve(t, "plain.squashfs", n.fx.Plain)
			vm := n.boot(t, harness.BootOptions{Append: strings.TrimSpace(tc.append + " " + harness.SeedCmdline(url))})
			r := vm.ExpectReport(t)
			checkRoot(t, r, "plain")
			checkLease(t, n.dhcp, r, harness.BootMAC)
			if got := dhcpMessages(n.dhcp.Log(), harness.BootMAC); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("dnsmasq's exchange with the node: %v, want %v\nlog:\n%s", got, tc.want, tailLines(n.dhcp.Log(), 40))
			}
		})
	}
}
