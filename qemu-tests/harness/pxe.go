package harness

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The PXE chain: QEMU's own NIC option ROM (iPXE, Debian's ipxe-qemu) boots
// from the network (-boot n), dnsmasq answers DHCP and serves TFTP, and
// either PXELinux (Debian's pxelinux + syslinux-common) or an iPXE script
// on nginx loads the kernel and the initramfs under test.
const (
	// PXELinuxBin and LDLinux are the Debian files PXELinux needs on the
	// TFTP server (ldlinux.c32 next to pxelinux.0).
	PXELinuxBin = "/usr/lib/PXELINUX/pxelinux.0"
	LDLinux     = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
	// IPXERom is the virtio-net option ROM QEMU loads by default (romfile
	// unset); without it -boot n has nothing to boot from.
	IPXERom = "/usr/lib/ipxe/qemu/efi-virtio.rom"

	// DefaultPXEBootTimeout bounds one PXE boot under TCG: SeaBIOS, iPXE's
	// DHCP, the NBP's transfers, then the kernel and the initramfs.
	DefaultPXEBootTimeout = 240 * time.Second
)

// CheckPXEHost reports why this host cannot run the PXE tests: the Debian
// packages ipxe-qemu, pxelinux and syslinux-common (builder/deps.sh test
// installs them).
func CheckPXEHost() error {
	var missing []string
	for _, f := range []struct{ path, pkg string }{
		{IPXERom, "ipxe-qemu"}, {PXELinuxBin, "pxelinux"}, {LDLinux, "syslinux-common"},
	} {
		if _, err := os.Stat(f.path); err != nil {
			missing = append(missing, f.path+" (Debian package "+f.pkg+")")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s; make test installs them (builder/deps.sh test)", strings.Join(missing, ", "))
	}
	return nil
}

// TFTPDnsmasqOptions make dnsmasq the PXE server: DHCP that names
// bootFile (relative to tftpRoot) and TFTP from tftpRoot.
func TFTPDnsmasqOptions(tftpRoot, bootFile string) DnsmasqOptions {
	return DnsmasqOptions{Extra: []string{
		"--enable-tftp",
		"--tftp-root=" + tftpRoot,
		"--dhcp-boot=" + bootFile,
	}}
}

// IPXEDnsmasqOptions make dnsmasq hand iPXE (DHCP option 175 present) the
// URL of a script; other clients get no boot file.
func IPXEDnsmasqOptions(scriptURL string) DnsmasqOptions {
	return DnsmasqOptions{Extra: []string{
		"--dhcp-match=set:ipxe,175",
		"--dhcp-boot=tag:ipxe," + scriptURL,
	}}
}

var tftpSent = regexp.MustCompile(`dnsmasq-tftp\[\d+\]: sent (\S+) to (\S+)`)

// TFTPSent returns the files dnsmasq's TFTP server sent completely, as
// paths relative to tftpRoot, in order.
func (d *Dnsmasq) TFTPSent(tftpRoot string) []string {
	var out []string
	for _, m := range tftpSent.FindAllStringSubmatch(d.Log(), -1) {
		p := m[1]
		if rel, err := filepath.Rel(tftpRoot, p); err == nil && !strings.HasPrefix(rel, "..") {
			p = rel
		}
		out = append(out, p)
	}
	return out
}

// PXELinuxRoot lays out a PXELinux TFTP root in dir: pxelinux.0,
// ldlinux.c32, the kernel and the initramfs under the names the entry uses,
// and pxelinux.cfg/default with entry (the output of `streamroot pxe
// --format pxelinux`) as its default label, booting at once.
func PXELinuxRoot(dir, kernel, initramfs, kernelName, initrdName, entry string) error {
	m := regexp.MustCompile(`(?m)^LABEL (\S+)$`).FindStringSubmatch(entry)
	if m == nil {
		return fmt.Errorf("pxelinux entry has no LABEL line:\n%s", entry)
	}
	if err := os.MkdirAll(filepath.Join(dir, "pxelinux.cfg"), 0o755); err != nil {
		return err
	}
	for _, f := range [][2]string{
		{PXELinuxBin, "pxelinux.0"}, {LDLinux, "ldlinux.c32"}, {kernel, kernelName}, {initramfs, initrdName},
	} {
		if err := linkOrCopy(f[0], filepath.Join(dir, f[1])); err != nil {
			return err
		}
	}
	cfg := "# written by qemu-tests/harness (pxe.go); the entry is `streamroot pxe` output\n" +
		"DEFAULT " + m[1] + "\nPROMPT 0\nTIMEOUT 1\n\n" + entry
	return os.WriteFile(filepath.Join(dir, "pxelinux.cfg", "default"), []byte(cfg), 0o644)
}

// linkOrCopy puts src at dst: a hard link when possible, else a copy.
func linkOrCopy(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return CopyFile(src, dst)
}

// PXEBootOptions describe one network boot.
type PXEBootOptions struct {
	Name      string // label for logs and files, default "pxe"
	Netns     *Netns // required: the NIC is on its br0
	MAC       string // default BootMAC
	MemoryMiB int    // default 1024
	// Timeout bounds the whole QEMU run, default DefaultPXEBootTimeout.
	Timeout  time.Duration
	QEMUArgs []string
}

// prepare fills opts' defaults (name and timeout as given) and adds the
// NIC's tap on br0 of opts.Netns, which a network boot needs.
func (opts *PXEBootOptions) prepare(t testing.TB, name string, timeout time.Duration) (tap string) {
	t.Helper()
	if opts.Netns == nil {
		t.Fatalf("%s: a network boot needs a Netns", name)
	}
	opts.Name = cmp.Or(opts.Name, name)
	opts.MAC = cmp.Or(opts.MAC, BootMAC)
	opts.MemoryMiB = cmp.Or(opts.MemoryMiB, 1024)
	opts.Timeout = cmp.Or(opts.Timeout, timeout)
	tap, err := opts.Netns.AddTap(Bridge0)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return tap
}

// BootPXE starts QEMU with no kernel: the virtio NIC's iPXE option ROM
// boots from the network (-boot n) on br0 of opts.Netns. Otherwise it is
// Boot: TCG with -cpu max, the serial console on stdout, -no-reboot, a VM
// slot, killed by t.Cleanup.
func (e *Env) BootPXE(t testing.TB, opts PXEBootOptions) *VM {
	t.Helper()
	if err := CheckPXEHost(); err != nil {
		t.Fatal(err)
	}
	tap := opts.prepare(t, "pxe", DefaultPXEBootTimeout)
	return e.startVM(t, vmSpec{
		name: opts.Name, netns: opts.Netns, memoryMiB: opts.MemoryMiB, timeout: opts.Timeout,
		args: append([]string{
			"-boot", "n",
			"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
			// No romfile=: QEMU loads efi-virtio.rom (iPXE) for the NIC.
			"-device", "virtio-net-pci,netdev=n0,mac=" + opts.MAC,
		}, opts.QEMUArgs...),
		doing: fmt.Sprintf("network-booting (-boot n) %s on %s/%s", opts.MAC, tap, Bridge0),
	})
}

// terminalEscape matches the escape sequences SeaBIOS's serial console
// writes when it mirrors the firmware's text screen (cursor moves such as
// ESC[25;06H may land in the middle of a word).
var terminalEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[@-Z\\-_]|c)`)

// StripTerminalEscapes removes terminal escape sequences from console text.
func StripTerminalEscapes(s string) string { return terminalEscape.ReplaceAllString(s, "") }

// Milestone is a console line that marks a step of a network boot.
type Milestone struct {
	Name string
	Re   *regexp.Regexp
}

// WaitMilestones waits for each milestone in order (each within what is
// left of timeout, in the guest's time; the console with terminal escapes
// removed) and logs when it appeared, counted from QEMU's start. It
// returns the times; on a miss it fails t.
func (vm *VM) WaitMilestones(t testing.TB, timeout time.Duration, ms ...Milestone) map[string]time.Duration {
	t.Helper()
	deadline := vm.clock.deadline(timeout)
	at := map[string]time.Duration{}
	var parts []string
	for _, m := range ms {
		_, err := vm.waitUntilDeadline(deadline, m.Re.String(), func(con string) (string, bool) {
			s := m.Re.FindString(StripTerminalEscapes(con))
			return s, s != ""
		})
		if err != nil {
			t.Fatalf("%s: no %s: %v (so far: %s)", vm.Name, m.Name, err, strings.Join(parts, ", "))
		}
		at[m.Name] = time.Since(vm.Started)
		parts = append(parts, fmt.Sprintf("%s %.1fs", m.Name, at[m.Name].Seconds()))
	}
	t.Logf("%s: milestones after QEMU start: %s", vm.Name, strings.Join(parts, ", "))
	return at
}
