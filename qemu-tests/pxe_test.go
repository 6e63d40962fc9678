package qemutests

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// The full network-boot chain, as a Foreman Discovery node does it: the
// NIC's iPXE ROM (QEMU's default option ROM, Debian ipxe-qemu) → DHCP from
// dnsmasq → a boot loader → our kernel and initramfs → the live root over
// HTTP from nginx. The boot entries are what `streamroot pxe` prints.

const (
	pxeImage      = "plain.squashfs"
	pxeKernelName = "vmlinuz"
	pxeInitrdName = "initramfs.img"
	pxeForemanURL = "https://FOREMAN"
	// pxeBootIF is what PXELinux's IPAPPEND 2 and iPXE's
	// BOOTIF=01-${net0/mac:hexhyp} put on the kernel line for BootMAC.
	pxeBootIF = "BOOTIF=01-52-54-00-12-34-56"
)

// pxeMilestones are the console lines of one network boot, in order.
func pxeMilestones(loader harness.Milestone) []harness.Milestone {
	return []harness.Milestone{
		{Name: "iPXE ROM", Re: regexp.MustCompile(`iPXE \(http://ipxe\.org\)|iPXE initialising devices`)},
		{Name: "firmware DHCP", Re: regexp.MustCompile(`net0: 10\.77\.0\.\d+/`)},
		loader,
		{Name: "kernel", Re: regexp.MustCompile(`Linux version \d`)},
		{Name: "initramfs", Re: regexp.MustCompile(`streamroot: early: streamroot starting`)},
		{Name: "switch_root", Re: regexp.MustCompile(`streamroot: switch: starting \S+ \(boot took`)},
	}
}

// checkPXEReport asserts what every PXE-booted root must show.
func checkPXEReport(t *testing.T, r *harness.Report, imageURL string) {
	t.Helper()
	checkRoot(t, r, "plain")
	for _, arg := range []string{pxeBootIF, "proxy.url=" + pxeForemanURL, "proxy.type=foreman", "root=live:" + imageURL, "initrd=" + pxeInitrdName} {
		if !slices.Contains(strings.Fields(r.Cmdline), arg) {
			t.Errorf("the root's /proc/cmdline lacks %s: %q", arg, r.Cmdline)
		}
	}
	if !r.HasMount("squashfs", "") {
		t.Errorf("no squashfs mount:\n%s", r.Mounts)
	}
}

// checkImageServed asserts nginx served the whole image with 200/206.
func checkImageServed(t *testing.T, web *harness.Nginx, fixture string) {
	t.Helper()
	reqs := web.Requests("/" + pxeImage)
	if len(reqs) == 0 {
		t.Fatalf("nginx served no /%s request", pxeImage)
	}
	for _, e := range reqs {
		if e.Status != 200 && e.Status != 206 {
			t.Errorf("nginx answered %d to %s %s (Range %q)", e.Status, e.Method, e.URI, e.Range)
		}
	}
	st, err := os.Stat(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if sent := web.BytesSent("/" + pxeImage); sent < st.Size() {
		t.Errorf("nginx sent %d body bytes of /%s, less than its %d bytes", sent, pxeImage, st.Size())
	}
}

// checkOneLease asserts the firmware's and the initramfs' DHCP exchanges
// ended in one lease for BootMAC, the address the root has.
func checkOneLease(t *testing.T, dhcp *harness.Dnsmasq, r *harness.Report) {
	t.Helper()
	leases, err := dhcp.Leases()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dnsmasq leases after the PXE boot: %+v", leases)
	l, ok, err := dhcp.LeaseFor(harness.BootMAC)
	if err != nil || !ok {
		t.Fatalf("no lease for %s (%v)", harness.BootMAC, err)
	}
	if got := r.IPv4On(harness.BootMAC); !slices.Contains(got, l.IP) {
		t.Errorf("guest has %v on the boot NIC, want the leased %s", got, l.IP)
	}
	if len(leases) != 1 {
		t.Errorf("dnsmasq holds %d leases for one PXE-booted node, want 1 (firmware and initramfs should share it)", len(leases))
	}
}

// requireHost fails a boot test when the environment is not ready or
// check (harness.CheckPXEHost, harness.CheckUEFIHost) does not find the
// host's boot files.
func requireHost(t *testing.T, check func() error) {
	t.Helper()
	env.Require(t)
	if err := check(); err != nil {
		t.Fatal(err)
	}
}

// pxeSetup starts a PXE test (in parallel with the others): the host's
// PXE files, the fixtures and a fresh network namespace.
func pxeSetup(t *testing.T) (*harness.Fixtures, *harness.Netns) {
	t.Helper()
	t.Parallel()
	requireHost(t, harness.CheckPXEHost)
	return env.Fixtures(t), env.NewNetns(t)
}

// pxeEntry is foremanEntry for the plain fixture as pxeImage, loading
// pxeKernelName and pxeInitrdName; more are further `streamroot pxe` flags.
func pxeEntry(t *testing.T, format string, more ...string) string {
	t.Helper()
	return foremanEntry(t, format, pxeImage, pxeKernelName, pxeInitrdName, more...)
}

// checkFirmwareLease asserts the firmware's lease reached the kernel line
// in PXELinux's IPAPPEND 1 form and the initramfs took it again with one
// INIT-REBOOT REQUEST: dnsmasq's exchanges with the node, one per
// transaction, are the firmware's four messages, then the initramfs's
// REQUEST and ACK alone (no DISCOVER, so no address probe).
func checkFirmwareLease(t *testing.T, dhcp *harness.Dnsmasq, r *harness.Report) {
	t.Helper()
	l, _, _ := dhcp.LeaseFor(harness.BootMAC)
	want := "ip=" + l.IP + ":" + harness.ServerIP + ":" + harness.ServerIP + ":255.255.255.0"
	if !slices.Contains(strings.Fields(r.Cmdline), want) {
		t.Errorf("the root's /proc/cmdline lacks %s (the firmware's lease): %q", want, r.Cmdline)
	}
	xids := dhcpExchanges(dhcp.Log(), harness.BootMAC)
	if len(xids) != 2 || strings.Join(xids[0], " ") != "DHCPDISCOVER DHCPOFFER DHCPREQUEST DHCPACK" || strings.Join(xids[1], " ") != "DHCPREQUEST DHCPACK" {
		t.Errorf("dnsmasq's exchanges with the node: %v, want the firmware's DISCOVER, OFFER, REQUEST, ACK and then the initramfs's REQUEST, ACK\n%s", xids, tailLines(dhcp.Log(), 40))
	}
}

// foremanEntry is `streamroot pxe --format <format> --foreman` for image
// on nginx, loading kernel and initrd, with the guest's console
// arguments; more are further `streamroot pxe` flags.
func foremanEntry(t *testing.T, format, image, kernel, initrd string, more ...string) string {
	t.Helper()
	entry := harness.StreamrootPXE(t, append([]string{"--format", format, "--foreman", "--foreman-url", pxeForemanURL,
		"--server", "http://" + harness.ServerIP, "--image", image,
		"--kernel", kernel, "--initrd", initrd, "--append", strings.TrimSpace(harness.GuestConsoleArgs)}, more...)...)
	t.Logf("streamroot pxe --format %s:\n%s", format, entry)
	return entry
}

// TestPXEChainPXELinux: iPXE ROM → dnsmasq DHCP + TFTP → pxelinux.0 +
// ldlinux.c32 → pxelinux.cfg/default from `streamroot pxe --format pxelinux
// --foreman` (the seed's APPEND line with IPAPPEND 2) → kernel +
// initramfs over TFTP → the root over HTTP from nginx.
func TestPXEChainPXELinux(t *testing.T) {
	fx, ns := pxeSetup(t)
	tftp := filepath.Join(env.ArtifactDir(t), "tftp")

	entry := pxeEntry(t, "pxelinux")
	for _, want := range []string{"LABEL discovery_http\n", "\nIPAPPEND 2\n", "APPEND initrd=" + pxeInitrdName + " ip=dhcp root=live:http://10.77.0.1/" + pxeImage + " rd.shell ro acpi=force"} {
		if !strings.Contains(entry, want) {
			t.Errorf("streamroot pxe output lacks %q", want)
		}
	}
	if err := harness.PXELinuxRoot(tftp, env.Kernel, env.Initramfs, pxeKernelName, pxeInitrdName, entry); err != nil {
		t.Fatal(err)
	}
	dhcp := harness.StartDnsmasq(t, ns, harness.TFTPDnsmasqOptions(tftp, "pxelinux.0"))
	web := harness.StartNginx(t, ns, harness.NginxOptions{})
	if err := web.AddFile(fx.Plain, pxeImage); err != nil {
		t.Fatal(err)
	}

	vm := env.BootPXE(t, harness.PXEBootOptions{Netns: ns})
	at := vm.WaitMilestones(t, harness.DefaultPXEBootTimeout, pxeMilestones(harness.Milestone{
		Name: "PXELINUX", Re: regexp.MustCompile(`PXELINUX \d+\.\d+`)})...)
	r := vm.ExpectReport(t)
	checkPXEReport(t, r, web.URL(pxeImage))
	if !slices.Contains(strings.Fields(r.Cmdline), "BOOT_IMAGE="+pxeKernelName) {
		t.Errorf("no BOOT_IMAGE=%s on the kernel line: PXELinux did not load the kernel? %q", pxeKernelName, r.Cmdline)
	}
	t.Logf("TFTP of kernel + initramfs took %.1fs (PXELINUX banner to kernel start)", (at["kernel"] - at["PXELINUX"]).Seconds())

	// The TFTP server sent the whole chain, pxelinux.cfg/default included.
	sent := dhcp.TFTPSent(tftp)
	t.Logf("dnsmasq TFTP sent: %v", sent)
	for _, f := range []string{"pxelinux.0", "ldlinux.c32", "pxelinux.cfg/default", pxeKernelName, pxeInitrdName} {
		if !slices.Contains(sent, f) {
			t.Errorf("dnsmasq's log shows no complete TFTP transfer of %s (sent: %v)", f, sent)
		}
	}
	log := dhcp.Log()
	for _, want := range []string{"PXEClient", "pxelinux.0"} {
		if !strings.Contains(log, want) {
			t.Errorf("dnsmasq's DHCP log lacks %q", want)
		}
	}
	checkImageServed(t, web, fx.Plain)
	for _, p := range []string{"/" + pxeKernelName, "/" + pxeInitrdName} {
		if n := len(web.Requests(p)); n != 0 {
			t.Errorf("nginx served %s %d times; PXELinux should have used TFTP", p, n)
		}
	}
	checkOneLease(t, dhcp, r)
}

// TestPXEChainIPXEScript: iPXE ROM → dnsmasq DHCP (option 175 → the script's
// URL) → boot.ipxe from `streamroot pxe --format ipxe --foreman` on nginx →
// kernel + initramfs over HTTP → the root over HTTP. No TFTP at all.
//
// The BOOTIF case is the script as generated, BOOTIF alone. The
// firmware-address case is --firmware-addr: it adds what PXELinux's
// IPAPPEND 1 writes, ip=<client>:<boot server>:<gateway>:<netmask>, from
// iPXE's own lease, and the initramfs asks dnsmasq for that address with
// one INIT-REBOOT REQUEST (no DISCOVER of its own). Either way the root
// holds the firmware's one lease.
func TestPXEChainIPXEScript(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		firmware bool
	}{{"BOOTIF", false}, {"firmware address", true}} {
		t.Run(tc.name, func(t *testing.T) { testPXEChainIPXEScript(t, tc.firmware) })
	}
}

func testPXEChainIPXEScript(t *testing.T, firmware bool) {
	fx, ns := pxeSetup(t)
	var script string
	if firmware {
		script = pxeEntry(t, "ipxe", "--firmware-addr")
	} else {
		script = pxeEntry(t, "ipxe")
	}
	if !strings.HasPrefix(script, "#!ipxe\n") || !strings.Contains(script, "BOOTIF=01-${net0/mac:hexhyp}") {
		t.Errorf("not an iPXE script with BOOTIF=01-${net0/mac:hexhyp}:\n%s", script)
	}
	if got := strings.Contains(script, "set sr_ip ip=${net0/ip}:${sr_ns}:${sr_gw}:${net0/netmask}"); got != firmware {
		t.Errorf("the script sets ip= from iPXE's lease: %v, want %v:\n%s", got, firmware, script)
	}
	web := harness.StartNginx(t, ns, harness.NginxOptions{})
	scriptPath := filepath.Join(env.ArtifactDir(t), "boot.ipxe")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][2]string{{scriptPath, "boot.ipxe"}, {env.Kernel, pxeKernelName}, {env.Initramfs, pxeInitrdName}, {fx.Plain, pxeImage}} {
		if err := web.AddFile(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	dhcp := harness.StartDnsmasq(t, ns, harness.IPXEDnsmasqOptions(web.URL("boot.ipxe")))

	vm := env.BootPXE(t, harness.PXEBootOptions{Netns: ns})
	vm.WaitMilestones(t, harness.DefaultPXEBootTimeout, pxeMilestones(harness.Milestone{
		Name: "boot.ipxe", Re: regexp.MustCompile(`http://10\.77\.0\.1/boot\.ipxe\.*\s*ok`)})...)
	r := vm.ExpectReport(t)
	checkPXEReport(t, r, web.URL(pxeImage))

	// nginx served the script, the kernel and the initramfs whole, then the image.
	web.ExpectServedWhole(t, [][2]string{{scriptPath, "/boot.ipxe"}, {env.Kernel, "/" + pxeKernelName}, {env.Initramfs, "/" + pxeInitrdName}})
	checkImageServed(t, web, fx.Plain)
	log := dhcp.Log()
	for _, want := range []string{"tags: ipxe", "boot.ipxe"} {
		if !strings.Contains(log, want) {
			t.Errorf("dnsmasq's DHCP log lacks %q: the script URL went to iPXE by option 175", want)
		}
	}
	if sent := dhcp.TFTPSent("/"); len(sent) != 0 {
		t.Errorf("TFTP was used: %v", sent)
	}
	checkOneLease(t, dhcp, r)
	if firmware {
		checkFirmwareLease(t, dhcp, r)
	} else if i := slices.IndexFunc(strings.Fields(r.Cmdline), func(f string) bool { return strings.HasPrefix(f, "ip=") && f != "ip=dhcp" }); i >= 0 {
		t.Errorf("without --firmware-addr the kernel line carries %s: %q", strings.Fields(r.Cmdline)[i], r.Cmdline)
	}
}

// TestPXEHarnessPieces checks the PXE helpers without QEMU: the TFTP root
// layout with the generated pxelinux.cfg/default, and the parsing of
// dnsmasq's TFTP log lines.
func TestPXEHarnessPieces(t *testing.T) {
	if err := harness.CheckPXEHost(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "k"), filepath.Join(dir, "i")
	os.WriteFile(kernel, []byte("kernel"), 0o644)
	os.WriteFile(initrd, []byte("initrd"), 0o644)
	entry := "LABEL discovery_http\nMENU LABEL Foreman Discovery via HTTP\nKERNEL boot/vmlinuz\nAPPEND initrd=boot/sr.img ip=dhcp root=live:http://10.77.0.1/x.img\nIPAPPEND 2\n"
	tftp := filepath.Join(dir, "tftp")
	if err := harness.PXELinuxRoot(tftp, kernel, initrd, "boot/vmlinuz", "boot/sr.img", entry); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"pxelinux.0", "ldlinux.c32", "boot/vmlinuz", "boot/sr.img"} {
		if _, err := os.Stat(filepath.Join(tftp, f)); err != nil {
			t.Errorf("TFTP root lacks %s: %v", f, err)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(tftp, "pxelinux.cfg", "default"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "\nDEFAULT discovery_http\n") || !strings.HasSuffix(string(cfg), entry) {
		t.Errorf("pxelinux.cfg/default:\n%s", cfg)
	}
	if err := harness.PXELinuxRoot(tftp, kernel, initrd, "v", "i", "no label here"); err == nil {
		t.Error("an entry without LABEL was accepted")
	}

	logf := filepath.Join(dir, "dnsmasq.log")
	os.WriteFile(logf, []byte("Nov 25 12:40:06 dnsmasq-tftp[11672]: sent "+tftp+"/pxelinux.0 to 10.77.0.107\n"+
		"Nov 25 12:40:06 dnsmasq-tftp[11672]: error 0 TFTP Aborted received from 10.77.0.107\n"+
		"Nov 25 12:40:10 dnsmasq-tftp[11672]: sent "+tftp+"/boot/vmlinuz to 10.77.0.107\n"), 0o644)
	d := &harness.Dnsmasq{PeerFiles: harness.PeerFiles{LogFile: logf}}
	if got := d.TFTPSent(tftp); !slices.Equal(got, []string{"pxelinux.0", "boot/vmlinuz"}) {
		t.Errorf("TFTPSent = %q", got)
	}
}

func TestPXEConsoleEscapes(t *testing.T) {
	// Seen on a real run: SeaBIOS's serial mirror of the text screen put a
	// cursor move inside PXELinux's banner.
	raw := "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS\nPXELIN\x1b[25;06H\x1b[25;07HUX 6.04 PXE 20200816\n"
	got := harness.StripTerminalEscapes(raw)
	if got != "SeaBIOS\nPXELINUX 6.04 PXE 20200816\n" {
		t.Errorf("got %q", got)
	}
}
