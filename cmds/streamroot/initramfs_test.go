package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/builder"
	"github.com/streamroot/streamroot/builder/buildertest"
	"github.com/streamroot/streamroot/pkg/deb/debtest"
	"github.com/streamroot/streamroot/pkg/rpm/rpmtest"
	"github.com/u-root/u-root/pkg/cpio"
)

const testKVer = "6.1.0-99-test"

// kernelFiles are a kernel package's files as data.tar holds them: the
// kernel, two modules (one xz-compressed, signed), the builtin list,
// and no depmod output.
func kernelFiles(t *testing.T, prefix string) []debtest.File {
	t.Helper()
	failover, err := debtest.Compress(".xz", buildertest.Module("depends="))
	if err != nil {
		t.Fatal(err)
	}
	mods := "./" + prefix + "lib/modules/" + testKVer + "/"
	return []debtest.File{
		{Name: "./boot/"},
		{Name: "./boot/vmlinuz-" + testKVer, Data: []byte("bzImage " + testKVer)},
		{Name: "./boot/config-" + testKVer, Data: []byte("CONFIG_X=y\n")},
		{Name: mods + "kernel/drivers/net/virtio_net.ko", Data: buildertest.Module("alias=virtio:d00000001v*", "depends=failover")},
		{Name: mods + "kernel/net/core/failover.ko.xz", Data: failover},
		{Name: mods + "modules.builtin", Data: []byte("kernel/fs/squashfs/squashfs.ko\n")},
		{Name: mods + "build", Link: "/usr/src/linux-headers-" + testKVer},
		{Name: "./usr/share/doc/x/changelog.gz", Data: []byte("not unpacked")},
	}
}

func writeDeb(t *testing.T, dir, suffix string, files []debtest.File) string {
	t.Helper()
	b, err := debtest.Build(suffix, files)
	if err != nil {
		t.Fatal(err)
	}
	return buildertest.WriteFile(t, filepath.Join(dir, "kernel.deb"), b)
}

// cpioFiles reads an uncompressed initramfs into name → content.
func cpioFiles(t *testing.T, p string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, r := range recs {
		if r.ReaderAt == nil {
			out[r.Name] = nil
			continue
		}
		c, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		out[r.Name] = c
	}
	return out
}

// baseArgs are the flags every test build uses: a fake init, the test
// kernel's driver and module names, no CA, an uncompressed archive.
func baseArgs(t *testing.T, dir string) []string {
	init := buildertest.WriteFile(t, filepath.Join(dir, "init"), buildertest.ELF("", "init"))
	return []string{"--init", init, "--nic", "virtio_net", "--add-modules", "squashfs", "--ca", "none", "--compress", "none"}
}

// wantDep is modules.dep of the test kernel's two modules, computed:
// virtio_net needs failover.
const wantDep = "kernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko\nkernel/net/core/failover.ko:\n"

// buildJSON runs a successful `streamroot initramfs ... --json` of the
// test kernel's two modules and returns its result.
func buildJSON(t *testing.T, args ...string) initramfsResult {
	t.Helper()
	code, stdout, stderr := runCmd(t, append(append([]string{"initramfs"}, args...), "--json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res initramfsResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	if res.KVer != testKVer || res.Modules != 2 || res.SignedModules != 2 {
		t.Errorf("result %+v: want kver %s and 2 modules, both signed", res, testKVer)
	}
	return res
}

func TestInitramfsFromDeb(t *testing.T) {
	for _, tc := range []struct{ suffix, prefix string }{{".xz", ""}, {".zst", "usr/"}, {".gz", ""}} {
		t.Run("data.tar"+tc.suffix+"/"+tc.prefix, func(t *testing.T) {
			dir := t.TempDir()
			deb := writeDeb(t, dir, tc.suffix, kernelFiles(t, tc.prefix))
			out := filepath.Join(dir, "out")
			args := append([]string{"initramfs", "--kernel-deb", deb, "-o", out, "--json",
				"--kernel-name", "vmlinuz0", "--initramfs-name", "initrd0.img", "--image-url", "http://10.0.0.1/fdi.iso"}, baseArgs(t, dir)...)
			code, stdout, stderr := runCmd(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var res initramfsResult
			if err := json.Unmarshal([]byte(stdout), &res); err != nil {
				t.Fatalf("stdout %q: %v", stdout, err)
			}
			want := initramfsResult{Kernel: filepath.Join(out, "vmlinuz0"), KVer: testKVer, Initramfs: filepath.Join(out, "initrd0.img"),
				Size: res.Size, Modules: 2, SignedModules: 2, Compress: "none", ImageURL: "http://10.0.0.1/fdi.iso"}
			if !reflect.DeepEqual(res, want) {
				t.Errorf("result %+v, want %+v", res, want)
			}
			if k, err := os.ReadFile(res.Kernel); err != nil || string(k) != "bzImage "+testKVer {
				t.Errorf("kernel %q, %v", k, err)
			}
			files := cpioFiles(t, res.Initramfs)
			base := "lib/modules/" + testKVer + "/"
			for name, want := range map[string]string{
				"etc/streamroot/image-url":           "http://10.0.0.1/fdi.iso\n",
				base + "modules.dep":                 "kernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko\nkernel/net/core/failover.ko:\n",
				base + "modules.alias":               "alias virtio:d00000001v* virtio_net\n",
				base + "modules.builtin":             "kernel/fs/squashfs/squashfs.ko\n",
				base + "kernel/net/core/failover.ko": string(buildertest.Module("depends=")),
			} {
				if got, ok := files[name]; !ok || string(got) != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if !strings.Contains(stderr, "computing the indexes") {
				t.Errorf("stderr does not say the indexes were computed:\n%s", stderr)
			}
		})
	}
}

// TestInitramfsSameAsBuilder: --modules is the builder's -moddir, byte
// for byte: the two front ends share one build.
func TestInitramfsSameAsBuilder(t *testing.T) {
	dir := t.TempDir()
	mods := filepath.Join(dir, "lib/modules", testKVer)
	buildertest.WriteFile(t, filepath.Join(mods, "kernel/drivers/net/virtio_net.ko"), buildertest.Module())
	buildertest.WriteFile(t, filepath.Join(mods, "modules.dep"), []byte("kernel/drivers/net/virtio_net.ko:\n"))
	buildertest.WriteFile(t, filepath.Join(mods, "modules.builtin"), []byte("kernel/fs/squashfs/squashfs.ko\n"))
	kernel := buildertest.WriteFile(t, filepath.Join(dir, "vmlinuz"), []byte("bzImage"))
	args := append([]string{"initramfs", "--modules", mods, "--kernel", kernel, "-o", filepath.Join(dir, "cli")}, baseArgs(t, dir)...)
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(stdout), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "kernel: ") || !strings.HasPrefix(lines[1], "initramfs: ") {
		t.Errorf("stdout %q: want the kernel: and initramfs: lines", stdout)
	}
	opts, _, err := builder.ParseFlags([]string{"-init", filepath.Join(dir, "init"), "-moddir", mods, "-nic", "virtio_net", "-modules", "squashfs",
		"-ca", "none", "-shell", "none", "-compress", "none", "-o", filepath.Join(dir, "builder.img")}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := builder.Build(opts, builder.NewLogger(io.Discard, false)); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "cli", "initramfs.img"))
	b, _ := os.ReadFile(filepath.Join(dir, "builder.img"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("streamroot initramfs wrote %d bytes, the builder %d, not the same", len(a), len(b))
	}
}

func TestInitramfsErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeDeb(t, dir, ".xz", kernelFiles(t, ""))
	noKernel := writeDeb(t, t.TempDir(), "", kernelFiles(t, "")[2:])
	notDeb := buildertest.WriteFile(t, filepath.Join(dir, "x.deb"), []byte("PK\x03\x04 a zip"))
	otherKernel := buildertest.WriteFile(t, filepath.Join(dir, "vmlinuz-other"), fakeBzImage("5.14.0-1.el9"))
	buildertest.WriteFile(t, filepath.Join(dir, "lib/modules", testKVer, "modules.dep"), nil)
	out := filepath.Join(dir, "out")
	base := baseArgs(t, dir)
	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no source", []string{"-o", out}, 2, "exactly one source"},
		{"two sources", []string{"--modules", dir, "--kernel-deb", good, "-o", out}, 2, "exactly one source"},
		{"kernel without modules", []string{"--kernel-deb", good, "--kernel", good, "-o", out}, 2, "--kernel goes with --modules"},
		{"no output", []string{"--kernel-deb", good}, 2, "-o DIR is required"},
		{"name with a slash", []string{"--kernel-deb", good, "-o", out, "--kernel-name", "../vmlinuz"}, 2, "not a file name"},
		{"same names", []string{"--kernel-deb", good, "-o", out, "--kernel-name", "x", "--initramfs-name", "x"}, 2, "both"},
		{"bad image URL", []string{"--kernel-deb", good, "-o", out, "--image-url", "ftp://x/y"}, 2, "only http and https"},
		{"positional", []string{"--kernel-deb", good, "-o", out, "extra"}, 2, "unexpected arguments"},
		{"missing deb", []string{"--kernel-deb", filepath.Join(dir, "none.deb"), "-o", out}, 1, "no such file"},
		{"not a deb", []string{"--kernel-deb", notDeb, "-o", out}, 1, "not a Debian package"},
		{"no kernel in the deb", []string{"--kernel-deb", noKernel, "-o", out}, 1, "no kernel (boot/vmlinuz-<kver>"},
		{"missing init", []string{"--kernel-deb", good, "-o", out, "--init", filepath.Join(dir, "none")}, 1, "-init"},
		{"kernel of another release", []string{"--modules", filepath.Join(dir, "lib/modules", testKVer), "--kernel", otherKernel, "-o", out}, 1, "is kernel 5.14.0-1.el9, but the modules are for " + testKVer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, append(append([]string{"initramfs"}, base...), tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.err) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.err)
			}
			if stdout != "" {
				t.Errorf("stdout %q on failure", stdout)
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		if left, _ := os.ReadDir(out); len(left) != 0 {
			t.Errorf("failed builds left %d files in -o", len(left))
		}
	}
}

func TestDebWanted(t *testing.T) {
	for _, tc := range []struct {
		name, kver, root string
		ok               bool
	}{
		{"boot/vmlinuz-6.1.0-47-amd64", "6.1.0-47-amd64", "", true},
		{"lib/modules/6.1.0-47-amd64/kernel/a.ko", "6.1.0-47-amd64", "lib/modules/6.1.0-47-amd64", true},
		{"usr/lib/modules/6.9/modules.builtin", "6.9", "usr/lib/modules/6.9", true},
		{"lib/modules/modules/kernel/a.ko", "modules", "lib/modules/modules", true},
		{"boot/config-6.1.0-47-amd64", "", "", false},
		{"boot/vmlinuz-x/y", "", "", false},
		{"lib/modules/6.1", "", "", false},
		{"lib/modules/../x/y", "", "", false},
		{"usr/share/doc/a", "", "", false},
	} {
		k, root, ok := debWanted(tc.name)
		if ok != tc.ok || (ok && (k != tc.kver || root != tc.root)) {
			t.Errorf("debWanted(%q) = %q, %q, %v; want %q, %q, %v", tc.name, k, root, ok, tc.kver, tc.root, tc.ok)
		}
	}
}

// TestInitramfsFromRPM: EL's split, the kernel and a module in
// kernel-core, the other module in kernel-modules, .ko.xz, no depmod
// output.
func TestInitramfsFromRPM(t *testing.T) {
	dir := t.TempDir()
	mods := "./lib/modules/" + testKVer + "/"
	failover, err := debtest.Compress(".xz", buildertest.Module("depends="))
	if err != nil {
		t.Fatal(err)
	}
	virtio, err := debtest.Compress(".xz", buildertest.Module("alias=virtio:d00000001v*", "depends=failover"))
	if err != nil {
		t.Fatal(err)
	}
	core, err := rpmtest.Build(".xz", []rpmtest.File{
		{Name: "./lib/modules/" + testKVer, Dir: true},
		{Name: mods + "vmlinuz", Data: []byte("bzImage " + testKVer)},
		{Name: mods + "kernel/net/core/failover.ko.xz", Data: failover},
		{Name: mods + "modules.builtin", Data: []byte("kernel/fs/squashfs/squashfs.ko\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	modules, err := rpmtest.Build(".zst", []rpmtest.File{{Name: mods + "kernel/drivers/net/virtio_net.ko.xz", Data: virtio}})
	if err != nil {
		t.Fatal(err)
	}
	corePath := buildertest.WriteFile(t, filepath.Join(dir, "kernel-core.rpm"), core)
	modPath := buildertest.WriteFile(t, filepath.Join(dir, "kernel-modules.rpm"), modules)
	out := filepath.Join(dir, "out")
	res := buildJSON(t, append([]string{"--kernel-rpm", corePath, "--kernel-rpm", modPath, "-o", out}, baseArgs(t, dir)...)...)
	if k, _ := os.ReadFile(filepath.Join(out, "vmlinuz")); string(k) != "bzImage "+testKVer {
		t.Errorf("kernel %q", k)
	}
	files := cpioFiles(t, res.Initramfs)
	if got := string(files["lib/modules/"+testKVer+"/modules.dep"]); got != wantDep {
		t.Errorf("modules.dep = %q", got)
	}
	if _, ok := files["lib/modules/"+testKVer+"/vmlinuz"]; ok {
		t.Error("the kernel was packed as a module tree file")
	}

	// kernel-modules alone has no kernel; a .deb is not an RPM.
	code, _, stderr := runCmd(t, append([]string{"initramfs", "--kernel-rpm", modPath, "-o", out}, baseArgs(t, dir)...)...)
	if code != 1 || !strings.Contains(stderr, "kernel-core carries the kernel") {
		t.Errorf("kernel-modules alone: exit %d, %s", code, stderr)
	}
	deb := writeDeb(t, dir, "", kernelFiles(t, ""))
	code, _, stderr = runCmd(t, append([]string{"initramfs", "--kernel-rpm", deb, "-o", out}, baseArgs(t, dir)...)...)
	if code != 1 || !strings.Contains(stderr, "not an RPM") {
		t.Errorf("a .deb as --kernel-rpm: exit %d, %s", code, stderr)
	}
}

func TestAppendSet(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		flags []flagValue
		want  []string
	}{
		{"none given", []string{"-o", "x"}, nil, []string{"-o", "x"}},
		{"all unset", []string{"-o", "x"}, []flagValue{{"-a", ""}, {"-b", ""}}, []string{"-o", "x"}},
		{"set ones in order", []string{"-o", "x"}, []flagValue{{"-a", "1"}, {"-b", ""}, {"--c", "3"}}, []string{"-o", "x", "-a", "1", "--c", "3"}},
		{"onto nothing", nil, []flagValue{{"-a", "v w"}}, []string{"-a", "v w"}},
		// A value that looks like a flag is still the flag's value.
		{"dash value", nil, []flagValue{{"-a", "-b"}}, []string{"-a", "-b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendSet(append([]string(nil), tt.args...), tt.flags...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("appendSet(%q, %v) = %q, want %q", tt.args, tt.flags, got, tt.want)
			}
		})
	}
}
