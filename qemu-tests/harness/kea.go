package harness

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// KeaOptions configure ISC Kea's DHCPv4 server. The zero value serves
// 10.77.0.50-150 of 10.77.0.0/24 on br0 with router 10.77.0.1, a one-hour
// lease (renew 900 s, rebind 1800 s).
type KeaOptions struct {
	Interface     string // default br0
	Subnet        string // default 10.77.0.0/24
	Pool          string // default "10.77.0.50 - 10.77.0.150"
	Router        string // default 10.77.0.1
	ValidLifetime int    // seconds, default 3600
	RenewTimer    int    // seconds, default 900
	RebindTimer   int    // seconds, default 1800
}

// Kea is a kea-dhcp4 in a namespace, with a memfile lease database (CSV)
// and a log file in its directory. It needs no control agent and writes
// nothing outside Dir: kea-dhcp4.json, leases4.csv (the LeaseFile: one
// row per lease change; persist, no LFC), kea.log, kea.stderr, and the pid
// and lock files.
type Kea struct {
	PeerFiles
	ConfigPath string
}

// KeaLease is one row of Kea's memfile CSV.
type KeaLease struct {
	Address       string
	HWAddr        string // lower case, colon separated
	ClientID      string // lower case, colon separated; "" if the client sent none
	ValidLifetime int64  // seconds; 0 for a deleted lease
	Expire        time.Time
	SubnetID      int
	Hostname      string
	State         int // 0 default (active), 1 declined, 2 expired-reclaimed
}

// CLTT is the lease's client last transmission time: when the row was
// written for an allocation or a renewal (second resolution).
func (l KeaLease) CLTT() time.Time {
	return l.Expire.Add(-time.Duration(l.ValidLifetime) * time.Second)
}

// Active reports whether the row is a live lease at time now.
func (l KeaLease) Active(now time.Time) bool {
	return l.ValidLifetime > 0 && l.State == 0 && l.Expire.After(now)
}

// keaEnv keeps kea-dhcp4's pid file, log4cplus lock file and (Kea ≥ 2.6.3,
// which restricts paths) data and log paths in dir.
func keaEnv(dir string) []string {
	return append(os.Environ(),
		"KEA_PIDFILE_DIR="+dir, "KEA_LOCKFILE_DIR="+dir,
		"KEA_DHCP_DATA_DIR="+dir, "KEA_LOG_FILE_DIR="+dir)
}

// KeaConfig returns the kea-dhcp4 JSON configuration for opts, with the
// lease file and log under dir.
func KeaConfig(opts KeaOptions, dir string) ([]byte, error) {
	opts.Interface = cmp.Or(opts.Interface, Bridge0)
	opts.Subnet = cmp.Or(opts.Subnet, "10.77.0.0/24")
	opts.Pool = cmp.Or(opts.Pool, "10.77.0.50 - 10.77.0.150")
	opts.Router = cmp.Or(opts.Router, ServerIP)
	opts.ValidLifetime = cmp.Or(opts.ValidLifetime, 3600)
	opts.RenewTimer = cmp.Or(opts.RenewTimer, 900)
	opts.RebindTimer = cmp.Or(opts.RebindTimer, 1800)
	type m = map[string]any
	conf := m{"Dhcp4": m{
		"interfaces-config": m{"interfaces": []string{opts.Interface}, "dhcp-socket-type": "raw"},
		"lease-database": m{
			"type": "memfile", "persist": true, "lfc-interval": 0,
			"name": filepath.Join(dir, "leases4.csv"),
		},
		"valid-lifetime": opts.ValidLifetime,
		"renew-timer":    opts.RenewTimer,
		"rebind-timer":   opts.RebindTimer,
		"subnet4": []m{{
			"id":          1,
			"subnet":      opts.Subnet,
			"pools":       []m{{"pool": opts.Pool}},
			"option-data": []m{{"name": "routers", "data": opts.Router}},
		}},
		"loggers": []m{{
			"name":           "kea-dhcp4",
			"output_options": []m{{"output": filepath.Join(dir, "kea.log"), "flush": true}},
			"severity":       "INFO",
		}},
	}}
	return json.MarshalIndent(conf, "", "  ")
}

// StartKea writes a configuration, checks it (kea-dhcp4 -t), starts
// kea-dhcp4 in ns and waits until it serves. It is killed by t.Cleanup.
func StartKea(t testing.TB, ns *Netns, opts KeaOptions) *Kea {
	t.Helper()
	k := &Kea{PeerFiles: newPeerFiles(t, ns, "kea", "leases4.csv", "kea.log")}
	k.ConfigPath = filepath.Join(k.Dir, "kea-dhcp4.json")
	conf, err := KeaConfig(opts, k.Dir)
	if err != nil {
		t.Fatal(err)
	}
	k.proc = startKeaPeer(t, ns, "kea-dhcp4", k.ConfigPath, k.PeerFiles, conf, "DHCP4_STARTED")
	return k
}

// startKeaPeer writes conf to configPath, has bin check it (-t),
// starts bin in ns and waits for ready in its log. What is left of it is
// killed by t.Cleanup.
func startKeaPeer(t testing.TB, ns *Netns, bin, configPath string, files PeerFiles, conf []byte, ready string) *process {
	t.Helper()
	if err := os.WriteFile(configPath, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	check := ns.Command(bin, "-t", configPath)
	check.Env = keaEnv(files.Dir)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("%s -t %s: %v\n%s", bin, configPath, err, out)
	}
	cmd := ns.Command(bin, "-c", configPath)
	cmd.Env = keaEnv(files.Dir)
	proc := startTestPeer(t, bin, cmd, filepath.Join(files.Dir, "kea.stderr"), 15*time.Second, logShows(files.LogFile, ready))
	t.Logf("%s: pid %d in %s on %s, leases in %s", bin, cmd.Process.Pid, ns.Name, Bridge0, files.LeaseFile)
	return proc
}

// Rows returns every row of the lease file, in the order Kea wrote them:
// Kea appends a row for each allocation, renewal, release and expiry, so
// one lease may have several rows.
func (k *Kea) Rows() ([]KeaLease, error) {
	return parseOptional(k.LeaseFile, ParseKeaLeases)
}

// Leases returns the leases live now: the latest row per address, if it is
// active (see KeaLease.Active), sorted by address.
func (k *Kea) Leases() ([]KeaLease, error) {
	rows, err := k.Rows()
	if err != nil {
		return nil, err
	}
	return LatestKeaLeases(rows, time.Now()), nil
}

// LatestKeaLeases reduces rows to the latest row per address and keeps the
// ones active at now.
func LatestKeaLeases(rows []KeaLease, now time.Time) []KeaLease {
	latest := map[string]KeaLease{}
	for _, r := range rows {
		latest[r.Address] = r
	}
	var out []KeaLease
	for _, l := range latest {
		if l.Active(now) {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// ParseKeaLeases parses a Kea DHCPv4 memfile CSV by its header (address,
// hwaddr, client_id, valid_lifetime, expire, subnet_id, ..., hostname,
// state, ...).
func ParseKeaLeases(b []byte) ([]KeaLease, error) {
	f, err := readKeaCSV(b, "kea lease file", "address", "hwaddr", "client_id", "valid_lifetime", "expire")
	if err != nil || f == nil {
		return nil, err
	}
	get := f.get
	var out []KeaLease
	for _, rec := range f.rows {
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		l := KeaLease{
			Address:  get(rec, "address"),
			HWAddr:   strings.ToLower(get(rec, "hwaddr")),
			ClientID: strings.ToLower(get(rec, "client_id")),
			Hostname: get(rec, "hostname"),
		}
		var err error
		if l.ValidLifetime, err = strconv.ParseInt(get(rec, "valid_lifetime"), 10, 64); err != nil {
			return nil, fmt.Errorf("kea lease row %q: valid_lifetime: %v", strings.Join(rec, ","), err)
		}
		exp, err := strconv.ParseInt(get(rec, "expire"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("kea lease row %q: expire: %v", strings.Join(rec, ","), err)
		}
		l.Expire = time.Unix(exp, 0)
		l.SubnetID, _ = strconv.Atoi(get(rec, "subnet_id"))
		l.State, _ = strconv.Atoi(get(rec, "state"))
		out = append(out, l)
	}
	return out, nil
}

// keaCSV is a Kea memfile lease file (DHCPv4 or DHCPv6), its columns
// found by the header row's names: Kea adds columns between versions.
type keaCSV struct {
	col  map[string]int
	rows [][]string // after the header
}

// readKeaCSV reads b, a lease file that what names in errors, and checks
// its header has the columns need. An empty file is nil.
func readKeaCSV(b []byte, what string, need ...string) (*keaCSV, error) {
	r := csv.NewReader(strings.NewReader(string(b)))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	f := &keaCSV{col: map[string]int{}, rows: recs[1:]}
	for i, h := range recs[0] {
		f.col[strings.TrimSpace(h)] = i
	}
	for _, n := range need {
		if _, ok := f.col[n]; !ok {
			return nil, fmt.Errorf("%s: header %q lacks %s", what, strings.Join(recs[0], ","), n)
		}
	}
	return f, nil
}

// get is rec's field in the column name, "" for a column the file or
// the row lacks.
func (f *keaCSV) get(rec []string, name string) string {
	if i, ok := f.col[name]; ok && i < len(rec) {
		return rec[i]
	}
	return ""
}
