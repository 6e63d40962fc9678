package main

import (
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/builder/buildertest"
	"github.com/streamroot/streamroot/pkg/deb/debtest"
	"github.com/streamroot/streamroot/pkg/isoread/isotest"
	"github.com/streamroot/streamroot/pkg/squashfs/squashtest"
)

// fakeBzImage is an x86 setup header whose kernel_version names rel.
func fakeBzImage(rel string) []byte {
	b := make([]byte, 0x800)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x20f)
	binary.LittleEndian.PutUint16(b[0x20E:], 0x400-0x200)
	copy(b[0x400:], rel+" (builder@example) #1 SMP\x00")
	return b
}

// isoModules are a module tree in EL's shape: .ko.xz modules, no
// depmod output (computed), the builtin list.
func isoModules(t *testing.T) map[string][]byte {
	t.Helper()
	xzd := func(b []byte) []byte {
		z, err := debtest.Compress(".xz", b)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	return map[string][]byte{
		"kernel/drivers/net/virtio_net.ko.xz": xzd(buildertest.Module("alias=virtio:d00000001v*", "depends=failover")),
		"kernel/net/core/failover.ko.xz":      xzd(buildertest.Module()),
		"modules.builtin":                     []byte("kernel/fs/squashfs/squashfs.ko\n"),
	}
}

// usrMergedRoot is isoModules in a usr-merged root's squashfs files
// (usr/lib/modules/<kver>, lib a symlink to usr/lib), then more.
func usrMergedRoot(t *testing.T, more ...squashtest.File) []squashtest.File {
	t.Helper()
	var root []squashtest.File
	for p, b := range isoModules(t) {
		root = append(root, squashtest.File{Path: "usr/lib/modules/" + testKVer + "/" + p, Data: b})
	}
	return append(append(root, squashtest.File{Path: "lib", Link: "usr/lib"}), more...)
}

// writeUsrMergedRoot writes isoModules as a usr-merged tree under dir.
func writeUsrMergedRoot(t *testing.T, dir string) {
	t.Helper()
	for p, b := range isoModules(t) {
		buildertest.WriteFile(t, filepath.Join(dir, "usr/lib/modules", testKVer, p), b)
	}
	if err := os.Symlink("usr/lib", filepath.Join(dir, "lib")); err != nil {
		t.Fatal(err)
	}
}

// liveISO is an ISO in the FDI's layout: isolinux/vmlinuz0 and
// LiveOS/squashfs.img holding root (the squashfs's files).
func liveISO(t *testing.T, dir string, root []squashtest.File, kernelRel string) string {
	t.Helper()
	iso := isotest.Build([]isotest.File{
		{Path: "isolinux/vmlinuz0", Data: fakeBzImage(kernelRel)},
		{Path: "isolinux/initrd0.img", Data: []byte("stock dracut initrd")},
		{Path: "LiveOS/squashfs.img", Data: squashtest.Build(root)},
	}, isotest.Options{RockRidge: true})
	return buildertest.WriteFile(t, filepath.Join(dir, "fdi.iso"), iso)
}

func checkISOBuild(t *testing.T, iso, dir string) {
	t.Helper()
	out := filepath.Join(dir, "out")
	buildJSON(t, append([]string{"--from-iso", iso, "-o", out, "--kernel-name", "vmlinuz0", "--initramfs-name", "initrd0.img"}, baseArgs(t, dir)...)...)
	if k, _ := os.ReadFile(filepath.Join(out, "vmlinuz0")); string(k) != string(fakeBzImage(testKVer)) {
		t.Error("vmlinuz0 is not the ISO's kernel")
	}
	files := cpioFiles(t, filepath.Join(out, "initrd0.img"))
	base := "lib/modules/" + testKVer + "/"
	if got := string(files[base+"kernel/net/core/failover.ko"]); got != string(buildertest.Module()) {
		t.Errorf("failover.ko: %d bytes, not the module decompressed byte for byte", len(got))
	}
	if got := string(files[base+"modules.dep"]); got != wantDep {
		t.Errorf("modules.dep = %q", got)
	}
}

// TestInitramfsFromISOSquashfsRoot: the squashfs is the root itself.
func TestInitramfsFromISOSquashfsRoot(t *testing.T) {
	dir := t.TempDir()
	root := usrMergedRoot(t, squashtest.File{Path: "sbin/init", Data: []byte("#!/bin/sh\n")})
	checkISOBuild(t, liveISO(t, dir, root, testKVer), dir)
}

// TestInitramfsFromISOExt4Root: the FDI's shape, ISO → squashfs →
// LiveOS/rootfs.img (ext4, /lib -> usr/lib), made with mkfs.ext4 -d.
func TestInitramfsFromISOExt4Root(t *testing.T) {
	mk, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/mkfs.ext4"); err != nil {
			t.Skip("no mkfs.ext4 (e2fsprogs)")
		}
		mk = "/usr/sbin/mkfs.ext4"
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "rootfs")
	writeUsrMergedRoot(t, src)
	img := filepath.Join(dir, "rootfs.img")
	if b, err := exec.Command(mk, "-q", "-F", "-d", src, img, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, b)
	}
	ext, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	checkISOBuild(t, liveISO(t, dir, []squashtest.File{{Path: "LiveOS/rootfs.img", Data: ext}}, testKVer), dir)
}

func TestInitramfsFromISOErrors(t *testing.T) {
	dir := t.TempDir()
	mods := []squashtest.File{{Path: "lib/modules/" + testKVer + "/modules.builtin", Data: []byte("x\n")}}
	noKernel := buildertest.WriteFile(t, filepath.Join(dir, "nokernel.iso"), isotest.Build([]isotest.File{
		{Path: "LiveOS/squashfs.img", Data: squashtest.Build(mods)},
		{Path: "isolinux/vmlinuz0", Data: []byte("not a bzImage")},
	}, isotest.Options{RockRidge: true}))
	noSquash := buildertest.WriteFile(t, filepath.Join(dir, "nosquash.iso"), isotest.Build([]isotest.File{
		{Path: "isolinux/vmlinuz0", Data: fakeBzImage(testKVer)},
	}, isotest.Options{RockRidge: true}))
	twoKernels := buildertest.WriteFile(t, filepath.Join(dir, "two.iso"), isotest.Build([]isotest.File{
		{Path: "isolinux/vmlinuz0", Data: fakeBzImage(testKVer)},
		{Path: "images/pxeboot/vmlinuz", Data: fakeBzImage("5.14.0-1.el9")},
		{Path: "LiveOS/squashfs.img", Data: squashtest.Build(mods)},
	}, isotest.Options{RockRidge: true}))
	otherDir := t.TempDir()
	wrongRelease := liveISO(t, otherDir, mods, "5.14.0-1.el9")
	for _, tc := range []struct{ name, iso, err string }{
		{"not an ISO", buildertest.WriteFile(t, filepath.Join(dir, "x.iso"), []byte("plain text")), "live ISO itself"},
		{"no kernel", noKernel, "no kernel (bzImage)"},
		{"no squashfs", noSquash, "LiveOS/squashfs.img"},
		{"two releases", twoKernels, "several releases"},
		{"modules of another release", wrongRelease, "no lib/modules/5.14.0-1.el9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"initramfs", "--from-iso", tc.iso, "-o", filepath.Join(dir, "out")}, baseArgs(t, dir)...)
			code, stdout, stderr := runCmd(t, args...)
			if code != 1 || !strings.Contains(stderr, tc.err) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, tc.err)
			}
		})
	}
}

// TestInitramfsFromISOURL reads the ISO from an HTTP server by Range
// requests, as from a file.
func TestInitramfsFromISOURL(t *testing.T) {
	dir := t.TempDir()
	var root []squashtest.File
	for p, b := range isoModules(t) {
		root = append(root, squashtest.File{Path: "lib/modules/" + testKVer + "/" + p, Data: b})
	}
	liveISO(t, dir, root, testKVer)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	checkISOBuild(t, srv.URL+"/fdi.iso", t.TempDir())

	code, _, stderr := runCmd(t, append([]string{"initramfs", "--from-iso", srv.URL + "/none.iso", "-o", filepath.Join(dir, "out")}, baseArgs(t, dir)...)...)
	if code != 1 || !strings.Contains(stderr, "404") {
		t.Errorf("missing URL: exit %d, %s", code, stderr)
	}
}

// TestInitramfsFromISOUnprivileged runs the built binary as nobody with
// an empty PATH on a live ISO: no root, no mount, no other program.
// It needs root to drop to nobody (setpriv), so it runs where make test
// runs the unit tests as root, and is skipped elsewhere.
func TestInitramfsFromISOUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the binary as nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv")
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	work, err := os.MkdirTemp("", "streamroot-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(work, "streamroot")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	iso := liveISO(t, work, usrMergedRoot(t), testKVer)
	buildertest.WriteFile(t, filepath.Join(work, initName), buildertest.ELF("", "init"))
	for _, p := range []string{iso, filepath.Join(work, initName)} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, tmp := filepath.Join(work, "out"), filepath.Join(work, "tmp")
	for _, d := range []string{out, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		bin, "initramfs", "--from-iso", iso, "-o", out, "--ca", "none", "--nic", "virtio_net", "--add-modules", "squashfs")
	cmd.Env = []string{"PATH=", "HOME=/nonexistent", "TMPDIR=" + tmp}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody, PATH empty: %v\n%s", err, b)
	}
	for _, f := range []string{"vmlinuz", "initramfs.img"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("%d entries left in TMPDIR", len(left))
	}
}

// TestInitramfsFromISORealTools builds the FDI's layers with the tools
// that make real ones, when installed: mkfs.ext4 -d (rootfs.img, /lib a
// symlink, .ko.xz modules), mksquashfs -comp xz (LiveOS/squashfs.img
// holding LiveOS/rootfs.img), xorriso (Rock Ridge ISO).
func TestInitramfsFromISORealTools(t *testing.T) {
	tools := map[string]string{}
	for _, n := range []string{"mkfs.ext4", "mksquashfs", "xorriso"} {
		p, err := exec.LookPath(n)
		if err != nil {
			if _, err := os.Stat("/usr/sbin/" + n); err != nil {
				t.Skipf("no %s", n)
			}
			p = "/usr/sbin/" + n
		}
		tools[n] = p
	}
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		if b, err := exec.Command(tools[name], args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
	}
	root := filepath.Join(dir, "root")
	writeUsrMergedRoot(t, root)
	sq := filepath.Join(dir, "sq")
	if err := os.MkdirAll(filepath.Join(sq, "LiveOS"), 0o755); err != nil {
		t.Fatal(err)
	}
	run("mkfs.ext4", "-q", "-F", "-d", root, filepath.Join(sq, "LiveOS/rootfs.img"), "16M")
	iso := filepath.Join(dir, "iso")
	buildertest.WriteFile(t, filepath.Join(iso, "isolinux/vmlinuz0"), fakeBzImage(testKVer))
	if err := os.MkdirAll(filepath.Join(iso, "LiveOS"), 0o755); err != nil {
		t.Fatal(err)
	}
	run("mksquashfs", sq, filepath.Join(iso, "LiveOS/squashfs.img"), "-comp", "xz", "-noappend", "-quiet")
	run("xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "fdi-test", "-o", filepath.Join(dir, "fdi.iso"), iso)
	checkISOBuild(t, filepath.Join(dir, "fdi.iso"), dir)
}
