package qemutests

import (
	"bytes"
	"cmp"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/testfile"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// The Foreman Discovery Image, drop-in (issue 11): Foreman's PXELinux
// template lines, unchanged, boot the stand-in FDI (its own kernel, another
// Debian release than make kernel's) through iPXE ROM → dnsmasq TFTP →
// pxelinux.0, with vmlinuz0 the FDI's kernel and initrd0.img our initramfs
// built for it with the image URL and the manifest pin baked in, all laid
// out by `streamroot publish` on the ISO (once per test process, shared by
// both tests). The lines get only the harness's console arguments and
// streamroot.fetch=lazy appended.

const (
	fdiTimeout = 420 * time.Second // PXE, then a systemd + NetworkManager root under TCG
	fdiMemory  = 1536
)

// TestFDIForemanTemplate: root=live:/fdi.iso, as Foreman's template and
// the stock FDI write it, is the image URL built into the initramfs.
func TestFDIForemanTemplate(t *testing.T) {
	t.Parallel()
	testFDI(t, "", harness.FDIImageName)
}

// TestFDIForemanTemplateURL: the same lines with root=live:http://…: the
// kernel line's URL wins over the built-in one, which the server does not
// even have (it serves the published ISO and manifest under that name: the
// pin built in still applies).
func TestFDIForemanTemplateURL(t *testing.T) {
	t.Parallel()
	testFDI(t, "root=live:http://"+harness.ServerIP+"/discovery.iso", "discovery.iso")
}

func testFDI(t *testing.T, root, served string) {
	env.Require(t)
	if err := harness.CheckPXEHost(); err != nil {
		t.Fatal(err)
	}
	fx := env.FDIFixture(t)
	dir := env.ArtifactDir(t)
	pub := harness.FDIPublish(t, fx, "http://"+harness.ServerIP)
	if want := "http://" + harness.ServerIP + "/" + harness.FDIImageName; pub.ImageURL != want || pub.Pin == "" {
		t.Fatalf("publish built in image URL %q and pin %q, want %s and a pin", pub.ImageURL, pub.Pin, want)
	}
	if !sameBytes(t, pub.Kernel, fx.Kernel) || !sameBytes(t, pub.ISO, fx.ISO) {
		t.Fatalf("publish laid out %s and %s, not the ISO's kernel and the ISO", pub.Kernel, pub.ISO)
	}
	initrd := pub.Initrd

	entry := harness.FDIPXELinuxEntry(root, strings.TrimSpace(harness.GuestConsoleArgs)+" streamroot.fetch=lazy")
	t.Logf("pxelinux.cfg/default entry:\n%s", entry)
	tftp := filepath.Join(dir, "tftp")
	kernelName, initrdName := harness.FDITFTPDir+"/vmlinuz0", harness.FDITFTPDir+"/initrd0.img"
	if err := harness.PXELinuxRoot(tftp, pub.Kernel, initrd, kernelName, initrdName, entry); err != nil {
		t.Fatal(err)
	}
	ns := env.NewNetns(t)
	dhcp := harness.StartDnsmasq(t, ns, harness.TFTPDnsmasqOptions(tftp, "pxelinux.0"))
	web := harness.StartNginx(t, ns, harness.NginxOptions{})
	if err := web.AddFile(pub.ISO, served); err != nil {
		t.Fatal(err)
	}
	if err := web.AddFile(pub.Manifest, served+".manifest"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	vm := env.BootPXE(t, harness.PXEBootOptions{Netns: ns, MemoryMiB: fdiMemory, Timeout: fdiTimeout})
	vm.WaitMilestones(t, fdiTimeout, pxeMilestones(harness.Milestone{
		Name: "PXELINUX", Re: regexp.MustCompile(`PXELINUX \d+\.\d+`)})...)
	r := vm.ExpectReport(t)
	t.Logf("boot to the report and power-off: %s", time.Since(start).Round(time.Second))
	fr, ok, err := harness.FindFDIReport(vm.Console())
	if err != nil || !ok {
		t.Fatalf("no FDI REPORT line before the LEASE REPORT (%v)", err)
	}
	lr := leaseReportOf(t, r)
	defer func() {
		if t.Failed() {
			t.Logf("what the root saw:\n--- NetworkManager (journal):\n%s\n--- os state:\n%s\n--- handover:\n%s\n--- dnsmasq log (tail):\n%s",
				fr.NMLog, lr.OSState, lr.Handover, tailLines(dhcp.Log(), 40))
		}
	}()

	// The FDI's kernel runs, and its root has that kernel's modules.
	if fr.Kernel != fx.KVer {
		t.Errorf("uname -r = %q, want the ISO's kernel %s", fr.Kernel, fx.KVer)
	}
	if !strings.Contains(fr.Lib, "-> usr/lib") || !strings.Contains(fr.Modules, "modules.dep") || !fr.Modprobe {
		t.Errorf("the root's modules for %s: /lib %q, modprobe dummy %v, /lib/modules/%s:\n%s", fx.KVer, fr.Lib, fr.Modprobe, fx.KVer, fr.Modules)
	}
	if lr.Fixture != "fdi" || lr.PID <= 1 || lr.Init != "systemd" {
		t.Errorf("report from fixture %q, pid %d under %q, want fdi's systemd as PID 1", lr.Fixture, lr.PID, lr.Init)
	}
	if !lr.Writable || lr.RootFSType != "overlay" {
		t.Errorf("root: writable=%v fstype %q, want a writable overlay", lr.Writable, lr.RootFSType)
	}
	args := strings.Fields(lr.Cmdline)
	for _, a := range []string{"proxy.url=https://FOREMAN", "proxy.type=foreman", pxeBootIF, "rd.bootif=0", "BOOT_IMAGE=" + kernelName} {
		if !slices.Contains(args, a) {
			t.Errorf("the root's /proc/cmdline lacks %s: %q", a, lr.Cmdline)
		}
	}
	wantRoot := cmp.Or(root, "root=live:/fdi.iso")
	if !slices.Contains(args, wantRoot) {
		t.Errorf("the root's /proc/cmdline lacks %s: %q", wantRoot, lr.Cmdline)
	}

	// NetworkManager took the link over with the FDI's primary profile and
	// re-did DHCP: one lease, the initramfs's address, ≥ 2 exchanges.
	if !fr.Primary || !lr.OSBound {
		t.Errorf("NetworkManager's primary profile active with a lease: %v (after %ds); bound: %v", fr.Primary, fr.Waited, lr.OSBound)
	}
	addr := lr.EnvVar("ADDRESS")
	if got := lr.IPv4On(harness.BootMAC); addr == "" || len(got) != 1 || got[0] != addr {
		t.Errorf("the root holds %v on the boot link, want exactly the initramfs's %q", got, addr)
	}
	leases, err := dhcp.Leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 1 || leases[0].MAC != harness.BootMAC || leases[0].IP != addr {
		t.Errorf("dnsmasq holds %+v, want one lease, %s for %s", leases, addr, harness.BootMAC)
	}
	acks, err := dnsmasqAcks(dhcp.Log(), harness.BootMAC, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	xids := map[string]bool{}
	for _, a := range acks {
		xids[a.XID] = true
	}
	t.Logf("dnsmasq: %d acknowledgements to %s in %d transactions: %s", len(acks), harness.BootMAC, len(xids), fmtExchanges(acks))
	// The firmware's (iPXE, PXELinux reuses it), the initramfs's, NetworkManager's.
	if len(xids) < 3 {
		t.Errorf("dnsmasq acknowledged %d transactions to %s, want ≥ 3 (firmware, initramfs, NetworkManager re-doing DHCP)", len(xids), harness.BootMAC)
	}

	// The large file, read after NetworkManager had the link, in lazy
	// mode: its blocks came over HTTP through the reconfigured link.
	if fr.DataSHA256 != fx.DataSHA256 {
		t.Errorf("/data/random.bin read after NetworkManager took the link: sha256 %q, want %s", fr.DataSHA256, fx.DataSHA256)
	}
	// Its blocks were fetched after NetworkManager's DHCP exchange (the
	// last acknowledgement, to the second dnsmasq logs it with): lazy mode
	// had not read them before.
	if len(acks) > 0 {
		var after int64
		for _, e := range web.Requests("/" + served) {
			if e.Time.After(acks[len(acks)-1].At.Add(time.Second)) {
				after += e.BodyBytes
			}
		}
		t.Logf("nginx sent %s of /%s after NetworkManager's DHCP exchange", fmtMiB(after), served)
		if after < harness.FDIDataSize*3/4 {
			t.Errorf("nginx sent only %s after NetworkManager's DHCP exchange, want most of the %s file read then", fmtMiB(after), fmtMiB(harness.FDIDataSize))
		}
	}
	if !strings.Contains(lr.RunInitramfs, "blockd") {
		t.Errorf("no block daemon files in /run/initramfs (lazy mode?):\n%s", lr.RunInitramfs)
	}

	// The HTTP server served the ISO by ranges, never whole, and nothing
	// under the built-in name when the kernel line named another.
	st := web.BytesSent("/" + served)
	if reqs := web.Requests("/" + served); len(reqs) == 0 || st == 0 {
		t.Fatalf("nginx served nothing of /%s", served)
	}
	if n := web.Requests("/" + harness.FDIImageName); served != harness.FDIImageName && len(n) != 0 {
		t.Errorf("the built-in URL was fetched %d times though the kernel line named /%s", len(n), served)
	}
	// The pin publish built in: the node fetched the manifest beside the image.
	if n := web.Requests("/" + served + ".manifest"); len(n) == 0 {
		t.Errorf("the node never fetched /%s.manifest, though publish built %s in", served, pub.Pin)
	}
	sent := dhcp.TFTPSent(tftp)
	for _, f := range []string{"pxelinux.0", kernelName, initrdName} {
		if !slices.Contains(sent, f) {
			t.Errorf("no complete TFTP transfer of %s (sent: %v)", f, sent)
		}
	}
	t.Logf("nginx sent %s of /%s; live medium links: %s; /dev/root -> %q",
		fmtMiB(st), served, strings.TrimSpace(fr.Live), fr.DevRoot)
	// Over TFTP: ours is vmlinuz0 + initrd0.img; the stock FDI's initrd0.img
	// is dracut with the whole ISO inside, so at least vmlinuz0 + the ISO.
	ours, stock := fileSize(t, pub.Kernel)+fileSize(t, initrd), fileSize(t, pub.Kernel)+fileSize(t, pub.ISO)
	t.Logf("TFTP bytes: ours %s (vmlinuz0 + initrd0.img); stock-style ≥ %s (vmlinuz0 + the ISO inside dracut's initrd): %.1f×",
		fmtMiB(ours), fmtMiB(stock), float64(stock)/float64(ours))
}

// sameBytes says whether files a and b hold the same bytes.
func sameBytes(t *testing.T, a, b string) bool {
	t.Helper()
	return bytes.Equal(testfile.Read(t, a), testfile.Read(t, b))
}

func fmtMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// TestFDIPathRootWithoutURL: Foreman's root=live:/fdi.iso on an initramfs
// built without an image URL (make initramfs's) stops in the config stage,
// before any DHCP, naming the argument, with the hint to build one in.
func TestFDIPathRootWithoutURL(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{noHTTP: true})
	vm := n.boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:/fdi.iso", "rootflags=loop", "rootfstype=auto", "rd.live.image", "rd.retry=10")})
	fb := vm.ExpectFailure(t, "config", "root=live:/fdi.iso", "no image URL built in")
	if !strings.Contains(fb.Hint, "-image-url") {
		t.Errorf("hint %q does not say how to build the URL in", fb.Hint)
	}
	if leases, _ := n.dhcp.Leases(); len(leases) != 0 {
		t.Errorf("a path root without a built-in URL should fail before DHCP; dnsmasq leased %+v", leases)
	}
}
