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

// fdiKernelPkg is a Debian kernel other than make kernel's: booting it
// proves the initramfs carries that kernel's modules, not the default's.
const fdiKernelPkg = "linux-image-6.1.0-47-amd64"

// kernelDeb returns the cached .deb of a Debian kernel package,
// downloading it into $STREAMROOT_CACHE/debs (as fetch-kernel.sh does)
// when absent.
func kernelDeb(t *testing.T, pkg string) string {
	t.Helper()
	dir := filepath.Join(env.Cache, "debs")
	if debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb")); len(debs) > 0 {
		return debs[0]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// apt drops privileges to _apt for downloads: give it a directory it
	// may write, then move the file into the cache.
	tmp, err := os.MkdirTemp("", "streamroot-deb-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("apt-get", "download", "-q", pkg)
	cmd.Dir = tmp
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download %s: %v\n%s", pkg, err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download %s left %v", pkg, debs)
	}
	dst := filepath.Join(dir, filepath.Base(debs[0]))
	if err := os.Rename(debs[0], dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestInitramfsFromKernelDeb builds the kernel and initramfs with
// `streamroot initramfs --kernel-deb` as an unprivileged user with an
// empty PATH (no root, no dpkg, no depmod, no other program), then boots
// them to the busybox root.
func TestInitramfsFromKernelDeb(t *testing.T) {
	t.Parallel()
	env.Require(t)
	deb := kernelDeb(t, fdiKernelPkg)
	kver := strings.TrimPrefix(fdiKernelPkg, "linux-image-")

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
