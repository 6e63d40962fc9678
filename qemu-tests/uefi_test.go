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
	// on the kernel line for BootMAC: GRUB's $net_default_mac.
	uefiGrubBootIF = "BOOTIF=52:54:00:12:34:56"
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

// uefiGrubEntry is `streamroot pxe --format grub --foreman` for the uefi
// fixture on nginx.
func uefiGrubEntry(t *testing.T) string {
	t.Helper()
	entry := harness.StreamrootPXE(t, "--format", "grub", "--foreman", "--foreman-url", pxeForemanURL,
		"--server", "http://"+harness.ServerIP, "--image", uefiImage,
		"--kernel", uefiKernelPath, "--initrd", uefiInitrdPath, "--append", strings.TrimSpace(harness.GuestConsoleArgs))
	t.Logf("streamroot pxe --format grub:\n%s", entry)
	if !strings.Contains(entry, "BOOTIF=$net_default_mac") {
		t.Errorf("the GRUB entry does not take BOOTIF from $net_default_mac:\n%s", entry)
	}
	return entry
}

// checkUEFIRoot asserts what every UEFI-booted root must show: the uefi
// fixture as an overlay over squashfs, booted by UEFI with the seed's
// Foreman arguments and bootif on its kernel line, and the modules it runs
// with from the initramfs (the root has none).
func checkUEFIRoot(t *testing.T, vm *harness.VM, imageURL, bootif string) (*harness.Report, *harness.UEFIReport) {
	t.Helper()
	r := vm.ExpectReport(t)
	checkRoot(t, r, "uefi")
	for _, arg := range []string{bootif, "proxy.url=" + pxeForemanURL, "proxy.type=foreman", "root=live:" + imageURL, "ip=dhcp"} {
		if !slices.Contains(strings.Fields(r.Cmdline), arg) {
			t.Errorf("the root's /proc/cmdline lacks %s: %q", arg, r.Cmdline)
		}
	}
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
	t.Parallel()
	env.Require(t)
	if err := harness.CheckUEFIHost(); err != nil {
		t.Fatal(err)
	}
	root := env.UEFIRoot(t)
	ns := env.NewNetns(t)
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

	vm := env.BootUEFI(t, harness.UEFIBootOptions{Netns: ns, UEFI: harness.UEFI{SecureBoot: true}})
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
	for _, f := range files {
		st, err := os.Stat(f[0])
		if err != nil {
			t.Fatal(err)
		}
		reqs := web.Requests(f[1])
		if len(reqs) == 0 {
			t.Errorf("nginx never served %s", f[1])
			continue
		}
		if reqs[0].Status != 200 || web.BytesSent(f[1]) < st.Size() {
			t.Errorf("%s: status %d, %d body bytes sent, want 200 and %d bytes", f[1], reqs[0].Status, web.BytesSent(f[1]), st.Size())
		}
	}
}

// TestUEFIHTTPBoot: OVMF with Secure Boot on and its PXE options off →
// UEFI HTTP Boot (dnsmasq answers the HTTPClient vendor class with the
// shim's URL) → shim → GRUB over HTTP → grub.cfg from `streamroot pxe
// --format grub --foreman` → kernel + initramfs over HTTP → the root. No
// TFTP at all.
func TestUEFIHTTPBoot(t *testing.T) {
	t.Parallel()
	env.Require(t)
	if err := harness.CheckUEFIHost(); err != nil {
		t.Fatal(err)
	}
	root := env.UEFIRoot(t)
	ns := env.NewNetns(t)
	web := harness.StartNginx(t, ns, harness.NginxOptions{})
	if err := harness.ShimGrubTree(web.Docroot, env.Kernel, env.Initramfs, pxeKernelName, pxeInitrdName,
		harness.GrubConfig(uefiGrubEntry(t))); err != nil {
		t.Fatal(err)
	}
	if err := web.AddFile(root, uefiImage); err != nil {
		t.Fatal(err)
	}
	dhcp := harness.StartDnsmasq(t, ns, harness.HTTPBootDnsmasqOptions(web.URL("shimx64.efi")))

	vm := env.BootUEFI(t, harness.UEFIBootOptions{Netns: ns, UEFI: harness.UEFI{SecureBoot: true, HTTPOnly: true}})
	vm.WaitMilestones(t, harness.DefaultUEFIBootTimeout, uefiMilestones(grubMilestones...)...)
	_, u := checkUEFIRoot(t, vm, web.URL(uefiImage), uefiGrubBootIF)
	checkSecureBoot(t, vm, u)

	checkServedWhole(t, web, [][2]string{
		{harness.ShimSigned, "/shimx64.efi"}, {harness.GrubNetSigned, "/grubx64.efi"},
		{env.Kernel, "/" + pxeKernelName}, {env.Initramfs, "/" + pxeInitrdName},
	})
	if len(web.Requests("/grub/grub.cfg")) == 0 {
		t.Errorf("nginx never served /grub/grub.cfg")
	}
	log := dhcp.Log()
	for _, want := range []string{"HTTPClient", "tags: efihttp", "/shimx64.efi"} {
		if !strings.Contains(log, want) {
			t.Errorf("dnsmasq's DHCP log lacks %q: the boot URL went to the HTTP Boot client", want)
		}
	}
}

// TestUEFIIPXE: OVMF (Secure Boot off: iPXE is not signed) → its own PXE
// → snponly.efi (Debian's ipxe) over TFTP → iPXE's DHCP (option 175) →
// boot.ipxe from `streamroot pxe --format ipxe --foreman` over HTTP →
// kernel + initramfs over HTTP → the root, BOOTIF from
// ${net0/mac:hexhyp}.
func TestUEFIIPXE(t *testing.T) {
	t.Parallel()
	env.Require(t)
	if err := harness.CheckUEFIHost(); err != nil {
		t.Fatal(err)
	}
	root := env.UEFIRoot(t)
	ns := env.NewNetns(t)
	dir := env.ArtifactDir(t)
	tftp := filepath.Join(dir, "tftp")
	script := harness.StreamrootPXE(t, "--format", "ipxe", "--foreman", "--foreman-url", pxeForemanURL,
		"--server", "http://"+harness.ServerIP, "--image", uefiImage,
		"--kernel", pxeKernelName, "--initrd", pxeInitrdName, "--append", strings.TrimSpace(harness.GuestConsoleArgs))
	t.Logf("streamroot pxe --format ipxe:\n%s", script)
	scriptPath := filepath.Join(dir, "boot.ipxe")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
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

	vm := env.BootUEFI(t, harness.UEFIBootOptions{Netns: ns})
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
// signature. The locked-down kernel refuses it; the console names the
// module and why, and the boot fails with the failure block (no NIC, no
// network) instead of hanging.
func TestUEFISecureBootUnsignedModule(t *testing.T) {
	t.Parallel()
	env.Require(t)
	if err := harness.CheckUEFIHost(); err != nil {
		t.Fatal(err)
	}
	initramfs := env.UnsignedModuleInitramfs(t, "virtio_net")
	ns := env.NewNetns(t)
	tftp := filepath.Join(env.ArtifactDir(t), "tftp")
	entry := harness.StreamrootPXE(t, "--format", "grub", "--server", "http://"+harness.ServerIP, "--image", uefiImage,
		"--kernel", uefiKernelPath, "--initrd", uefiInitrdPath,
		"--append", strings.TrimSpace(harness.GuestConsoleArgs)+" streamroot.onfail=reboot streamroot.reboot.delay=0")
	if err := harness.ShimGrubTree(tftp, env.Kernel, initramfs, pxeKernelName, pxeInitrdName, harness.GrubConfig(entry)); err != nil {
		t.Fatal(err)
	}
	harness.StartDnsmasq(t, ns, harness.TFTPDnsmasqOptions(tftp, "shimx64.efi"))

	vm := env.BootUEFI(t, harness.UEFIBootOptions{Netns: ns, UEFI: harness.UEFI{SecureBoot: true}})
	vm.WaitMilestones(t, harness.DefaultUEFIBootTimeout, append(grubMilestones,
		harness.Milestone{Name: "initramfs", Re: regexp.MustCompile(`streamroot: early: streamroot starting`)},
		harness.Milestone{Name: "refused", Re: regexp.MustCompile(`module virtio_net (\([^)]*\) )?refused by the kernel: its signature is missing or not trusted`)})...)
	vm.ExpectFailure(t, "network")
	if con := vm.Console(); !strings.Contains(con, "Lockdown: ") || !strings.Contains(con, "unsigned module loading is restricted") {
		t.Errorf("the kernel did not log lockdown's refusal of an unsigned module")
	}
}
