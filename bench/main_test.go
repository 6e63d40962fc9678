// Package bench is `make bench`: streamroot side by side with dracut's
// livenet on the same kernel, images and peers (the QEMU harness of
// qemu-tests), plus a boot storm of in-process clients against nginx and an
// nginx slice cache. It prints figures, not pass/fail verdicts: see
// docs/benchmarks.md for a run and what each figure means.
//
// The tests here do nothing unless STREAMROOT_BENCH=1 (make bench sets it
// and the paths below), so `go test ./...` skips them.
//
//	STREAMROOT_BENCH=1              run at all
//	STREAMROOT_KERNEL               vmlinuz (as for qemu-tests)
//	STREAMROOT_INITRAMFS            streamroot's initramfs (default build)
//	STREAMROOT_BENCH_DRACUT         dracut's livenet initramfs
//	STREAMROOT_BENCH_VARIANTS       "label=path,..." initramfs files whose sizes are listed
//	STREAMROOT_BENCH_OUT            where results go (default build/bench)
//	STREAMROOT_BENCH_RUNS           boots per figure (default 3; the median is shown)
//	STREAMROOT_BENCH_RTTS           added round-trip times in ms (default 0,50,100)
//	STREAMROOT_BENCH_ONLY           sections to run, comma separated (default all but
//	                                the long chains and trace): sizes floor compress boot
//	                                huge chains leases trace vm4 storm
//	STREAMROOT_BENCH_STORM          storm client counts (default 50,200)
//	STREAMROOT_BENCH_COMPRESS_RUNS  boots per -compress setting (default 2)
//	STREAMROOT_BENCH_COMPRESS       settings to measure (default all the builder offers)
//	STREAMROOT_BENCH_FILTER         regexp: only boots whose "initramfs/image/mode/rttNms" matches
//	STREAMROOT_BENCH_DEBIAN=1       build the Debian networkd root if it is not cached
//	STREAMROOT_BENCH_TRACE_RUNS     boots per figure in the trace section (default 1)
//	STREAMROOT_BENCH_TRACE_RTTS     added RTTs in ms for the trace section (default 50,100)
//	STREAMROOT_BENCH_TRACE_CHUNK    the trace section's manifest chunk size (default the manifest default, 4MiB)
//	STREAMROOT_BENCH_TRACE_MODES    fetch modes the trace section boots (default stream,lazy)
//	STREAMROOT_BENCH_CHAIN_RTTS     added RTTs in ms for the chains section (default 0,20,50)
//	STREAMROOT_BENCH_CHAIN_RUNS     boots per row in the chains section (default 1)
package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

var (
	env *harness.Env
	cfg config
)

func TestMain(m *testing.M) {
	env = harness.NewEnv()
	cfg = readConfig()
	code := m.Run()
	env.Close()
	os.Exit(code)
}

type config struct {
	enabled  bool
	dracut   string
	variants []variant
	out      string
	runs     int
	rtts     []time.Duration
	only     []string
	storm    []int
	debian   bool
	filter   *regexp.Regexp // STREAMROOT_BENCH_FILTER: only boots whose spec matches
}

type variant struct{ label, path string }

func readConfig() config {
	c := config{
		enabled: os.Getenv("STREAMROOT_BENCH") == "1",
		dracut:  absPath(os.Getenv("STREAMROOT_BENCH_DRACUT")),
		out:     os.Getenv("STREAMROOT_BENCH_OUT"),
		runs:    3,
		rtts:    []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond},
		storm:   []int{50, 200},
		debian:  os.Getenv("STREAMROOT_BENCH_DEBIAN") == "1",
	}
	if c.out == "" {
		c.out = "../build/bench"
	}
	c.out = absPath(c.out)
	c.runs = envRuns("STREAMROOT_BENCH_RUNS", c.runs)
	c.rtts = envRTTs("STREAMROOT_BENCH_RTTS", c.rtts)
	if s := os.Getenv("STREAMROOT_BENCH_STORM"); s != "" {
		c.storm = nil
		for _, f := range strings.Split(s, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
				c.storm = append(c.storm, n)
			}
		}
	}
	if s := os.Getenv("STREAMROOT_BENCH_FILTER"); s != "" {
		c.filter = regexp.MustCompile(s)
	}
	if s := os.Getenv("STREAMROOT_BENCH_ONLY"); s != "" {
		c.only = strings.Split(s, ",")
	}
	for _, f := range strings.Split(os.Getenv("STREAMROOT_BENCH_VARIANTS"), ",") {
		if i := strings.LastIndex(f, "="); i > 0 { // labels may hold "=", paths do not
			c.variants = append(c.variants, variant{f[:i], absPath(f[i+1:])})
		}
	}
	return c
}

func absPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	// go test runs in the package directory; make passes paths relative to
	// the repository root or absolute ones.
	if _, err := os.Stat(p); err != nil {
		if _, err := os.Stat(filepath.Join("..", p)); err == nil {
			p = filepath.Join("..", p)
		}
	}
	a, _ := filepath.Abs(p)
	return a
}

// section skips t unless the bench is enabled and the section selected.
func section(t *testing.T, name string) {
	t.Helper()
	if !cfg.enabled {
		t.Skip("set STREAMROOT_BENCH=1 (make bench) to run the benchmarks")
	}
	if len(cfg.only) > 0 && !slices.Contains(cfg.only, name) {
		t.Skipf("section %s not in STREAMROOT_BENCH_ONLY", name)
	}
	if len(cfg.only) == 0 && slices.Contains(longSections, name) {
		t.Skipf("section %s runs only when STREAMROOT_BENCH_ONLY names it (it takes long)", name)
	}
}

// longSections run only when STREAMROOT_BENCH_ONLY names them: with them
// make bench would take well over its 30-minute budget (chains: about an
// hour at 0, 20 and 50 ms, most of it dracut over TFTP; trace: about 12
// minutes of Debian boots).
var longSections = []string{"chains", "trace"}

// say prints a progress line on stdout at once (the harness's own lines go
// to t.Log and show only with -test.v).
func say(format string, args ...any) {
	fmt.Printf("bench %s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// record appends one result to <out>/<kind>.jsonl, so a partial run keeps
// what it measured.
var recordMu sync.Mutex

func record(kind string, v any) {
	recordMu.Lock()
	defer recordMu.Unlock()
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(cfg.out, kind+".jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	b, _ := json.Marshal(v)
	f.Write(append(b, '\n'))
}

// writeSection writes one part of the report to <out>/report-<name>.md and
// prints it.
func writeSection(name, text string) {
	os.MkdirAll(cfg.out, 0o755)
	os.WriteFile(filepath.Join(cfg.out, "report-"+name+".md"), []byte(text), 0o644)
	fmt.Println()
	fmt.Print(text)
	fmt.Println()
}

// envRuns is the positive count in the environment variable name, or def.
func envRuns(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// envRTTs is the comma-separated list of milliseconds in the environment
// variable name ("0,20,50"; malformed or negative fields are skipped), or
// def when it is unset.
func envRTTs(name string, def []time.Duration) []time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		if ms, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && ms >= 0 {
			out = append(out, time.Duration(ms)*time.Millisecond)
		}
	}
	return out
}
