package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/builder"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// The kernel's printk lines around the unpacking of the initramfs (Debian's
// 6.1 prints "Trying to unpack rootfs image as initramfs..." with
// CONFIG_BLK_DEV_RAM, "Unpacking initramfs..." without), and our /init's
// first line.
var (
	unpackStart  = regexp.MustCompile(`\[\s*(\d+\.\d+)\] (Trying to unpack rootfs image as initramfs|Unpacking initramfs)`)
	unpackEnd    = regexp.MustCompile(`\[\s*(\d+\.\d+)\] Freeing initrd memory`)
	unpackFailed = regexp.MustCompile(`Initramfs unpacking failed: [^\n]*`)
	initFirst    = regexp.MustCompile(`streamroot: early: streamroot starting`)
)

// compressRuns is how many boots each setting gets
// (STREAMROOT_BENCH_COMPRESS_RUNS, default 2): 8 settings, and a boot that
// stops at /init's first line is short but not free on 2 cores.
func compressRuns() int {
	return envRuns("STREAMROOT_BENCH_COMPRESS_RUNS", 2)
}

// compressSettings are the settings measured: STREAMROOT_BENCH_COMPRESS
// (comma separated) or every one the builder offers, "zstd" left out as the
// same bytes as "zstd:best".
func compressSettings() []string {
	if s := os.Getenv("STREAMROOT_BENCH_COMPRESS"); s != "" {
		return strings.Split(s, ",")
	}
	return slices.DeleteFunc(builder.Compressions(), func(s string) bool { return s == "zstd" })
}

// compressBoot is what one boot of one setting measured, in guest seconds
// (printk timestamps).
type compressBoot struct {
	Setting string
	Unpack  float64 // "Freeing initrd memory" − the unpack's start
	InitAt  float64 // "Run /init as init process": kernel start → /init
	Reached bool    // /init printed its first line
	Err     string  `json:",omitempty"`
	When    time.Time
}

// TestCompress packs our initramfs with each -compress setting the builder
// offers and boots each with the same kernel, QEMU options and network as
// the other sections, until /init's first line: the kernel's printk
// timestamps give its unpack time (from the start of the unpacking to its
// "Freeing initrd memory") and when it ran /init. The images are the
// default build's archive compressed again with builder.NewCompressor, the
// bytes `make initramfs COMPRESS=<setting>` writes but for build.json's
// "compress" field, which still names the default.
func TestCompress(t *testing.T) {
	section(t, "compress")
	env.Require(t)
	archive, err := uncompressedArchive(env.Initramfs)
	if err != nil {
		t.Fatalf("the default initramfs: %v", err)
	}
	dir := filepath.Join(cfg.out, "compress")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var dracutSize int64
	if st, err := os.Stat(cfg.dracut); cfg.dracut != "" && err == nil {
		dracutSize = st.Size()
	}
	runs := compressRuns()
	var b strings.Builder
	fmt.Fprintf(&b, "### Initramfs compression: size and the kernel's unpack time (guest s, median of %d)\n\n", runs)
	b.WriteString("| setting | bytes | × dracut | unpack s | /init run at s | /init reached | runs: unpack s |\n|---|---:|---:|---:|---:|---|---|\n")
	for _, setting := range compressSettings() {
		img := filepath.Join(dir, "initramfs-"+strings.ReplaceAll(setting, ":", "-")+".img")
		size, err := compressTo(setting, archive, img)
		if err != nil {
			t.Errorf("%s: %v", setting, err)
			continue
		}
		var unpack, initAt []float64
		var cells []string
		reached := 0
		for i := range runs {
			var res compressBoot
			t.Run(fmt.Sprintf("%s/%d", setting, i+1), func(t *testing.T) {
				res = compressBootOnce(t, setting, img)
			})
			if res.When.IsZero() {
				res = compressBoot{Setting: setting, Err: "setup failed (see -test.v output)", When: time.Now()}
			}
			record("compress", res)
			if res.Err != "" {
				cells = append(cells, "fail")
				say("compress %-13s run %d: FAILED: %s", setting, i+1, res.Err)
				continue
			}
			unpack = append(unpack, res.Unpack)
			initAt = append(initAt, res.InitAt)
			cells = append(cells, fmt.Sprintf("%.2f", res.Unpack))
			if res.Reached {
				reached++
			}
			say("compress %-13s run %d: %d bytes, unpacked in %.2f s guest, /init run at %.2f s", setting, i+1, size, res.Unpack, res.InitAt)
		}
		ratio := "–"
		if dracutSize > 0 {
			ratio = fmt.Sprintf("%.3f", float64(size)/float64(dracutSize))
		}
		label := setting
		if setting == "zstd:best" {
			label += " (default, = zstd)"
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %d of %d | %s |\n",
			label, size, ratio, medianCell(unpack), medianCell(initAt), reached, runs, strings.Join(cells, " "))
	}
	b.WriteString("\nOne guest at a time, each stopped at /init's first line; the unpack runs in the kernel's async worker, so its span also holds what else the kernel did meanwhile on the one vCPU.\n")
	writeSection("compress", b.String())
}

// compressTo writes archive compressed as setting to path and returns its
// size.
func compressTo(setting string, archive []byte, path string) (int64, error) {
	var out bytes.Buffer
	zw, err := builder.NewCompressor(setting, &out)
	if err != nil {
		return 0, err
	}
	if _, err := zw.Write(archive); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return int64(out.Len()), os.WriteFile(path, out.Bytes(), 0o644)
}

// compressBootOnce boots img until /init's first line and reads the
// kernel's timestamps off the console.
func compressBootOnce(t *testing.T, setting, img string) compressBoot {
	res := compressBoot{Setting: setting, When: time.Now()}
	ns := env.NewNetns(t)
	vm := env.Boot(t, harness.BootOptions{Name: "compress", Netns: ns, Initramfs: img, Timeout: 180 * time.Second})
	_, err := vm.WaitFor(initFirst, 180*time.Second)
	res.Reached = err == nil
	vm.Kill()
	con := vm.Console()
	if m := unpackFailed.FindString(con); m != "" {
		res.Err = m
	}
	start, okS := stamp(unpackStart, con)
	end, okE := stamp(unpackEnd, con)
	at, okI := stamp(runInit, con)
	switch {
	case res.Err != "":
	case !okS || !okE || !okI:
		res.Err = fmt.Sprintf("no unpack start, end or /init line on the console (%s)", vm.ConsolePath)
	default:
		res.Unpack, res.InitAt = end-start, at
	}
	if res.Err != "" {
		t.Logf("console tail:\n%s", harness.Tail(con, 40))
	}
	return res
}

// stamp is the printk timestamp of re's first match in con.
func stamp(re *regexp.Regexp, con string) (float64, bool) {
	m := re.FindStringSubmatch(con)
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(m[1], 64)
	return f, err == nil
}

func medianCell(v []float64) string {
	if m, ok := median(v); ok {
		return fmt.Sprintf("%.2f", m)
	}
	return "fail"
}
