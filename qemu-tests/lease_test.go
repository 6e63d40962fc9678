package qemutests

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/boottrace"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// One DHCP lease per node (issue 3, design §7): the initramfs leases an
// address with client id 01+MAC and hands it over; the root's own DHCP
// client (systemd-networkd, NetworkManager, busybox udhcpc) must renew that
// lease, not take a second one, from dnsmasq and from ISC Kea (which keys
// leases on the client id). Each boot waits until the root's client has
// bound (the LEASE REPORT), then reads the server's lease database.

// leaseClient is one fixture root and what its report must show.
type leaseClient struct {
	name    string // subtest name and the report's os_dhcp
	fixture string // harness.Fixture*
	id      string // /etc/fixture-id
	link    string // the link name the root's udev gives the NIC ("" = not checked)
	mem     int    // MiB
	timeout time.Duration
}

var leaseClients = []leaseClient{
	// Debian roots keep udev's default naming: the virtio NIC at PCI 00:03.0 is ens3.
	{"networkd", harness.FixtureNetworkd, "debian-networkd", "ens3", 1536, 300 * time.Second},
	{"NetworkManager", harness.FixtureNM, "debian-nm", "ens3", 1536, 300 * time.Second},
	{"udhcpc", harness.FixtureUdhcpc, "udhcpc", "", 1024, 150 * time.Second},
}

var leaseServers = []string{"dnsmasq", "kea"}

// TestOneLeaseFixtures starts the one-lease fixture builds in the
// background. It is not parallel, so it runs before the parallel boot tests
// start: they use the VM slots while debootstrap runs.
func TestOneLeaseFixtures(t *testing.T) {
	if env.Kernel == "" || os.Geteuid() != 0 {
		t.Skip("boot tests not enabled (STREAMROOT_KERNEL, root)")
	}
	env.PrefetchLeaseFixtures(harness.FixtureUdhcpc, harness.FixtureNetworkd, harness.FixtureNM)
}

func TestOneLease(t *testing.T) {
	t.Parallel()
	for _, c := range leaseClients {
		for _, srv := range leaseServers {
			t.Run(c.name+"-"+srv, func(t *testing.T) {
				t.Parallel()
				testOneLease(t, c, srv)
			})
		}
	}
}

// nodeLease is a lease in a server's database, whichever the server.
type nodeLease struct{ IP, MAC, ClientID string }

// dhcpServer is what the test needs from dnsmasq or Kea.
type dhcpServer struct {
	name string
	// leases: the live leases now (Kea: the latest CSV row per address).
	leases func() ([]nodeLease, error)
	// exchanges: the server's acknowledgements (lease or renewal) to mac,
	// from its log, oldest first.
	exchanges func(mac string) ([]exchange, error)
	// rows: how many lease database rows mention mac (Kea appends one per
	// acknowledgement; dnsmasq rewrites its file: -1).
	rows    func(mac string) int
	log     func() string
	leaseDB func() string // the raw lease database, for failure messages
}

// leaseReportOf returns r as the LEASE REPORT it must be, failing
// the test when it is not one.
func leaseReportOf(t *testing.T, r *harness.Report) *harness.LeaseReport {
	t.Helper()
	lr, err := harness.ParseLeaseReport(r.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return lr
}

// leasesAs reads a server's leases as the tests compare them: each server
// has its own lease type, the tests one view of a lease per protocol.
func leasesAs[L, T any](read func() ([]L, error), view func(L) T) func() ([]T, error) {
	return func() ([]T, error) {
		ls, err := read()
		var out []T
		for _, l := range ls {
			out = append(out, view(l))
		}
		return out, err
	}
}

// exchange is one DHCPACK: when, and the transaction id (each client run
// picks its own).
type exchange struct {
	At  time.Time
	XID string
}

func startDHCP(t *testing.T, ns *harness.Netns, name string) *dhcpServer {
	t.Helper()
	switch name {
	case "dnsmasq":
		d := harness.StartDnsmasq(t, ns, harness.DnsmasqOptions{})
		return &dhcpServer{
			name:      name,
			leases:    leasesAs(d.Leases, func(l harness.Lease) nodeLease { return nodeLease{l.IP, l.MAC, l.ClientID} }),
			exchanges: func(mac string) ([]exchange, error) { return dnsmasqAcks(d.Log(), mac, time.Now()) },
			rows:      func(string) int { return -1 },
			log:       d.Log,
			leaseDB:   func() string { b, _ := os.ReadFile(d.LeaseFile); return string(b) },
		}
	case "kea":
		k := harness.StartKea(t, ns, harness.KeaOptions{})
		return &dhcpServer{
			name:      name,
			leases:    leasesAs(k.Leases, func(l harness.KeaLease) nodeLease { return nodeLease{l.Address, l.HWAddr, l.ClientID} }),
			exchanges: func(mac string) ([]exchange, error) { return keaAllocs(k.Log(), mac) },
			rows: func(mac string) int {
				rows, _ := k.Rows()
				n := 0
				for _, r := range rows {
					if r.HWAddr == mac && r.ValidLifetime > 0 {
						n++
					}
				}
				return n
			},
			log:     k.Log,
			leaseDB: func() string { b, _ := os.ReadFile(k.LeaseFile); return string(b) },
		}
	}
	t.Fatalf("unknown DHCP server %q", name)
	return nil
}

// dnsmasqAck is a DHCPACK line of dnsmasq's log: "Nov 25 12:09:49
// dnsmasq-dhcp[4711]: 2910352263 DHCPACK(br0) 10.77.0.94 52:54:00:12:34:56 host".
var dnsmasqAck = regexp.MustCompile(`(?m)^(\w{3} +\d+ \d\d:\d\d:\d\d) dnsmasq-dhcp\[\d+\]: (?:(\d+) )?DHCPACK\(\S+\) (\S+) (\S+)`)

// dnsmasqAcks returns dnsmasq's DHCPACKs to mac. The log has no year: the
// year is now's (or the one before, for a December line read in January).
func dnsmasqAcks(log, mac string, now time.Time) ([]exchange, error) {
	var out []exchange
	for _, m := range dnsmasqAck.FindAllStringSubmatch(log, -1) {
		if !strings.EqualFold(m[4], mac) {
			continue
		}
		ts, err := time.ParseInLocation("Jan 2 15:04:05", strings.Join(strings.Fields(m[1]), " "), time.Local)
		if err != nil {
			return nil, fmt.Errorf("dnsmasq log time %q: %w", m[1], err)
		}
		ts = ts.AddDate(now.Year(), 0, 0)
		if ts.After(now.Add(24 * time.Hour)) {
			ts = ts.AddDate(-1, 0, 0)
		}
		out = append(out, exchange{ts, m[2]})
	}
	return out, nil
}

// keaAlloc is Kea's log line for an acknowledged lease (allocation or
// renewal): "2026-11-25 12:21:45.520 INFO  [kea-dhcp4.leases/6606.1402]
// DHCP4_LEASE_ALLOC [hwtype=1 52:54:00:12:34:56], cid=[01:52:...],
// tid=0xa1b43c95: lease 10.77.0.50 has been allocated for 3600 seconds".
var keaAlloc = regexp.MustCompile(`(?m)^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) +\S+ +\[[^]]*\] DHCP4_LEASE_ALLOC \[hwtype=\d+ ([0-9a-fA-F:]+)\][^\n]*?tid=(0x[0-9a-fA-F]+)`)

// keaAllocs returns Kea's DHCP4_LEASE_ALLOC lines for mac.
func keaAllocs(log, mac string) ([]exchange, error) {
	var out []exchange
	for _, m := range keaAlloc.FindAllStringSubmatch(log, -1) {
		if !strings.EqualFold(m[2], mac) {
			continue
		}
		ts, err := time.ParseInLocation("2006-01-02 15:04:05.000", m[1], time.Local)
		if err != nil {
			return nil, fmt.Errorf("kea log time %q: %w", m[1], err)
		}
		out = append(out, exchange{ts, m[3]})
	}
	return out, nil
}

func testOneLease(t *testing.T, c leaseClient, server string) {
	env.Require(t)
	fixture := env.LeaseFixture(t, c.fixture)
	ns := env.NewNetns(t)
	dhcp := startDHCP(t, ns, server)
	web := harness.StartNginx(t, ns, harness.NginxOptions{})
	name := c.fixture
	if err := web.AddFile(fixture, name); err != nil {
		t.Fatal(err)
	}
	vm := env.Boot(t, harness.BootOptions{
		Netns:     ns,
		Append:    harness.SeedCmdline(web.URL(name)),
		MemoryMiB: c.mem,
		Timeout:   c.timeout,
	})
	r := vm.ExpectReport(t)
	lr := leaseReportOf(t, r)
	t.Logf("%s: root's %s bound=%v on %q after %ds; report at %.1fs guest uptime",
		c.name, lr.OSDHCP, lr.OSBound, lr.OSLink, lr.OSWait, lr.Uptime)
	explain := func() string {
		return fmt.Sprintf("what the root and the server saw:\n--- report: os state:\n%s\n--- os log:\n%s\n--- handover files:\n%s\n--- addrs:\n%s\n--- %s lease database:\n%s\n--- %s log (tail):\n%s",
			lr.OSState, lr.OSLog, lr.Handover, lr.Addrs, server, dhcp.leaseDB(), server, tailLines(dhcp.log(), 40))
	}
	// On failure, what the root and the server saw, logged once at the end.
	defer func() {
		if t.Failed() {
			t.Log(explain())
		}
	}()

	if lr.Fixture != c.id || lr.OSDHCP != c.name {
		t.Fatalf("booted fixture %q reporting %q, want %q with %q", lr.Fixture, lr.OSDHCP, c.id, c.name)
	}
	if !lr.Writable || lr.RootFSType != "overlay" {
		t.Errorf("root: writable=%v fstype %q, want a writable overlay", lr.Writable, lr.RootFSType)
	}
	// The block daemon keeps the boot trace through a systemd root's own
	// boot (what streamroot trace is given; it is rewritten every 2 s, so
	// the busybox root, reporting at once, may come before the first), and
	// the report started before it waited for the client.
	if tr, err := boottrace.Parse([]byte(lr.Trace)); lr.Init == "systemd" && (err != nil || len(tr.Entries) == 0) {
		t.Errorf("/run/initramfs/blockd.trace after the root booted: %v, %q", err, lr.Trace)
	}
	if lr.Started <= 0 || lr.Started > lr.Uptime {
		t.Errorf("the report started at %.2f s, finished at %.2f s", lr.Started, lr.Uptime)
	}

	// The initramfs's lease, as handed over in net.<iface>.env.
	addr, cid := lr.EnvVar("ADDRESS"), lr.EnvVar("CLIENT_ID")
	wantCID := "01:" + harness.BootMAC
	if addr == "" {
		t.Fatalf("no ADDRESS in /run/initramfs/net.*.env:\n%s\n%s", lr.Env, lr.RunInitramfs)
	}
	if cid != wantCID || lr.EnvVar("CLIENT_ID_HEX") != strings.ReplaceAll(wantCID, ":", "") {
		t.Errorf("net.*.env: CLIENT_ID %q CLIENT_ID_HEX %q, want %s", cid, lr.EnvVar("CLIENT_ID_HEX"), wantCID)
	}

	// The root's own client bound, on the link with the predictable name,
	// and holds the initramfs's address there (and no other IPv4 one).
	if !lr.OSBound {
		hint := ""
		if strings.Contains(lr.OSState, "connected (externally)") {
			hint = "\nhint: NetworkManager took the link as configured externally (a generated connection, no DHCP client): " +
				"it does so when the address it finds has no lease lifetime (valid_lft forever) and no device state file says which profile to assume"
		}
		t.Errorf("the root's %s did not bind a lease within %ds%s", c.name, lr.OSWait, hint)
	}
	if got := lr.LinkName(harness.BootMAC); lr.OSLink != got || got == "" {
		t.Errorf("boot link: the report found %q, ip link shows %q for %s", lr.OSLink, got, harness.BootMAC)
	}
	if c.link != "" && lr.OSLink != c.link {
		t.Errorf("the boot NIC is %q in the root, want the predictable name %s (udev's own naming)\nlinks:\n%s", lr.OSLink, c.link, lr.Links)
	}
	if got := lr.IPv4On(harness.BootMAC); len(got) != 1 || got[0] != addr {
		t.Errorf("the root holds %v on %s, want exactly the initramfs's %s", got, lr.OSLink, addr)
	}

	// The server: exactly one live lease, the node's, with 01+MAC.
	leases, err := dhcp.leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 1 {
		t.Errorf("%s holds %d leases, want exactly 1: %+v", server, len(leases), leases)
	}
	for _, l := range leases {
		if l.MAC != harness.BootMAC || l.IP != addr || l.ClientID != wantCID {
			t.Errorf("%s lease %+v, want %s for %s with client id %s", server, l, addr, harness.BootMAC, wantCID)
		}
	}

	// The root's client really talked to the server: besides the
	// initramfs's exchange, at least one more acknowledgement to the node,
	// in another transaction (and, for Kea, another lease row).
	acks, err := dhcp.exchanges(harness.BootMAC)
	if err != nil {
		t.Fatal(err)
	}
	xids := map[string]bool{}
	for _, a := range acks {
		xids[a.XID] = true
	}
	t.Logf("%s: %d acknowledgements to %s in %d transactions: %s", server, len(acks), harness.BootMAC, len(xids), fmtExchanges(acks))
	if len(acks) < 2 || len(xids) < 2 {
		t.Errorf("%s acknowledged %d times in %d transactions to %s, want ≥ 2 (the initramfs, then the root's %s): the root's client never talked to the server",
			server, len(acks), len(xids), harness.BootMAC, c.name)
	}
	if n := dhcp.rows(harness.BootMAC); n >= 0 && n < 2 {
		t.Errorf("%s's lease file has %d rows for %s, want ≥ 2 (allocation, then the root's renewal)", server, n, harness.BootMAC)
	}
}

func fmtExchanges(es []exchange) string {
	var s []string
	for _, e := range es {
		s = append(s, e.At.Format("15:04:05.000")+" xid "+e.XID)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestServerLogParsers(t *testing.T) {
	log := "Nov 25 12:09:49 dnsmasq-dhcp[4711]: 2910352263 DHCPREQUEST(br0) 10.77.0.94 52:54:00:12:34:56\n" +
		"Nov 25 12:09:49 dnsmasq-dhcp[4711]: 2910352263 DHCPACK(br0) 10.77.0.94 52:54:00:12:34:56\n" +
		"Nov  5 08:00:01 dnsmasq-dhcp[4711]: 77 DHCPACK(br0) 10.77.0.95 52:54:00:aa:00:01 host\n" +
		"Dec 31 23:59:59 dnsmasq-dhcp[4711]: 78 DHCPACK(br0) 10.77.0.94 52:54:00:12:34:56 host\n"
	now := time.Date(2026, 1, 1, 0, 0, 5, 0, time.Local)
	acks, err := dnsmasqAcks(log, harness.BootMAC, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []exchange{{time.Date(2025, 11, 25, 12, 9, 49, 0, time.Local), "2910352263"}, {time.Date(2025, 12, 31, 23, 59, 59, 0, time.Local), "78"}}
	if !slices.Equal(acks, want) {
		t.Errorf("dnsmasq acks %v, want %v", acks, want)
	}
	klog := "2026-11-25 12:21:45.507 INFO  [kea-dhcp4.leases/6606.140286727737856] DHCP4_LEASE_ADVERT [hwtype=1 52:54:00:12:34:56], cid=[01:52:54:00:12:34:56], tid=0xa1b43c95: lease 10.77.0.50 will be advertised\n" +
		"2026-11-25 12:21:45.520 INFO  [kea-dhcp4.leases/6606.140286727737856] DHCP4_LEASE_ALLOC [hwtype=1 52:54:00:12:34:56], cid=[01:52:54:00:12:34:56], tid=0xa1b43c95: lease 10.77.0.50 has been allocated for 3600 seconds\n" +
		"2026-11-25 12:21:46.557 INFO  [kea-dhcp4.leases/6606.140286727737856] DHCP4_LEASE_ALLOC [hwtype=1 52:54:00:aa:00:01], cid=[01:52:54:00:aa:00:01], tid=0xb9ae8b1a: lease 10.77.0.51 has been allocated for 3600 seconds\n"
	allocs, err := keaAllocs(klog, harness.BootMAC)
	if err != nil {
		t.Fatal(err)
	}
	if len(allocs) != 1 || allocs[0].XID != "0xa1b43c95" || !allocs[0].At.Equal(time.Date(2026, 11, 25, 12, 21, 45, 520e6, time.Local)) {
		t.Errorf("kea allocs %v", allocs)
	}
}
