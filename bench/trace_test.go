package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/boottrace"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// TestTrace measures boot-trace prefetch (issue 17): for the Debian
// networkd root and the 1 GiB image, one boot at 0 ms in the default mode
// with a plain manifest records the trace (the root reports
// /run/initramfs/blockd.trace), and `streamroot trace` writes it into a
// copy of that manifest. Then, in stream and lazy mode
// (STREAMROOT_BENCH_TRACE_MODES) at each added RTT
// (STREAMROOT_BENCH_TRACE_RTTS, default 50,100), the image boots with the
// plain manifest's pin and with the traced one's,
// STREAMROOT_BENCH_TRACE_RUNS times each (default 1: a Debian boot at 100 ms
// takes minutes). Manifests have the default chunk size unless
// STREAMROOT_BENCH_TRACE_CHUNK (e.g. 1MiB) says otherwise. Both arms verify
// every chunk; only the prefetch list differs. The figure is when the root
// came up: for the Debian root the guest uptime at which its LEASE REPORT
// unit started (systemd's boot, before the report waits for the DHCP
// client), for the busybox root the report of its init.
func TestTrace(t *testing.T) {
	section(t, "trace")
	requireBoot(t)
	runs := envRuns("STREAMROOT_BENCH_TRACE_RUNS", 1)
	rtts := envRTTs("STREAMROOT_BENCH_TRACE_RTTS", []time.Duration{50 * time.Millisecond, 100 * time.Millisecond})
	// Stream mode's fill starts at the switch and fetches the whole image
	// in image order; lazy mode fetches only what is read, one demand read
	// at a time: the list's two cases.
	modes := []string{"stream", "lazy"}
	if s := os.Getenv("STREAMROOT_BENCH_TRACE_MODES"); s != "" {
		modes = strings.Split(s, ",")
	}
	cli := harness.StreamrootCLI(t)
	subjects := []struct {
		label, key string
		img        image
		record     string // what the recording boot adds so the root reports its trace
	}{
		{"Debian networkd root (systemd)", "debian-networkd",
			image{name: harness.FixtureNetworkd, path: env.LeaseFixture(t, harness.FixtureNetworkd), memMiB: 1536}, ""},
		{"1 GiB image (busybox root + 1 GiB file)", "huge", images(t)["huge"], "fixture.mode=trace"},
	}
	var b strings.Builder
	b.WriteString("### Boot-trace prefetch (`streamroot trace`), default mode, every chunk verified\n\n")
	b.WriteString("| image | mode | added RTT | prefetch list | root up without the list | with it | with / without | image sent before the switch: without / with |\n|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, s := range subjects {
		dir := t.TempDir()
		if st, err := os.Stat(s.img.path); err == nil {
			s.label += fmt.Sprintf(", %s", mib(st.Size()))
		}
		plain := filepath.Join(dir, "plain.manifest")
		margs := []string{"manifest", "-o", plain, "-no-progress"}
		if c := os.Getenv("STREAMROOT_BENCH_TRACE_CHUNK"); c != "" {
			margs = append(margs, "-chunk", c)
		}
		if _, err := runCLI(cli, append(margs, s.img.path)...); err != nil {
			t.Fatal(err)
		}
		plainArg, _, err := manifestPin(plain)
		if err != nil {
			t.Fatal(err)
		}
		rec := s.img
		rec.manifest, rec.args = plain, strings.TrimSpace(plainArg+" "+s.record)
		var recorded bootResult
		t.Run("record/"+s.key, func(t *testing.T) {
			recorded = bootOnce(t, bootSpec{Initramfs: ours, Image: s.key, Mode: "stream"}, rec)
		})
		trace, err := reportedTrace(recorded.report)
		if recorded.Err != "" || err != nil {
			say("%s: recording boot failed: %s %v", s.key, recorded.Err, err)
			fmt.Fprintf(&b, "| %s | – | not measured: the recording boot failed (%s %v) | | | | |\n", s.label, recorded.Err, err)
			continue
		}
		traceFile := filepath.Join(dir, "blockd.trace")
		traced := filepath.Join(dir, "traced.manifest")
		if err := os.WriteFile(traceFile, []byte(trace), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := harness.CopyFile(plain, traced); err != nil {
			t.Fatal(err)
		}
		if _, err := runCLI(cli, "trace", "-manifest", traced, traceFile); err != nil {
			t.Fatal(err)
		}
		tracedArg, m, err := manifestPin(traced)
		if err != nil {
			t.Fatal(err)
		}
		say("%s: the recording boot read %d chunks; the prefetch list has %d of %s", s.key, strings.Count(trace, "\n")-1, len(m.Prefetch), mib(m.Chunk))
		for _, mode := range modes {
			for _, rtt := range rtts {
				var arms [2][]bootResult
				for i, arm := range []struct {
					suffix, manifest, arg string
				}{{"", plain, plainArg}, {"+trace", traced, tracedArg}} {
					img := s.img
					img.manifest, img.args = arm.manifest, arm.arg
					arms[i] = measure(t, bootSpec{Initramfs: ours, Image: s.key + arm.suffix, Mode: mode, RTT: rtt}, img, runs)
				}
				if len(arms[0])+len(arms[1]) == 0 {
					continue // STREAMROOT_BENCH_FILTER left both out
				}
				without, okW := medianOf(arms[0], rootUp)
				with, okT := medianOf(arms[1], rootUp)
				bw, _ := medianOf(arms[0], func(r bootResult) float64 { return float64(r.BytesBefore) })
				bt, _ := medianOf(arms[1], func(r bootResult) float64 { return float64(r.BytesBefore) })
				cell := func(v float64, ok bool) string {
					if !ok {
						return "failed"
					}
					return fmt.Sprintf("%.2f s", v)
				}
				ratio := "–"
				if okW && okT && without > 0 {
					ratio = fmt.Sprintf("%.2f", with/without)
				}
				fmt.Fprintf(&b, "| %s | %s | %d ms | %d × %s | %s | %s | %s | %s / %s |\n", s.label, mode, rtt.Milliseconds(), len(m.Prefetch), mib(m.Chunk),
					cell(without, okW), cell(with, okT), ratio, mib(int64(bw)), mib(int64(bt)))
			}
		}
	}
	fmt.Fprintf(&b, "\nMedians of %d boot(s) a cell (STREAMROOT_BENCH_TRACE_RUNS). Root up: guest seconds from kernel start to the Debian root's "+
		"LEASE REPORT unit starting (systemd's own boot done; the unit then waits for the DHCP client), or to the busybox root's report. "+
		"The goal for the Debian root is with / without ≤ 0.8.\n", runs)
	writeSection("trace", b.String())
}

// rootUp is when the root came up: the lease report's start on a Debian
// root, else the fixture's report.
func rootUp(r bootResult) float64 {
	if lr, err := harness.ParseLeaseReport(r.report); err == nil && lr.Started > 0 {
		return lr.Started
	}
	return r.Uptime
}

// medianOf is the median of f over the boots that reached the root.
func medianOf(rs []bootResult, f func(bootResult) float64) (float64, bool) {
	var v []float64
	for _, r := range rs {
		if r.Err == "" {
			v = append(v, f(r))
		}
	}
	return median(v)
}

// reportedTrace is the boot trace a root reported: the lease report's, or
// the stream fixture's trace_b64 (fixture.mode=trace). It must parse.
func reportedTrace(js string) (string, error) {
	var trace string
	if lr, err := harness.ParseLeaseReport(js); err == nil {
		trace = lr.Trace
	} else {
		var raw struct {
			Trace string `json:"trace_b64"`
		}
		if err := json.Unmarshal([]byte(js), &raw); err != nil {
			return "", err
		}
		b, err := base64.StdEncoding.DecodeString(raw.Trace)
		if err != nil {
			return "", err
		}
		trace = string(b)
	}
	if _, err := boottrace.Parse([]byte(trace)); err != nil {
		return "", fmt.Errorf("the reported trace: %w", err)
	}
	return trace, nil
}

// manifestPin reads a manifest file: its kernel argument and contents.
func manifestPin(path string) (string, *manifest.Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	return manifest.KernelArg(data), m, nil
}

// runCLI runs the streamroot CLI, bounded.
func runCLI(cli string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("streamroot %s: %w\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out), nil
}
