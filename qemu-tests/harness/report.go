package harness

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/bootlog"
)

// ReportInit is the fixture roots' /sbin/init (busybox sh). It runs as PID 1
// after the initramfs's switch_root, writes one line
//
//	STREAMROOT-REPORT {json}
//
// to the console and powers the guest off. Free text is base64 (-w0) so the
// JSON needs no escaping. It mounts /proc only if the initramfs did not move
// it over ("premounted" lists which of /proc /sys /dev /run were there).
// It must never run on the host: it powers off.
const ReportInit = `#!/bin/sh
# streamroot qemu-tests REPORT INIT (written by qemu-tests/harness).
# PID 1 of a fixture root: report what the booted root sees, then power off.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
echo "report-init: started as pid $$"

premounted=""
if [ -r /proc/mounts ]; then
	premounted="/proc"
else
	mount -t proc proc /proc
fi
for m in /sys /dev /run; do
	if awk -v m="$m" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; then
		premounted="$premounted $m"
	fi
done
# Keep kernel messages from splitting the report line on the serial console.
dmesg -n 1

` + reportRoot + `data_sha256=""
if [ -f /data/random.bin ]; then
	data_sha256=$(sha256sum /data/random.bin | cut -d' ' -f1)
fi

b64() { base64 -w0; }
line=$(printf '{"pid":%d,"fixture":"%s","writable":%s,"root_fstype":"%s","premounted":"%s","uptime":"%s","data_sha256":"%s","mounts_b64":"%s","cmdline_b64":"%s","addrs_b64":"%s","links_b64":"%s","run_initramfs_b64":"%s","resolv_b64":"%s","hostname_b64":"%s"}' \
	"$$" "$fixture" "$writable" "$root_fstype" "$premounted" "$uptime" "$data_sha256" \
` + reportTexts + `	"$(cat /etc/resolv.conf 2>&1 | b64)" \
	"$(hostname 2>&1 | b64)")
if [ -c /dev/console ]; then
	echo "STREAMROOT-REPORT $line" > /dev/console
else
	echo "STREAMROOT-REPORT $line"
fi

sync
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
sleep 30
# Still here: PID 1 exits, the kernel panics, panic=-1 reboots, and QEMU
# (-no-reboot) exits.
`

// reportRoot is the shell both report scripts (ReportInit and
// LeaseReportScript) run for the root's own facts: whether / takes a
// write, the fixture's id, the type of /, the uptime. It sets writable,
// fixture, root_fstype and uptime.
const reportRoot = `writable=false
if echo x > /.streamroot-write-test && [ "$(cat /.streamroot-write-test)" = x ]; then
	writable=true
fi
rm -f /.streamroot-write-test

fixture=$(cat /etc/fixture-id)
root_fstype=$(awk '$2 == "/" { t = $3 } END { print t }' /proc/mounts)
uptime=$(cut -d' ' -f1 /proc/uptime)
`

// reportTexts are the free-text arguments of both report scripts' printf
// line, in the order of their mounts_b64 ... run_initramfs_b64 fields,
// which ParseReport reads for either.
const reportTexts = `	"$(b64 < /proc/mounts)" \
	"$(b64 < /proc/cmdline)" \
	"$(ip -o addr show 2>&1 | b64)" \
	"$(ip -o link show 2>&1 | b64)" \
	"$(ls -la /run/initramfs 2>&1 | b64)" \
`

// Report is what a fixture root's REPORT INIT saw.
type Report struct {
	PID          int
	Fixture      string   // /etc/fixture-id
	Writable     bool     // / accepted a write
	RootFSType   string   // fstype of / (last line in /proc/mounts)
	Premounted   []string // which of /proc /sys /dev /run were mounted at start
	Uptime       float64  // guest seconds since kernel start, at report time
	DataSHA256   string   // of /data/random.bin, "" if absent
	Mounts       string   // /proc/mounts
	Cmdline      string   // /proc/cmdline
	Addrs        string   // ip -o addr show
	Links        string   // ip -o link show
	RunInitramfs string   // ls -la /run/initramfs
	ResolvConf   string   // /etc/resolv.conf (or cat's error)
	Hostname     string   // hostname(1)'s output, with its newline
	Raw          string   // the JSON
}

var reportLine = regexp.MustCompile(`STREAMROOT-REPORT (\{[^\n]*\})\n`)

// FindReport returns the JSON of the first complete report line in console.
func FindReport(console string) (string, bool) {
	m := reportLine.FindStringSubmatch(console)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// ParseReport decodes the JSON of a report line.
func ParseReport(js string) (*Report, error) {
	var raw struct {
		PID          int    `json:"pid"`
		Fixture      string `json:"fixture"`
		Writable     bool   `json:"writable"`
		RootFSType   string `json:"root_fstype"`
		Premounted   string `json:"premounted"`
		Uptime       string `json:"uptime"`
		DataSHA256   string `json:"data_sha256"`
		Mounts       string `json:"mounts_b64"`
		Cmdline      string `json:"cmdline_b64"`
		Addrs        string `json:"addrs_b64"`
		Links        string `json:"links_b64"`
		RunInitramfs string `json:"run_initramfs_b64"`
		ResolvConf   string `json:"resolv_b64"`
		Hostname     string `json:"hostname_b64"`
	}
	if err := json.Unmarshal([]byte(js), &raw); err != nil {
		return nil, fmt.Errorf("report: %w (was the line split by other console output?): %.200q", err, js)
	}
	r := &Report{
		PID: raw.PID, Fixture: raw.Fixture, Writable: raw.Writable, RootFSType: raw.RootFSType,
		Premounted: strings.Fields(raw.Premounted), DataSHA256: raw.DataSHA256, Raw: js,
	}
	r.Uptime, _ = strconv.ParseFloat(raw.Uptime, 64)
	err := decodeBase64("report", []base64Field{
		{"mounts_b64", raw.Mounts, &r.Mounts},
		{"cmdline_b64", raw.Cmdline, &r.Cmdline},
		{"addrs_b64", raw.Addrs, &r.Addrs},
		{"links_b64", raw.Links, &r.Links},
		{"run_initramfs_b64", raw.RunInitramfs, &r.RunInitramfs},
		{"resolv_b64", raw.ResolvConf, &r.ResolvConf},
		{"hostname_b64", raw.Hostname, &r.Hostname},
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// base64Field is a report field the guest sent base64-encoded (free text
// needs no JSON escaping in a shell script that way).
type base64Field struct {
	name string  // its JSON key, for the error
	in   string  // as sent
	out  *string // where the decoded text goes
}

// decodeBase64 decodes each field of a report (what names it in errors).
func decodeBase64(what string, fields []base64Field) error {
	for _, f := range fields {
		b, err := base64.StdEncoding.DecodeString(f.in)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", what, f.name, err)
		}
		*f.out = string(b)
	}
	return nil
}

// Mount is one /proc/mounts line.
type Mount struct{ Source, Point, FSType, Options string }

// MountList parses Mounts.
func (r *Report) MountList() []Mount {
	var ms []Mount
	for _, line := range strings.Split(r.Mounts, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 {
			ms = append(ms, Mount{f[0], f[1], f[2], f[3]})
		}
	}
	return ms
}

// HasMount reports whether a filesystem of fstype is mounted at mountpoint;
// an empty mountpoint matches any.
func (r *Report) HasMount(fstype, mountpoint string) bool {
	for _, m := range r.MountList() {
		if m.FSType == fstype && (mountpoint == "" || m.Point == mountpoint) {
			return true
		}
	}
	return false
}

// Link is one `ip -o link` line.
type Link struct {
	Index     int
	Name, MAC string
}

// LinkList parses Links.
func (r *Report) LinkList() []Link {
	var ls []Link
	for _, line := range strings.Split(r.Links, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		idx, err := strconv.Atoi(strings.TrimSuffix(f[0], ":"))
		if err != nil {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		l := Link{Index: idx, Name: name}
		for i := 2; i+1 < len(f); i++ {
			if strings.HasPrefix(f[i], "link/") {
				l.MAC = strings.ToLower(f[i+1])
				break
			}
		}
		ls = append(ls, l)
	}
	return ls
}

// LinkName returns the interface name of a MAC ("" if none); a name is
// returned as is.
func (r *Report) LinkName(macOrIfname string) string {
	if strings.Count(macOrIfname, ":") != 5 {
		return macOrIfname
	}
	for _, l := range r.LinkList() {
		if strings.EqualFold(l.MAC, macOrIfname) {
			return l.Name
		}
	}
	return ""
}

// AddrOn returns the addresses (IPv4 and IPv6, with prefix length) on the
// link named by its MAC or interface name.
func (r *Report) AddrOn(macOrIfname string) []netip.Prefix {
	name := r.LinkName(macOrIfname)
	if name == "" {
		return nil
	}
	var out []netip.Prefix
	for _, line := range strings.Split(r.Addrs, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || (f[2] != "inet" && f[2] != "inet6") {
			continue
		}
		if ifn, _, _ := strings.Cut(f[1], "@"); ifn != name {
			continue
		}
		if p, err := netip.ParsePrefix(f[3]); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// IPv4On returns the IPv4 addresses (without prefix) on a link.
func (r *Report) IPv4On(macOrIfname string) []string {
	var out []string
	for _, p := range r.AddrOn(macOrIfname) {
		if p.Addr().Is4() {
			out = append(out, p.Addr().String())
		}
	}
	return out
}

// FailureBlock is the init's fatal error block on the console (its format
// is bootlog.Failure's).
type FailureBlock struct {
	bootlog.Failure
	Text string // the whole block
}

// ParseFailure returns the first complete failure block of console. Lines
// may carry a prefix (a kmsg timestamp).
func ParseFailure(console string) (*FailureBlock, bool) {
	f, text, ok := bootlog.FindFailure(console)
	if !ok {
		return nil, false
	}
	return &FailureBlock{Failure: f, Text: text}, true
}

// ExpectReport waits for the booted root's report line (bounded by the boot
// timeout), then for the guest to power off, and returns the report. A
// failure block on the console fails t at once.
func (vm *VM) ExpectReport(t testing.TB) *Report {
	t.Helper()
	var fb *FailureBlock
	js, err := vm.waitUntil(vm.timeout+10*time.Second, "STREAMROOT-REPORT line", func(s string) (string, bool) {
		if js, ok := FindReport(s); ok {
			return js, true
		}
		if b, ok := ParseFailure(s); ok {
			fb = b
			return "", true
		}
		return "", false
	})
	if err != nil {
		t.Fatalf("no report from the booted root: %v", err)
	}
	if fb != nil {
		t.Fatalf("%s: boot failed instead of reaching the root:\n%s", vm.Name, fb.Text)
	}
	r, err := ParseReport(js)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: report: pid %d, fixture %q, root %s, writable %v, real init at %.2fs guest uptime",
		vm.Name, r.PID, r.Fixture, r.RootFSType, r.Writable, r.Uptime)
	if err := vm.WaitExit(60 * time.Second); err != nil {
		t.Errorf("after the report the guest should power off: %v", err)
		vm.Kill()
	}
	return r
}

// ExpectFailure waits for the init's failure block and checks its stage and
// that the block contains each string (the problem line normally names the
// URL or argument). Then the guest must reboot by itself (tests pass
// streamroot.reboot.delay=0; -no-reboot makes QEMU exit), and no root may
// have reported.
func (vm *VM) ExpectFailure(t testing.TB, stage string, contains ...string) *FailureBlock {
	t.Helper()
	var fb *FailureBlock
	_, err := vm.waitUntil(vm.timeout+10*time.Second, "BOOT FAILED block", func(s string) (string, bool) {
		b, ok := ParseFailure(s)
		fb = b
		return "", ok
	})
	if err != nil {
		t.Fatalf("expected a BOOT FAILED block (stage %s): %v", stage, err)
	}
	t.Logf("%s: failure block:\n%s", vm.Name, fb.Text)
	if fb.Stage != stage {
		t.Errorf("failure stage = %q, want %q", fb.Stage, stage)
	}
	for _, c := range contains {
		if !strings.Contains(fb.Text, c) {
			t.Errorf("failure block does not mention %q (problem: %q)", c, fb.Problem)
		}
	}
	if fb.Problem == "" || fb.Hint == "" {
		t.Errorf("failure block lacks a problem or a hint line")
	}
	if err := vm.WaitExit(60 * time.Second); err != nil {
		t.Errorf("after the failure the guest should reboot (streamroot.reboot.delay=0) and QEMU exit: %v", err)
		vm.Kill()
	}
	con := vm.Console()
	if _, ok := bootlog.ParseReboot(con); !ok {
		t.Errorf(`no "streamroot: rebooting in <N> s" line after the failure block`)
	}
	if strings.Contains(con, "STREAMROOT-REPORT") {
		t.Errorf("a root reported after all (STREAMROOT-REPORT on the console)")
	}
	return fb
}
