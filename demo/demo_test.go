package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/bootlog"
)

// A console as `make demo` shows it (trimmed), with SeaBIOS's escape
// sequences and '\r'.
const demoConsole = "\x1bc\x1b[?7l\x1b[2JSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n" +
	"Booting from ROM..streamroot: early: streamroot starting kernel=6.1.0-56-amd64\r\n" +
	"streamroot: network: bound 10.0.2.15/24 on ens3 (52:54:00:12:34:56) via DHCP from 10.0.2.1, lease 24h0m0s, client id 01525400123456 router=<nil>\r\n" +
	"streamroot: fetch: 4.0 MiB / 8.0 MiB (50%) 2.0 MiB/s ETA 2s\r\n" +
	"streamroot: switch: starting /sbin/init (boot took 2.877s: early 52ms, config 26ms, modules 1.677s, network 219ms, fetch 586ms, layers 242ms, handover 34ms)\r\n" +
	"streamroot: blockd: fill complete: 0.9 MiB in 1ms; the server is no longer needed\r\n" +
	"[    7.1] random: crng init done\r\n" +
	"\r\n" +
	"   +-----------------------------------------------------------+\r\n" +
	"   |   Hello from the streamroot demo root!                    |\r\n" +
	jsonBegin + "\r\n" +
	`{"stages":[{"stage":"early","took_ns":52000000}],"lease":{"address":"10.0.2.15/24","iface":"ens3","mac":"52:54:00:12:34:56","router":"<nil>","server_id":"10.0.2.1","lease_seconds":86400,"client_id":"01525400123456"}}` + "\r\n" +
	jsonEnd + "\r\n" +
	helloLine + " pid=1 root=overlay writable=yes addr=10.0.2.15/24 iface=ens3 uptime=7.08\r\n"

func feedAll(w *watcher, console string) {
	t := w.start
	for _, l := range strings.Split(strings.TrimSuffix(console, "\n"), "\n") {
		t = t.Add(100 * time.Millisecond)
		w.feed(cleanLine(l), t)
	}
}

func TestWatcherDemo(t *testing.T) {
	w := newWatcher(time.Unix(1000, 0))
	feedAll(w, demoConsole)
	if w.firstStreamroot != w.start.Add(200*time.Millisecond) {
		t.Errorf("first streamroot line at %v, want the second console line (after the firmware's text)", w.firstStreamroot.Sub(w.start))
	}
	if w.switchAt.IsZero() || w.helloAt.IsZero() {
		t.Fatalf("missed events: first %v switch %v hello %v", w.firstStreamroot, w.switchAt, w.helloAt)
	}
	if got := w.initUpLine; got != "+-----------------------------------------------------------+" {
		t.Errorf("init's first line = %q (kernel messages and streamroot lines must not count)", got)
	}
	want := map[string]string{"pid": "1", "root": "overlay", "writable": "yes", "addr": "10.0.2.15/24", "iface": "ens3", "uptime": "7.08"}
	if !reflect.DeepEqual(w.hello, want) {
		t.Errorf("hello = %v, want %v", w.hello, want)
	}
	r := w.report()
	if r == nil || r.Lease == nil || r.Lease.Address != "10.0.2.15/24" || r.Lease.LeaseSeconds != 86400 || len(r.Stages) != 1 {
		t.Errorf("streamroot.json not parsed: %+v", r)
	}
	if !strings.HasPrefix(w.boundLine, "streamroot: network: bound 10.0.2.15/24") {
		t.Errorf("bound line %q", w.boundLine)
	}
	if !strings.Contains(w.lastProgress, "4.0 MiB / 8.0 MiB") {
		t.Errorf("progress line %q", w.lastProgress)
	}
	for _, l := range w.tailLines {
		if strings.ContainsRune(l, '\x1b') || strings.ContainsRune(l, '\r') {
			t.Errorf("escape or CR left in %q", l)
		}
	}
}

func TestParseSwitchLine(t *testing.T) {
	sw, ok := bootlog.ParseSwitch("streamroot: switch: starting /sbin/init (boot took 2.877s: early 52ms, config 26ms, modules 1.677s, network 219ms, fetch 586ms, layers 242ms, handover 34ms)")
	if !ok || sw.Init != "/sbin/init" || sw.Took != 2877*time.Millisecond {
		t.Fatalf("got %q %v %v", sw.Init, sw.Took, ok)
	}
	stages := sw.Stages
	want := []bootlog.StageTime{{Stage: "early", Took: 52 * time.Millisecond}, {Stage: "config", Took: 26 * time.Millisecond}, {Stage: "modules", Took: 1677 * time.Millisecond},
		{Stage: "network", Took: 219 * time.Millisecond}, {Stage: "fetch", Took: 586 * time.Millisecond}, {Stage: "layers", Took: 242 * time.Millisecond}, {Stage: "handover", Took: 34 * time.Millisecond}}
	if !reflect.DeepEqual(stages, want) {
		t.Errorf("stages = %v, want %v", stages, want)
	}
	if _, ok := bootlog.ParseSwitch("streamroot: switch: starting /sbin/init"); ok {
		t.Error("a line without timings parsed")
	}
}

func TestWatcherFailure(t *testing.T) {
	con := "streamroot: early: streamroot starting kernel=6.1\n" +
		"streamroot: ==================== BOOT FAILED ====================\n" +
		"streamroot: stage:   fetch\n" +
		"streamroot: problem: GET http://10.0.2.2:8080/missing.squashfs: 404 Not Found\n" +
		"streamroot: hint:    the server has no file at that path\n" +
		"streamroot: log:     /run/initramfs/streamroot.log (stages: early 20ms, config 5ms, modules 1.2s, network 300ms, fetch 15ms)\n" +
		"streamroot: =======================================================\n" +
		"streamroot: rebooting in 30 s (streamroot.onfail=reboot; rd.shell gives a shell instead)\n"
	w := newWatcher(time.Unix(0, 0))
	feedAll(w, con)
	if fb := w.failureBlock(); !w.failureDone || fb.Stage != "fetch" || !strings.Contains(fb.Problem, "404") {
		t.Fatalf("failure not parsed: done=%v %q", w.failureDone, w.failure)
	}
	if st := w.failureBlock().Stages; len(st) != 5 || st[2] != (bootlog.StageTime{Stage: "modules", Took: 1200 * time.Millisecond}) {
		t.Errorf("failure stages = %v", st)
	}
	if !w.initUpAt.IsZero() || !w.switchAt.IsZero() {
		t.Error("a failed boot must not count as the init coming up")
	}
}

func TestWatcherSystemdKmsg(t *testing.T) {
	w := newWatcher(time.Unix(0, 0))
	feedAll(w, "streamroot: switch: starting /usr/lib/systemd/systemd (boot took 1s: early 1s)\n"+
		"[    9.000000] EXT4-fs (loop1): mounted filesystem\n"+
		"[    9.100000] systemd[1]: systemd 239 running in system mode.\n")
	if !strings.Contains(w.initUpLine, "systemd[1]: systemd 239") {
		t.Errorf("init line = %q, want systemd's kmsg line", w.initUpLine)
	}
}

func TestAccessLog(t *testing.T) {
	log := `time=2026-11-25T12:28:18.868Z level=INFO msg=serving dir=srv url=http://127.0.0.1:41387/
time=2026-11-25T12:28:39.252Z level=INFO msg=request method=GET path=/demo.squashfs range="bytes=0-0" status=206 bytes=1 duration=6.744ms remote=127.0.0.1:46314
time=2026-11-25T12:28:39.377Z level=INFO msg=request method=GET path=/demo.squashfs range="bytes=0-929791" status=206 bytes=929792 duration=268µs remote=127.0.0.1:46316
time=2026-11-25T12:28:40.000Z level=INFO msg=request method=HEAD path=/demo.squashfs status=200 bytes=0 duration=1ms remote=127.0.0.1:46317
time=2026-11-25T12:28:41.000Z level=INFO msg=request method=GET path=/other status=404 bytes=19 duration=1ms remote=127.0.0.1:46318 note="no such file"
`
	a := parseAccessLog(strings.NewReader(log), "/demo.squashfs")
	if a.Requests != 3 || a.Bytes != 929793 || a.Ranged != 2 || a.Statuses[206] != 2 || a.Statuses[200] != 1 {
		t.Errorf("got %+v", a)
	}
	kv := parseLogfmt(`a=1 b="x \"y\" z" c= d=4`)
	if kv["a"] != "1" || kv["b"] != `x "y" z` || kv["c"] != "" || kv["d"] != "4" {
		t.Errorf("logfmt: %q", kv)
	}
}

func TestResolveSource(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "fdi 4.1.iso")
	if err := os.WriteFile(img, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := resolveSource(img, "restricted")
	if err != nil {
		t.Fatal(err)
	}
	if s.serveDir != dir || s.servePath != "/fdi 4.1.iso" {
		t.Errorf("local: %+v", s)
	}
	if got := s.guestURL("restricted", 8080); got != "http://10.0.2.2:8080/fdi%204.1.iso" {
		t.Errorf("guest URL %q", got)
	}
	for _, c := range []struct{ in, url, fwd string }{
		{"http://127.0.0.1:8080/LiveOS/squashfs.img", "http://10.0.2.2:8080/LiveOS/squashfs.img", "127.0.0.1:8080"},
		{"http://localhost/x.iso", "http://10.0.2.2:80/x.iso", "127.0.0.1:80"},
		{"https://localhost:8443/x.img?sig=1", "https://10.0.2.2:8443/x.img?sig=1", "127.0.0.1:8443"},
		{"http://[::1]:9000/x.img", "http://10.0.2.2:9000/x.img", "[::1]:9000"},
	} {
		s, err := resolveSource(c.in, "restricted")
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got := s.guestURL("restricted", 0); got != c.url || s.fwdAddr != c.fwd {
			t.Errorf("%s: guest URL %q fwd %q, want %q %q", c.in, got, s.fwdAddr, c.url, c.fwd)
		}
	}
	if _, err := resolveSource("http://boot.example/fdi.iso", "restricted"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("a remote URL must be refused in restricted mode: %v", err)
	}
	s, err = resolveSource("http://boot.example/fdi.iso", "open")
	if err != nil || s.guestURL("open", 0) != "http://boot.example/fdi.iso" || s.fwdAddr != "" {
		t.Errorf("open mode: %+v %v", s, err)
	}
	for _, bad := range []string{"ftp://127.0.0.1/x", "http:///x", filepath.Join(dir, "missing.img"), dir} {
		if _, err := resolveSource(bad, "restricted"); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestNetdevArg(t *testing.T) {
	got := netdevArg("restricted", "/opt/a,b/streamroot-demo", []forward{{8080, "127.0.0.1:8080"}})
	want := "user,id=n0,net=10.0.2.0/24,host=10.0.2.1,restrict=on,guestfwd=tcp:10.0.2.2:8080-cmd:'/opt/a,,b/streamroot-demo' relay 127.0.0.1:8080"
	if got != want {
		t.Errorf("netdev\n got %s\nwant %s", got, want)
	}
	if got := netdevArg("open", "/x", nil); got != "user,id=n0" {
		t.Errorf("open: %s", got)
	}
}

func TestParseArgs(t *testing.T) {
	cfg, err := parseArgs([]string{"qemu", "-mode", "lazy", "img.iso", "-timeout", "5m", "-append", "rd.debug"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.image != "img.iso" || cfg.mode != "lazy" || cfg.timeout != 5*time.Minute || cfg.appendArgs != "rd.debug" || cfg.memMiB != 2048 || cfg.quiet {
		t.Errorf("got %+v", cfg)
	}
	cfg, err = parseArgs([]string{"demo", "-timeout", "90"}, io.Discard)
	if err != nil || cfg.timeout != 90*time.Second || !cfg.quiet || cfg.memMiB != 1024 || cfg.work != "build/demo" {
		t.Errorf("demo: %+v %v", cfg, err)
	}
	for _, bad := range [][]string{
		nil, {"boot"}, {"qemu"}, {"qemu", "a", "b"}, {"demo", "x"}, {"qemu", "-mode", "fast", "x"},
		{"qemu", "-timeout", "soon", "x"}, {"demo", "-accel", "hvf"}, {"demo", "-net", "bridge"},
	} {
		if _, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	line := kernelLine("http://10.0.2.2:1/x", &config{mode: "ram", quiet: true, appendArgs: "  rd.debug   a=b "})
	if line != "console=ttyS0 panic=-1 ip=dhcp root=live:http://10.0.2.2:1/x streamroot.fetch=ram quiet rd.debug a=b" {
		t.Errorf("kernel line %q", line)
	}
}

func TestDemoInitScript(t *testing.T) {
	s := demoInitScript()
	for _, want := range []string{"echo \"" + jsonBegin + "\"", "echo \"" + jsonEnd + "\"", "echo \"" + helloLine + " pid=$$ ", helloBanner, "poweroff -f"} {
		if !strings.Contains(s, want) {
			t.Errorf("hello init lacks %q", want)
		}
	}
	if strings.Contains(s, "$jsonBegin") || strings.Contains(s, "$helloLine") {
		t.Error("markers not filled in")
	}
}

func TestCommas(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 929792: "929,792", 1234567890: "1,234,567,890", -1000: "-1,000"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRelay(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	// The guest side: a socket pair, as QEMU's guestfwd cmd: gives.
	guest, relayEnd := net.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- relay(addr, relayEnd, relayEnd, func() { relayEnd.Close() })
	}()
	io.WriteString(guest, "GET /demo.squashfs HTTP/1.1\r\nHost: 10.0.2.2\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(guest), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "hello /demo.squashfs" {
		t.Errorf("body %q", body)
	}
	guest.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("relay exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end after both sides closed")
	}
	if code := relay("192.0.2.1:80", strings.NewReader(""), io.Discard, func() {}); code != 2 {
		t.Errorf("relay to a non-loopback address: exit %d, want 2 (refused)", code)
	}
}
