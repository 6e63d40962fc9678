package harness

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/bootlog"
)

// These tests check the harness itself, without the init under test. The
// ones that need root and host tools skip without them.

var testEnv *Env

func TestMain(m *testing.M) {
	testEnv = NewEnv()
	code := m.Run()
	testEnv.Close()
	os.Exit(code)
}

func requireHost(t *testing.T) *Env {
	t.Helper()
	if err := CheckHost(); err != nil {
		t.Skip(err)
	}
	return testEnv
}

// testKernel is STREAMROOT_KERNEL, else make kernel's build/kernel/vmlinuz.
func testKernel(t *testing.T, e *Env) string {
	t.Helper()
	k := e.Kernel
	if k == "" {
		k = resolvePath("build/kernel/vmlinuz")
	}
	if _, err := os.Stat(k); err != nil {
		t.Skipf("no kernel to boot (set STREAMROOT_KERNEL or run make kernel): %v", err)
	}
	return k
}

func TestParseReport(t *testing.T) {
	b := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	mounts := "overlay / overlay rw,relatime,lowerdir=/run/x 0 0\n/dev/nbd0 /run/streamroot/ro squashfs ro,relatime 0 0\nproc /proc proc rw 0 0\n"
	links := "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n" +
		"2: eth0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop qlen 1000\\    link/ether 52:54:00:aa:00:01 brd ff:ff:ff:ff:ff:ff\n" +
		"3: ens4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc pfifo_fast qlen 1000\\    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff\n"
	addrs := "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n" +
		"3: ens4    inet 10.77.0.57/24 brd 10.77.0.255 scope global ens4\\       valid_lft forever preferred_lft forever\n" +
		"3: ens4    inet6 fe80::5054:ff:fe12:3456/64 scope link \\       valid_lft forever preferred_lft forever\n"
	js := fmt.Sprintf(`{"pid":1,"fixture":"plain","writable":true,"root_fstype":"overlay","premounted":"/proc /sys /dev /run","uptime":"7.31","data_sha256":"","mounts_b64":"%s","cmdline_b64":"%s","addrs_b64":"%s","links_b64":"%s","run_initramfs_b64":"%s","resolv_b64":"%s","hostname_b64":"%s"}`,
		b(mounts), b("console=ttyS0 proxy.url=https://FOREMAN\n"), b(addrs), b(links), b("total 4\n-rw-r--r-- 1 0 0 12 streamroot.log\n"),
		b("search lab\nnameserver 10.77.0.1\n"), b("node-17\n"))
	console := "[    1.2] Run /init as init process\nreport-init: started as pid 1\nSTREAMROOT-REPORT " + js + "\n[    7.5] reboot: Power down\n"

	got, ok := FindReport(console)
	if !ok {
		t.Fatal("FindReport: no report")
	}
	r, err := ParseReport(got)
	if err != nil {
		t.Fatal(err)
	}
	if r.PID != 1 || r.Fixture != "plain" || !r.Writable || r.RootFSType != "overlay" || r.Uptime != 7.31 {
		t.Errorf("fields: %+v", r)
	}
	if strings.Join(r.Premounted, ",") != "/proc,/sys,/dev,/run" {
		t.Errorf("premounted %q", r.Premounted)
	}
	if !r.HasMount("squashfs", "") || !r.HasMount("overlay", "/") || r.HasMount("ext4", "") {
		t.Errorf("HasMount wrong for %q", r.Mounts)
	}
	if !strings.Contains(r.Cmdline, "proxy.url=https://FOREMAN") || !strings.Contains(r.RunInitramfs, "streamroot.log") {
		t.Errorf("decoded text: %q %q", r.Cmdline, r.RunInitramfs)
	}
	if r.ResolvConf != "search lab\nnameserver 10.77.0.1\n" || r.Hostname != "node-17\n" {
		t.Errorf("resolv.conf %q, hostname %q", r.ResolvConf, r.Hostname)
	}
	if got := r.IPv4On("52:54:00:12:34:56"); len(got) != 1 || got[0] != "10.77.0.57" {
		t.Errorf("IPv4On(mac) = %v", got)
	}
	if got := r.AddrOn("ens4"); len(got) != 2 || got[0].Bits() != 24 {
		t.Errorf("AddrOn(ens4) = %v", got)
	}
	if got := r.AddrOn("52:54:00:aa:00:01"); len(got) != 0 {
		t.Errorf("AddrOn(first NIC) = %v, want none", got)
	}
	if r.LinkName("52:54:00:AA:00:01") != "eth0" {
		t.Errorf("LinkName: %v", r.LinkList())
	}
	if _, ok := FindReport("STREAMROOT-REPORT {\"pid\":1"); ok {
		t.Error("FindReport accepted a line without its end")
	}
	if _, err := ParseReport(`{"pid":1,"mounts_b64":"%%%"}`); err == nil {
		t.Error("ParseReport accepted bad base64")
	}
}

func TestParseFailure(t *testing.T) {
	// The block as the init prints it (bootlog pins its bytes).
	block := bootlog.Failure{
		Stage:   "fetch",
		Problem: "GET http://10.77.0.1/missing.squashfs: 404 Not Found",
		Hint:    "check the URL in root=",
		Log:     "/run/initramfs/streamroot.log",
	}.Format()
	if _, ok := ParseFailure("boot...\n" + block[:150]); ok {
		t.Error("incomplete block accepted")
	}
	fb, ok := ParseFailure("[    3.1] x\n" + block + "streamroot: rebooting in 0 s\n")
	if !ok {
		t.Fatal("block not found")
	}
	if fb.Stage != "fetch" || !strings.Contains(fb.Problem, "404") || fb.Hint != "check the URL in root=" || fb.Text != block {
		t.Errorf("got %+v", fb)
	}
	// With kmsg timestamps in front.
	ts := regexp.MustCompile(`(?m)^`).ReplaceAllString(strings.TrimSuffix(block, "\n"), "[   12.345678] ") + "\n"
	if fb, ok := ParseFailure(ts); !ok || fb.Stage != "fetch" {
		t.Errorf("timestamped block: %v %+v", ok, fb)
	}
}

func TestParseLeasesAndAccessLog(t *testing.T) {
	leases, err := ParseLeases([]byte("1767225600 52:54:00:12:34:56 10.77.0.93 * 01:52:54:00:12:34:56\n" +
		"1767225601 52:54:00:aa:00:01 10.77.0.94 node1 *\nduid 00:01:00:01:2c:5f\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 2 || leases[0].IP != "10.77.0.93" || leases[0].ClientID != "01:52:54:00:12:34:56" ||
		leases[0].Hostname != "" || leases[1].Hostname != "node1" || leases[1].ClientID != "" || leases[0].Expiry.Unix() != 1767225600 {
		t.Errorf("got %+v", leases)
	}
	e, ok := ParseAccessLine(`1767225600.123 10.77.0.93 GET 206 1048950 1048576 "bytes=0-1048575" "\x22abc-123\x22" /plain.squashfs?x=1`)
	if !ok || e.Status != 206 || e.BodyBytes != 1048576 || e.BytesSent != 1048950 || e.Range != "bytes=0-1048575" ||
		e.Path != "/plain.squashfs" || e.Method != "GET" || e.Time.UnixMilli() != 1767225600123 {
		t.Errorf("got %v %+v", ok, e)
	}
	if e, ok := ParseAccessLine(`1767225600.001 10.77.0.93 HEAD 404 150 0 "-" "-" /missing.squashfs`); !ok || e.Range != "" || e.Status != 404 {
		t.Errorf("got %v %+v", ok, e)
	}
}

// TestReportInitSyntax checks the REPORT INIT's shell syntax (it cannot run
// on the host: it powers off).
func TestReportInitSyntax(t *testing.T) {
	script := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(script, []byte(ReportInit), 0o644); err != nil {
		t.Fatal(err)
	}
	shells := [][]string{{HostBusybox, "sh", "-n", script}, {"sh", "-n", script}}
	ran := 0
	for _, sh := range shells {
		if _, err := exec.LookPath(sh[0]); err != nil {
			continue
		}
		ran++
		if out, err := exec.Command(sh[0], sh[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%v: %v\n%s", sh, err, out)
		}
	}
	if ran == 0 {
		t.Skip("no shell to check the syntax with")
	}
}

func TestFixtures(t *testing.T) {
	e := requireHost(t)
	fx := e.Fixtures(t)
	list := func(p string) (string, error) {
		return runCmd(time.Minute, "unsquashfs", "-l", p)
	}
	for _, c := range []struct {
		path  string
		files []string
	}{
		{fx.Plain, []string{"squashfs-root/sbin/init", "squashfs-root/bin/busybox", "squashfs-root/bin/sh", "squashfs-root/etc/fixture-id", "squashfs-root/proc", "squashfs-root/run"}},
		{fx.LiveOS, []string{"squashfs-root/LiveOS/rootfs.img"}},
		{fx.Big, []string{"squashfs-root/data/random.bin", "squashfs-root/sbin/init"}},
	} {
		out, err := list(c.path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		have := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			have[strings.TrimSpace(l)] = true
		}
		for _, f := range c.files {
			if !have[f] {
				t.Errorf("%s lacks %s", c.path, f)
			}
		}
	}
	if _, err := list(fx.NotSquash); err == nil {
		t.Errorf("unsquashfs accepted %s", fx.NotSquash)
	}
	if st, err := os.Stat(fx.Big); err != nil || st.Size() < bigDataSize {
		t.Errorf("big.squashfs: %v, size < 48 MiB", err)
	}
	if st, err := os.Stat(fx.NotSquash); err != nil || st.Size() != notSquashSize {
		t.Errorf("notsquash.img: %v", err)
	}

	// Contents: fixture ids, the init, the data's hash.
	tmp := t.TempDir()
	extract := func(img, dest string, files ...string) {
		t.Helper()
		if _, err := runCmd(time.Minute, "unsquashfs", append([]string{"-no-progress", "-d", dest, img}, files...)...); err != nil {
			t.Fatal(err)
		}
	}
	extract(fx.Plain, filepath.Join(tmp, "plain"))
	if id, _ := os.ReadFile(filepath.Join(tmp, "plain", "etc", "fixture-id")); string(id) != "plain\n" {
		t.Errorf("plain fixture-id %q", id)
	}
	if init, _ := os.ReadFile(filepath.Join(tmp, "plain", "sbin", "init")); string(init) != ReportInit {
		t.Error("plain /sbin/init is not the REPORT INIT")
	}
	if target, err := os.Readlink(filepath.Join(tmp, "plain", "bin", "sh")); err != nil || target != "/bin/busybox" {
		t.Errorf("/bin/sh -> %q, %v", target, err)
	}
	extract(fx.Big, filepath.Join(tmp, "big"), "data/random.bin")
	if sum, err := SHA256File(filepath.Join(tmp, "big", "data", "random.bin")); err != nil || sum != fx.BigDataSHA256 {
		t.Errorf("random.bin sha256 %s, %v; harness says %s", sum, err, fx.BigDataSHA256)
	}
	extract(fx.LiveOS, filepath.Join(tmp, "liveos"))
	img := filepath.Join(tmp, "liveos", "LiveOS", "rootfs.img")
	if out, err := runCmd(time.Minute, "debugfs", "-R", "cat /etc/fixture-id", img); err != nil || !strings.Contains(out, "liveos") {
		t.Errorf("rootfs.img /etc/fixture-id: %q %v", out, err)
	}
	if out, err := runCmd(time.Minute, "blkid", "-o", "export", img); err != nil || !strings.Contains(out, "TYPE=ext4") || !strings.Contains(out, "LABEL=rootfs") {
		t.Errorf("rootfs.img: %q %v", out, err)
	}

	// A second call uses the cache.
	start := time.Now()
	fx2, err := BuildFixtures(e.Cache, t.Logf)
	if err != nil || *fx2 != *fx {
		t.Errorf("second BuildFixtures: %v %+v", err, fx2)
	}
	t.Logf("cached fixtures found in %s: %+v", time.Since(start).Round(time.Millisecond), fx)
}

func TestPeers(t *testing.T) {
	e := requireHost(t)
	fx := e.Fixtures(t)
	ns := e.NewNetns(t)
	dhcp := StartDnsmasq(t, ns, DnsmasqOptions{})
	web := StartNginx(t, ns, NginxOptions{})
	if err := web.AddFile(fx.Plain, "plain.squashfs"); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(fx.Plain)
	if err != nil {
		t.Fatal(err)
	}
	client := ns.HTTPClient()
	url := web.URL("plain.squashfs")
	if url != "http://10.77.0.1/plain.squashfs" {
		t.Errorf("URL = %s", url)
	}

	head, err := client.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	etag := head.Header.Get("ETag")
	if head.StatusCode != 200 || head.ContentLength != int64(len(want)) || etag == "" || head.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("HEAD: %s len %d etag %q ranges %q", head.Status, head.ContentLength, etag, head.Header.Get("Accept-Ranges"))
	}

	get := func(rng, ifRange string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Range", rng)
		if ifRange != "" {
			req.Header.Set("If-Range", ifRange)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	if code, body := get("bytes=100-1099", ""); code != 206 || !bytes.Equal(body, want[100:1100]) {
		t.Errorf("range: %d, %d bytes", code, len(body))
	}
	if code, body := get("bytes=2000-2999", etag); code != 206 || !bytes.Equal(body, want[2000:3000]) {
		t.Errorf("If-Range with the ETag: %d, %d bytes", code, len(body))
	}
	if code, body := get("bytes=0-9", `"not-the-etag"`); code != 200 || len(body) != len(want) {
		t.Errorf("If-Range with another ETag should get the whole file: %d, %d bytes", code, len(body))
	}

	log := waitAccessLog(web, 4)
	if len(log) != 4 {
		t.Fatalf("access log: %d entries, want 4: %+v", len(log), log)
	}
	if l := log[1]; l.Status != 206 || l.BodyBytes != 1000 || l.Range != "bytes=100-1099" || l.Path != "/plain.squashfs" || l.Remote != ServerIP {
		t.Errorf("access entry: %+v", l)
	}
	if got, want := web.BytesSent("/plain.squashfs"), int64(2000+len(want)); got != want {
		t.Errorf("BytesSent = %d, want %d", got, want)
	}

	// Stop refuses connections; Restart serves again, appending to the log.
	if err := web.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if c, err := ns.DialContext(ctx, "tcp", web.Addr); err == nil {
		c.Close()
		t.Error("nginx still accepts connections after Stop")
	}
	cancel()
	if err := web.Restart(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("bytes=0-99", ""); code != 206 {
		t.Errorf("after restart: %d", code)
	}
	if n := len(waitAccessLog(web, 5)); n != 5 {
		t.Errorf("access log after restart: %d entries, want 5", n)
	}

	// Nothing from the host namespace reaches 10.77.0.1.
	if out, err := exec.Command("ip", "route", "get", ServerIP).CombinedOutput(); err == nil && strings.Contains(string(out), "dev br0") {
		t.Errorf("host routes to the test bridge: %s", out)
	}

	// A real DHCP client (busybox udhcpc) in a second namespace, linked to
	// br0 by a veth pair, gets a lease with the 01+MAC client id.
	mac := "52:54:00:77:00:01"
	client2 := vethClient(t, ns, mac)
	out, err := runCmd(30*time.Second, "ip", "netns", "exec", client2.Name, HostBusybox, "udhcpc", "-i", "vc0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", "/bin/true")
	if err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	l, err := dhcp.WaitLease(mac, 5*time.Second)
	if err != nil {
		t.Fatalf("%v\ndnsmasq log:\n%s", err, dhcp.Log())
	}
	if l.ClientID != "01:"+mac || !strings.HasPrefix(l.IP, "10.77.0.") {
		t.Errorf("lease %+v", l)
	}
	if !strings.Contains(dhcp.Log(), "DHCPACK(br0) "+l.IP+" "+mac) {
		t.Errorf("dnsmasq log lacks the ACK:\n%s", dhcp.Log())
	}
	if leases, _ := dhcp.Leases(); len(leases) != 1 {
		t.Errorf("leases: %+v", leases)
	}
}

// tinyInit is a static Go /init that prints a marker and powers off.
const tinyInit = `package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	syscall.Mount("proc", "/proc", "proc", 0, "")
	up, _ := os.ReadFile("/proc/uptime")
	fmt.Printf("TINYINIT-MARKER pid=%d uptime=%s\n", os.Getpid(), strings.Fields(string(up) + " ?")[0])
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
`

func buildTinyInitramfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tinyinit\n\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(tinyInit), 0o644)
	cmd := exec.Command("go", "build", "-o", "init", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOPROXY=off", "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build tiny init: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "init"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeNewc(&buf, []cpioEntry{
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "dev/console", Mode: modeChar | 0o600, RdevMajor: 5, RdevMinor: 1},
		{Name: "proc", Mode: modeDir | 0o755},
		{Name: "init", Mode: modeFile | 0o755, Data: bin},
	}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tiny.cpio")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTinyBoot(t *testing.T) {
	e := requireHost(t)
	kernel := testKernel(t, e)
	initrd := buildTinyInitramfs(t)
	vm := e.Boot(t, BootOptions{Name: "tiny", Kernel: kernel, Initramfs: initrd, Timeout: 120 * time.Second})
	m, err := vm.WaitFor(regexp.MustCompile(`TINYINIT-MARKER pid=(\d+) uptime=(\S+)`), 100*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("marker: %s (%.1fs wall since QEMU start)", m, time.Since(vm.Started).Seconds())
	if !strings.Contains(m, "pid=1 ") {
		t.Errorf("init ran as %s", m)
	}
	if err := vm.WaitExit(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(vm.Console(), "Linux version") {
		t.Error("console lacks the kernel banner")
	}
	// The guest had no NIC.
	if strings.Contains(vm.Console(), "e1000") {
		t.Error("guest got a default NIC")
	}
}

// TestWaitForTimeout checks that waits are bounded and that the harness
// kills a guest at its boot timeout.
func TestWaitForTimeout(t *testing.T) {
	e := requireHost(t)
	kernel := testKernel(t, e)
	initrd := buildTinyInitramfs(t)
	// rdinit= names a missing program: the kernel falls back and panics
	// only much later; either way the guest never prints the marker.
	vm := e.Boot(t, BootOptions{Name: "timeout", Kernel: kernel, Initramfs: initrd, Append: "rdinit=/nonexistent init=/nonexistent panic=0", Timeout: 20 * time.Second})
	// Both bounds count the guest's time (guestClock): a loaded host
	// stretches them by what it kept QEMU off the CPU, never beyond
	// maxStretch.
	start, guestStart := time.Now(), vm.clock.now()
	if _, err := vm.WaitFor(regexp.MustCompile(`NEVER-PRINTED`), 5*time.Second); err == nil {
		t.Fatal("WaitFor matched nothing yet returned no error")
	}
	if d, g := time.Since(start), vm.clock.now()-guestStart; g < 5*time.Second || d > maxStretch*5*time.Second+2*time.Second {
		t.Errorf("WaitFor took %s wall, %s of the guest's time; timeout 5s (at most %d× that in wall time)", d, g, maxStretch)
	}
	if err := vm.Wait(); err == nil || !strings.Contains(err.Error(), "killed at the boot timeout") {
		t.Errorf("the guest that never prints was not killed at its boot timeout: %v", err)
	}
	if d, g := time.Since(vm.Started), vm.clock.now(); g < 20*time.Second || d > maxStretch*20*time.Second+5*time.Second {
		t.Errorf("guest ran %s wall, %s of its own time; boot timeout 20s (at most %d× that in wall time)", d, g, maxStretch)
	}
}

// The guest's clock runs slow by exactly what the host keeps a process
// off the CPU: three busy loops pinned to one CPU each run about a third
// of the time, so the clock of one of them falls behind the wall.
func TestGuestClockCountsStarvation(t *testing.T) {
	if _, err := os.Stat("/proc/self/schedstat"); err != nil {
		t.Skip("no schedstat in this kernel: waits count in wall time")
	}
	var cmds []*exec.Cmd
	for range 3 {
		cmd := exec.Command("taskset", "-c", "0", "sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Skip(err)
		}
		cmds = append(cmds, cmd)
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	})
	done := make(chan struct{})
	c := newGuestClock(cmds[0].Process.Pid, time.Now(), done)
	dl := c.deadline(time.Second)
	for i := 0; i < 200 && !dl.passed(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	wall := time.Since(c.start)
	if !dl.passed() {
		t.Fatalf("a 1 s deadline had not passed after %s wall", wall)
	}
	// Sharing one CPU three ways it waited about 2/3 of the time; allow
	// for the scheduler's slices and the other CPU's spare time.
	if starved := c.starvation(); wall < 1500*time.Millisecond || starved < wall/3 {
		t.Errorf("after %s wall the clock counted %s of starvation (guest time %s): the busy loop was not seen waiting", wall, starved, c.now())
	}
	close(done)
	before := c.now()
	time.Sleep(100 * time.Millisecond)
	if c.now()-before < 100*time.Millisecond {
		t.Errorf("after QEMU's exit the clock must run with the wall, not read a reused PID")
	}
}

// A newc cpio writer, enough for test initramfs images.
const (
	modeFile    = 0o100000
	modeDir     = 0o040000
	modeChar    = 0o020000
	modeSymlink = 0o120000
)

type cpioEntry struct {
	Name                 string
	Mode                 uint32 // type | permissions
	Data                 []byte // file contents, or the symlink target
	RdevMajor, RdevMinor uint32
}

func writeNewc(w io.Writer, entries []cpioEntry) error {
	var buf bytes.Buffer
	pad := func() {
		for buf.Len()%4 != 0 {
			buf.WriteByte(0)
		}
	}
	write := func(ino int, e cpioEntry) {
		nlink := 1
		if e.Mode&0o170000 == modeDir {
			nlink = 2
		}
		fmt.Fprintf(&buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.Mode, 0, 0, nlink, 0, len(e.Data), 0, 0, e.RdevMajor, e.RdevMinor, len(e.Name)+1, 0)
		buf.WriteString(e.Name)
		buf.WriteByte(0)
		pad()
		buf.Write(e.Data)
		pad()
	}
	for i, e := range entries {
		write(i+1, e)
	}
	write(0, cpioEntry{Name: "TRAILER!!!"})
	_, err := w.Write(buf.Bytes())
	return err
}

func TestWriteNewc(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("no cpio")
	}
	var buf bytes.Buffer
	writeNewc(&buf, []cpioEntry{
		{Name: "dir", Mode: modeDir | 0o755},
		{Name: "dir/file", Mode: modeFile | 0o644, Data: []byte("hello")},
		{Name: "link", Mode: modeSymlink | 0o777, Data: []byte("dir/file")},
	})
	cmd := exec.Command(cpio, "-t", "-v", "-H", "newc")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dir/file") || !strings.Contains(string(out), "link -> dir/file") {
		t.Errorf("cpio -t: %v\n%s", err, out)
	}
}

func TestKernelTrouble(t *testing.T) {
	for _, tc := range []struct{ console, want string }{
		{"streamroot: blockd: fill: 50.0 MiB\n[   71.118]  watchdog: BUG: soft lockup - CPU#0 stuck for 44s! [exe:112]\nmore\n",
			"[   71.118]  watchdog: BUG: soft lockup - CPU#0 stuck for 44s! [exe:112]"},
		{"[ 1.0] NMI watchdog: Watchdog detected hard LOCKUP on cpu 0\n", "[ 1.0] NMI watchdog: Watchdog detected hard LOCKUP on cpu 0"},
		{"STREAMROOT-REPORT {\"soft\":\"lockup\"}\nreboot: Power down\n", ""},
		{"", ""},
	} {
		if got := KernelTrouble(tc.console); got != tc.want {
			t.Errorf("KernelTrouble(%q) = %q, want %q", tc.console, got, tc.want)
		}
	}
}

// waitAccessLog returns nginx's access log once it has at least n entries,
// or as it is after 10 s: nginx writes a request's line after the response
// has gone out, so the client can be ahead of the log.
func waitAccessLog(web *Nginx, n int) []AccessEntry {
	var log []AccessEntry
	for range 100 {
		if log = web.AccessLog(); len(log) >= n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return log
}

// TestArtifactDirFresh: an artifacts directory an earlier run left under
// the same name is emptied on the test's first call, and later calls in the
// same test return it as it is.
func TestArtifactDirFresh(t *testing.T) {
	e := &Env{Artifacts: t.TempDir(), KeepArtifacts: true, artifacts: map[string]string{}}
	stale := filepath.Join(e.Artifacts, unsafeName.ReplaceAllString(t.Name(), "_"), "nginx", "access.log")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("an earlier run's request\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := e.ArtifactDir(t)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the earlier run's log is still there: %v", err)
	}
	mine := filepath.Join(dir, "vm.console.log")
	if err := os.WriteFile(mine, []byte("this run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if again := e.ArtifactDir(t); again != dir {
		t.Fatalf("second call: %s, first %s", again, dir)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("a second call in the same test removed its files: %v", err)
	}
}
