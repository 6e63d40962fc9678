package harness

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/kmod"
)

// UEFI boots: Debian's OVMF (package ovmf) instead of SeaBIOS, on the same
// netns, dnsmasq, nginx and report parsing as every other boot. The chains
// the tests build from it are the ones bare metal uses: the firmware's own
// PXE (TFTP) or HTTP Boot loads shim → GRUB (Debian's signed builds), or
// iPXE's EFI build, which then loads our kernel and initramfs.
const (
	// OVMFCode is the firmware without SMM, Secure Boot off; OVMFVars its
	// empty variable store (no keys).
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// OVMFCodeSecure is the Secure Boot build (it needs SMM: q35,smm=on);
	// OVMFVarsMS holds Debian's PK and Microsoft's KEK and db keys with
	// Secure Boot already on: shim (signed by Microsoft) is trusted,
	// anything unsigned is refused.
	OVMFCodeSecure = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
	OVMFVarsMS     = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
	// OVMFCodeSnakeoil and OVMFVarsSnakeoil are Debian's test build: the
	// "snakeoil" key is PK, KEK and db, Secure Boot on; its private half
	// (SnakeoilKey, passphrase SnakeoilPassphrase, per the package's
	// README.Debian) and certificate ship beside it, so a test can sign
	// what the firmware must trust.
	OVMFCodeSnakeoil   = "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd"
	OVMFVarsSnakeoil   = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
	SnakeoilKey        = "/usr/share/ovmf/PkKek-1-snakeoil.key"
	SnakeoilCert       = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
	SnakeoilPassphrase = "snakeoil"
	// UKIStub is systemd's EFI stub (Debian's systemd-boot-efi), what
	// `streamroot uki` packs a UKI on.
	UKIStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

	// ShimSigned is Debian's shim (shim-signed), signed by Microsoft; it
	// trusts Debian's CA and loads grubx64.efi from where it came from.
	ShimSigned = "/usr/lib/shim/shimx64.efi.signed"
	// GrubNetSigned is Debian's signed network GRUB (grub-efi-amd64-signed):
	// every module built in, prefix /grub, so it reads /grub/grub.cfg from
	// the server it was loaded from.
	GrubNetSigned = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"
	// GrubEFIModules is Debian's unsigned GRUB for UEFI (grub-efi-amd64-bin),
	// the modules grub-mknetdir (grub-common) lays out for a network boot.
	GrubEFIModules = "/usr/lib/grub/x86_64-efi"
	// IPXESNPOnly is iPXE's EFI build (Debian's ipxe) that drives the NIC
	// through the firmware's own network protocol (SNP).
	IPXESNPOnly = "/usr/lib/ipxe/snponly.efi"

	// DefaultUEFIBootTimeout bounds one UEFI network boot under TCG: OVMF
	// (slower still with SMM), its DHCP, the loaders, the kernel and the
	// initramfs over TFTP or HTTP, then the root.
	DefaultUEFIBootTimeout = 300 * time.Second
)

// UEFI selects OVMF for a VM (BootUEFI).
type UEFI struct {
	// SecureBoot boots OVMFCodeSecure (q35 with SMM) with a copy of
	// OVMFVarsMS: Secure Boot on, Microsoft's keys enrolled.
	SecureBoot bool
	// Snakeoil, with SecureBoot, enrolls the snakeoil test key instead
	// of Microsoft's (OVMFCodeSnakeoil, OVMFVarsSnakeoil): only what that
	// key signed boots.
	Snakeoil bool
	// HTTPOnly drops the firmware's PXE boot options (fw_cfg
	// opt/org.tianocore/IPv4PXESupport=no), so it goes straight to UEFI
	// HTTP Boot (over IPv4, then over IPv6). IPv6 PXE is always off: no
	// test boots by it, and OVMF would wait for a DHCPv6 PXE answer before
	// trying anything else.
	HTTPOnly bool
}

// qemuArgs copies the variable store template to vars (a fresh one per
// boot: the firmware writes its boot entries there) and returns the QEMU
// arguments for the firmware.
func (u UEFI) qemuArgs(vars string) ([]string, error) {
	code, tmpl := OVMFCode, OVMFVars
	var args []string
	if u.SecureBoot {
		code, tmpl = OVMFCodeSecure, OVMFVarsMS
		if u.Snakeoil {
			code, tmpl = OVMFCodeSnakeoil, OVMFVarsSnakeoil
		}
		// The Secure Boot build refuses to start without SMM, and the
		// variable store must be writable by SMM code only.
		args = append(args, "-machine", "q35,smm=on",
			"-global", "driver=cfi.pflash01,property=secure,value=on",
			"-global", "ICH9-LPC.disable_s3=1")
	}
	if err := CopyFile(tmpl, vars); err != nil {
		return nil, fmt.Errorf("OVMF variable store: %w", err)
	}
	args = append(args,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars,
		"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no")
	if u.HTTPOnly {
		args = append(args, "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no")
	}
	return args, nil
}

// CheckUEFIHost reports why this host cannot run the UEFI tests: the
// Debian packages ovmf, shim-signed, grub-efi-amd64-signed,
// grub-efi-amd64-bin and ipxe (builder/deps.sh test installs them).
func CheckUEFIHost() error {
	var missing []string
	for _, f := range []struct{ path, pkg string }{
		{OVMFCode, "ovmf"}, {OVMFVars, "ovmf"}, {OVMFCodeSecure, "ovmf"}, {OVMFVarsMS, "ovmf"},
		{ShimSigned, "shim-signed"}, {GrubNetSigned, "grub-efi-amd64-signed"}, {IPXESNPOnly, "ipxe"},
		{filepath.Join(GrubEFIModules, "normal.mod"), "grub-efi-amd64-bin"}, {"/usr/bin/grub-mknetdir", "grub-common"},
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

// CheckUKIHost reports why this host cannot build and boot a signed UKI:
// OVMF's snakeoil build and key (ovmf), systemd's stub (systemd-boot-efi),
// sbsign (sbsigntool) and openssl to unlock the key.
func CheckUKIHost() error {
	var missing []string
	for _, f := range []struct{ path, pkg string }{
		{OVMFCodeSnakeoil, "ovmf"}, {OVMFVarsSnakeoil, "ovmf"}, {SnakeoilKey, "ovmf"}, {SnakeoilCert, "ovmf"},
		{UKIStub, "systemd-boot-efi"}, {"/usr/bin/sbsign", "sbsigntool"}, {"/usr/bin/openssl", "openssl"},
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

// SignedUKI runs `streamroot uki` on kernel and initramfs with cmdline,
// signed with the snakeoil key (unlocked into dir first: sbsign would ask
// for its passphrase), and returns the UKI's path in dir.
func SignedUKI(t testing.TB, dir, kernel, initramfs, cmdline string) string {
	t.Helper()
	if err := CheckUKIHost(); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "snakeoil.key")
	if _, err := runCmd(time.Minute, "openssl", "pkey", "-in", SnakeoilKey, "-passin", "pass:"+SnakeoilPassphrase, "-out", key); err != nil {
		t.Fatalf("unlocking the snakeoil key: %v", err)
	}
	out := filepath.Join(dir, "streamroot.efi")
	if _, err := runCmd(2*time.Minute, StreamrootCLI(t), "uki", "--kernel", kernel, "--initramfs", initramfs,
		"--cmdline", cmdline, "--key", key, "--cert", SnakeoilCert, "--stub", UKIStub, "-o", out); err != nil {
		t.Fatalf("streamroot uki: %v", err)
	}
	return out
}

// TamperUKISection copies the UKI at src to dst with one byte of its
// section name (".cmdline", ".initrd", …) changed: the last byte for
// .cmdline's text (before its NUL), else the first. The signature no
// longer matches; nothing else changed.
func TamperUKISection(src, dst, name string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	s := f.Section(name)
	if s == nil || s.VirtualSize < 2 {
		return fmt.Errorf("%s has no section %s to change", src, name)
	}
	at := int(s.Offset)
	if name == ".cmdline" {
		at += int(s.VirtualSize) - 2
	}
	b[at] ^= 0x01
	return os.WriteFile(dst, b, 0o644)
}

// BootUEFI starts OVMF (u) with no kernel and no disk: its own network
// stack (VirtioNetDxe; the NIC gets no iPXE option ROM) boots from br0 of
// opts.Netns by PXE, or by HTTP Boot when u.HTTPOnly. Otherwise it is
// BootPXE (opts.Name defaults to "uefi", opts.Timeout to
// DefaultUEFIBootTimeout).
func (e *Env) BootUEFI(t testing.TB, opts PXEBootOptions, u UEFI) *VM {
	t.Helper()
	if err := CheckUEFIHost(); err != nil {
		t.Fatal(err)
	}
	tap := opts.prepare(t, "uefi", DefaultUEFIBootTimeout)
	how := "PXE"
	if u.HTTPOnly {
		how = "HTTP Boot"
	}
	if u.SecureBoot {
		how += ", Secure Boot on"
		if u.Snakeoil {
			how += " (snakeoil keys)"
		}
	}
	return e.startVM(t, vmSpec{
		name: opts.Name, netns: opts.Netns, memoryMiB: opts.MemoryMiB, timeout: opts.Timeout,
		args: append([]string{
			"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
			// romfile=: OVMF's own driver and network boot, as on a
			// server's built-in NIC; bootindex: the only boot device.
			"-device", "virtio-net-pci,netdev=n0,romfile=,bootindex=1,mac=" + opts.MAC,
		}, opts.QEMUArgs...),
		doing: fmt.Sprintf("UEFI network-booting (%s) %s on %s/%s", how, opts.MAC, tap, Bridge0),
		uefi:  &u,
	})
}

// HTTPBootDnsmasqOptions make dnsmasq answer UEFI HTTP Boot clients
// (vendor class HTTPClient) with bootURL; the firmware takes an offer only
// when it echoes the vendor class. Nothing else gets a boot file.
func HTTPBootDnsmasqOptions(bootURL string) DnsmasqOptions {
	return DnsmasqOptions{Extra: []string{
		"--dhcp-vendorclass=set:efihttp,HTTPClient",
		"--dhcp-option-force=tag:efihttp,60,HTTPClient",
		"--dhcp-boot=tag:efihttp," + bootURL,
	}}
}

// HTTPBoot6KeaClasses make StartKea6With answer UEFI HTTP Boot over IPv6
// with bootURL (an http://[v6]/ URL) as the boot file URL (option 59):
// a client whose vendor class (option 16: enterprise number, length,
// data) says HTTPClient gets it, and the vendor class HTTPClient back,
// which EDK2 requires to take an advertise for an HTTP Boot offer.
// Enterprise 343 is what EDK2 sends. Kea, not dnsmasq: dnsmasq 2.90
// encodes any option 16 value as length-prefixed strings without the
// enterprise number, which EDK2 does not read as HTTPClient.
func HTTPBoot6KeaClasses(bootURL string) []map[string]any {
	return []map[string]any{{
		"name": "HTTPClient",
		"test": "substring(option[16].hex,6,10) == 'HTTPClient'",
		"option-data": []map[string]any{
			{"name": "bootfile-url", "data": bootURL},
			{"name": "vendor-class", "csv-format": false, "always-send": true,
				"data": fmt.Sprintf("%08X%04X%X", 343, len("HTTPClient"), "HTTPClient")},
		},
	}}
}

// IPXEChainDnsmasqOptions make dnsmasq the server of a firmware → iPXE
// chain: the firmware's PXE gets nbp (relative to tftpRoot) over TFTP, and
// iPXE (DHCP option 175 present) the URL of its script.
func IPXEChainDnsmasqOptions(tftpRoot, nbp, scriptURL string) DnsmasqOptions {
	return DnsmasqOptions{Extra: []string{
		"--enable-tftp",
		"--tftp-root=" + tftpRoot,
		"--dhcp-match=set:ipxe,175",
		"--dhcp-boot=tag:!ipxe," + nbp,
		"--dhcp-boot=tag:ipxe," + scriptURL,
	}}
}

// ShimGrubTree lays out in dir what a UEFI network boot of Debian's signed
// chain fetches, for TFTP and HTTP alike: shimx64.efi (the boot file),
// grubx64.efi (the signed network GRUB, which shim loads from the same
// place), grub/grub.cfg (GRUB's prefix), and the kernel and the initramfs
// under the names the config uses. cfg is written as grub/grub.cfg.
func ShimGrubTree(dir, kernel, initramfs, kernelName, initrdName, cfg string) error {
	for _, f := range [][2]string{
		{ShimSigned, "shimx64.efi"}, {GrubNetSigned, "grubx64.efi"},
		{kernel, kernelName}, {initramfs, initrdName},
	} {
		if err := linkOrCopy(f[0], filepath.Join(dir, f[1])); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "grub"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "grub", "grub.cfg"), []byte(cfg), 0o644)
}

// GrubMknetdirTree lays out in dir what `grub-mknetdir --subdir=grub`
// makes for UEFI (Debian's unsigned GRUB: grub/x86_64-efi/core.efi and the
// modules it loads from the TFTP server as it needs them) with cfg as
// grub/grub.cfg, and returns the boot file's path relative to dir. Not
// signed: it boots with Secure Boot off.
func GrubMknetdirTree(dir, cfg string) (bootFile string, err error) {
	if _, err := runCmd(buildTimeout, "grub-mknetdir", "--net-directory="+dir, "--subdir=grub",
		"-d", GrubEFIModules, "--locales=", "--fonts=", "--themes="); err != nil {
		return "", err
	}
	bootFile = filepath.Join("grub", "x86_64-efi", "core.efi")
	if _, err := os.Stat(filepath.Join(dir, bootFile)); err != nil {
		return "", fmt.Errorf("grub-mknetdir made no %s: %w", bootFile, err)
	}
	return bootFile, os.WriteFile(filepath.Join(dir, "grub", "grub.cfg"), []byte(cfg), 0o644)
}

// GrubConfig is a grub.cfg that boots entry (a `streamroot pxe --format
// grub` menuentry) at once, its output on the serial console.
func GrubConfig(entry string) string {
	return "# written by qemu-tests/harness (uefi.go); the entry is `streamroot pxe` output\n" +
		"serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n" +
		"set timeout=0\nset default=0\necho \"grub: net_default_mac=$net_default_mac root=$root prefix=$prefix\"\n\n" + entry
}

// UEFIInit is /sbin/init of the uefi fixture root: it writes one line
//
//	STREAMROOT-UEFI {json}
//
// with what only a UEFI boot shows (Secure Boot as the firmware's variable
// and the kernel's boot_params say, the
// kernel's lockdown mode, the modules loaded and their taint), then execs
// the REPORT INIT (/sbin/report-init), which reports as in every test and
// powers off. The root has no /lib/modules: every module loaded came from
// the initramfs.
const UEFIInit = `#!/bin/sh
# streamroot qemu-tests UEFI INIT (written by qemu-tests/harness, uefi.go).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
dmesg -n 1
efi=false
[ -d /sys/firmware/efi ] && efi=true
mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
# SecureBoot-<EFI global variable GUID>: 4 bytes of attributes, then 1 or 0.
secureboot=-1
v=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
if [ -r "$v" ]; then
	secureboot=$(od -An -tu1 -j4 -N1 "$v" | tr -d ' \n')
fi
# The kernel's own record of what the EFI stub found (efivarfs is a module
# Debian's kernel does not have built in): boot_params.secure_boot at 0x1ec,
# enum efi_secureboot_mode: 0 unset, 1 unknown, 2 disabled, 3 enabled.
bootparams=-1
if [ -r /sys/kernel/boot_params/data ]; then
	bootparams=$(od -An -tu1 -j492 -N1 /sys/kernel/boot_params/data | tr -d ' \n')
fi
lockdown=$(cat /sys/kernel/security/lockdown 2>/dev/null)
tainted=$(cat /proc/sys/kernel/tainted)
mods=""
for m in $(cut -d' ' -f1 /proc/modules); do
	mods="$mods $m:$(cat /sys/module/$m/taint 2>/dev/null)"
done
libmods=false
[ -e /lib/modules ] && libmods=true
line=$(printf '{"efi":%s,"secureboot":%s,"boot_params_secure_boot":%s,"lockdown":"%s","tainted":"%s","modules":"%s","root_lib_modules":%s}' \
	"$efi" "$secureboot" "$bootparams" "$lockdown" "$tainted" "${mods# }" "$libmods")
echo "STREAMROOT-UEFI $line" > /dev/console
exec /sbin/report-init
`

// UEFIReport is what UEFIInit saw.
type UEFIReport struct {
	EFI        bool // /sys/firmware/efi exists: the kernel was started by UEFI
	SecureBoot int  // the SecureBoot variable: 1 on, 0 off, -1 unreadable (no efivarfs)
	// BootParamsSecureBoot is boot_params.secure_boot, as the kernel's EFI
	// stub found the firmware: 3 enabled, 2 disabled, 1 unknown, 0 unset
	// (-1: /sys/kernel/boot_params/data unreadable).
	BootParamsSecureBoot int
	Lockdown             string // /sys/kernel/security/lockdown, e.g. "none [integrity] confidentiality"
	Tainted              string // /proc/sys/kernel/tainted
	Modules              map[string]string
	RootLibModules       bool // the root has /lib/modules (the fixture has none)
}

var uefiLine = regexp.MustCompile(`STREAMROOT-UEFI (\{[^\n]*\})\n`)

// ParseUEFIReport finds and decodes the STREAMROOT-UEFI line in console.
func ParseUEFIReport(console string) (*UEFIReport, error) {
	m := uefiLine.FindStringSubmatch(console)
	if m == nil {
		return nil, fmt.Errorf("no STREAMROOT-UEFI line on the console")
	}
	var raw struct {
		EFI            bool   `json:"efi"`
		SecureBoot     int    `json:"secureboot"`
		BootParams     int    `json:"boot_params_secure_boot"`
		Lockdown       string `json:"lockdown"`
		Tainted        string `json:"tainted"`
		Modules        string `json:"modules"`
		RootLibModules bool   `json:"root_lib_modules"`
	}
	if err := json.Unmarshal([]byte(m[1]), &raw); err != nil {
		return nil, fmt.Errorf("STREAMROOT-UEFI line: %w: %s", err, m[1])
	}
	r := &UEFIReport{EFI: raw.EFI, SecureBoot: raw.SecureBoot, BootParamsSecureBoot: raw.BootParams, Lockdown: raw.Lockdown,
		Tainted: raw.Tainted, RootLibModules: raw.RootLibModules, Modules: map[string]string{}}
	for _, f := range strings.Fields(raw.Modules) {
		name, taint, _ := strings.Cut(f, ":")
		r.Modules[name] = taint
	}
	return r, nil
}

// LockdownMode returns the selected lockdown mode ("none", "integrity" or
// "confidentiality": the bracketed word), or "" if unknown.
func (r *UEFIReport) LockdownMode() string {
	if m := regexp.MustCompile(`\[(\w+)\]`).FindStringSubmatch(r.Lockdown); m != nil {
		return m[1]
	}
	return ""
}

// UEFIRoot returns the uefi fixture (uefi.squashfs: the busybox root with
// UEFIInit in front of the REPORT INIT, fixture-id "uefi"), built once into
// the fixture cache.
func (e *Env) UEFIRoot(t testing.TB) string {
	t.Helper()
	dir, base, err := fixtureBase(e.Cache)
	if err != nil {
		t.Fatalf("uefi fixture: %v", err)
	}
	f := fixture{
		name:   "uefi.squashfs",
		recipe: base + "\nsquashfs -comp xz of root uefi, /sbin/init:\n" + UEFIInit,
		build: func(work, out string) (map[string]string, error) {
			r := filepath.Join(work, "root-uefi")
			err := BusyboxRoot(r, []RootFile{
				{"sbin/init", UEFIInit, 0o755},
				{"sbin/report-init", ReportInit, 0o755},
				{"etc/fixture-id", "uefi\n", 0o644},
				{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644},
				{"etc/group", "root:x:0:\n", 0o644},
			})
			if err != nil {
				return nil, err
			}
			return nil, mksquashfs(r, out, "-comp", "xz")
		},
	}
	p, _, err := f.ensure(dir, t.Logf)
	if err != nil {
		t.Fatalf("uefi fixture: %v", err)
	}
	return p
}

// moduleSigMagic (pkg/kmod's SignatureMarker) ends a module with an
// appended signature; before it is struct module_signature (12 bytes: algo, hash, id_type, signer_len,
// key_id_len, 3 bytes pad, big-endian sig_len), before that the signer's
// name, the key id and the signature (PKCS#7 for the kernels we boot).
const moduleSigMagic = kmod.SignatureMarker

// StripModuleSignature returns a module file without its appended
// signature: what a build that rewrites modules (strip, re-compression
// without care) leaves behind.
func StripModuleSignature(ko []byte) ([]byte, error) {
	n := len(ko) - len(moduleSigMagic)
	if n < 0 || string(ko[n:]) != moduleSigMagic {
		return nil, fmt.Errorf("module has no appended signature")
	}
	const infoLen = 12
	if n < infoLen {
		return nil, fmt.Errorf("module signature: %d bytes before the marker, want at least %d", n, infoLen)
	}
	info := ko[n-infoLen : n]
	sigLen := int(binary.BigEndian.Uint32(info[8:12]))
	end := n - infoLen - sigLen - int(info[3]) - int(info[4])
	if sigLen == 0 || end < 0 {
		return nil, fmt.Errorf("module signature: length %d does not fit the %d-byte file", sigLen, len(ko))
	}
	return ko[:end], nil
}

// UnsignedModuleInitramfs returns a copy of Env.Initramfs (zstd newc cpio)
// in which module's file has lost its signature, built once into the
// fixture cache, keyed by the initramfs's hash and the module's name.
func (e *Env) UnsignedModuleInitramfs(t testing.TB, module string) string {
	t.Helper()
	dir, _, err := fixtureBase(e.Cache)
	if err != nil {
		t.Fatalf("unsigned-module initramfs: %v", err)
	}
	sum, err := SHA256File(e.Initramfs)
	if err != nil {
		t.Fatalf("unsigned-module initramfs: %v", err)
	}
	f := fixture{
		name:   "initramfs-unsigned-" + module + ".img",
		recipe: recipeVersion + "\ninitramfs " + sum + " with the signature of " + module + ".ko stripped, newc, zstd -3",
		build: func(work, out string) (map[string]string, error) {
			return nil, stripInitramfsModule(e.Initramfs, filepath.Join(work, "tree"), out, module)
		},
	}
	p, _, err := f.ensure(dir, t.Logf)
	if err != nil {
		t.Fatalf("unsigned-module initramfs: %v", err)
	}
	return p
}

// stripInitramfsModule unpacks the zstd cpio initramfs into tree, strips
// the signature of module's .ko and packs tree as out (newc, owned by
// root, in name order).
func stripInitramfsModule(initramfs, tree, out, module string) error {
	head := make([]byte, 4)
	if f, err := os.Open(initramfs); err != nil {
		return err
	} else {
		_, err = io.ReadFull(f, head)
		f.Close()
		if err != nil {
			return err
		}
	}
	if string(head) != "\x28\xb5\x2f\xfd" {
		return fmt.Errorf("%s is not zstd (magic % x): build it with COMPRESS=zstd", initramfs, head)
	}
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return err
	}
	sh := func(script string, args ...string) error {
		_, err := runCmd(buildTimeout, "sh", append([]string{"-ec", script, "sh"}, args...)...)
		return err
	}
	if err := sh(`cd "$2" && zstd -qdc "$1" | cpio -idm --quiet`, initramfs, tree); err != nil {
		return err
	}
	kos, _ := filepath.Glob(filepath.Join(tree, "lib", "modules", "*", "kernel", "*", module+".ko"))
	more, _ := filepath.Glob(filepath.Join(tree, "lib", "modules", "*", "kernel", "*", "*", module+".ko"))
	kos = append(kos, more...)
	if len(kos) != 1 {
		return fmt.Errorf("initramfs has %d files %s.ko (want 1): %v", len(kos), module, kos)
	}
	ko, err := os.ReadFile(kos[0])
	if err != nil {
		return err
	}
	bare, err := StripModuleSignature(ko)
	if err != nil {
		return fmt.Errorf("%s: %w", kos[0], err)
	}
	if err := os.WriteFile(kos[0], bare, 0o644); err != nil {
		return err
	}
	return sh(`cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | zstd -q -3 -o "$2"`, tree, out)
}
