package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// TestSizes lists the initramfs files (make bench builds the variants).
func TestSizes(t *testing.T) {
	section(t, "sizes")
	type row struct {
		label string
		size  int64
	}
	var rows []row
	var dracutSize int64
	all := append([]variant{{"streamroot (default: 16 NIC drivers, busybox shell, zstd)", env.Initramfs}}, cfg.variants...)
	if cfg.dracut != "" {
		all = append(all, variant{"dracut 059 livenet (gzip, as Debian builds it)", cfg.dracut})
	}
	for _, v := range all {
		st, err := os.Stat(v.path)
		if err != nil {
			say("sizes: %s: %v", v.label, err)
			continue
		}
		rows = append(rows, row{v.label, st.Size()})
		if v.path == cfg.dracut {
			dracutSize = st.Size()
		}
		record("sizes", map[string]any{"label": v.label, "path": v.path, "bytes": st.Size()})
	}
	var b strings.Builder
	b.WriteString("### Initramfs size\n\n| initramfs | bytes | MiB | × dracut |\n|---|---:|---:|---:|\n")
	for _, r := range rows {
		ratio := "–"
		if dracutSize > 0 {
			ratio = fmt.Sprintf("%.3f", float64(r.size)/float64(dracutSize))
		}
		fmt.Fprintf(&b, "| %s | %d | %.2f | %s |\n", r.label, r.size, float64(r.size)/(1<<20), ratio)
	}
	writeSection("sizes", b.String())
}

// TestLeases boots the Debian root whose systemd-networkd runs DHCP with
// its own default client id (a DUID) — the two-lease case under dracut —
// once with each initramfs, and counts dnsmasq's leases after the root's
// client has bound. The fixture is used when it is in the cache (the lease
// tests in qemu-tests build it with debootstrap); STREAMROOT_BENCH_DEBIAN=1
// builds it here.
func TestLeases(t *testing.T) {
	section(t, "leases")
	requireBoot(t)
	cached, _ := filepath.Glob(filepath.Join(env.Cache, "fixtures", harness.FixtureNetworkd+"-*", "meta.json"))
	if len(cached) == 0 && !cfg.debian {
		msg := "### DHCP leases with a Debian systemd-networkd root\n\nnot measured: the debian-networkd fixture is not in the cache " +
			"(run the lease tests of qemu-tests first, or STREAMROOT_BENCH_DEBIAN=1 to build it here with debootstrap)\n"
		writeSection("leases", msg)
		t.Skip("debian-networkd fixture not cached")
	}
	path := env.LeaseFixture(t, harness.FixtureNetworkd)
	img := image{harness.FixtureNetworkd, path, 1024}
	var results []leaseRow
	for _, which := range []string{ours, dracut} {
		spec := bootSpec{Initramfs: which, Image: "debian-networkd", Mode: "stream"}
		if which == dracut {
			spec.Mode = "download"
		}
		var res bootResult
		t.Run(spec.String(), func(t *testing.T) {
			res = bootOnce(t, spec, img)
		})
		row := leaseRow{bootResult: res}
		if res.report != "" {
			if lr, err := harness.ParseLeaseReport(res.report); err == nil {
				row.OSBound, row.OSLink, row.OSWait = lr.OSBound, lr.OSLink, lr.OSWait
			} else if res.Err == "" {
				res.Err = err.Error()
			}
		}
		record("leases", row)
		say("%-40s report at %.2f s: networkd bound %v on %q after %d s; %d lease(s) in dnsmasq %s",
			spec, res.Uptime, row.OSBound, row.OSLink, row.OSWait, res.Leases, res.Err)
		results = append(results, row)
	}
	var b strings.Builder
	b.WriteString("### DHCP leases with a Debian systemd-networkd root (its own DHCP client, default client id)\n\n")
	b.WriteString("| initramfs | leases held in dnsmasq | the root's networkd bound a lease | boot link in the root | waited for networkd (s) | report at (guest s) |\n|---|---:|---|---|---:|---:|\n")
	for _, r := range results {
		v := fmt.Sprint(r.Leases)
		if r.Err != "" {
			v += " (" + r.Err + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %v | %s | %d | %.2f |\n", r.Spec.Initramfs, v, r.OSBound, r.OSLink, r.OSWait, r.Uptime)
	}
	writeSection("leases", b.String())
}

// leaseRow is a boot of the Debian root with what its LEASE REPORT said.
type leaseRow struct {
	bootResult
	OSBound bool   // systemd-networkd in the root held a lease on the boot link
	OSLink  string // the boot link's name in the root
	OSWait  int    // seconds the report waited for networkd
}

// TestVM4 boots 4 guests at once against one nginx and one dnsmasq, first
// with streamroot (stream mode), then with dracut: what a small rack
// booting together looks like on this 2-core host (the guests share the
// CPUs, so their clocks show contention, not only the network).
func TestVM4(t *testing.T) {
	section(t, "vm4")
	requireBoot(t)
	os.Setenv("STREAMROOT_VM_SLOTS", "4")
	env4 := harness.NewEnv()
	env4.Cache = env.Cache
	img := images(t)["plain"]
	var b strings.Builder
	b.WriteString("### 4 guests booting at once (plain.squashfs, STREAMROOT_VM_SLOTS=4)\n\n")
	b.WriteString("| initramfs | real init at (guest s, each) | median | last guest reported after (wall s) | image bytes sent | leases |\n|---|---|---:|---:|---:|---:|\n")
	for _, which := range []string{ours, dracut} {
		t.Run(which, func(t *testing.T) {
			ns := env4.NewNetns(t)
			dhcp := harness.StartDnsmasq(t, ns, harness.DnsmasqOptions{})
			web := harness.StartNginx(t, ns, harness.NginxOptions{})
			if err := web.AddFile(img.path, img.name); err != nil {
				t.Fatal(err)
			}
			spec := bootSpec{Initramfs: which, Image: "plain", Mode: "stream"}
			if which == dracut {
				spec.Mode = "download"
			}
			line := strings.Replace(cmdline(spec, web.URL(img.name)), " BOOTIF=01-52-54-00-12-34-56", "", 1)
			start := time.Now()
			vms := make([]*harness.VM, 4)
			for i := range vms {
				mac := fmt.Sprintf("52:54:00:12:35:%02x", i+1)
				vms[i] = env4.Boot(t, harness.BootOptions{
					Name: fmt.Sprintf("vm%d", i+1), Netns: ns, NICs: []harness.NIC{{MAC: mac}},
					Initramfs: initramfsPath(which), Append: line, MemoryMiB: img.memMiB, Timeout: 400 * time.Second,
				})
			}
			ups := make([]float64, 4)
			errs := make([]string, 4)
			var last time.Duration
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i, vm := range vms {
				wg.Go(func() {
					js, err := vm.WaitFor(reportLine, 400*time.Second)
					if err != nil {
						errs[i] = firstLine(err.Error())
						return
					}
					mu.Lock()
					last = max(last, time.Since(start))
					mu.Unlock()
					if r, err := harness.ParseReport(strings.TrimSpace(strings.TrimPrefix(js, "STREAMROOT-REPORT "))); err == nil {
						ups[i] = r.Uptime
					}
					if err := vm.WaitExit(60 * time.Second); err != nil {
						vm.Kill()
					}
				})
			}
			wg.Wait()
			var each []string
			var okUps []float64
			for i := range vms {
				if errs[i] != "" {
					each = append(each, "fail")
					say("vm4 %s vm%d: %s", which, i+1, errs[i])
				} else {
					each = append(each, fmt.Sprintf("%.2f", ups[i]))
					okUps = append(okUps, ups[i])
				}
			}
			leases, _ := dhcp.Leases()
			med, _ := median(okUps)
			sent := web.BytesSent("/" + img.name)
			record("vm4", map[string]any{"initramfs": which, "uptimes": ups, "errors": errs, "wall": last.Seconds(), "bytes": sent, "leases": len(leases)})
			say("vm4 %s: real init at %s guest s, last after %.1f s wall, %s sent, %d leases", which, strings.Join(each, " "), last.Seconds(), mib(sent), len(leases))
			fmt.Fprintf(&b, "| %s | %s | %.2f | %.1f | %s | %d |\n", which, strings.Join(each, " "), med, last.Seconds(), mib(sent), len(leases))
		})
	}
	writeSection("vm4", b.String())
}
