package bench

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
	"github.com/u-root/u-root/pkg/cpio"
)

// kernelFloor is the median guest uptime at which the floor initramfs's
// /init reported, set by TestFloor (which runs before TestBoot: the files
// run in name order) for the boot tables' × floor column; 0: not measured
// in this run (BENCH_ONLY without floor), and the column says n/a.
var kernelFloor float64

// TestFloor boots the same kernel with the same QEMU options and network as
// the boot sections, with a minimal initramfs whose /init (bench/floorinit,
// static Go) only reports the uptime and powers off: what the kernel alone
// costs before any initramfs does work.
func TestFloor(t *testing.T) {
	section(t, "floor")
	env.Require(t)
	img := filepath.Join(cfg.out, "floor.img")
	if err := buildFloor(img); err != nil {
		t.Fatalf("floor initramfs: %v", err)
	}
	var ups []float64
	var runs []string
	for i := range cfg.runs {
		t.Run(fmt.Sprintf("floor/%d", i+1), func(t *testing.T) {
			ns := env.NewNetns(t)
			vm := env.Boot(t, harness.BootOptions{Name: "floor", Netns: ns, Initramfs: img, Timeout: 120 * time.Second})
			r, err := waitReport(vm, 120*time.Second)
			if err != nil {
				runs = append(runs, "fail")
				say("floor run %d: FAILED: %s", i+1, firstLine(err.Error()))
				return
			}
			if err := vm.WaitExit(60 * time.Second); err != nil {
				vm.Kill()
			}
			ups = append(ups, r.Uptime)
			runs = append(runs, fmt.Sprintf("%.2f", r.Uptime))
			record("floor", map[string]any{"uptime": r.Uptime, "when": time.Now()})
			say("floor run %d: /init reported at %.2f s guest", i+1, r.Uptime)
		})
	}
	m, ok := median(ups)
	var b strings.Builder
	b.WriteString("### Kernel floor: the same kernel and QEMU, an initramfs whose /init only reports\n\n")
	b.WriteString("| initramfs | bytes | /init reported at (guest s, median) | runs (s) |\n|---|---:|---:|---|\n")
	size := int64(0)
	if st, err := os.Stat(img); err == nil {
		size = st.Size()
	}
	if ok {
		kernelFloor = m
		fmt.Fprintf(&b, "| floor (bench/floorinit) | %d | %.2f | %s |\n", size, m, strings.Join(runs, " "))
	} else {
		fmt.Fprintf(&b, "| floor (bench/floorinit) | %d | fail | %s |\n", size, strings.Join(runs, " "))
	}
	writeSection("floor", b.String())
}

// buildFloor builds bench/floorinit statically and packs it as /init into
// an uncompressed newc cpio at out (u-root's writer, as the builder's).
func buildFloor(out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	bin := out + ".init"
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./floorinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./floorinit: %v: %s", err, o)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	err = oneFileCpio(f, "init", data, 0o755)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// oneFileCpio writes to w an uncompressed newc archive of one regular file
// (u-root's writer, as the builder's): the floor's /init, the image the
// stock FDI style appends to dracut's initrd.
func oneFileCpio(w io.Writer, name string, data []byte, perm uint64) error {
	rw := cpio.Newc.Writer(w)
	if err := rw.WriteRecord(cpio.StaticFile(name, string(data), perm)); err != nil {
		return err
	}
	return cpio.WriteTrailer(rw)
}
