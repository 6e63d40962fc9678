package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Kea6 is a kea-dhcp6 in a namespace (stateful DHCPv6 from fd00:77::/64,
// rapid commit allowed, DNS and domain list), beside Radvd for the router
// advertisement Kea does not send. Its Dir holds kea-dhcp6.json,
// leases6.csv (one row per lease change), kea.log.
type Kea6 struct {
	PeerFiles
	ConfigPath string
}

// Kea6Lease is one row of Kea's DHCPv6 memfile CSV.
type Kea6Lease struct {
	Address       string
	DUID          string // lower case, colon separated
	IAID          uint32
	ValidLifetime int64 // 0 for a released or deleted lease
	Expire        time.Time
	State         int
}

// Active reports whether the row is a live lease at time now.
func (l Kea6Lease) Active(now time.Time) bool {
	return l.ValidLifetime > 0 && l.State == 0 && l.Expire.After(now)
}

// Kea6Options add to StartKea6's configuration.
type Kea6Options struct {
	// ClientClasses is Dhcp6's "client-classes" (each a name, a test
	// expression and the option-data its members get), e.g.
	// HTTPBoot6KeaClasses.
	ClientClasses []map[string]any
}

// StartKea6 writes the configuration, checks it (kea-dhcp6 -t), starts
// kea-dhcp6 in ns (EnableIPv6 first) and waits until it serves. It is
// killed by t.Cleanup.
func StartKea6(t testing.TB, ns *Netns) *Kea6 {
	t.Helper()
	return StartKea6With(t, ns, Kea6Options{})
}

// StartKea6With is StartKea6 with opts added to the configuration.
func StartKea6With(t testing.TB, ns *Netns, opts Kea6Options) *Kea6 {
	t.Helper()
	k := &Kea6{PeerFiles: newPeerFiles(t, ns, "kea6", "leases6.csv", "kea.log")}
	k.ConfigPath = filepath.Join(k.Dir, "kea-dhcp6.json")
	type m = map[string]any
	dhcp6 := m{
		"interfaces-config": m{"interfaces": []string{Bridge0}},
		// A fixed server DUID, not persisted: no file outside Dir.
		"server-id":          m{"type": "EN", "enterprise-id": 2495, "identifier": "73747265616d726f6f74", "persist": false},
		"lease-database":     m{"type": "memfile", "persist": true, "lfc-interval": 0, "name": k.LeaseFile},
		"preferred-lifetime": 1800, "valid-lifetime": 3600, "renew-timer": 900, "rebind-timer": 1440,
		"subnet6": []m{{
			"id": 1, "subnet": Prefix6, "interface": Bridge0, "rapid-commit": true,
			"pools":       []m{{"pool": "fd00:77::100 - fd00:77::1ff"}},
			"option-data": []m{{"name": "dns-servers", "data": DNSServer6}, {"name": "domain-search", "data": Domain6}},
		}},
		"loggers": []m{{"name": "kea-dhcp6", "severity": "INFO",
			"output_options": []m{{"output": k.LogFile, "flush": true}}}},
	}
	if len(opts.ClientClasses) > 0 {
		dhcp6["client-classes"] = opts.ClientClasses
	}
	conf, _ := json.MarshalIndent(m{"Dhcp6": dhcp6}, "", "  ")
	k.proc = startKeaPeer(t, ns, "kea-dhcp6", k.ConfigPath, k.PeerFiles, conf, "DHCP6_STARTED")
	return k
}

// Leases returns the live leases: the latest row per address, if active.
func (k *Kea6) Leases() ([]Kea6Lease, error) {
	rows, err := parseOptional(k.LeaseFile, ParseKea6Leases)
	if err != nil {
		return nil, err
	}
	latest := map[string]Kea6Lease{}
	var order []string
	for _, r := range rows {
		if _, ok := latest[r.Address]; !ok {
			order = append(order, r.Address)
		}
		latest[r.Address] = r
	}
	var out []Kea6Lease
	for _, a := range order {
		if l := latest[a]; l.Active(time.Now()) {
			out = append(out, l)
		}
	}
	return out, nil
}

// Exchanges counts the exchanges that leased to duid: Kea appends a row
// per allocation and renewal (a rapid commit even writes two), each
// exchange's rows with the expiry it set, so distinct expiries with a
// lifetime are distinct exchanges (seconds apart on a TCG boot).
func (k *Kea6) Exchanges(duid string) int {
	rows, _ := parseOptional(k.LeaseFile, ParseKea6Leases)
	seen := map[int64]bool{}
	for _, r := range rows {
		if r.DUID == duid && r.ValidLifetime > 0 {
			seen[r.Expire.Unix()] = true
		}
	}
	return len(seen)
}

// ParseKea6Leases parses a Kea DHCPv6 memfile CSV by its header (address,
// duid, valid_lifetime, expire, ..., iaid, ..., state).
func ParseKea6Leases(b []byte) ([]Kea6Lease, error) {
	f, err := readKeaCSV(b, "kea6 lease file", "address", "duid", "valid_lifetime", "expire", "iaid")
	if err != nil || f == nil {
		return nil, err
	}
	get := f.get
	var out []Kea6Lease
	for _, rec := range f.rows {
		if len(rec) < len(f.col) {
			continue
		}
		valid, err1 := strconv.ParseInt(get(rec, "valid_lifetime"), 10, 64)
		exp, err2 := strconv.ParseInt(get(rec, "expire"), 10, 64)
		iaid, err3 := strconv.ParseUint(get(rec, "iaid"), 10, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("kea6 lease row %q: bad number", strings.Join(rec, ","))
		}
		st, _ := strconv.Atoi(get(rec, "state"))
		out = append(out, Kea6Lease{Address: get(rec, "address"), DUID: strings.ToLower(get(rec, "duid")), IAID: uint32(iaid),
			ValidLifetime: valid, Expire: time.Unix(exp, 0), State: st})
	}
	return out, nil
}

// RadvdOptions configure the router advertisement.
type RadvdOptions struct {
	SLAAC bool // the prefix with the A flag (and RDNSS/DNSSL); default: M flag, no A
}

// StartRadvd runs radvd on br0 advertising Prefix6 (EnableIPv6 first), and
// waits until it has started. It is killed by t.Cleanup.
func StartRadvd(t testing.TB, ns *Netns, opts RadvdOptions) *PeerFiles {
	t.Helper()
	files := newPeerFiles(t, ns, "radvd", "", "radvd.log")
	p := &files
	flags, auto := "AdvManagedFlag on;\n\tAdvOtherConfigFlag on;", "off"
	if opts.SLAAC {
		flags, auto = "", "on"
	}
	conf := fmt.Sprintf("interface %s {\n\tAdvSendAdvert on;\n\tMinRtrAdvInterval 3;\n\tMaxRtrAdvInterval 10;\n\t%s\n"+
		"\tprefix %s { AdvOnLink on; AdvAutonomous %s; };\n\tRDNSS %s { };\n\tDNSSL %s { };\n};\n",
		Bridge0, flags, Prefix6, auto, DNSServer6, Domain6)
	confPath := filepath.Join(p.Dir, "radvd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// radvd wants a router: forwarding on, in this namespace only.
	if out, err := ns.Command("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl forwarding: %v: %s", err, out)
	}
	cmd := ns.Command("radvd", "--nodaemon", "--config="+confPath, "--pidfile="+filepath.Join(p.Dir, "radvd.pid"),
		"--logmethod=logfile", "--logfile="+p.LogFile, "--debug=1")
	p.proc = startTestPeer(t, "radvd", cmd, filepath.Join(p.Dir, "radvd.stderr"), 10*time.Second, logShows(p.LogFile, "started"))
	t.Logf("radvd: pid %d in %s advertising %s (SLAAC %v)", cmd.Process.Pid, ns.Name, Prefix6, opts.SLAAC)
	return p
}
