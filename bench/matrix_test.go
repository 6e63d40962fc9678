package bench

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var modes = []string{"ram", "stream", "lazy"}

// specsFor lists the boots of one image: ours in each mode (at RTT > 0
// only in rttModes) and dracut's livenet (which always downloads the whole
// image first), at each RTT.
func specsFor(imageName string, rtts []time.Duration, rttModes []string) []bootSpec {
	var specs []bootSpec
	for _, rtt := range rtts {
		for _, m := range modes {
			if rtt > 0 && !slices.Contains(rttModes, m) {
				continue
			}
			specs = append(specs, bootSpec{Initramfs: ours, Image: imageName, Mode: m, RTT: rtt})
		}
		specs = append(specs, bootSpec{Initramfs: dracut, Image: imageName, Mode: "download", RTT: rtt})
	}
	return specs
}

// TestBoot: the small image (plain.squashfs, the busybox fixture root), both
// initramfs images, cfg.runs boots each: every mode at RTT 0; at the added
// RTTs only streamroot's default mode (STREAMROOT_BENCH_PLAIN_RTT_MODES),
// because on a 912 KiB image the three modes make the same two requests
// and the time budget of make bench goes further on the 1 GiB image.
func TestBoot(t *testing.T) {
	section(t, "boot")
	requireBoot(t)
	rttModes := []string{"stream"}
	if s := os.Getenv("STREAMROOT_BENCH_PLAIN_RTT_MODES"); s != "" {
		rttModes = strings.Split(s, ",")
	}
	measureSection(t, "boot", "Small image: plain.squashfs", "plain", specsFor("plain", cfg.rtts, rttModes), cfg.runs)
}

// TestNoPing: the small image at RTT 0 with a DHCP server that offers at
// once (dnsmasq --no-ping), so that the DHCP server's own ~3 s address
// probe is not part of either initramfs's time.
func TestNoPing(t *testing.T) {
	section(t, "noping")
	requireBoot(t)
	measureSection(t, "noping", "Small image, DHCP server without its address probe (dnsmasq --no-ping)", "plain", []bootSpec{
		{Initramfs: ours, Image: "plain", Mode: "stream", NoPing: true},
		{Initramfs: dracut, Image: "plain", Mode: "download", NoPing: true},
	}, cfg.runs)
}

// TestHuge: the 1 GiB image (huge.squashfs), every row booted
// STREAMROOT_BENCH_RUNS times (STREAMROOT_BENCH_HUGE_RUNS overrides, e.g. 1
// for a quick look). With added RTT only stream and lazy are booted, and
// dracut not at all: ram mode and dracut download the whole image first at
// every RTT, which adds minutes, not information, and would push make bench
// past its 30-minute budget (STREAMROOT_BENCH_HUGE_DRACUT_RTT=1 adds
// dracut's rows).
func TestHuge(t *testing.T) {
	section(t, "huge")
	requireBoot(t)
	runs := envRuns("STREAMROOT_BENCH_HUGE_RUNS", cfg.runs)
	rtts := envRTTs("STREAMROOT_BENCH_HUGE_RTTS", cfg.rtts)
	specs := specsFor("huge", rtts, []string{"stream", "lazy"})
	if os.Getenv("STREAMROOT_BENCH_HUGE_DRACUT_RTT") != "1" {
		specs = slices.DeleteFunc(specs, func(s bootSpec) bool { return s.Initramfs == dracut && s.RTT > 0 })
	}
	measureSection(t, "huge", "1 GiB image: huge.squashfs", "huge", specs, runs)
}

// measureSection boots each spec runs times with the image named image
// and writes the table of section name, headed title.
func measureSection(t *testing.T, name, title, image string, specs []bootSpec, runs int) {
	t.Helper()
	img := images(t)[image]
	var all []bootResult
	for _, spec := range specs {
		all = append(all, measure(t, spec, img, runs)...)
	}
	writeSection(name, bootTable(title, img, all))
}

type group struct {
	spec    bootSpec
	results []bootResult
}

func (g group) ok() []bootResult {
	var out []bootResult
	for _, r := range g.results {
		if r.Err == "" {
			out = append(out, r)
		}
	}
	return out
}

func (g group) medianUptime() (float64, bool) {
	var v []float64
	for _, r := range g.ok() {
		v = append(v, r.Uptime)
	}
	return median(v)
}

func (g group) medianBytes() (int64, bool) {
	var v []float64
	for _, r := range g.ok() {
		v = append(v, float64(r.BytesBefore))
	}
	m, ok := median(v)
	return int64(m), ok
}

// medianNetFloor is the median network floor (seconds) of the group's
// boots whose packets gave one.
func (g group) medianNetFloor() (float64, bool) {
	var v []float64
	for _, r := range g.ok() {
		if r.Net != nil {
			v = append(v, r.Net.Network().Seconds())
		}
	}
	return median(v)
}

func (g group) medianInitramfs() (float64, bool) {
	var v []float64
	for _, r := range g.ok() {
		if r.InitStart > 0 {
			v = append(v, r.Uptime-r.InitStart)
		}
	}
	return median(v)
}

func median(v []float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

func groups(results []bootResult) []group {
	var out []group
	idx := map[bootSpec]int{}
	for _, r := range results {
		i, ok := idx[r.Spec]
		if !ok {
			i = len(out)
			idx[r.Spec] = i
			out = append(out, group{spec: r.Spec})
		}
		out[i].results = append(out[i].results, r)
	}
	return out
}

// bootTable renders one image's boots: time to the real init with its ratio
// to dracut's at the same RTT, bytes sent before the real init, leases.
func bootTable(title string, img image, results []bootResult) string {
	gs := groups(results)
	dracutAt := map[time.Duration]float64{}
	dracutInit := map[time.Duration]float64{}
	for _, g := range gs {
		if g.spec.Initramfs == dracut {
			if m, ok := g.medianUptime(); ok {
				dracutAt[g.spec.RTT] = m
			}
			if m, ok := g.medianInitramfs(); ok {
				dracutInit[g.spec.RTT] = m
			}
		}
	}
	var size int64
	if st, err := os.Stat(img.path); err == nil {
		size = st.Size()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### %s (%s)\n\n", title, mib(size))
	b.WriteString("| initramfs | mode | added RTT | real init at (guest s, median) | runs (s) | × dracut | floor (s: kernel + network) | × floor | − floor (s) | in the initramfs (s from /init) | × dracut | sent before real init | % of image | requests | leases |\n")
	b.WriteString("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, g := range gs {
		var runs []string
		for _, r := range g.results {
			if r.Err != "" {
				runs = append(runs, "fail")
			} else {
				runs = append(runs, fmt.Sprintf("%.2f", r.Uptime))
			}
		}
		up, ok := g.medianUptime()
		upS, ratio, floorS, floorRatio, overFloor := "fail", "–", "n/a", "n/a", "n/a"
		if ok {
			upS = fmt.Sprintf("%.2f", up)
			if nf, ok := g.medianNetFloor(); ok && kernelFloor > 0 {
				floor := kernelFloor + nf
				floorS = fmt.Sprintf("%.2f + %.2f", kernelFloor, nf)
				floorRatio = fmt.Sprintf("%.2f", up/floor)
				overFloor = fmt.Sprintf("%.2f", up-floor)
			}
			if d, ok := dracutAt[g.spec.RTT]; ok && d > 0 {
				ratio = fmt.Sprintf("%.2f", up/d)
			}
		}
		initS, initRatio := "–", "–"
		if m, ok := g.medianInitramfs(); ok {
			initS = fmt.Sprintf("%.2f", m)
			if d, ok := dracutInit[g.spec.RTT]; ok && d > 0 {
				initRatio = fmt.Sprintf("%.2f", m/d)
			}
		}
		by, _ := g.medianBytes()
		share := "–"
		if size > 0 && ok {
			share = fmt.Sprintf("%.1f %%", 100*float64(by)/float64(size))
		}
		ok2 := g.ok()
		reqs, leases := "–", "–"
		if len(ok2) > 0 {
			reqs = strconv.Itoa(ok2[len(ok2)/2].Requests)
			var ls []string
			for _, r := range ok2 {
				ls = append(ls, strconv.Itoa(r.Leases))
			}
			leases = strings.Join(slices.Compact(ls), "/")
		}
		fmt.Fprintf(&b, "| %s | %s | %d ms | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			g.spec.Initramfs, g.spec.Mode, g.spec.RTT.Milliseconds(), upS, strings.Join(runs, " "), ratio, floorS, floorRatio, overFloor,
			initS, initRatio, mib(by), share, reqs, leases)
	}
	if kernelFloor > 0 {
		fmt.Fprintf(&b, "| kernel floor (/init only reports) | – | – | %.2f | – | – | – | – | – | – | – | – | – | – | – |\n", kernelFloor)
	}
	for _, g := range gs {
		for _, r := range g.results {
			if r.Err != "" {
				fmt.Fprintf(&b, "\n- %s: %s", r.Spec, r.Err)
			}
		}
	}
	b.WriteString("\n")
	return b.String()
}
