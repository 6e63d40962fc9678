package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	for _, v := range cfg.variants {
		if !strings.Contains(v.label, "dracut's NIC set") || dracutSize == 0 {
			continue
		}
		if st, err := os.Stat(v.path); err == nil {
			ratio := float64(st.Size()) / float64(dracutSize)
			verdict := "within the 1/3 goal"
			if ratio > 1.0/3 {
				verdict = fmt.Sprintf("above the 1/3 goal by %s (%.3f × dracut)", mib(st.Size()-dracutSize/3), ratio)
			}
			fmt.Fprintf(&b, "\nAt equal NIC coverage: %.3f × dracut's bytes, %s. What each part holds:\n", ratio, verdict)
			b.WriteString(partsTable(v.path, cfg.dracut))
		}
	}
	writeSection("sizes", b.String())
}

// TestLeases boots the Debian roots whose own DHCP client takes over after
// the initramfs — systemd-networkd with its default client id (a DUID), and
// NetworkManager with a profile that sets none (as the Foreman Discovery
// Image's) — with each initramfs, against dnsmasq and ISC Kea, and counts
// the server's live leases once the root's client has run. The roots are
// qemu-tests' lease fixtures (debootstrap, cached); make bench builds them
// when missing (STREAMROOT_BENCH_DEBIAN=1), otherwise missing ones are
// skipped. Lease counts do not depend on timing, so two guests boot at once.
func TestLeases(t *testing.T) {
	section(t, "leases")
	requireBoot(t)
	var roots []string
	for _, r := range []string{harness.FixtureNetworkd, harness.FixtureNM} {
		cached, _ := filepath.Glob(filepath.Join(env.Cache, "fixtures", r+"-*", "meta.json"))
		if len(cached) > 0 || cfg.debian {
			roots = append(roots, r)
		}
	}
	if len(roots) == 0 {
		msg := "### DHCP leases with Debian roots\n\nnot measured: the Debian fixtures are not in the cache " +
			"(run the lease tests of qemu-tests first, or STREAMROOT_BENCH_DEBIAN=1 to build them here with debootstrap)\n"
		writeSection("leases", msg)
		t.Skip("Debian fixtures not cached")
	}
	var (
		mu      sync.Mutex
		results []leaseRow
	)
	t.Run("boots", func(t *testing.T) {
		for _, root := range roots {
			path := env.LeaseFixture(t, root)
			img := image{name: root, path: path, memMiB: 1536}
			for _, fam := range []struct {
				srv  string
				ipv6 bool
			}{{"dnsmasq", false}, {"kea", false}, {"dnsmasq", true}, {"kea", true}} {
				srv := fam.srv
				for _, which := range []string{ours, dracut} {
					spec := bootSpec{Initramfs: which, Image: strings.TrimSuffix(root, ".squashfs"), Mode: "stream", DHCP: srv, IPv6: fam.ipv6}
					if which == dracut {
						spec.Mode = "download"
					}
					if srv == "dnsmasq" {
						spec.DHCP = "" // bootOnce's default server
					}
					if cfg.filter != nil && !cfg.filter.MatchString(spec.String()) {
						continue
					}
					t.Run(spec.String(), func(t *testing.T) {
						t.Parallel()
						res := bootOnce(t, spec, img)
						row := leaseRow{bootResult: res, Root: root, Server: srv, Family: "DHCPv4"}
						if fam.ipv6 {
							row.Family = "DHCPv6 (IPv6-only)"
						}
						if res.report != "" {
							if lr, err := harness.ParseLeaseReport(res.report); err == nil {
								row.OSDHCP, row.OSBound, row.OSLink, row.OSWait = lr.OSDHCP, lr.OSBound, lr.OSLink, lr.OSWait
							} else if res.Err == "" {
								row.Err = err.Error()
							}
						}
						record("leases", row)
						say("%-44s %s bound %v on %q after %d s; %d lease(s) in %s %s",
							spec, row.OSDHCP, row.OSBound, row.OSLink, row.OSWait, res.Leases, srv, row.Err)
						mu.Lock()
						results = append(results, row)
						mu.Unlock()
					})
				}
			}
		}
	})
	order := func(r leaseRow) string { return r.Family + "/" + r.Root + "/" + r.Server + "/" + r.Spec.Initramfs }
	slices.SortFunc(results, func(a, b leaseRow) int { return strings.Compare(order(a), order(b)) })
	var b strings.Builder
	b.WriteString("### DHCP leases once the root's own DHCP client ran (Debian roots, no client id configured in the root)\n\n")
	b.WriteString("| protocol | root (its DHCP client) | DHCP server | initramfs | leases held for the node | the root's client bound a lease | boot link in the root |\n|---|---|---|---|---:|---|---|\n")
	for _, r := range results {
		v := fmt.Sprint(r.Leases)
		if r.Err != "" {
			v += " (" + r.Err + ")"
		}
		link := r.OSLink
		if link == "" {
			link = "–"
		}
		fmt.Fprintf(&b, "| %s | %s (%s) | %s | %s | %s | %v | %s |\n", r.Family, strings.TrimSuffix(r.Root, ".squashfs"), r.OSDHCP, r.Server, r.Spec.Initramfs, v, r.OSBound, link)
	}
	b.WriteString("\nThe report finds the boot link by its MAC (from streamroot's `net.<iface>.env`, or `BOOTIF=` after dracut) " +
		"and waits up to 60 s (`lease.wait=60`) for the root's client to hold a lease on it. A root whose client never bound still shows the " +
		"initramfs's lease, which nobody renews.\n")
	writeSection("leases", b.String())
}

// leaseRow is a boot of a Debian root with what its LEASE REPORT said.
type leaseRow struct {
	bootResult
	Root, Server string
	Family       string // DHCPv4, or DHCPv6 on an IPv6-only boot
	OSDHCP       string // the root's DHCP client: networkd or NetworkManager
	OSBound      bool   // the root's own client held a lease on the boot link
	OSLink       string // the boot link's name in the root
	OSWait       int    // seconds the report waited for the client
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
			line := strings.Replace(cmdline(spec, web.URL(img.name)), " "+bootIF, "", 1)
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
					r, err := waitReport(vm, 400*time.Second)
					if err != nil {
						errs[i] = firstLine(err.Error())
						return
					}
					mu.Lock()
					last = max(last, time.Since(start))
					mu.Unlock()
					ups[i] = r.Uptime
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
