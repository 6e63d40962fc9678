package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The IPv6 side of a test's namespace: br0 also carries ServerIP6 (a
// unique local /64 of its own, fd00:77::/64), and Dnsmasq6 advertises it
// (RA) and leases from it (DHCPv6).
const (
	ServerIP6  = "fd00:77::1"
	Prefix6    = "fd00:77::/64"
	DNSServer6 = "fd00:77::53" // the RDNSS / DHCPv6 DNS server the tests hand out (none answers there)
	Domain6    = "v6.test"     // the DNSSL / DHCPv6 domain list
)

// EnableIPv6 puts ServerIP6/64 and the link-local fe80::1 on br0, without
// duplicate address detection (usable at once, for servers to bind), and
// gives br0 a carrier before any guest's tap joins it (one end of a veth
// pair as a port): without carrier a bridge has no usable link-local
// address, and kea-dhcp6 and radvd need one.
func EnableIPv6(t testing.TB, ns *Netns) {
	t.Helper()
	for _, s := range [][]string{
		{"link", "add", "v6port0", "type", "veth", "peer", "name", "v6port1"},
		{"link", "set", "v6port0", "master", Bridge0},
		{"link", "set", "v6port0", "up"},
		{"link", "set", "v6port1", "up"},
		{"addr", "add", "fe80::1/64", "dev", Bridge0, "nodad"},
		{"addr", "add", ServerIP6 + "/64", "dev", Bridge0, "nodad"},
	} {
		if err := ns.IP(s...); err != nil {
			t.Fatalf("netns %s: %v", ns.Name, err)
		}
	}
}

// Dnsmasq6Options configure the IPv6 server.
type Dnsmasq6Options struct {
	// SLAAC advertises the prefix for autoconfiguration (ra-only: no
	// DHCPv6 address); default: stateful DHCPv6 (the RA's M flag, no A).
	SLAAC bool
	// IPv4 also serves DHCPv4 (10.77.0.50-150), as StartDnsmasq does: dual stack.
	IPv4  bool
	Extra []string
}

// Dnsmasq6 is a dnsmasq sending router advertisements and answering
// DHCPv6 (and DHCPv4 with IPv4) on br0, DNS disabled. Its lease file
// holds both families; --log-dhcp logs every exchange.
type Dnsmasq6 struct {
	PeerFiles
}

// StartDnsmasq6 starts dnsmasq in ns (EnableIPv6 first) and waits until it
// advertises. It is killed by t.Cleanup.
func StartDnsmasq6(t testing.TB, ns *Netns, opts Dnsmasq6Options) *Dnsmasq6 {
	t.Helper()
	d := &Dnsmasq6{dnsmasqFiles(t, ns, "dnsmasq6")}
	rng := "--dhcp-range=fd00:77::100,fd00:77::1ff,64,1h"
	if opts.SLAAC {
		rng = "--dhcp-range=fd00:77::,ra-only,64,1h"
	}
	args := []string{
		"--no-daemon", "--conf-file=/dev/null", "--no-hosts", "--no-resolv", dnsPort(false),
		"--interface=" + Bridge0, "--bind-interfaces", "--dhcp-authoritative",
		"--enable-ra", rng,
		// RDNSS and DNSSL in the RA, DNS and domain list in DHCPv6.
		"--dhcp-option=option6:dns-server,[" + DNSServer6 + "]",
		"--dhcp-option=option6:domain-search," + Domain6,
		"--dhcp-leasefile=" + d.LeaseFile, "--log-dhcp", "--log-facility=" + d.LogFile, "--pid-file=",
	}
	if opts.IPv4 {
		args = append(args, "--dhcp-range=10.77.0.50,10.77.0.150,255.255.255.0,1h", "--dhcp-option=option:router,"+ServerIP)
	}
	args = append(args, opts.Extra...)
	cmd := ns.Command("dnsmasq", args...)
	d.proc = startTestPeer(t, "dnsmasq", cmd, filepath.Join(d.Dir, "dnsmasq.stderr"), 10*time.Second, logShows(d.LogFile, "IPv6 router advertisement enabled"))
	t.Logf("dnsmasq (IPv6%s): pid %d in %s, %s", map[bool]string{true: " + IPv4"}[opts.IPv4], cmd.Process.Pid, ns.Name, rng)
	return d
}

// Lease6 is one DHCPv6 line of dnsmasq's lease file.
type Lease6 struct {
	Expiry   time.Time
	IAID     uint32
	IP       string
	Hostname string // "" when the client sent none
	DUID     string // lower case, colon separated
}

// Leases6 parses the DHCPv6 leases of the lease file; no file yet means none.
func (d *Dnsmasq6) Leases6() ([]Lease6, error) { return parseOptional(d.LeaseFile, ParseLeases6) }

// Leases4 parses the DHCPv4 leases of the lease file.
func (d *Dnsmasq6) Leases4() ([]Lease, error) { return parseOptional(d.LeaseFile, ParseLeases) }

// ParseLeases6 reads dnsmasq's DHCPv6 lease lines,
// "<expiry> <iaid> <ipv6> <hostname|*> <client-duid>" (after the server's
// "duid <server-duid>" line); DHCPv4 lines (a MAC in the second field) are
// skipped.
func ParseLeases6(b []byte) ([]Lease6, error) {
	var out []Lease6
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] == "duid" || len(f) == 5 && strings.Count(f[1], ":") == 5 {
			continue
		}
		if len(f) != 5 {
			return nil, fmt.Errorf("lease line %q: want 5 fields", sc.Text())
		}
		exp, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("lease line %q: %v", sc.Text(), err)
		}
		iaid, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("lease line %q: IAID: %v", sc.Text(), err)
		}
		l := Lease6{Expiry: time.Unix(exp, 0), IAID: uint32(iaid), IP: f[2], Hostname: f[3], DUID: strings.ToLower(f[4])}
		if l.Hostname == "*" {
			l.Hostname = ""
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// dhcp6Reply is a DHCPv6 REPLY line of dnsmasq's --log-dhcp log:
// "dnsmasq-dhcp[7]: 13207634 DHCPREPLY(br0) fd00:77::1a5 00:03:00:01:52:54:00:12:34:56".
var dhcp6Reply = regexp.MustCompile(`(?m)dnsmasq-dhcp\[\d+\]: (\d+) DHCPREPLY\(\S+\) (\S+) ([0-9a-f:]+)`)

// Replies6 returns the transaction ids of dnsmasq's DHCPv6 REPLYs that
// gave an address to the client with this DUID, oldest first.
func (d *Dnsmasq6) Replies6(duid string) []string {
	var out []string
	for _, m := range dhcp6Reply.FindAllStringSubmatch(d.Log(), -1) {
		if strings.EqualFold(m[3], duid) {
			out = append(out, m[1])
		}
	}
	return out
}
