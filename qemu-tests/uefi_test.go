package qemutests

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// UEFI chains, booted by Debian's OVMF: the firmware's own PXE or HTTP
// Boot, Debian's signed shim and network GRUB or iPXE's EFI build, then our
// kernel and initramfs and the live root. The boot entries are what
// `streamroot pxe` prints; each test asserts what the booted root saw.

const (
	uefiImage = "uefi.squashfs"
	// uefiKernelPath and uefiInitrdPath are GRUB paths: absolute, on $root
	// (the server GRUB was loaded from, (tftp,…) or (http,…)).
	uefiKernelPath = "/" + pxeKernelName
	uefiInitrdPath = "/" + pxeInitrdName
	// uefiGrubBootIF is what the `streamroot pxe --format grub` entry puts
	// on the kernel line for BootMAC: 01- and GRUB's $net_default_mac, as
	// Foreman's GRUB2 templates write it.
	uefiGrubBootIF = "BOOTIF=01-52:54:00:12:34:56"
)

// uefiMilestones are the console lines of one UEFI network boot, after
// the firmware's own (loader), in order.
func uefiMilestones(loader ...harness.Milestone) []harness.Milestone {
	return append(loader,
		harness.Milestone{Name: "kernel", Re: regexp.MustCompile(`Linux version \d`)},
		harness.Milestone{Name: "initramfs", Re: regexp.MustCompile(`streamroot: early: streamroot starting`)},
		harness.Milestone{Name: "switch_root", Re: regexp.MustCompile(`streamroot: switch: starting \S+ \(boot took`)},
	)
}

// grubMilestones: shim handed over to GRUB, which read our grub.cfg.
var grubMilestones = []harness.Milestone{
	{Name: "GRUB config", Re: regexp.MustCompile(`grub: net_default_mac=52:54:00:12:34:56 `)},
}

// uefiSetup starts a UEFI test (in parallel with the others): the host's
// UEFI files, the uefi fixture root and a fresh network namespace.
func uefiSetup(t *testing.T) (root string, ns *harness.Netns) {
	t.Helper()
	t.Parallel()
	requireHost(t, harness.CheckUEFIHost)
	return env.UEFIRoot(t), env.NewNetns(t)
}

// uefiEntry is foremanEntry for the uefi fixture; it checks the entry
// takes BOOTIF from the loader.
func uefiEntry(t *testing.T, format, kernel, initrd string, more ...string) string {
	t.Helper()
	entry := foremanEntry(t, format, uefiImage, kernel, initrd, more...)
	bootif := map[string]string{"grub": "BOOTIF=01-$net_default_mac", "ipxe": "BOOTIF=01-${net0/mac:hexhyp}"}[format]
	if !strings.Contains(entry, bootif) {
		t.Errorf("the %s entry does not take BOOTIF from the loader (%s):\n%s", format, bootif, entry)
	}
	return entry
}

// uefiGrubEntry is the GRUB entry with kernel and initrd on $root.
func uefiGrubEntry(t *testing.T) string {
	t.Helper()
	return uefiEntry(t, "grub", uefiKernelPath, uefiInitrdPath)
}

// checkUEFIRoot asserts what every UEFI-booted root must show
// (checkUEFIBoot), with the seed's Foreman arguments and bootif on its
// kernel line.
func checkUEFIRoot(t *testing.T, vm *harness.VM, imageURL, bootif string) (*harness.Report, *harness.UEFIReport) {
	t.Helper()
	r, u := checkUEFIBoot(t, vm)
	for _, arg := range []string{bootif, "proxy.url=" + pxeForemanURL, "proxy.type=foreman", "root=live:" + imageURL, "ip=dhcp"} {
		if !slices.Contains(strings.Fields(r.Cmdline), arg) {
			t.Errorf("the root's /proc/cmdline lacks %s: %q", arg, r.Cmdline)
		}
	}
	return r, u
}

// checkUEFIBoot asserts the uefi fixture as an overlay over squashfs,
// booted by UEFI, and the modules it runs with from the initramfs (the
// root has none).
func checkUEFIBoot(t *testing.T, vm *harness.VM) (*harness.Report, *harness.UEFIReport) {
	t.Helper()
	r := vm.ExpectReport(t)
	checkRoot(t, r, "uefi")
	if !r.HasMount("squashfs", "") {
		t.Errorf("no squashfs mount:\n%s", r.Mounts)
	}
	u, err := harness.ParseUEFIReport(vm.Console())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("UEFI report: %+v", *u)
	if !u.EFI {
		t.Errorf("/sys/firmware/efi is missing: the kernel was not started by UEFI")
	}
	if u.RootLibModules {
		t.Errorf("the fixture root has /lib/modules: the modules' origin is not proven")
	}
	for _, m := range []string{"virtio_net", "squashfs", "overlay", "loop"} {
		if _, ok := u.Modules[m]; !ok {
			t.Errorf("module %s is not loaded (loaded: %v)", m, u.Modules)
		}
	}
	return r, u
}

// checkSecureBoot asserts the root ran under Secure Boot in lockdown with
// only signed modules.
func checkSecureBoot(t *testing.T, vm *harness.VM, u *harness.UEFIReport) {
	t.Helper()
	if u.BootParamsSecureBoot != 3 {
		t.Errorf("boot_params.secure_boot is %d, want 3 (enabled): the EFI stub did not find Secure Boot on", u.BootParamsSecureBoot)
	}
	// efivarfs is a module Debian's kernel has not built in: the variable
	// is read only where it is there.
	if u.SecureBoot != -1 && u.SecureBoot != 1 {
		t.Errorf("the SecureBoot variable is %d, want 1", u.SecureBoot)
	}
	if mode := u.LockdownMode(); mode != "integrity" && mode != "confidentiality" {
		t.Errorf("lockdown is %q, want integrity (the kernel locks down under Secure Boot)", u.Lockdown)
	}
	for m, taint := range u.Modules {
		if strings.Contains(taint, "E") {
			t.Errorf("module %s is tainted %q: loaded without a valid signature", m, taint)
		}
	}
	con := vm.Console()
	for _, want := range []string{"Secure boot enabled", "Kernel is locked down from EFI Secure Boot"} {
		if !strings.Contains(con, want) {
			t.Errorf("the kernel did not log %q", want)
		}
	}
}

// TestUEFIPXESecureBoot: OVMF with Secure Boot on (Microsoft's keys) →
// its own PXE → dnsmasq DHCP + TFTP → Debian's signed shim → Debian's
// signed network GRUB → grub.cfg from `streamroot pxe --format grub
// --foreman` → Debian's signed kernel + our initramfs over TFTP → the root
// over HTTP, in lockdown.
func TestUEFIPXESecureBoot(t *testing.T) {
	root, ns := uefiSetup(t)
	tftp := filepath.Join(env.ArtifactDir(t), "tftp")
	if err := harness.ShimGrubTree(tftp, env.Kernel, env.Initramfs, pxeKernelName, pxeInitrdName,
		harness.GrubConfig(uefiGrubEntry(t))); err != nil {
		t.Fatal(err)
	}
	dhcp := harness.StartDnsmasq(t, ns, harness.TFTPDnsmasqOptions(tftp, "shimx64.efi"))
	web := harness.StartNginx(t, ns, harness.NginxOptions{})
	if err := web.AddFile(root, uefiImage); err != nil {
		t.Fatal(err)
	}

	vm := env.BootUEFI(t, harness.PXEBootOptions{Netns: ns}, harness.UEFI{SecureBoot: true})
	vm.WaitMilestones(t, harness.DefaultUEFIBootTimeout, uefiMilestones(grubMilestones...)...)
	_, u := checkUEFIRoot(t, vm, web.URL(uefiImage), uefiGrubBootIF)
	checkSecureBoot(t, vm, u)

	sent := dhcp.TFTPSent(tftp)
	t.Logf("dnsmasq TFTP sent: %v", sent)
	for _, f := range []string{"shimx64.efi", "grubx64.efi", "grub/grub.cfg", pxeKernelName, pxeInitrdName} {
		if !slices.Contains(sent, f) {
			t.Errorf("dnsmasq's log shows no complete TFTP transfer of %s (sent: %v)", f, sent)
		}
	}
	if log := dhcp.Log(); !strings.Contains(log, "PXEClient:Arch:00007") {
		t.Errorf("dnsmasq's DHCP log shows no UEFI x64 PXE client (PXEClient:Arch:00007)")
	}
}

// TestUEFIPXEGrubMknetdir: OVMF (Secure Boot off) → its own PXE →
// Debian's unsigned GRUB as `grub-mknetdir` lays it out (core.efi, then
// its modules over TFTP as it needs them) → grub.cfg from `streamroot pxe
// --format grub --foreman --grub-http SERVER` ((http,SERVER)/… paths) → kernel +
// initramfs over HTTP by GRUB's http module → the root.
func TestUEFIPXEGrubMknetdir(t *testing.T) {
	root, ns := uefiSetup(t)
	tftp := filepath.Join(env.ArtifactDir(t), "tftp")
	httpDev := "(http," + harness.ServerIP + ")"
	entry := uefiEntry(t, "grub", uefiKernelPath, uefiInitrdPath, "--grub-http", harness.ServerIP)
	if !strings.Contains(entry, "\tlinux "+httpDev+uefiKernelPath+" ") || !strings.Contains(entry, "\tinitrd "+httpDev+uefiInitrdPath+"\n") {
		t.Errorf("the GRUB entry does not load kernel and initrd from %s:\n%s", httpDev, entry)
	}
	// A modular GRUB loads a protocol's module only when told.
	bootFile, err := harness.GrubMknetdirTree(tftp, harness.GrubConfig("insmod http\n"+entry))
	if err != nil {
		t.Fatal(err)
	}
	dhcp := harness.StartDnsmasq(t, ns, harness.TFTPDnsmasqOptions(tftp, bootFile))
	web := harness.StartNginx(t, ns, harness.NginxOptions{})
	for _, f := range [][2]string{{env.Kernel, pxeKernelName}, {env.Initramfs, pxeInitrdName}, {root, uefiImage}} {
		if err := web.AddFile(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}

	vm := env.BootUEFI(t, harness.PXEBootOptions{Netns: ns}, harness.UEFI{})
	vm.WaitMilestones(t, harness.DefaultUEFIBootTimeout, uefiMilestones(grubMilestones...)...)
	_, u := checkUEFIRoot(t, vm, web.URL(uefiImage), uefiGrubBootIF)
	checkSecureBootOff(t, u)

	sent := dhcp.TFTPSent(tftp)
	t.Logf("dnsmasq TFTP sent: %v", sent)
	for _, f := range []string{bootFile, "grub/grub.cfg", "grub/x86_64-efi/normal.mod", "grub/x86_64-efi/http.mod", "grub/x86_64-efi/linux.mod"} {
		if !slices.Contains(sent, f) {
			t.Errorf("dnsmasq's log shows no complete TFTP transfer of %s", f)
		}
	}
	for _, f := range []string{pxeKernelName, pxeInitrdName} {
		if slices.Contains(sent, f) {
			t.Errorf("%s went over TFTP; the entry loads it over HTTP", f)
		}
	}
	checkServedWhole(t, web, [][2]string{{env.Kernel, "/" + pxeKernelName}, {env.Initramfs, "/" + pxeInitrdName}})
}

// checkSecureBootOff asserts a root booted with Secure Boot off: no
// lockdown.
func checkSecureBootOff(t *testing.T, u *harness.UEFIReport) {
	t.Helper()
	if u.BootParamsSecureBoot != 2 {
		t.Errorf("boot_params.secure_boot is %d, want 2 (disabled)", u.BootParamsSecureBoot)
	}
	if mode := u.LockdownMode(); mode != "none" {
		t.Errorf("lockdown is %q, want none with Secure Boot off", u.Lockdown)
	}
}

// checkServedWhole asserts nginx served each file (local path, URL path)
// whole with 200.
func checkServedWhole(t *testing.T, web *harness.Nginx, files [][2]string) {
	t.Helper()
	web.ExpectServedWhole(t, files)
}

// TestUEFIHTTPBoot: OVMF with its PXE options off → UEFI HTTP Boot
// (dnsmasq answers the HTTPClient vendor class with an http:// URL) →
// iPXE's snponly.efi over HTTP → iPXE's DHCP (option 175) → boot.ipxe from
// `streamroot pxe --format ipxe --foreman` → kernel + initramfs over HTTP →
// the root. No TFTP at all. Not shim → GRUB: OVMF's HTTP Boot loads
// Debian's shim and shim loads GRUB over HTTP, but Debian's GRUB 2.06 then
// finds no config (it knows no HTTP root; EL's GRUB carries the patches
// for that), and iPXE is not signed, so Secure Boot is off here.
func TestUEFIHTTPBoot(t *testing.T) {
	root, ns := uefiSetup(t)
	web := harness.StartNginx(t, ns, harness.NginxOptions{})
	scriptPath := uefiIPXEScript(t)
	for _, f := range [][2]string{{harness.IPXESNPOnly, "snponly.efi"}, {scriptPath, "boot.ipxe"},
		{env.Kernel, pxeKernelName}, {env.Initramfs, pxeInitrdName}, {root, uefiImage}} {
		if err := web.AddFile(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	opts := harness.HTTPBootDnsmasqOptions(web.URL("snponly.efi"))
	opts.Extra = append(opts.Extra, harness.IPXEDnsmasqOptions(web.URL("boot.ipxe")).Extra...)
	dhcp := harness.StartDnsmasq(t, ns, opts)

	vm := env.BootUEFI(t, harness.PXEBootOptions{Netns: ns}, harness.UEFI{HTTPOnly: true})
	vm.WaitMilestones(t, harness.DefaultUEFIBootTimeout, uefiMilestones(
		harness.Milestone{Name: "HTTP Boot", Re: regexp.MustCompile(`UEFI HTTPv4 \(MAC:525400123456\)`)},
		harness.Milestone{Name: "iPXE", Re: regexp.MustCompile(`iPXE initialising devices|iPXE \d`)},
		harness.Milestone{Name: "boot.ipxe", Re: regexp.MustCompile(`http://10\.77\.0\.1/boot\.ipxe\.*\s*ok`)})...)
	_, u := checkUEFIRoot(t, vm, web.URL(uefiImage), pxeBootIF)
	checkSecureBootOff(t, u)

	checkServedWhole(t, web, [][2]string{{harness.IPXESNPOnly, "/snponly.efi"}, {scriptPath, "/boot.ipxe"},
		{env.Kernel, "/" + pxeKernelName}, {env.Initramfs, "/" + pxeInitrdName}})
	log := dhcp.Log()
	for _, want := range []string{"HTTPClient", "tags: efihttp", "/snponly.efi", "tags: ipxe", "/boot.ipxe"} {
		if !strings.Contains(log, want) {
			t.Errorf("dnsmasq's DHCP log lacks %q: the firmware's HTTP Boot client got the loader's URL, iPXE the script's", want)
		}
	}
	if strings.Contains(vm.Console(), "PXEv4") {
		t.Errorf("the firmware tried PXE: HTTP Boot alone was asked for")
	}
}

// uefiIPXEScript writes `streamroot pxe --format ipxe --foreman` for the
// uefi fixture on nginx into the test's artifacts and returns its path.
func uefiIPXEScript(t *testing.T) string {
	t.Helper()
	script := uefiEntry(t, "ipxe", pxeKernelName, pxeInitrdName)
	p := filepath.Join(env.ArtifactDir(t), "boot.ipxe")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUEFIIPXE: OVMF (Secure Boot off: iPXE is not signed) → its own PXE
// → snponly.efi (Debian's ipxe) over TFTP → iPXE's DHCP (option 175) →
// boot.ipxe from `streamroot pxe --format ipxe --foreman` over HTTP →
// kernel + initramfs over HTTP → the root, BOOTIF from
// ${net0/mac:hexhyp}.
func TestUEFIIPXE(t *testing.T) {
	root, ns := uefiSetup(t)
	tftp := filepath.Join(env.ArtifactDir(t), "tftp")
	scriptPath := uefiIPXEScript(t)
	if err := os.MkdirAll(tftp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(harness.IPXESNPOnly, filepath.Join(tftp, "snponly.efi")); err != nil {
		t.Fatal(err)
	}
	web := harness.StartNginx(t, ns, harness.NginxOptions{})
	for _, f := range [][2]string{{scriptPath, "boot.ipxe"}, {env.Kernel, pxeKernelName}, {env.Initramfs, pxeInitrdName}, {root, uefiImage}} {
		if err := web.AddFile(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	dhcp := harness.StartDnsmasq(t, ns, harness.IPXEChainDnsmasqOptions(tftp, "snponly.efi", web.URL("boot.ipxe")))

	vm := env.BootUEFI(t, harness.PXEBootOptions{Netns: ns}, harness.UEFI{})
	vm.WaitMilestones(t, harness.DefaultUEFIBootTimeout, uefiMilestones(
		harness.Milestone{Name: "iPXE", Re: regexp.MustCompile(`iPXE initialising devices|iPXE \d`)},
		harness.Milestone{Name: "boot.ipxe", Re: regexp.MustCompile(`http://10\.77\.0\.1/boot\.ipxe\.*\s*ok`)})...)
	_, u := checkUEFIRoot(t, vm, web.URL(uefiImage), pxeBootIF)
	checkSecureBootOff(t, u)

	checkServedWhole(t, web, [][2]string{{scriptPath, "/boot.ipxe"}, {env.Kernel, "/" + pxeKernelName}, {env.Initramfs, "/" + pxeInitrdName}})
	// OVMF's PXE sends the boot file twice (for its size, then the file).
	if sent := dhcp.TFTPSent(tftp); !slices.Equal(slices.Compact(sent), []string{"snponly.efi"}) {
		t.Errorf("TFTP sent %v, want only snponly.efi (the rest over HTTP)", sent)
	}
	if log := dhcp.Log(); !strings.Contains(log, "tags: ipxe") {
		t.Errorf("dnsmasq's DHCP log shows no iPXE client (option 175): the script URL went to whom?")
	}
}

// TestUEFISecureBootUnsignedModule: the Secure Boot PXE chain of
// TestUEFIPXESecureBoot, with an initramfs whose virtio_net.ko lost its
// signature. The locked-down kernel refuses it; the modules stage names
// the module and why on the console, and the boot fails with the failure
// block (no NIC for BOOTIF, its driver named in the hint) instead of
// hanging.
func TestUEFISecureBootUnsignedModule(t *testing.T) {
	_, ns := uefiSetup(t)
	initramfs := env.UnsignedModuleInitramfs(t, "virtio_net")
	tftp := filepath.Join(env.ArtifactDir(t), "tftp")
	entry := harness.StreamrootPXE(t, "--format", "grub", "--server", "http://"+harness.ServerIP, "--image", uefiImage,
		"--kernel", uefiKernelPath, "--initrd", uefiInitrdPath,
		"--append", strings.TrimSpace(harness.GuestConsoleArgs)+" streamroot.onfail=reboot streamroot.reboot.delay=0")
	if err := harness.ShimGrubTree(tftp, env.Kernel, initramfs, pxeKernelName, pxeInitrdName, harness.GrubConfig(entry)); err != nil {
		t.Fatal(err)
	}
	harness.StartDnsmasq(t, ns, harness.TFTPDnsmasqOptions(tftp, "shimx64.efi"))

	vm := env.BootUEFI(t, harness.PXEBootOptions{Netns: ns}, harness.UEFI{SecureBoot: true})
	vm.WaitMilestones(t, harness.DefaultUEFIBootTimeout, append(grubMilestones,
		harness.Milestone{Name: "initramfs", Re: regexp.MustCompile(`streamroot: early: streamroot starting`)},
		harness.Milestone{Name: "refused", Re: regexp.MustCompile(`module virtio_net (\([^)]*\) )?refused by the kernel: its signature is missing or not trusted`)})...)
	vm.ExpectFailure(t, "network", "found: none", "driver")
	// Debian's kernel enforces module signatures once Secure Boot locked
	// it down (else lockdown itself refuses: "unsigned module loading is
	// restricted").
	if con := vm.Console(); !strings.Contains(con, "Loading of unsigned module is rejected") && !strings.Contains(con, "unsigned module loading is restricted") {
		t.Errorf("the kernel did not log its refusal of an unsigned module")
	}
}

// ukiSetup is uefiSetup for the UKI tests: the snakeoil firmware, systemd's
// stub and sbsign too, and a UKI of our kernel and initramfs with a
// command line that boots the uefi fixture from nginx, signed with the
// snakeoil key. It returns the UKI, its command line, and nginx serving
// the UKI (as /streamroot.efi) and the root image.
func ukiSetup(t *testing.T) (ukiPath, cmdline string, ns *harness.Netns, web *harness.Nginx) {
	t.Helper()
	root, ns := uefiSetup(t)
	if err := harness.CheckUKIHost(); err != nil {
		t.Fatal(err)
	}
	web = harness.StartNginx(t, ns, harness.NginxOptions{})
	// No BOOTIF: no loader is left to write it; the one NIC is the boot NIC.
	cmdline = strings.TrimSpace(harness.GuestConsoleArgs) + " ip=dhcp root=live:" + web.URL(uefiImage) + " streamroot.onfail=reboot streamroot.reboot.delay=0"
	ukiPath = harness.SignedUKI(t, env.ArtifactDir(t), env.Kernel, env.Initramfs, cmdline)
	if err := web.AddFile(root, uefiImage); err != nil {
		t.Fatal(err)
	}
	return ukiPath, cmdline, ns, web
}

// TestUEFIHTTPBootSignedUKI: OVMF with Secure Boot on and only the snakeoil
// key trusted → UEFI HTTP Boot of one file, the UKI `streamroot uki` built
// and signed with that key (systemd's stub + our kernel, initramfs and
// command line) → the root over HTTP, in lockdown, with the UKI's own
// command line. No loader and no TFTP: the firmware verified the kernel,
// the initramfs and the command line in one signature.
func TestUEFIHTTPBootSignedUKI(t *testing.T) {
	ukiPath, cmdline, ns, web := ukiSetup(t)
	if err := web.AddFile(ukiPath, "streamroot.efi"); err != nil {
		t.Fatal(err)
	}
	dhcp := harness.StartDnsmasq(t, ns, harness.HTTPBootDnsmasqOptions(web.URL("streamroot.efi")))

	vm := env.BootUEFI(t, harness.PXEBootOptions{Netns: ns}, harness.UEFI{SecureBoot: true, Snakeoil: true, HTTPOnly: true})
	vm.WaitMilestones(t, harness.DefaultUEFIBootTimeout, uefiMilestones(
		harness.Milestone{Name: "HTTP Boot", Re: regexp.MustCompile(`UEFI HTTPv4 \(MAC:525400123456\)`)})...)
	r, u := checkUEFIBoot(t, vm)
	if got := strings.Join(strings.Fields(r.Cmdline), " "); got != cmdline {
		t.Errorf("the root's /proc/cmdline is not the UKI's:\n got %q\nwant %q", got, cmdline)
	}
	checkSecureBoot(t, vm, u)
	checkServedWhole(t, web, [][2]string{{ukiPath, "/streamroot.efi"}})
	if log := dhcp.Log(); !strings.Contains(log, "tags: efihttp") {
		t.Errorf("dnsmasq's DHCP log shows no HTTP Boot client (vendor class HTTPClient)")
	}
}

// TestUEFISignedUKITampered: the signed UKI of TestUEFIHTTPBootSignedUKI
// with one byte of its command line changed, over the same HTTP Boot with
// Secure Boot on. The firmware fetches it whole, finds the signature does
// not match and refuses it (EFI_SECURITY_VIOLATION, "Access Denied" on
// the console); no kernel starts.
func TestUEFISignedUKITampered(t *testing.T) {
	ukiPath, _, ns, web := ukiSetup(t)
	bad := filepath.Join(env.ArtifactDir(t), "tampered.efi")
	if err := harness.TamperUKISection(ukiPath, bad, ".cmdline"); err != nil {
		t.Fatal(err)
	}
	if err := web.AddFile(bad, "streamroot.efi"); err != nil {
		t.Fatal(err)
	}
	harness.StartDnsmasq(t, ns, harness.HTTPBootDnsmasqOptions(web.URL("streamroot.efi")))

	vm := env.BootUEFI(t, harness.PXEBootOptions{Netns: ns}, harness.UEFI{SecureBoot: true, Snakeoil: true, HTTPOnly: true})
	refusal := regexp.MustCompile(`failed to load Boot\d+ "UEFI HTTPv4 \(MAC:525400123456\)"[^\n]*: (Access Denied|Security Violation)`)
	line, err := vm.WaitFor(refusal, harness.DefaultUEFIBootTimeout)
	if err != nil {
		t.Fatalf("the firmware did not refuse the tampered UKI: %v", err)
	}
	t.Logf("firmware: %s", strings.TrimSpace(line))
	checkServedWhole(t, web, [][2]string{{bad, "/streamroot.efi"}})
	// The stub and the kernel log before anything else they do; give a
	// wrongly accepted image the time to show it did start.
	if _, err := vm.WaitFor(regexp.MustCompile(`Linux version \d|EFI stub: `), 20*time.Second); err == nil {
		t.Errorf("a kernel started from the tampered UKI")
	}
	if err := vm.Kill(); err != nil {
		t.Logf("kill: %v", err)
	}
}
