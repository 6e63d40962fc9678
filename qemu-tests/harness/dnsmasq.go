package harness

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DnsmasqOptions configure the DHCP server. The zero value serves
// 10.77.0.50-150 on br0 with router 10.77.0.1 and a one-hour lease.
type DnsmasqOptions struct {
	Interface string   // default br0
	Range     string   // --dhcp-range, default "10.77.0.50,10.77.0.150,255.255.255.0,1h"
	Router    string   // dhcp-option router, default 10.77.0.1
	Extra     []string // more dnsmasq arguments
	DNS       bool     // also answer DNS on port 53 (default: DHCP only)
}

// Dnsmasq is a DHCP-only dnsmasq (DNS disabled: --port=0) in a namespace.
// Its Dir holds leases, dnsmasq.log (--log-dhcp: every DHCP packet) and
// dnsmasq.stderr.
type Dnsmasq struct {
	PeerFiles
}

// Lease is one line of dnsmasq's lease file.
type Lease struct {
	Expiry   time.Time
	MAC      string // lower case, colon separated
	IP       string
	Hostname string // "" when the client sent none
	ClientID string // "" when the client sent none; else "01:52:54:..."
}

// StartDnsmasq starts dnsmasq in ns and waits until it serves DHCP. It is
// killed by t.Cleanup.
func StartDnsmasq(t testing.TB, ns *Netns, opts DnsmasqOptions) *Dnsmasq {
	t.Helper()
	opts.Interface = cmp.Or(opts.Interface, Bridge0)
	opts.Range = cmp.Or(opts.Range, "10.77.0.50,10.77.0.150,255.255.255.0,1h")
	opts.Router = cmp.Or(opts.Router, ServerIP)
	d := &Dnsmasq{dnsmasqFiles(t, ns, "dnsmasq")}
	args := []string{
		"--no-daemon", // also: never drops root, so it can write into Dir
		"--conf-file=/dev/null",
		"--no-hosts", "--no-resolv",
		dnsPort(opts.DNS),
		"--interface=" + opts.Interface,
		"--bind-interfaces",
		"--dhcp-authoritative",
		"--dhcp-range=" + opts.Range,
		"--dhcp-option=option:router," + opts.Router,
		"--dhcp-leasefile=" + d.LeaseFile,
		"--log-dhcp",
		"--log-facility=" + d.LogFile,
		"--pid-file=",
	}
	args = append(args, opts.Extra...)
	cmd := ns.Command("dnsmasq", args...)
	d.proc = startTestPeer(t, "dnsmasq", cmd, filepath.Join(d.Dir, "dnsmasq.stderr"), 10*time.Second, logShows(d.LogFile, "DHCP, IP range"))
	t.Logf("dnsmasq: pid %d in %s serving %s on %s", cmd.Process.Pid, ns.Name, opts.Range, opts.Interface)
	return d
}

// Leases parses the lease file; no file yet means no leases.
func (d *Dnsmasq) Leases() ([]Lease, error) {
	return parseOptional(d.LeaseFile, ParseLeases)
}

// LeaseFor returns the lease of mac, if any.
func (d *Dnsmasq) LeaseFor(mac string) (Lease, bool, error) {
	leases, err := d.Leases()
	if err != nil {
		return Lease{}, false, err
	}
	for _, l := range leases {
		if strings.EqualFold(l.MAC, mac) {
			return l, true, nil
		}
	}
	return Lease{}, false, nil
}

// WaitLease waits until mac has a lease, at most timeout.
func (d *Dnsmasq) WaitLease(mac string, timeout time.Duration) (Lease, error) {
	deadline := time.Now().Add(timeout)
	for {
		l, ok, err := d.LeaseFor(mac)
		if err != nil {
			return Lease{}, err
		}
		if ok {
			return l, nil
		}
		if time.Now().After(deadline) {
			return Lease{}, fmt.Errorf("no DHCP lease for %s after %s", mac, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ParseLeases parses dnsmasq's lease file format:
// "<expiry> <mac> <ip> <hostname|*> <client-id|*>"; DHCPv6 lines ("duid ...",
// or with an IAID instead of a MAC) are skipped.
func ParseLeases(b []byte) ([]Lease, error) {
	var leases []Lease
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] == "duid" {
			continue
		}
		if len(f) != 5 {
			return nil, fmt.Errorf("lease line %q: want 5 fields", sc.Text())
		}
		if strings.Count(f[1], ":") != 5 {
			continue // DHCPv6
		}
		exp, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("lease line %q: %v", sc.Text(), err)
		}
		l := Lease{Expiry: time.Unix(exp, 0), MAC: strings.ToLower(f[1]), IP: f[2], Hostname: f[3], ClientID: strings.ToLower(f[4])}
		if l.Hostname == "*" {
			l.Hostname = ""
		}
		if l.ClientID == "*" {
			l.ClientID = ""
		}
		leases = append(leases, l)
	}
	return leases, sc.Err()
}

func dnsPort(on bool) string {
	if on {
		return "--port=53"
	}
	return "--port=0" // no DNS
}
