package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"

	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/chunkcache"
	"github.com/streamroot/streamroot/pkg/httpsrc"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// The boot storm: N in-process clients, each with its own httpsrc.Source
// and chunkcache.Cache (stream mode, the default), start at the same moment
// against (a) the origin nginx directly and (b) an nginx slice cache in
// front of it. Each client first reads its boot-critical blocks (what the
// kernel reads before the real init can start), then fills the rest, as
// the block daemon does. Everything is on loopback.
//
// The clients of one run live in a child process (this test binary re-run
// with STREAMROOT_STORM_CHILD set): blockd keeps each client's image in a
// memfd for the life of the process, and 200 clients of a 48 MiB image are
// 9.4 GiB that must be freed before the next run.

// stormResult is one client's timings.
type stormClient struct {
	Critical float64 // seconds from start until the boot-critical blocks were read
	Full     float64 // seconds until the whole image was local
	Err      string  `json:",omitempty"`
}

// stormRun is one (N, target) run.
type stormRun struct {
	N           int
	Target      string // origin or slice-cache
	ImageSize   int64
	Critical    int64 // boot-critical bytes per client
	OriginBytes int64 // body bytes the origin sent
	OriginReqs  int
	CacheReqs   int            // requests the cache answered
	CacheHits   int            // of those, HIT
	CacheBytes  int64          // body bytes the cache sent
	HitBytes    int64          // of those, from HITs
	CacheStatus map[string]int // $upstream_cache_status of the cache's requests
	CritP50     float64
	CritP99     float64
	FullP50     float64
	FullP99     float64
	Wall        float64
	Failed      int
	FirstErr    string `json:",omitempty"`
	When        time.Time
}

// criticalRanges are the byte ranges a squashfs boot reads before the real
// init runs, approximated as the first 4 MiB (superblock, the start of the
// data: init, busybox, libraries in mksquashfs order) plus the metadata
// tables at the end (inode, directory, fragment, export and id tables,
// from inode_table_start to bytes_used).
func criticalRanges(path string) ([][2]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sb := make([]byte, 96)
	if _, err := f.ReadAt(sb, 0); err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(sb[0:]) != 0x73717368 {
		return nil, fmt.Errorf("%s: not a squashfs", path)
	}
	bytesUsed := int64(binary.LittleEndian.Uint64(sb[40:]))
	inodeTable := int64(binary.LittleEndian.Uint64(sb[64:]))
	head := min(int64(4<<20), bytesUsed)
	if inodeTable <= head {
		return [][2]int64{{0, bytesUsed}}, nil
	}
	return [][2]int64{{0, head}, {inodeTable, bytesUsed}}, nil
}

// nginxProc is an nginx master with its workers, on loopback.
type nginxProc struct {
	dir, conf, accessLog string
	cmd                  *exec.Cmd
	done                 chan struct{}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const stormLogFormat = `'$msec $status $body_bytes_sent $upstream_cache_status "$http_range" $request_uri'`

// startNginx starts nginx with the given server block (and http-level
// extra) under dir, and waits until port accepts connections.
func startNginx(t *testing.T, dir string, port int, httpExtra, server string) *nginxProc {
	t.Helper()
	for _, d := range []string{dir, filepath.Join(dir, "temp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n := &nginxProc{dir: dir, conf: filepath.Join(dir, "nginx.conf"), accessLog: filepath.Join(dir, "access.log"), done: make(chan struct{})}
	conf := fmt.Sprintf(`# written by bench/storm_test.go
daemon off;
master_process on;
user root;
worker_processes 2;
worker_rlimit_nofile 16384;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
http {
	types { application/octet-stream squashfs img; }
	default_type application/octet-stream;
	log_format storm %[2]s;
	access_log %[3]s storm;
	client_body_temp_path %[1]s/temp/body;
	proxy_temp_path %[1]s/temp/proxy;
	fastcgi_temp_path %[1]s/temp/fastcgi;
	uwsgi_temp_path %[1]s/temp/uwsgi;
	scgi_temp_path %[1]s/temp/scgi;
	sendfile on;
	keepalive_timeout 60s;
	keepalive_requests 100000;
	%[4]s
	server {
		listen 127.0.0.1:%[5]d;
		%[6]s
	}
}
`, dir, stormLogFormat, n.accessLog, httpExtra, port, server)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command("nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", n.conf)
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := os.Create(filepath.Join(dir, "nginx.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	n.cmd.Stdout, n.cmd.Stderr = out, out
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	out.Close()
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(n.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return n
		}
		select {
		case <-n.done:
			se, _ := os.ReadFile(filepath.Join(dir, "nginx.stderr"))
			el, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %s %s", se, el)
		default:
		}
		if time.Now().After(deadline) {
			n.stop()
			t.Fatalf("nginx on port %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the process group this nginx started (by its PID), bounded.
func (n *nginxProc) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
	}
}

type stormEntry struct {
	status int
	bytes  int64
	cache  string
	uri    string
}

var stormLine = regexp.MustCompile(`^\S+ (\d+) (\d+) (\S+) "[^"]*" (\S+)$`)

func (n *nginxProc) entries() []stormEntry {
	return harness.LogLines(n.accessLog, parseStormLine)
}

// parseStormLine parses one line of the storm's log format.
func parseStormLine(line string) (stormEntry, bool) {
	m := stormLine.FindStringSubmatch(line)
	if m == nil {
		return stormEntry{}, false
	}
	st, _ := strconv.Atoi(m[1])
	b, _ := strconv.ParseInt(m[2], 10, 64)
	return stormEntry{st, b, m[3], m[4]}, true
}

// TestStorm runs the boot storm for each N in cfg.storm against the origin
// and against the slice cache.
func TestStorm(t *testing.T) {
	section(t, "storm")
	if os.Geteuid() != 0 {
		t.Skip("the storm runs nginx as root (user root in its config)")
	}
	sfx := env.StreamFixtures(t)
	img := sfx.Stream
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := criticalRanges(img)
	if err != nil {
		t.Fatal(err)
	}
	var crit int64
	for _, r := range ranges {
		crit += r[1] - r[0]
	}
	say("storm: image %s (%s), boot-critical %s in %v", filepath.Base(img), mib(st.Size()), mib(crit), ranges)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var runs []stormRun
	for _, n := range cfg.storm {
		for _, target := range []string{"origin", "slice-cache"} {
			var run stormRun
			t.Run(fmt.Sprintf("%s-%d", target, n), func(t *testing.T) {
				run = stormOnce(t, self, img, n, target, ranges)
			})
			run.N, run.Target, run.ImageSize, run.Critical = n, target, st.Size(), crit
			record("storm", run)
			say("storm: %-11s N=%-3d origin sent %s (%.2f× image), cache %v, critical p50 %.2fs p99 %.2fs, full p50 %.2fs p99 %.2fs, %d failed, %.1fs wall",
				target, n, mib(run.OriginBytes), float64(run.OriginBytes)/float64(st.Size()), run.CacheStatus,
				run.CritP50, run.CritP99, run.FullP50, run.FullP99, run.Failed, run.Wall)
			runs = append(runs, run)
		}
	}
	writeSection("storm", stormTable(runs, filepath.Base(img), st.Size(), crit))
}

func stormOnce(t *testing.T, self, img string, n int, target string, ranges [][2]int64) stormRun {
	run := stormRun{When: time.Now()}
	dir := t.TempDir()
	docroot := filepath.Join(dir, "docroot")
	os.MkdirAll(docroot, 0o755)
	name := filepath.Base(img)
	if err := os.Link(img, filepath.Join(docroot, name)); err != nil {
		t.Fatal(err)
	}
	op := freePort(t)
	origin := startNginx(t, filepath.Join(dir, "origin"), op, "", fmt.Sprintf("root %s;\n\t\tlocation / { }", docroot))
	url := fmt.Sprintf("http://127.0.0.1:%d/%s", op, name)
	var cache *nginxProc
	if target == "slice-cache" {
		cp := freePort(t)
		cacheDir := filepath.Join(dir, "cache", "store")
		os.MkdirAll(cacheDir, 0o755)
		// The slice configuration of docs/benchmarks.md: 1 MiB slices
		// (blockd's chunk), keyed by slice; proxy_cache_lock makes
		// concurrent misses of one slice wait for the first.
		cache = startNginx(t, filepath.Join(dir, "cache"), cp,
			fmt.Sprintf("proxy_cache_path %s levels=1:2 keys_zone=img:16m max_size=4g inactive=1h use_temp_path=off;", cacheDir),
			fmt.Sprintf(`location / {
			slice 1m;
			proxy_cache img;
			proxy_cache_key $uri$is_args$args$slice_range;
			proxy_set_header Range $slice_range;
			proxy_cache_valid 200 206 1h;
			proxy_cache_lock on;
			proxy_cache_lock_timeout 60s;
			proxy_cache_lock_age 60s;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_pass http://127.0.0.1:%d;
		}`, op))
		url = fmt.Sprintf("http://127.0.0.1:%d/%s", cp, name)
	}
	rs, _ := json.Marshal(ranges)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-test.run", "^TestStormChild$", "-test.timeout", "9m")
	cmd.Env = append(os.Environ(), "STREAMROOT_STORM_CHILD=1", "STREAMROOT_STORM_URL="+url,
		"STREAMROOT_STORM_N="+strconv.Itoa(n), "STREAMROOT_STORM_RANGES="+string(rs),
		"STREAMROOT_STORM_OUT="+filepath.Join(dir, "clients.json"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	run.Wall = time.Since(start).Seconds()
	if err != nil {
		t.Errorf("storm child: %v\n%s", err, harness.Tail(string(out), 30))
	}
	var clients []stormClient
	if b, err := os.ReadFile(filepath.Join(dir, "clients.json")); err == nil {
		json.Unmarshal(b, &clients)
	}
	var crit, full []float64
	for _, c := range clients {
		if c.Err != "" {
			run.Failed++
			if run.FirstErr == "" {
				run.FirstErr = c.Err
			}
			continue
		}
		crit = append(crit, c.Critical)
		full = append(full, c.Full)
	}
	run.Failed += n - len(clients)
	run.CritP50, run.CritP99 = percentile(crit, 50), percentile(crit, 99)
	run.FullP50, run.FullP99 = percentile(full, 50), percentile(full, 99)
	// Let nginx finish writing its logs (a request is logged when done).
	time.Sleep(500 * time.Millisecond)
	for _, e := range origin.entries() {
		run.OriginBytes += e.bytes
		run.OriginReqs++
	}
	if cache != nil {
		run.CacheStatus = map[string]int{}
		for _, e := range cache.entries() {
			run.CacheStatus[e.cache]++
			run.CacheReqs++
			run.CacheBytes += e.bytes
			if e.cache == "HIT" {
				run.CacheHits++
				run.HitBytes += e.bytes
			}
		}
	}
	return run
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// TestStormChild is one storm run's clients (see TestStorm); it runs only
// when TestStorm starts it.
func TestStormChild(t *testing.T) {
	if os.Getenv("STREAMROOT_STORM_CHILD") != "1" {
		t.Skip("started by TestStorm")
	}
	url := os.Getenv("STREAMROOT_STORM_URL")
	n, _ := strconv.Atoi(os.Getenv("STREAMROOT_STORM_N"))
	var ranges [][2]int64
	if err := json.Unmarshal([]byte(os.Getenv("STREAMROOT_STORM_RANGES")), &ranges); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	clients := make([]stormClient, n)
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-startGate
			clients[i] = stormClientRun(ctx, url, ranges)
		})
	}
	close(startGate)
	wg.Wait()
	b, _ := json.Marshal(clients)
	if err := os.WriteFile(os.Getenv("STREAMROOT_STORM_OUT"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stormClientRun is one simulated node: the block daemon's source and
// cache, the boot's reads, then the background fill.
func stormClientRun(ctx context.Context, url string, ranges [][2]int64) stormClient {
	start := time.Now()
	var c stormClient
	src, err := httpsrc.Open(ctx, url, httpsrc.Options{Stall: 3 * time.Minute})
	if err != nil {
		c.Err = err.Error()
		return c
	}
	cache, err := chunkcache.New(httpsrc.Device{Source: src}, chunkcache.Options{ReadTimeout: 3 * time.Minute})
	if err != nil {
		c.Err = err.Error()
		return c
	}
	// The fill starts with the boot, as in the block daemon's stream mode;
	// the boot's own reads are demand reads that jump the queue.
	fillErr := make(chan error, 1)
	go func() { fillErr <- cache.Fill(ctx, nil) }()
	// Reads of 128 KiB, as the kernel's readahead issues them.
	buf := make([]byte, 128<<10)
	for _, r := range ranges {
		for off := r[0]; off < r[1]; off += int64(len(buf)) {
			n := min(int64(len(buf)), r[1]-off)
			if err := cache.ReadAt(ctx, buf[:n], off); err != nil {
				c.Err = err.Error()
				return c
			}
		}
	}
	c.Critical = time.Since(start).Seconds()
	if err := <-fillErr; err != nil {
		c.Err = err.Error()
		return c
	}
	c.Full = time.Since(start).Seconds()
	return c
}

func stormTable(runs []stormRun, name string, size, crit int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Boot storm: %s (%s; boot-critical %s per client)\n\n", name, mib(size), mib(crit))
	b.WriteString("| clients | served by | origin sent | × image | cache hit ratio (requests / bytes) | boot-critical p50 / p99 | whole image p50 / p99 | failed | wall |\n")
	b.WriteString("|---:|---|---:|---:|---|---|---|---:|---:|\n")
	for _, r := range runs {
		hit := "–"
		if r.CacheReqs > 0 {
			// Every origin request is one slice the cache did not have
			// ($upstream_cache_status is not reliable under the slice
			// module: it said HIT for all but the first request here).
			// Bytes: what the clients got that the origin did not send.
			hit = fmt.Sprintf("%.1f %% / %.1f %%", 100*(1-float64(r.OriginReqs)/float64(r.CacheReqs)),
				100*(1-float64(r.OriginBytes)/float64(max(r.CacheBytes, 1))))
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %.2f | %s | %.2f s / %.2f s | %.2f s / %.2f s | %d | %.1f s |\n",
			r.N, r.Target, mib(r.OriginBytes), float64(r.OriginBytes)/float64(max(size, 1)), hit,
			r.CritP50, r.CritP99, r.FullP50, r.FullP99, r.Failed, r.Wall)
	}
	for _, r := range runs {
		if r.FirstErr != "" {
			fmt.Fprintf(&b, "\n- %s N=%d: first error: %s", r.Target, r.N, r.FirstErr)
		}
	}
	b.WriteString("\n")
	return b.String()
}
