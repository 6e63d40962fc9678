package bench

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/bench/delayproxy"
	"github.com/streamroot/streamroot/bench/wire"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// The two initramfs images under test.
const (
	ours   = "streamroot"
	dracut = "dracut"
)

// bootSpec is one boot to measure.
type bootSpec struct {
	Initramfs string        // ours or dracut
	Image     string        // plain, huge, debian-networkd
	Mode      string        // ram, stream, lazy; dracut: "download" (it has one mode)
	RTT       time.Duration // added by the delay proxy
	// NoPing runs dnsmasq with --no-ping: by default it probes an address
	// (ARP, then ICMP echo) for about 3 s before it offers it.
	NoPing bool
	// DHCP is the server: "" (dnsmasq) or "kea".
	DHCP string
	// IPv6 boots IPv6-only: ip=dhcp6, a router advertisement with the M
	// flag (dnsmasq's own, or radvd beside Kea), DHCPv6, the image from
	// http://[fd00:77::1]/; the leases counted are DHCPv6 leases.
	IPv6 bool
}

func (s bootSpec) String() string {
	str := fmt.Sprintf("%s/%s/%s/rtt%dms", s.Initramfs, s.Image, s.Mode, s.RTT.Milliseconds())
	if s.NoPing {
		str += "/noping"
	}
	if s.DHCP != "" {
		str += "/" + s.DHCP
	}
	if s.IPv6 {
		str += "/v6"
	}
	return str
}

// bootResult is what one boot measured.
type bootResult struct {
	Spec bootSpec
	// Uptime is the guest's /proc/uptime when the real init reported:
	// seconds from kernel start to the real init.
	Uptime float64
	// InitStart is the kernel's timestamp of "Run /init as init process":
	// Uptime-InitStart is the initramfs's own share.
	InitStart float64
	// BytesBefore is what nginx logged as sent for the image in requests
	// completed before the harness saw the switch to the real init
	// (ours: "streamroot: switch: starting", dracut: the report line).
	BytesBefore int64
	// BytesTotal is everything sent for the image until the guest exited
	// (stream mode keeps filling after the switch).
	BytesTotal int64
	ImageSize  int64
	Requests   int // requests for the image before the switch
	Leases     int // the DHCP server's live leases after the guest powered off
	Wall       float64
	// Net is what the network made this boot wait for, from its packets on
	// br0 (bench/wire): the DHCP server's turnaround for the first lease,
	// the first connect and the first answer. nil: not measured (IPv6, or
	// the capture saw no lease or no answer).
	Net    *wire.Floor `json:",omitempty"`
	Err    string      `json:",omitempty"`
	When   time.Time
	report string // the report line's JSON
}

var (
	switchLine = regexp.MustCompile(`streamroot: switch: starting /`)
	reportLine = regexp.MustCompile(`STREAMROOT-REPORT \{[^\n]*\}\n`)
	runInit    = regexp.MustCompile(`\[\s*(\d+\.\d+)\] Run /init as init process`)
)

// waitReport waits (up to timeout) for the fixture's report line and
// parses it.
func waitReport(vm *harness.VM, timeout time.Duration) (*harness.Report, error) {
	js, err := vm.WaitFor(reportLine, timeout)
	if err != nil {
		return nil, err
	}
	return harness.ParseReport(strings.TrimSpace(strings.TrimPrefix(js, "STREAMROOT-REPORT ")))
}

// image is a fixture served to the guests.
type image struct {
	name, path string
	memMiB     int
	// manifest, when set, is served as <name>.manifest; args go on the
	// kernel line after the spec's (a manifest pin, fixture.mode=...).
	manifest, args string
}

func images(t *testing.T) map[string]image {
	fx := env.Fixtures(t)
	sfx := env.StreamFixtures(t)
	return map[string]image{
		"plain": {name: "plain.squashfs", path: fx.Plain, memMiB: 1024},
		// ram mode (ours and dracut's download) keeps the 1 GiB image in RAM.
		"huge": {name: "huge.squashfs", path: sfx.Huge, memMiB: 2560},
	}
}

// bootIF names the guests' NIC (harness.BootMAC) as PXELinux's IPAPPEND 2
// would, on every kernel line the bench writes.
const bootIF = "BOOTIF=01-52-54-00-12-34-56"

// cmdline is the kernel command line for spec (after "console=ttyS0
// panic=-1 "). Both initramfs images get dracut's own arguments; dracut's
// dmsquash-live needs rd.live.image, and a squashfs that is the root
// itself (no LiveOS/rootfs.img) is mounted with overlayfs.
func cmdline(spec bootSpec, url string) string {
	extra := ""
	if strings.HasPrefix(spec.Image, "debian-") {
		extra = " lease.wait=60" // the lease report's wait for the root's DHCP client
	}
	ip := "ip=dhcp"
	if spec.IPv6 {
		ip = "ip=dhcp6"
	}
	switch spec.Initramfs {
	case dracut:
		return ip + " rd.neednet=1 root=live:" + url + " rd.live.image rd.live.overlay.overlayfs " + bootIF + extra + os.Getenv("STREAMROOT_BENCH_DRACUT_ARGS")
	default:
		return ip + " root=live:" + url + " rd.live.image streamroot.fetch=" + spec.Mode + " " + bootIF + extra
	}
}

// startProxy puts the delay proxy between the guests and nginx: it listens
// in the namespace on 10.77.0.1:8080 and forwards to 10.77.0.1:80.
func startProxy(t *testing.T, ns *harness.Netns, rtt time.Duration) *delayproxy.Proxy {
	t.Helper()
	ln, err := ns.Listen("tcp", harness.ServerIP+":8080")
	if err != nil {
		t.Fatalf("delay proxy: %v", err)
	}
	p := &delayproxy.Proxy{Target: harness.ServerIP + ":80", RTT: rtt, Dial: ns.DialContext}
	p.Start(ln)
	t.Cleanup(func() { p.Close() })
	return p
}

func initramfsPath(which string) string {
	if which == dracut {
		return cfg.dracut
	}
	return env.Initramfs
}

// bootOnce boots spec once in a fresh namespace with its own dnsmasq and
// nginx and measures it. It never fails t for a boot that does not reach
// the root: the result carries the error.
func bootOnce(t *testing.T, spec bootSpec, img image) bootResult {
	res := bootResult{Spec: spec, When: time.Now()}
	if st, err := os.Stat(img.path); err == nil {
		res.ImageSize = st.Size()
	}
	ns := env.NewNetns(t)
	leases := startDHCP(t, ns, spec)
	listen := ""
	if spec.IPv6 {
		listen = "[" + harness.ServerIP6 + "]:80"
	}
	web := harness.StartNginx(t, ns, harness.NginxOptions{Listen: listen})
	if err := web.AddFile(img.path, img.name); err != nil {
		t.Fatal(err)
	}
	if img.manifest != "" {
		if err := web.AddFile(img.manifest, img.name+".manifest"); err != nil {
			t.Fatal(err)
		}
	}
	url := web.URL(img.name)
	if spec.RTT > 0 {
		startProxy(t, ns, spec.RTT)
		url = "http://" + harness.ServerIP + ":8080/" + img.name
	}
	line := cmdline(spec, url)
	if img.args != "" {
		line += " " + img.args
	}
	capture := startWire(t, spec, ns)
	timeout := 300 * time.Second
	if strings.HasPrefix(spec.Image, "debian-") {
		timeout = 480 * time.Second // systemd's own boot, then the lease report's wait
	}
	start := time.Now()
	vm := env.Boot(t, harness.BootOptions{
		Name:      "vm",
		Netns:     ns,
		Initramfs: initramfsPath(spec.Initramfs),
		Append:    line,
		MemoryMiB: img.memMiB,
		Timeout:   timeout,
	})
	var seen time.Time
	if spec.Initramfs == ours {
		if _, err := vm.WaitFor(switchLine, timeout); err != nil {
			res.Err = firstLine(err.Error())
		}
		seen = time.Now()
	}
	if res.Err == "" {
		r, err := waitReport(vm, timeout)
		if seen.IsZero() {
			seen = time.Now()
		}
		if err != nil {
			res.Err = firstLine(err.Error())
		} else {
			res.Uptime = r.Uptime
			res.report = r.Raw
		}
	}
	if err := vm.WaitExit(90 * time.Second); err != nil {
		vm.Kill()
	}
	res.Wall = time.Since(start).Seconds()
	if capture != nil {
		evs, err := capture.Stop()
		if err == nil {
			var f wire.Floor
			if f, err = wire.Summarize(evs); err == nil {
				res.Net = &f
			}
		}
		if err != nil {
			t.Logf("network floor of this boot not measured: %v", err)
		}
	}
	if m := runInit.FindStringSubmatch(vm.Console()); m != nil {
		res.InitStart, _ = strconv.ParseFloat(m[1], 64)
	}
	path := "/" + img.name
	for _, e := range web.Requests(path) {
		res.BytesTotal += e.BodyBytes
		if !seen.IsZero() && !e.Time.After(seen) {
			res.BytesBefore += e.BodyBytes
			res.Requests++
		}
	}
	if n, err := leases(); err == nil {
		res.Leases = n
	}
	if res.Err != "" {
		res.Err += " (console: " + vm.ConsolePath + ")"
		t.Logf("console tail:\n%s", harness.Tail(vm.Console(), 40))
	}
	return res
}

// startWire starts recording the boot's DHCP and first HTTP packets on br0
// (IPv4 boots; nil otherwise or when the capture cannot start, which the
// log says): the HTTP port is the delay proxy's when spec adds RTT, so the
// first answer includes it.
func startWire(t *testing.T, spec bootSpec, ns *harness.Netns) *wire.Capture {
	if spec.IPv6 {
		return nil
	}
	port := uint16(80)
	if spec.RTT > 0 {
		port = 8080
	}
	c, err := wire.Start(ns.Do, harness.Bridge0, net.ParseIP(harness.ServerIP), port)
	if err != nil {
		t.Logf("network floor not measured: %v", err)
		return nil
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// startDHCP starts spec's DHCP server (and router advertisements for
// IPv6) in ns and returns how to count its live leases for the node's
// family.
func startDHCP(t *testing.T, ns *harness.Netns, spec bootSpec) func() (int, error) {
	var extra []string
	if spec.NoPing {
		extra = []string{"--no-ping"}
	}
	switch {
	case spec.IPv6 && spec.DHCP == "kea":
		harness.EnableIPv6(t, ns)
		harness.StartRadvd(t, ns, harness.RadvdOptions{})
		k := harness.StartKea6(t, ns)
		return func() (int, error) { ls, err := k.Leases(); return len(ls), err }
	case spec.IPv6 && spec.DHCP == "":
		harness.EnableIPv6(t, ns)
		d := harness.StartDnsmasq6(t, ns, harness.Dnsmasq6Options{Extra: extra})
		return func() (int, error) { ls, err := d.Leases6(); return len(ls), err }
	case spec.DHCP == "kea":
		k := harness.StartKea(t, ns, harness.KeaOptions{})
		return func() (int, error) { ls, err := k.Leases(); return len(ls), err }
	case spec.DHCP == "":
		d := harness.StartDnsmasq(t, ns, harness.DnsmasqOptions{Extra: extra})
		return func() (int, error) { ls, err := d.Leases(); return len(ls), err }
	}
	t.Fatalf("unknown DHCP server %q", spec.DHCP)
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// measure boots spec runs times (sequentially: one guest at a time, so that
// the guests' clocks are not slowed by each other on this 2-core host).
func measure(t *testing.T, spec bootSpec, img image, runs int) []bootResult {
	var out []bootResult
	if cfg.filter != nil && !cfg.filter.MatchString(spec.String()) {
		return nil
	}
	for i := range runs {
		var res bootResult
		t.Run(fmt.Sprintf("%s/%d", spec, i+1), func(t *testing.T) {
			res = bootOnce(t, spec, img)
		})
		if res.When.IsZero() { // the subtest died in setup
			res = bootResult{Spec: spec, Err: "setup failed (see -test.v output)", When: time.Now()}
		}
		record("boots", res)
		if res.Err != "" {
			say("%-36s run %d: FAILED: %s", spec, i+1, res.Err)
		} else {
			nf := "network floor n/a"
			if res.Net != nil {
				nf = fmt.Sprintf("network floor %.3f s (DHCP server %.3f s, exchange %.3f s, connect %.2f ms, first answer %.2f ms)",
					res.Net.Network().Seconds(), res.Net.DHCPServer.Seconds(), res.Net.DHCPExchange.Seconds(),
					ms(res.Net.Connect), ms(res.Net.FirstResponse))
			}
			say("%-36s run %d: real init at %6.2f s guest (/init started at %.2f s), %s before it (%d req), %d lease(s), %.0f s wall, %s",
				spec, i+1, res.Uptime, res.InitStart, mib(res.BytesBefore), res.Requests, res.Leases, res.Wall, nf)
		}
		out = append(out, res)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
}

// requireBoot checks what every boot section needs.
func requireBoot(t *testing.T) {
	t.Helper()
	env.Require(t)
	if cfg.dracut == "" {
		t.Fatal("STREAMROOT_BENCH_DRACUT is unset (make bench builds build/bench/dracut.img)")
	}
	if _, err := os.Stat(cfg.dracut); err != nil {
		t.Fatalf("dracut initramfs: %v", err)
	}
}
