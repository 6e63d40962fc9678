package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The stand-in Foreman Discovery Image (issue 11): an ISO in the FDI's
// layout (isolinux/vmlinuz0, LiveOS/squashfs.img ⊃ LiveOS/rootfs.img, an
// ext4 whose /lib is a symlink to usr/lib) whose kernel is another Debian
// release than `make kernel`'s, with that kernel's modules .ko.xz under
// usr/lib/modules/<kver>, and the debian-nm root configured as the FDI
// configures NetworkManager (22-discovery.ks, nm-prepare/nm-configure): a
// "primary" profile keyed by the BOOTIF MAC, no auto-default profiles, and
// keep-configuration=no, so NetworkManager re-does DHCP on the boot link.
const (
	// FDIKernelPackage is the FDI's kernel: a Debian release that is not
	// linux-image-amd64's (make kernel), so a root whose modules match
	// only the initramfs's kernel would show.
	FDIKernelPackage = "linux-image-6.1.0-47-amd64"
	// FDIImageName is the ISO's name on the HTTP server and in the image
	// URL the FDI initramfs is built with (Foreman's root=live:/fdi.iso).
	FDIImageName = "fdi.iso"
	// FDITFTPDir is where Foreman's template puts the FDI on the TFTP
	// server: vmlinuz0 and initrd0.img.
	FDITFTPDir = "boot/fdi-image"

	fdiRecipeVersion = "streamroot-fdi-1"
	// FDIDataSize is /data/random.bin's size: a file the FDI REPORT reads
	// only after NetworkManager took the link over.
	FDIDataSize = 32 << 20
	fdiDataSeed = "streamroot fdi.iso /data/random.bin"
	fdiBuildMax = 20 * time.Minute
	// hostKmod is the host's kmod (Debian 12, as the root): the debian-nm
	// root has libkmod (udev) but no modprobe, which the FDI (EL) has.
	hostKmod = "/usr/bin/kmod"
)

// ForemanTemplateAppend is the APPEND line of Foreman's "PXELinux global
// default" discovery entry, as Foreman ships it (proxy.url= is the
// template's placeholder); IPAPPEND 2 adds BOOTIF.
const ForemanTemplateAppend = "initrd=" + FDITFTPDir + "/initrd0.img rootflags=loop root=live:/fdi.iso rootfstype=auto ro rd.live.image acpi=force rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0 rd.bootif=0 rd.neednet=0 nokaslr nomodeset proxy.url=https://FOREMAN proxy.type=foreman"

// fdiModules are the FDI kernel's modules the stand-in root carries
// (relative to lib/modules/<kver>; a directory takes everything under
// it): what its udev loads on a QEMU guest, and dummy, which the FDI
// REPORT loads to show the root's kmod reads .ko.xz for the running
// kernel. The whole tree would add 100 MB to the ISO for nothing.
var fdiModules = []string{
	"kernel/drivers/block", "kernel/drivers/virtio", "kernel/drivers/char/hw_random",
	"kernel/drivers/net/virtio_net.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/dummy.ko",
	"kernel/net/core/failover.ko", "kernel/net/packet", "kernel/lib", "kernel/crypto",
	"kernel/fs/ext4", "kernel/fs/jbd2", "kernel/fs/mbcache.ko", "kernel/fs/squashfs", "kernel/fs/overlayfs", "kernel/fs/isofs",
	"kernel/drivers/cdrom", // isofs needs it: the initramfs built from the ISO takes both from its tree
}

// fdiNMConf is the FDI's NetworkManager.conf (22-discovery.ks) on
// Debian's keyfile plugin: no automatic "Wired connection" profiles, only
// the primary one nm-prepare writes.
const fdiNMConf = `# fdi fixture: the Foreman Discovery Image's NetworkManager.conf (22-discovery.ks)
[main]
plugins=keyfile
monitor-connection-files=no
no-auto-default=*
[logging]
level=DEBUG
`

// fdiIgnoreInitrd makes NetworkManager take the boot link over instead of
// keeping the configuration it finds on it: it re-does DHCP.
const fdiIgnoreInitrd = `# fdi fixture: do not keep the initramfs's configuration of a device
[device-00-ignore-initrd]
keep-configuration=no
`

// FDIPrepareScript is the stand-in's nm-prepare: what the FDI's
// `nm-configure primary` writes when BOOTIF is on the kernel line, the
// "primary" profile matched by the BOOTIF MAC (DHCPv4, IPv6 auto, no
// client id of its own).
const FDIPrepareScript = `#!/bin/sh
# streamroot qemu-tests FDI nm-prepare (written by qemu-tests/harness, fdi.go).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
mac=$(sed -n 's/.*BOOTIF=[0-9a-fA-F]*-\([0-9a-fA-F-]*\).*/\1/p' /proc/cmdline | tr 'A-F-' 'a-f:')
[ -n "$mac" ] || { echo "no BOOTIF: primary left unconfigured"; exit 0; }
tmp=$(mktemp)
cat > "$tmp" <<EOF
[connection]
id=primary
type=802-3-ethernet
autoconnect=true
autoconnect-priority=1
[802-3-ethernet]
mac-address=$mac
[ipv4]
method=auto
dhcp-send-hostname=false
dhcp-timeout=300
[ipv6]
method=auto
EOF
chmod 600 "$tmp"
mv "$tmp" /etc/NetworkManager/system-connections/primary
echo "primary profile for $mac"
`

// fdiPrepareUnit runs FDIPrepareScript before NetworkManager, as the FDI's
// nm-prepare.service does.
const fdiPrepareUnit = `# fdi fixture: the FDI's nm-prepare.service
[Unit]
Description=Prepares NetworkManager configuration for primary interface
Wants=basic.target
Before=NetworkManager.service
ConditionKernelCommandLine=BOOTIF

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/nm-prepare

[Install]
WantedBy=multi-user.target
`

// FDIReportScript is /usr/local/sbin/fdi-report, run instead of the LEASE
// REPORT by the lease-report unit: it waits (bounded) until
// NetworkManager's "primary" profile holds a DHCPv4 lease on the boot
// link, then reads the large file (in lazy mode: over HTTP, through the
// link NetworkManager reconfigured), loads a module with the root's kmod,
// prints one
//
//	FDI-REPORT {json}
//
// line (FDIReport) and becomes the LEASE REPORT, which reports and powers
// off. POSIX sh (dash). It must never run on the host.
const FDIReportScript = `#!/bin/sh
# streamroot qemu-tests FDI REPORT (written by qemu-tests/harness, fdi.go).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
max_wait=${1:-120}
con=/dev/console
say() { echo "fdi-report: $*" > "$con"; }
b64() { base64 -w0; }
now() { cut -d. -f1 /proc/uptime; }
mac=$(sed -n 's/.*BOOTIF=[0-9a-fA-F]*-\([0-9a-fA-F-]*\).*/\1/p' /proc/cmdline | tr 'A-F-' 'a-f:')
link=
for d in /sys/class/net/*; do
	if [ "$(cat "$d/address" 2>/dev/null)" = "$mac" ]; then link=${d##*/}; fi
done
say "boot link ${link:-not found} ($mac); waiting at most ${max_wait}s for NetworkManager's primary profile"
start=$(now)
primary=false
while [ -n "$link" ]; do
	s=$(nmcli -t -f GENERAL.CONNECTION,DHCP4 device show "$link" 2>/dev/null)
	if echo "$s" | grep -qx 'GENERAL.CONNECTION:primary' && echo "$s" | grep -q ip_address; then
		primary=true
		break
	fi
	if [ $(($(now) - start)) -ge "$max_wait" ]; then break; fi
	sleep 1
done
waited=$(($(now) - start))
say "primary active: $primary after ${waited}s; reading /data/random.bin"
data=$(sha256sum /data/random.bin 2>&1 | cut -d' ' -f1)
modprobe=false
if modprobe dummy 2> /dev/null && grep -q '^dummy ' /proc/modules; then modprobe=true; fi
dev_root=$(readlink /dev/root 2>/dev/null)
line=$(printf '{"kernel":"%s","primary":%s,"waited":%d,"data_sha256":"%s","modprobe":%s,"dev_root":"%s","modules_b64":"%s","lib_b64":"%s","live_b64":"%s","nm_log_b64":"%s"}' \
	"$(uname -r)" "$primary" "$waited" "$data" "$modprobe" "$dev_root" \
	"$(ls "/lib/modules/$(uname -r)" 2>&1 | b64)" \
	"$(ls -ld /lib 2>&1 | b64)" \
	"$(ls -la /run/initramfs/live /run/initramfs/livedev 2>&1 | b64)" \
	"$(journalctl -b --no-pager -o short-monotonic -u NetworkManager 2>&1 | grep -Ei 'dhcp|primary|activation|keep' | tail -n 40 | b64)")
dmesg -n 1 2> /dev/null
echo "FDI-REPORT $line" > "$con"
exec /usr/local/sbin/streamroot-lease-report NetworkManager "$max_wait"
`

// fdiReportDropIn points the debian-nm root's lease-report unit at the
// FDI REPORT, which ends in the LEASE REPORT.
const fdiReportDropIn = `# fdi fixture: the FDI REPORT first
[Service]
ExecStart=
ExecStart=/usr/local/sbin/fdi-report 120
`

// FDI is the stand-in Foreman Discovery Image and what an initramfs for it
// is built from.
type FDI struct {
	ISO        string // fdi.iso: isolinux/vmlinuz0 and LiveOS/squashfs.img
	Kernel     string // the ISO's kernel (isolinux/vmlinuz0), for the TFTP server
	KVer       string // its release, e.g. 6.1.0-47-amd64
	Modules    string // its module tree lib/modules/<kver>, uncompressed, with modules.dep (the builder's -moddir)
	DataSHA256 string // of /data/random.bin in the ISO's root
}

// fdiKernelFixture: FDIKernelPackage unpacked by builder/fetch-kernel.sh
// (which caches the .deb): vmlinuz plus lib/modules/<kver> beside it.
func fdiKernelFixture(cache string) (fixture, error) {
	script := resolvePath("builder/fetch-kernel.sh")
	sum, err := SHA256File(script)
	if err != nil {
		return fixture{}, err
	}
	return fixture{
		name:   "fdi-vmlinuz0",
		recipe: fdiRecipeVersion + "\nfetch-kernel.sh " + sum + " " + FDIKernelPackage,
		build: func(work, out string) (map[string]string, error) {
			k := filepath.Join(work, "k")
			if err := fetchFDIKernel(cache, k); err != nil {
				return nil, err
			}
			kv, err := os.ReadFile(filepath.Join(k, "kver"))
			if err != nil {
				return nil, err
			}
			if err := os.Rename(filepath.Join(k, "vmlinuz"), out); err != nil {
				return nil, err
			}
			if err := os.Rename(filepath.Join(k, "lib"), filepath.Join(filepath.Dir(out), "lib")); err != nil {
				return nil, err
			}
			return map[string]string{"kver": strings.TrimSpace(string(kv))}, nil
		},
	}, nil
}

// fetchFDIKernel runs builder/fetch-kernel.sh for FDIKernelPackage into
// dir, with the .deb cached in cache/debs.
func fetchFDIKernel(cache, dir string) error {
	cmd := exec.Command(resolvePath("builder/fetch-kernel.sh"), dir, FDIKernelPackage)
	cmd.Env = append(os.Environ(), "STREAMROOT_CACHE="+cache)
	if b, err := runWithTimeout(cmd, fdiBuildMax); err != nil {
		return fmt.Errorf("fetch-kernel.sh %s: %w\n%s", FDIKernelPackage, err, Tail(b, 20))
	}
	return nil
}

// FDIKernelDeb returns the cached .deb of FDIKernelPackage, fetched when
// absent as the FDI fixture fetches it (builder/fetch-kernel.sh): one
// download and one cache, $STREAMROOT_CACHE/debs, for both.
func (e *Env) FDIKernelDeb(t testing.TB) string {
	t.Helper()
	glob := filepath.Join(e.Cache, "debs", FDIKernelPackage+"_*.deb")
	if debs, _ := filepath.Glob(glob); len(debs) > 0 {
		return debs[0]
	}
	if err := fetchFDIKernel(e.Cache, filepath.Join(t.TempDir(), "k")); err != nil {
		t.Fatal(err)
	}
	debs, _ := filepath.Glob(glob)
	if len(debs) == 0 {
		t.Fatalf("fetch-kernel.sh %s left no %s", FDIKernelPackage, glob)
	}
	return debs[0]
}

// runWithTimeout runs cmd with a deadline and returns its combined output.
func runWithTimeout(cmd *exec.Cmd, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Env, c.Dir = cmd.Env, cmd.Dir
	b, err := c.CombinedOutput()
	return string(b), err
}

// fdiBuild is the stand-in FDI, built once per test process.
var fdiBuild struct {
	once sync.Once
	fdi  *FDI
	err  error
}

// FDIFixture returns the stand-in FDI, building it (once per test
// process; cached under the fixtures directory by its inputs: the kernel
// package, the debian-nm root, the configuration and scripts above) if
// needed. A cold build fetches FDIKernelPackage and may debootstrap the
// debian-nm root.
func (e *Env) FDIFixture(t testing.TB) *FDI {
	t.Helper()
	nm := e.LeaseFixture(t, FixtureNM)
	b := &fdiBuild
	b.once.Do(func() {
		start := time.Now()
		if b.fdi, b.err = buildFDI(e.Cache, nm, t.Logf); b.err == nil {
			t.Logf("fdi fixture ready in %s: %s (kernel %s)", time.Since(start).Round(time.Millisecond), b.fdi.ISO, b.fdi.KVer)
		}
	})
	if b.err != nil {
		t.Fatalf("fdi fixture: %v", b.err)
	}
	return b.fdi
}

func buildFDI(cache, nmRoot string, logf func(string, ...any)) (*FDI, error) {
	dir := filepath.Join(cache, "fixtures")
	kf, err := fdiKernelFixture(cache)
	if err != nil {
		return nil, err
	}
	kf.lock, kf.lockWait = ".lock-fdi-kernel", fdiBuildMax
	kernel, kmeta, err := kf.ensure(dir, logf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kf.name, err)
	}
	kver := kmeta["kver"]
	moddir := filepath.Join(filepath.Dir(kernel), "lib", "modules", kver)
	if kver == "" {
		return nil, errors.New("fdi-vmlinuz0: meta.json lacks kver")
	}
	nmMeta, err := readMeta(filepath.Dir(nmRoot))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FixtureNM, err)
	}
	base, err := baseRecipe()
	if err != nil {
		return nil, err
	}
	xz, _ := runCmd(time.Minute, "xz", "--version")
	kmodSum, err := SHA256File(hostKmod)
	if err != nil {
		return nil, fmt.Errorf("the fdi root's modprobe is the host's kmod: %w", err)
	}
	iso := fixture{
		name: FDIImageName,
		recipe: strings.Join([]string{
			fdiRecipeVersion, base, "xz " + xz, "kmod " + kmodSum,
			"root " + FixtureNM + " " + nmMeta["sha256"],
			"kernel " + kmeta["sha256"] + " " + kver, "modules " + strings.Join(fdiModules, " "),
			fmt.Sprintf("data %d %q", FDIDataSize, fdiDataSeed),
			fdiNMConf, fdiIgnoreInitrd, FDIPrepareScript, fdiPrepareUnit, FDIReportScript, fdiReportDropIn,
			"xorriso -as mkisofs -V FDI -R -J: isolinux/vmlinuz0, LiveOS/squashfs.img (-comp zstd) ⊃ LiveOS/rootfs.img (mkfs.ext4 -m 0)",
		}, "\n"),
		lock: ".lock-fdi", lockWait: fdiBuildMax,
		build: func(work, out string) (map[string]string, error) {
			sum, err := makeFDIISO(work, out, nmRoot, kernel, moddir, kver)
			if err != nil {
				return nil, err
			}
			return map[string]string{"data_sha256": sum, "kver": kver}, nil
		},
	}
	p, meta, err := iso.ensure(dir, logf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", iso.name, err)
	}
	if len(meta["data_sha256"]) != 64 {
		return nil, fmt.Errorf("%s: meta.json lacks data_sha256", iso.name)
	}
	return &FDI{ISO: p, Kernel: kernel, KVer: kver, Modules: moddir, DataSHA256: meta["data_sha256"]}, nil
}

// makeFDIISO lays out the stand-in FDI in work and writes the ISO to out;
// it returns the SHA-256 of /data/random.bin.
func makeFDIISO(work, out, nmRoot, kernel, moddir, kver string) (string, error) {
	root := filepath.Join(work, "root")
	if _, err := runCmd(fdiBuildMax, "unsquashfs", "-no-progress", "-quiet", "-d", root, nmRoot); err != nil {
		return "", err
	}
	// EL9's and Debian 12's merged /usr: the builder and the boot must
	// follow this symlink to find the modules.
	if l, err := os.Readlink(filepath.Join(root, "lib")); err != nil || l != "usr/lib" {
		return "", fmt.Errorf("%s: /lib is not a symlink to usr/lib (%q, %v)", FixtureNM, l, err)
	}
	mods := filepath.Join(root, "usr", "lib", "modules", kver)
	if err := copyModulesXZ(moddir, mods); err != nil {
		return "", err
	}
	if _, err := runCmd(fdiBuildMax, "depmod", "-b", root, kver); err != nil {
		return "", err
	}
	if err := CopyFile(hostKmod, filepath.Join(root, "usr/bin/kmod")); err != nil {
		return "", err
	}
	if err := os.Chmod(filepath.Join(root, "usr/bin/kmod"), 0o755); err != nil {
		return "", err
	}
	for _, l := range []string{"usr/sbin/modprobe", "usr/sbin/lsmod"} {
		os.Remove(filepath.Join(root, l))
		if err := os.Symlink("../bin/kmod", filepath.Join(root, l)); err != nil {
			return "", err
		}
	}
	os.Remove(filepath.Join(root, "etc/NetworkManager/system-connections/primary.nmconnection"))
	files := []struct {
		path, data string
		mode       os.FileMode
	}{
		{"etc/fixture-id", "fdi\n", 0o644},
		{"etc/NetworkManager/NetworkManager.conf", fdiNMConf, 0o644},
		{"usr/lib/NetworkManager/conf.d/00-ignore-initrd.conf", fdiIgnoreInitrd, 0o644},
		{"usr/local/sbin/nm-prepare", FDIPrepareScript, 0o755},
		{"etc/systemd/system/nm-prepare.service", fdiPrepareUnit, 0o644},
		{"etc/systemd/system/multi-user.target.wants/nm-prepare.service", "", 0},
		{"usr/local/sbin/fdi-report", FDIReportScript, 0o755},
		{"etc/systemd/system/streamroot-lease-report.service.d/fdi.conf", fdiReportDropIn, 0o644},
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		os.Remove(p)
		if f.mode == 0 { // systemctl enable's link
			if err := os.Symlink("/etc/systemd/system/nm-prepare.service", p); err != nil {
				return "", err
			}
			continue
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
		return "", err
	}
	sum, err := writeRandom(filepath.Join(root, "data", "random.bin"), fdiDataSeed, FDIDataSize)
	if err != nil {
		return "", err
	}
	// The ext4 gets the tree's size plus a third for metadata and the
	// overlay-free headroom dracut's rootfs.img has.
	used, err := treeSize(root)
	if err != nil {
		return "", err
	}
	inner := filepath.Join(work, "squash")
	if err := liveOSRootfs(inner, root, fmt.Sprintf("%dM", used*4/3>>20+64), "-m", "0"); err != nil {
		return "", err
	}
	os.RemoveAll(root)
	layout := filepath.Join(work, "iso")
	for _, d := range []string{"LiveOS", "isolinux"} {
		if err := os.MkdirAll(filepath.Join(layout, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := mksquashfs(inner, filepath.Join(layout, "LiveOS", "squashfs.img"), "-comp", "zstd"); err != nil {
		return "", err
	}
	os.RemoveAll(inner)
	if err := CopyFile(kernel, filepath.Join(layout, "isolinux", "vmlinuz0")); err != nil {
		return "", err
	}
	if _, err := runCmd(fdiBuildMax, "xorriso", "-as", "mkisofs", "-quiet", "-V", "FDI", "-R", "-J", "-o", out, layout); err != nil {
		return "", err
	}
	return sum, nil
}

// copyModulesXZ copies the fdiModules of the tree src to dst, each module
// compressed as .ko.xz (xz --check=crc32, as the kernel's own
// CONFIG_MODULE_COMPRESS_XZ and EL's kernels make them), with the
// modules.builtin* and modules.order files depmod needs.
func copyModulesXZ(src, dst string) error {
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := CopyFile(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
			return err
		}
	}
	n := 0
	for _, m := range fdiModules {
		err := filepath.WalkDir(filepath.Join(src, m), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ko") {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			out := filepath.Join(dst, rel+".xz")
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			cmd := exec.Command("xz", "--check=crc32", "-T1", "-c", p)
			b, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("xz %s: %w", rel, err)
			}
			n++
			return os.WriteFile(out, b, 0o644)
		})
		if err != nil {
			return err
		}
	}
	if n == 0 {
		return fmt.Errorf("no modules under %s", src)
	}
	return nil
}

// treeSize is the bytes of the regular files under dir.
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// fdiBootModules are the boot pipeline's modules (builder.DefaultModules)
// that the stand-in's trimmed tree (fdiModules) has: no erofs, VLAN,
// bonding or bridge, which these boots do not use.
const fdiBootModules = "virtio_pci,squashfs,overlay,loop,isofs,ext4,nbd,af_packet,virtio_rng"

// FDIPublished is what `streamroot publish` laid out for the stand-in FDI:
// the HTTP root's ISO and manifest, the TFTP root's boot/fdi-image files.
type FDIPublished struct {
	ImageURL string // built into the initramfs: what root=live:/fdi.iso stands for
	ISO      string // <http-root>/fdi.iso
	Manifest string // <http-root>/fdi.iso.manifest
	Kernel   string // <tftp-root>/boot/fdi-image/vmlinuz0
	Initrd   string // <tftp-root>/boot/fdi-image/initrd0.img
	Pin      string // streamroot.manifest=sha256:… built into the initramfs
	Entries  map[string]string
}

// fdiPublish is the stand-in FDI published, once per test process.
var fdiPublish struct {
	once sync.Once
	url  string
	pub  *FDIPublished
	err  error
}

// FDIPublish runs `streamroot publish` on the stand-in FDI's ISO, once per
// test process (into a temporary directory, as StreamrootCLI's binary),
// with a static /init from this tree and imageURL as the server's image
// URL; the tests' servers start later, in their namespaces, so publish's
// own check of the URL is skipped (--no-check; its unit tests cover it).
func FDIPublish(t testing.TB, f *FDI, server string) *FDIPublished {
	t.Helper()
	cli := StreamrootCLI(t)
	b := &fdiPublish
	b.once.Do(func() {
		start := time.Now()
		b.url = server
		if b.pub, b.err = publishFDI(cli, f, server); b.err == nil {
			t.Logf("fdi published in %s: %s, %s (image URL %s)", time.Since(start).Round(time.Millisecond), b.pub.Kernel, b.pub.Initrd, b.pub.ImageURL)
		}
	})
	if b.err != nil {
		t.Fatalf("streamroot publish: %v", b.err)
	}
	if b.url != server {
		t.Fatalf("streamroot publish: published for %s, asked for %s", b.url, server)
	}
	return b.pub
}

func publishFDI(cli string, f *FDI, server string) (*FDIPublished, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the init build needs go on PATH: %w", err)
	}
	dir, err := os.MkdirTemp("", "streamroot-fdi-publish-")
	if err != nil {
		return nil, err
	}
	initBin := filepath.Join(dir, "init")
	// As make init builds it (Makefile, INIT_TAGS).
	c := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w -buildid=", "-tags", "nethttpomithttp2", "-o", initBin, "./cmds/init")
	c.Dir = filepath.Dir(resolvePath("go.mod"))
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := runWithTimeout(c, 5*time.Minute); err != nil {
		return nil, fmt.Errorf("go build ./cmds/init: %v\n%s", err, Tail(b, 20))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	pc := exec.CommandContext(ctx, cli, "publish", f.ISO, "--tftp-root", filepath.Join(dir, "tftp"), "--http-root", filepath.Join(dir, "http"),
		"--server", server, "--init", initBin, "--add-modules", fdiBootModules, "--no-check", "--json")
	pc.Stdout, pc.Stderr = &stdout, &stderr
	if err := pc.Run(); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, Tail(stderr.String(), 20))
	}
	var r struct {
		ImageURL string            `json:"image_url"`
		Image    string            `json:"image"`
		Manifest string            `json:"manifest"`
		Kernel   string            `json:"kernel"`
		Initrd   string            `json:"initrd"`
		Pin      string            `json:"pin"`
		Entries  map[string]string `json:"entries"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("publish --json: %w\n%s", err, Tail(stderr.String(), 20))
	}
	return &FDIPublished{ImageURL: r.ImageURL, ISO: r.Image, Manifest: r.Manifest, Kernel: r.Kernel, Initrd: r.Initrd, Pin: r.Pin, Entries: r.Entries}, nil
}

// FDIReport is the FDI REPORT line: what the booted FDI root saw once
// NetworkManager's primary profile held the link.
type FDIReport struct {
	Kernel     string `json:"kernel"`      // uname -r
	Primary    bool   `json:"primary"`     // NetworkManager's "primary" profile active with a DHCPv4 lease on the boot link
	Waited     int    `json:"waited"`      // seconds waited for that
	DataSHA256 string `json:"data_sha256"` // of /data/random.bin, read after that
	Modprobe   bool   `json:"modprobe"`    // the root's modprobe loaded dummy (.ko.xz) for the running kernel
	DevRoot    string `json:"dev_root"`    // readlink /dev/root ("" when absent)
	Modules    string `json:"-"`           // ls /lib/modules/$(uname -r)
	Lib        string `json:"-"`           // ls -ld /lib
	Live       string `json:"-"`           // ls -la /run/initramfs/live /run/initramfs/livedev
	NMLog      string `json:"-"`           // NetworkManager's journal, DHCP and activation lines
}

var fdiReportLine = regexp.MustCompile(`FDI-REPORT (\{[^\n]*\})\n`)

// FindFDIReport parses the FDI REPORT line in console, if there is one.
func FindFDIReport(console string) (*FDIReport, bool, error) {
	m := fdiReportLine.FindStringSubmatch(StripTerminalEscapes(console))
	if m == nil {
		return nil, false, nil
	}
	var r FDIReport
	var raw struct {
		Modules string `json:"modules_b64"`
		Lib     string `json:"lib_b64"`
		Live    string `json:"live_b64"`
		NMLog   string `json:"nm_log_b64"`
	}
	if err := json.Unmarshal([]byte(m[1]), &r); err != nil {
		return nil, true, fmt.Errorf("fdi report: %w", err)
	}
	if err := json.Unmarshal([]byte(m[1]), &raw); err != nil {
		return nil, true, fmt.Errorf("fdi report: %w", err)
	}
	err := decodeBase64("fdi report", []base64Field{
		{"modules_b64", raw.Modules, &r.Modules}, {"lib_b64", raw.Lib, &r.Lib},
		{"live_b64", raw.Live, &r.Live}, {"nm_log_b64", raw.NMLog, &r.NMLog},
	})
	if err != nil {
		return nil, true, err
	}
	return &r, true, nil
}

// FDIPXELinuxEntry is Foreman's PXELinux discovery entry with its lines
// unchanged (root= replaced only when root is not ""), plus extra
// arguments (the harness's console) at the end of APPEND.
func FDIPXELinuxEntry(root, extra string) string {
	appendLine := ForemanTemplateAppend
	if root != "" {
		appendLine = strings.Replace(appendLine, "root=live:/fdi.iso", root, 1)
	}
	return "LABEL discovery\nMENU LABEL Foreman Discovery Image\nKERNEL " + FDITFTPDir + "/vmlinuz0\nAPPEND " +
		strings.Join(slices.DeleteFunc([]string{appendLine, extra}, func(s string) bool { return s == "" }), " ") + "\nIPAPPEND 2\n"
}
