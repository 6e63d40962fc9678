package qemutests

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/testfile"
	"github.com/streamroot/streamroot/pkg/isoread/isotest"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// An ISO whose live image is not at dracut's default place boots with
// rd.live.dir= and rd.live.squashimg=, and the CLI's inspect, given the
// same two names, reports the layers the boot mounts (and, without them,
// that the ISO cannot boot): one set of layout rules (pkg/imgfmt).
func TestLiveDirLayout(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	// The liveos fixture's LiveOS/rootfs.img, as images/rootfs.img in a
	// squashfs named root.sq in the ISO's images/.
	run("unsquashfs", "-q", "-no-progress", "-d", filepath.Join(dir, "x"), n.fx.LiveOS)
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "x", "LiveOS"), filepath.Join(dir, "src", "images")); err != nil {
		t.Fatal(err)
	}
	sq := filepath.Join(dir, "root.sq")
	run("mksquashfs", filepath.Join(dir, "src"), sq, "-comp", "xz", "-noappend", "-quiet", "-no-progress")
	sqData := testfile.Read(t, sq)
	iso := filepath.Join(dir, "custom.iso")
	if err := os.WriteFile(iso, isotest.Build([]isotest.File{{Path: "images/root.sq", Data: sqData}}, isotest.Options{RockRidge: true, VolumeID: "CUSTOM"}), 0o644); err != nil {
		t.Fatal(err)
	}

	cli := harness.StreamrootCLI(t)
	inspect := func(args ...string) (int, string) {
		t.Helper()
		out, err := exec.Command(cli, append([]string{"inspect", "-json"}, args...)...).Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var r struct{ Layout string }
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("inspect %v: %v\n%s", args, err, out)
		}
		return code, r.Layout
	}
	if code, layout := inspect("-live-dir", "images", "-squashimg", "root.sq", iso); code != 0 ||
		layout != "iso9660 → squashfs (images/root.sq) → ext4 (images/rootfs.img)" {
		t.Errorf("inspect with the layout: exit %d, layout %q", code, layout)
	}
	if code, layout := inspect(iso); code != 1 || layout != "iso9660" {
		t.Errorf("inspect with the defaults: exit %d, layout %q; want 1 and the ISO alone", code, layout)
	}

	url := n.serve(t, "custom.iso", iso)
	vm := n.boot(t, harness.BootOptions{Append: harness.SeedCmdline(url) + " rd.live.dir=images rd.live.squashimg=root.sq"})
	r := vm.ExpectReport(t)
	checkRoot(t, r, "liveos")
	for _, fs := range []string{"iso9660", "squashfs", "ext4"} {
		if !r.HasMount(fs, "") {
			t.Errorf("no %s layer mounted:\n%s", fs, r.Mounts)
		}
	}
}
