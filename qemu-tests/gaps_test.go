package qemutests

// The faults docs/faults.md listed under "Gaps": each proven here in QEMU,
// against a peer that misbehaves on cue (an in-namespace DNS responder or Go
// HTTP server where nginx and dnsmasq cannot be told to).

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/testfile"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// dnsNet is a namespace whose DHCP server names 10.77.0.1 as the DNS
// server, where the test's own responder (not dnsmasq) listens.
func dnsNet(t *testing.T, dns harness.DNSOptions) (*testNet, *harness.DNSServer) {
	t.Helper()
	env.Require(t)
	n := &testNet{fx: env.Fixtures(t)}
	n.ns = env.NewNetns(t)
	n.dhcp = harness.StartDnsmasq(t, n.ns, harness.DnsmasqOptions{Extra: []string{"--dhcp-option=option:dns-server,10.77.0.1"}})
	return n, harness.StartDNS(t, n.ns, dns)
}

// A DNS server that never answers (stream mode: the block daemon resolves):
// the lookup is asked again until rd.retry, and the block names the URL.
func TestGapDNSNoAnswer(t *testing.T) {
	t.Parallel()
	n, dns := dnsNet(t, harness.DNSOptions{}) // reads every query, answers none
	n.web = harness.StartNginx(t, n.ns, harness.NginxOptions{})
	n.serve(t, "plain.squashfs", n.fx.Plain)
	url := "http://boot.lab/plain.squashfs"
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, "rd.retry=40"), Timeout: 240 * time.Second})
	vm.ExpectFailure(t, "fetch", url, "resolve boot.lab", "no answer within 40s (rd.retry)", "DNS server")
	qs := dns.QueriesFor("boot.lab")
	if len(qs) == 0 {
		t.Fatal("the DNS server never saw a query for boot.lab")
	}
	span := qs[len(qs)-1].Time.Sub(qs[0].Time)
	t.Logf("dns: %d queries for boot.lab over %s", len(qs), span.Round(time.Millisecond))
	// One lookup is A and AAAA, two attempts 5 s apart: at most 4 queries
	// within about 10 s. More, over most of rd.retry, are retries.
	if len(qs) <= 4 || span < 20*time.Second {
		t.Errorf("%d queries over %s: the lookup was not retried within rd.retry=40", len(qs), span)
	}
	if reqs := n.web.Requests("/plain.squashfs"); len(reqs) != 0 {
		t.Errorf("nginx saw %d requests though the name never resolved", len(reqs))
	}
}

// A DNS server that answers late (lazy mode): everything asked in its first
// 8 s is dropped, so the first lookup (two attempts 5 s apart) fails; the
// retry gets the answer and the node boots.
func TestGapDNSLateAnswer(t *testing.T) {
	t.Parallel()
	n, dns := dnsNet(t, harness.DNSOptions{
		Answer: netip.MustParseAddr(harness.ServerIP),
		Drop:   func(_ int, since time.Duration) bool { return since < 8*time.Second },
	})
	n.web = harness.StartNginx(t, n.ns, harness.NginxOptions{})
	n.serve(t, "plain.squashfs", n.fx.Plain)
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:http://boot.lab/plain.squashfs streamroot.fetch=lazy rd.retry=60"})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	var dropped, answered int
	for _, q := range dns.QueriesFor("boot.lab") {
		if q.Answered {
			answered++
		} else {
			dropped++
		}
	}
	t.Logf("dns: %d queries for boot.lab dropped, %d answered", dropped, answered)
	if dropped == 0 || answered == 0 {
		t.Errorf("want dropped and then answered queries, got %d dropped, %d answered: the test tested nothing", dropped, answered)
	}
	if len(n.web.Requests("/plain.squashfs")) == 0 {
		t.Error("nginx served no request for the image")
	}
	if !strings.Contains(vm.Console(), "resolved after retrying") {
		t.Error("the block daemon did not say the name resolved after retrying")
	}
}

// eachStreamMode runs test once per mode that reads the image while the
// root runs (stream and lazy), as parallel subtests, each on a network of
// its own set up with o.
func eachStreamMode(t *testing.T, o netOptions, test func(t *testing.T, n *testNet, mode string)) {
	t.Helper()
	for _, mode := range []string{"stream", "lazy"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			test(t, setup(t, o), mode)
		})
	}
}

// lazyArg is the kernel argument that asks for mode lazy, and none for
// stream, the default.
func lazyArg(mode string) string {
	if mode == "lazy" {
		return " streamroot.fetch=lazy"
	}
	return ""
}

// A chunk the layers stage reads (chunk 0: the squashfs superblock) fails
// the manifest: the block names the chunk and its offset, not just an I/O
// error, and the corrupt bytes never reach the kernel.
func TestGapCorruptChunkBeforeSwitch(t *testing.T) {
	t.Parallel()
	eachStreamMode(t, netOptions{}, func(t *testing.T, n *testNet, mode string) {
		url, arg, _ := pinned(t, n, 4096+123)
		vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, arg, "rd.retry=20", "streamroot.io.timeout=10", "streamroot.fetch="+mode)})
		fb := vm.ExpectFailure(t, "layers", "stream.squashfs", "chunk 0 (bytes 0-1048575 of the image)", "SHA-256 mismatch")
		if !strings.Contains(fb.Hint, "manifest") {
			t.Errorf("the hint does not point at the image or its manifest: %q", fb.Hint)
		}
		if !strings.Contains(vm.Console(), "refusing a corrupt chunk") {
			t.Error("the block daemon did not say it refused the chunk")
		}
		if strings.Contains(vm.Console(), "layers: mounted") {
			t.Error("something was mounted from the corrupt image")
		}
	})
}

// imageHandler serves one file at /name; before, if set, may answer a
// request itself (returning true) instead.
func imageHandler(path, name string, before func(w http.ResponseWriter, r *http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/"+name {
			http.NotFound(w, r)
			return
		}
		if before != nil && before(w, r) {
			return
		}
		harness.ServeFile(w, r, path)
	})
}

// 503 with Retry-After: 2 for the first two requests: the node waits as
// told (the server sees the gaps) and boots.
func TestGapRetryAfter(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{noHTTP: true})
	var seen atomic.Int32
	srv := harness.StartGoServer(t, n.ns, "10.77.0.1:8080", nil, imageHandler(n.fx.Plain, "plain.squashfs", func(w http.ResponseWriter, r *http.Request) bool {
		if seen.Add(1) > 2 {
			return false
		}
		w.Header().Set("Retry-After", "2")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return true
	}))
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + srv.URL("10.77.0.1", "plain.squashfs") + " rd.retry=60"})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	reqs := srv.Requests("/plain.squashfs")
	if len(reqs) < 3 {
		t.Fatalf("%d requests, want two 503s and then the image", len(reqs))
	}
	for i := 1; i <= 2; i++ {
		gap := reqs[i].Time.Sub(reqs[i-1].Time)
		t.Logf("request %d (%d) came %s after the 503", i+1, reqs[i].Status, gap.Round(time.Millisecond))
		if reqs[i-1].Status != http.StatusServiceUnavailable {
			t.Errorf("request %d: status %d, want 503", i, reqs[i-1].Status)
		}
		if gap < 1800*time.Millisecond {
			t.Errorf("request %d came %s after a 503 with Retry-After: 2", i+1, gap)
		}
	}
	if !strings.Contains(vm.Console(), "503 Service Unavailable") {
		t.Error("the console does not show the 503 being retried")
	}
}

// The server goes away while the boot reads the image (before the switch,
// a body in flight) and comes back 3 s later: the reads resume, the node
// boots, and every byte of /data/random.bin is the image's.
func TestGapServerRestart(t *testing.T) {
	t.Parallel()
	fx := env.StreamFixtures(t)
	eachStreamMode(t, netOptions{noHTTP: true}, func(t *testing.T, n *testNet, mode string) {
		var slow atomic.Bool // trickle until the restart, so a body is in flight at the kill
		slow.Store(true)
		var reqs atomic.Int32
		srv := harness.StartGoServer(t, n.ns, "10.77.0.1:8080", nil, imageHandler(fx.Stream, "stream.squashfs", func(w http.ResponseWriter, r *http.Request) bool {
			reqs.Add(1)
			if slow.Load() {
				harness.ServeFile(harness.Throttle(w, 256<<10), r, fx.Stream)
				return true
			}
			return false
		}))
		vm := n.boot(t, harness.BootOptions{
			Append:  "ip=dhcp root=live:" + srv.URL("10.77.0.1", "stream.squashfs") + lazyArg(mode) + " fixture.mode=hash",
			Timeout: 360 * time.Second,
		})
		// The open is one request; the next are the layers stage's reads.
		deadline := time.Now().Add(240 * time.Second)
		for reqs.Load() < 2 {
			if time.Now().After(deadline) || vm.Exited() {
				t.Fatal("the guest never read the image")
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // a body is on its way
		if strings.Contains(vm.Console(), "switch: starting") {
			t.Fatal("the root was up before the server went away: this tests nothing")
		}
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		before := len(srv.Requests("/stream.squashfs"))
		time.Sleep(3 * time.Second)
		slow.Store(false)
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		r := vm.ExpectReport(t)
		checkRoot(t, r, "stream")
		m := rawReport(t, vm)
		if m["data_sha256"] != fx.DataSHA256 {
			t.Errorf("/data/random.bin reads as %v, want %s", m["data_sha256"], fx.DataSHA256)
		}
		after := len(srv.Requests("/stream.squashfs")) - before
		t.Logf("%d requests before the stop, %d after the restart", before, after)
		if after == 0 {
			t.Error("no request after the restart")
		}
		con := vm.Console()
		if !strings.Contains(con, "blockd: WARNING: retrying") {
			t.Error("the block daemon did not say it retried while the server was away")
		}
		if strings.Contains(con, "returning EIO") {
			t.Error("a read failed although the server came back within streamroot.io.timeout")
		}
	})
}

var fallbackLine = regexp.MustCompile(`streamroot: blockd: WARNING: the image \([0-9.]+ MiB\) does not fit in RAM \([0-9.]+ MiB available\): falling back to streamroot.fetch=lazy`)

// Stream mode (the default) with an image that does not fit in the guest's
// RAM: the block daemon falls back to lazy instead of filling RAM.
func TestGapStreamRAMFallback(t *testing.T) {
	t.Parallel()
	fx := env.StreamFixtures(t)
	n := setup(t, netOptions{})
	url := n.serve(t, "huge.squashfs", fx.Huge)
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url, MemoryMiB: 1024, Timeout: 400 * time.Second})
	_, seen := reportAfterInit(t, vm, 300*time.Second, "huge")
	if !fallbackLine.MatchString(vm.Console()) {
		t.Error("the block daemon did not say it fell back to lazy")
	}
	before := sentBefore(n, "/huge.squashfs", seen)
	size := fileSize(t, fx.Huge)
	t.Logf("nginx sent %d bytes (%.2f %% of %d) before the real init", before, 100*float64(before)/float64(size), size)
	if before > size/20 {
		t.Errorf("%d of %d bytes sent before the real init: not lazy", before, size)
	}
	// The booted system keeps its RAM: no fill ran.
	if strings.Contains(vm.Console(), "fill: ") || strings.Contains(vm.Console(), "fill complete") {
		t.Error("a background fill ran after the fallback to lazy")
	}
}

// A live server that trickles (256 KiB/s, a 1 MiB chunk in 4 s): slow is
// not failed — no read gets EIO, nothing is retried, the node boots.
func TestGapSlowServer(t *testing.T) {
	t.Parallel()
	fx := env.StreamFixtures(t)
	eachStreamMode(t, netOptions{noHTTP: true}, func(t *testing.T, n *testNet, mode string) {
		srv := harness.StartGoServer(t, n.ns, "10.77.0.1:8080", nil, imageHandler(fx.Stream, "stream.squashfs", func(w http.ResponseWriter, r *http.Request) bool {
			harness.ServeFile(harness.Throttle(w, 256<<10), r, fx.Stream)
			return true
		}))
		// io.timeout 20 s: a chunk takes 4 s, so the bound holds with room.
		vm := n.boot(t, harness.BootOptions{
			Append:  "ip=dhcp root=live:" + srv.URL("10.77.0.1", "stream.squashfs") + lazyArg(mode) + " streamroot.io.timeout=20",
			Timeout: 360 * time.Second,
		})
		r := vm.ExpectReport(t)
		checkRoot(t, r, "stream")
		var slowest time.Duration
		reqs := srv.Requests("/stream.squashfs")
		for _, e := range reqs {
			slowest = max(slowest, e.Took)
		}
		t.Logf("%d requests, the slowest took %s", len(reqs), slowest.Round(time.Millisecond))
		if slowest < 2*time.Second {
			t.Errorf("no request took over 2 s: the server was not slow, this tests nothing")
		}
		checkConsoleLacks(t, vm, "a slow but live server was treated as failing", "returning EIO", "WARNING: retrying", "chunk fetch failed")
	})
}

// HTTPS to a server whose certificate, from the trusted site CA, is for
// another name: fatal at once with the reason and the hint, one connection.
func TestGapHTTPSWrongHost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, cert, key := siteCA(t, dir, nil, []string{"elsewhere.example"})
	initrd := initramfsWithCA(t, ca)
	n, _ := dnsNet(t, harness.DNSOptions{Answer: netip.MustParseAddr(harness.ServerIP)})
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := harness.StartGoServer(t, n.ns, "10.77.0.1:443", &tls.Config{Certificates: []tls.Certificate{pair}},
		imageHandler(n.fx.Plain, "plain.squashfs", nil))
	url := "https://boot.lab/plain.squashfs"
	vm := n.boot(t, harness.BootOptions{Initramfs: initrd, Append: harness.FailureCmdline("live:"+url, "rd.retry=60")})
	fb := vm.ExpectFailure(t, "fetch", url, "certificate is valid for elsewhere.example, not boot.lab")
	for _, h := range []string{"its names must include the host in root=", "EXTRA_CA"} {
		if !strings.Contains(fb.Hint, h) {
			t.Errorf("hint lacks %q: %q", h, fb.Hint)
		}
	}
	if c := srv.Conns(); c != 1 {
		t.Errorf("%d TLS connections, want 1: a certificate for another name must not be retried", c)
	}
}

// 403: fatal at once, with the permissions hint, one request.
func TestGapForbidden(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{noHTTP: true})
	srv := harness.StartGoServer(t, n.ns, "10.77.0.1:8080", nil, imageHandler(n.fx.Plain, "plain.squashfs", func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "no", http.StatusForbidden)
		return true
	}))
	url := srv.URL("10.77.0.1", "plain.squashfs")
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:"+url, "rd.retry=30")})
	fb := vm.ExpectFailure(t, "fetch", url, "403 Forbidden")
	if !strings.Contains(fb.Hint, "permissions") {
		t.Errorf("hint does not name permissions: %q", fb.Hint)
	}
	if reqs := srv.Requests("/plain.squashfs"); len(reqs) != 1 {
		t.Errorf("%d requests, want 1: a 403 must not be retried", len(reqs))
	}
}

// A server that, every third range, resets the connection mid-body, answers
// a shorter 206 than asked, or labels a 206 with a range other than the one
// asked for: none of it reaches the kernel, the range is asked again, and
// /data/random.bin reads as the image's (lazy mode: every byte is a demand
// read).
func TestGapBrokenRanges(t *testing.T) {
	t.Parallel()
	fx := env.StreamFixtures(t)
	n := setup(t, netOptions{noHTTP: true})
	st, err := os.Stat(fx.Stream)
	if err != nil {
		t.Fatal(err)
	}
	img := testfile.Read(t, fx.Stream)
	size, etag := st.Size(), harness.FileETag(st)
	kinds := []string{"reset", "short", "wrong-range"}
	var mu sync.Mutex
	var seen int
	type fault struct {
		rg string // the Range asked for
		at time.Time
	}
	faults := map[string][]fault{}
	srv := harness.StartGoServer(t, n.ns, "10.77.0.1:8080", nil, imageHandler(fx.Stream, "stream.squashfs", func(w http.ResponseWriter, r *http.Request) bool {
		first, last, ok := harness.ParseRange(r.Header.Get("Range"), size)
		if !ok || last-first < 8192 {
			return false // the open, and ranges too short to cut
		}
		mu.Lock()
		seen++
		i := seen
		kind := ""
		if i%3 == 0 {
			kind = kinds[(i/3)%3]
			faults[kind] = append(faults[kind], fault{r.Header.Get("Range"), time.Now()})
		}
		mu.Unlock()
		n := last - first + 1
		switch kind {
		case "reset":
			conn, bw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return false
			}
			fmt.Fprintf(bw, "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nETag: %s\r\nContent-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\n\r\n", etag, first, last, size, n)
			bw.Write(img[first : first+n/2])
			bw.Flush()
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, not FIN
			}
			conn.Close()
		case "short":
			half := n / 2
			w.Header().Set("ETag", etag)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, first+half-1, size))
			w.Header().Set("Content-Length", fmt.Sprint(half))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(img[first : first+half])
		case "wrong-range":
			a := first - n // the range before the one asked for
			if a < 0 {
				a = first + n
			}
			b := min(a+n, size)
			w.Header().Set("ETag", etag)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b-1, size))
			w.Header().Set("Content-Length", fmt.Sprint(b-a))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(img[a:b])
		default:
			return false
		}
		return true
	}))
	vm := n.boot(t, harness.BootOptions{
		Append:  "ip=dhcp root=live:" + srv.URL("10.77.0.1", "stream.squashfs") + " streamroot.fetch=lazy fixture.mode=hash",
		Timeout: 360 * time.Second,
	})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "stream")
	m := rawReport(t, vm)
	if m["data_sha256"] != fx.DataSHA256 {
		t.Errorf("/data/random.bin reads as %v, want %s: a broken range reached the kernel", m["data_sha256"], fx.DataSHA256)
	}
	mu.Lock()
	defer mu.Unlock()
	reqs := srv.Requests("/stream.squashfs")
	for _, k := range kinds {
		t.Logf("%s: %d times", k, len(faults[k]))
		if len(faults[k]) == 0 {
			t.Errorf("the server never answered %s: this tests nothing", k)
		}
		// Each faulted range (or its rest) is asked for again.
		for _, f := range faults[k] {
			first, last, _ := harness.ParseRange(f.rg, size)
			again := false
			for _, e := range reqs {
				if a, _, ok := harness.ParseRange(e.Range, size); ok && e.Time.After(f.at) && a >= first && a <= last {
					again = true
				}
			}
			if !again {
				t.Errorf("%s of %s was never asked for again", k, f.rg)
			}
		}
	}
	if strings.Contains(vm.Console(), "returning EIO") {
		t.Error("a read failed: the broken ranges should have been asked again")
	}
}
