package qemutests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// TestInitramfsFromKernelDeb builds the kernel and initramfs with
// `streamroot initramfs --kernel-deb` as an unprivileged user with an
// empty PATH (no root, no dpkg, no depmod, no other program), then boots
// them to the busybox root.
func TestInitramfsFromKernelDeb(t *testing.T) {
	t.Parallel()
	env.Require(t)
	// The FDI's kernel, other than make kernel's: booting it proves the
	// initramfs carries that kernel's modules, not the default's.
	deb := env.FDIKernelDeb(t)
	kver := strings.TrimPrefix(harness.FDIKernelPackage, "linux-image-")

	// A directory the unprivileged user may enter: the binary with the
	// init beside it (where --init looks by default), and its output.
	work, err := os.MkdirTemp("", "streamroot-initramfs-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	for _, d := range []string{work, filepath.Join(work, "out"), filepath.Join(work, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"out", "tmp"} {
		if err := os.Chown(filepath.Join(work, d), 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(work, "streamroot")
	if b, err := exec.Command("go", "build", "-o", bin, "../cmds/streamroot").CombinedOutput(); err != nil {
		t.Fatalf("go build streamroot: %v\n%s", err, b)
	}
	initBin, err := os.ReadFile("../build/init")
	if err != nil {
		t.Fatalf("%v (make init)", err)
	}
	if err := os.WriteFile(filepath.Join(work, "streamroot-init"), initBin, 0o755); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(work, "out")
	start := time.Now()
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		bin, "initramfs", "--kernel-deb", deb, "-o", out, "--json")
	cmd.Env = []string{"PATH=", "HOME=/nonexistent", "TMPDIR=" + filepath.Join(work, "tmp")}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("streamroot initramfs as nobody: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("streamroot initramfs --kernel-deb took %s: %s", time.Since(start).Round(time.Second), stdout)
	var res struct {
		Kernel, KVer, Initramfs string
		Modules                 int
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	if res.KVer != kver || res.Kernel != filepath.Join(out, "vmlinuz") || res.Initramfs != filepath.Join(out, "initramfs.img") || res.Modules < 10 {
		t.Errorf("result %+v, want kver %s, %s/vmlinuz, %s/initramfs.img, modules", res, kver, out, out)
	}
	if left, _ := os.ReadDir(filepath.Join(work, "tmp")); len(left) != 0 {
		t.Errorf("the build left %d entries in TMPDIR", len(left))
	}

	n := setup(t, netOptions{})
	url := n.serve(t, "plain.squashfs", n.fx.Plain)
	vm := n.boot(t, harness.BootOptions{Kernel: res.Kernel, Initramfs: res.Initramfs, Append: harness.SeedCmdline(url)})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "plain")
	if banner := fmt.Sprintf("Linux version %s ", kver); !strings.Contains(vm.Console(), banner) {
		t.Errorf("the console has no %q: not the package's kernel", banner)
	}
	checkLease(t, n.dhcp, r, harness.BootMAC)
}
