package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// Markers the hello init prints and the host reads.
const (
	helloBanner   = "Hello from the streamroot demo root!"
	helloLine     = "streamroot-demo: hello" // then key=value pairs
	jsonBegin     = "----- /run/initramfs/streamroot.json -----"
	jsonEnd       = "----- end of streamroot.json -----"
	demoImageName = "demo.squashfs"
)

// helloInit is the demo root's /sbin/init (busybox sh): PID 1 after
// streamroot's switch_root. It says hello with what it sees, then powers off.
const helloInit = `#!/bin/sh
# /sbin/init of the streamroot demo root (written by demo/root.go).
# PID 1 after the initramfs' switch_root: say hello, show what this root
# sees, power off. Never run it on a host: it powers the machine off.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
[ -r /proc/mounts ] || mount -t proc proc /proc
dmesg -n 1 2>/dev/null # keep kernel messages out of the hello

uptime=$(cut -d' ' -f1 /proc/uptime)
rootfs=$(awk '$2 == "/" { t = $3; split($4, o, ",") } END { print t " (" o[1] ")" }' /proc/mounts)
roottype=${rootfs%% *}
lower=$(awk '$3 == "squashfs" || $3 == "erofs" || ($3 == "ext4" && $2 != "/") { printf "%s%s %s on %s", sep, $3, $1, $2; sep = ", " }' /proc/mounts)
writable=no
if echo "written by the demo root's init" > /hello.txt 2>/dev/null && [ -s /hello.txt ]; then
	writable=yes
fi
addrs=$(ip -o -4 addr show scope global 2>/dev/null | awk '{ printf "%s%s on %s", sep, $4, $2; sep = ", " }')
addr=$(ip -o -4 addr show scope global 2>/dev/null | awk '{ print $4; exit }')
iface=$(ip -o -4 addr show scope global 2>/dev/null | awk '{ print $2; exit }')

cat <<EOF

   +-----------------------------------------------------------+
   |   Hello from the streamroot demo root!                    |
   +-----------------------------------------------------------+
   I am /sbin/init, a busybox shell script, running as PID $$.
   The streamroot initramfs fetched this root over HTTP,
   put a writable overlay on it and switched to it.

   my PID        $$
   root (/)      $rootfs, writable: $writable
   image layer   ${lower:-?}
   address       ${addrs:-none} (QEMU's built-in DHCP)
   kernel line   $(cat /proc/cmdline)
   uptime        $uptime s since the kernel started

   What the initramfs left me in /run/initramfs/streamroot.json:
EOF
echo "$jsonBegin"
cat /run/initramfs/streamroot.json 2>&1
echo
echo "$jsonEnd"
echo "$helloLine pid=$$ root=$roottype writable=$writable addr=${addr:-none} iface=${iface:-none} uptime=$uptime"
echo "   Goodbye: powering off."
sync
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
sleep 30
# Still here: PID 1 exits, the kernel panics, panic=-1 reboots and QEMU
# (-no-reboot) exits.
`

// demoInitScript fills the markers into helloInit.
func demoInitScript() string {
	return strings.NewReplacer(
		"$jsonBegin", jsonBegin, "$jsonEnd", jsonEnd, "$helloLine", helloLine,
	).Replace(helloInit)
}

// buildDemoRoot makes dir/demo.squashfs (a busybox-static root with the
// hello init), unless one from the same recipe is there already.
func buildDemoRoot(ctx context.Context, dir string) (string, error) {
	if err := harness.CheckStatic(harness.HostBusybox); err != nil {
		return "", err
	}
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		return "", errors.New("mksquashfs not found: install squashfs-tools (make demo does, as root)")
	}
	bb, err := harness.SHA256File(harness.HostBusybox)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte("streamroot-demo-root-1\n" + bb + "\n" + demoInitScript()))
	recipe := hex.EncodeToString(sum[:])
	out := filepath.Join(dir, demoImageName)
	recipeFile := out + ".recipe"
	if b, err := os.ReadFile(recipeFile); err == nil && strings.TrimSpace(string(b)) == recipe {
		if _, err := os.Stat(out); err == nil {
			return out, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tree, err := os.MkdirTemp(filepath.Dir(dir), ".demo-root-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tree)
	if err := harness.BusyboxRoot(tree, demoRootFiles()); err != nil {
		return "", err
	}
	tmp := out + ".tmp"
	os.Remove(tmp)
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "mksquashfs", tree, tmp, "-noappend", "-all-root", "-no-progress", "-quiet",
		"-comp", "xz", "-mkfs-time", "0", "-all-time", "0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mksquashfs: %v: %s", err, strings.TrimSpace(string(b)))
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, os.WriteFile(recipeFile, []byte(recipe+"\n"), 0o644)
}

// demoRootFiles are the demo root's files beside busybox: the hello init
// and a few files in /etc.
func demoRootFiles() []harness.RootFile {
	return []harness.RootFile{
		{Path: "sbin/init", Data: demoInitScript(), Mode: 0o755},
		{Path: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\n", Mode: 0o644},
		{Path: "etc/group", Data: "root:x:0:\n", Mode: 0o644},
		{Path: "etc/hostname", Data: "streamroot-demo\n", Mode: 0o644},
		{Path: "etc/os-release", Data: "NAME=\"streamroot demo root\"\nID=streamroot-demo\nPRETTY_NAME=\"streamroot demo root (busybox)\"\n", Mode: 0o644},
	}
}
