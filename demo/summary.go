package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bootlog"
)

// summarize prints the end-of-run summary and says whether the run
// succeeded: the demo root said hello as PID 1, or (qemu) the image's init
// came up.
func summarize(out io.Writer, cfg *config, res *bootResult, src *source, acc *access, work string) bool {
	w := res.w
	row := func(label, format string, args ...any) {
		fmt.Fprintf(out, "    %-11s %s\n", label, fmt.Sprintf(format, args...))
	}
	title := "streamroot demo"
	if cfg.cmd == "qemu" {
		title = "streamroot qemu " + cfg.image
	}
	fmt.Fprintf(out, "\n==> %s: summary\n", title)

	// The verdict.
	ok := false
	switch {
	case cfg.cmd == "demo" && w.hello != nil:
		ok = w.hello["pid"] == "1"
		row("result", "the demo root said hello: PID %s, / is %s, writable: %s, address %s on %s",
			w.hello["pid"], w.hello["root"], w.hello["writable"], w.hello["addr"], w.hello["iface"])
		if !ok {
			row("", "FAILED: its init did not run as PID 1")
		}
	case cfg.cmd == "qemu" && !w.initUpAt.IsZero():
		ok = true
		row("result", "OK: the image's init came up %s after QEMU started", secs(w.initUpAt.Sub(w.start)))
		row("", "its first console line: %q", truncate(w.initUpLine, 100))
	case w.failureDone:
		fb := w.failureBlock()
		problem, _, _ := strings.Cut(fb.Problem, "\n")
		row("result", "BOOT FAILED in stage %s", fb.Stage)
		row("problem", "%s", problem)
		row("hint", "%s", fb.Hint)
	case w.panicLine != "":
		row("result", "FAILED: %s", w.panicLine)
	case !w.switchAt.IsZero():
		row("result", "FAILED: the initramfs started %s, but it printed nothing %s", switchTarget(w.switchLine), howItEnded(res))
	case !w.firstStreamroot.IsZero():
		row("result", "FAILED: the initramfs ran but never reached switch_root %s", howItEnded(res))
		if w.lastProgress != "" {
			row("", "last progress: %s", strings.TrimPrefix(w.lastProgress, "streamroot: "))
		}
	default:
		row("result", "FAILED: the streamroot initramfs printed nothing %s", howItEnded(res))
	}
	if !ok && !w.failureDone && len(w.tailLines) > 0 {
		row("console", "last lines:")
		for _, l := range w.tailLines {
			fmt.Fprintf(out, "                | %s\n", l)
		}
	}

	// When things happened, on the host's clock from QEMU's start.
	var tl []string
	add := func(what string, t time.Time) {
		if !t.IsZero() {
			tl = append(tl, fmt.Sprintf("%s %s", what, secs(t.Sub(w.start))))
		}
	}
	add("initramfs up", w.firstStreamroot)
	add("switch_root", w.switchAt)
	if cfg.cmd == "demo" {
		add("hello", w.helloAt)
	} else {
		add("image's init up", w.initUpAt)
	}
	add("boot failed", w.failureAt)
	switch {
	case res.exitedAfter > 0:
		tl = append(tl, fmt.Sprintf("QEMU exited %s", secs(res.exitedAfter)))
	case res.stopped != "":
		tl = append(tl, "QEMU stopped: "+res.stopped)
	}
	row("timeline", "QEMU start → %s (host clock)", strings.Join(tl, " → "))
	if cfg.cmd == "demo" && w.hello != nil && w.hello["uptime"] != "" {
		row("", "the guest's own clock at the hello: %s s since the kernel started", w.hello["uptime"])
	}

	// Stage timings, from the initramfs' own clock.
	if sw, okLine := bootlog.ParseSwitch(w.switchLine); okLine {
		row("initramfs", "%s from its start to exec'ing %s:", sw.Took, sw.Init)
		row("", "%s", bootlog.FormatStages(sw.Stages))
	} else if st := w.failureBlock().Stages; len(st) > 0 {
		row("initramfs", "stages before the failure: %s", bootlog.FormatStages(st))
	}

	// Bytes fetched.
	switch {
	case acc != nil:
		size := ""
		if st, err := os.Stat(src.file); err == nil {
			size = fmt.Sprintf("; the image is %s bytes", commas(st.Size()))
		}
		row("fetched", "%s bytes in %d requests for %s (%s%s), streamroot serve's access log",
			commas(acc.Bytes), acc.Requests, src.servePath, statusList(acc.Statuses), size)
	case src.hostURL != nil:
		row("fetched", "from %s: see that server's access log", src.hostURL.Redacted())
	}
	rep := w.report()
	switch {
	case rep == nil || rep.Image == nil || rep.Image.Size == 0:
	case rep.Image.Device != "":
		// stream/lazy: the block daemon fetches; PID 1 counts nothing.
		row("", "%s mode: the block daemon serves the %s-byte image as %s (what the boot reads first, then %s)",
			rep.Image.Mode, commas(rep.Image.Size), rep.Image.Device,
			map[bool]string{true: "only what is read", false: "the rest in the background after switch_root"}[rep.Image.Mode == "lazy"])
	default:
		row("", "%s mode: the initramfs received %s of %s bytes before switch_root", rep.Image.Mode, commas(rep.Image.Received), commas(rep.Image.Size))
	}

	// The lease.
	switch {
	case rep != nil && rep.Lease != nil:
		l := rep.Lease
		router := l.Router
		if router == "" || router == "<nil>" {
			router = "none"
		}
		row("lease", "%s on %s (%s) from DHCP server %s, %s s, router %s, client id %s",
			l.Address, l.Iface, l.MAC, l.ServerID, fmt.Sprint(l.LeaseSeconds), router, l.ClientID)
	case w.boundLine != "":
		row("lease", "%s", strings.TrimPrefix(w.boundLine, "streamroot: network: "))
	}

	rel := func(p string) string {
		if wd, err := os.Getwd(); err == nil {
			if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
				return r
			}
		}
		return p
	}
	files := []string{rel(filepath.Join(work, "console.log")) + " (console)"}
	if acc != nil {
		files = append(files, rel(filepath.Join(work, "serve.log"))+" (access log)")
	}
	files = append(files, rel(filepath.Join(work, "qemu.cmdline"))+" (QEMU command)")
	row("files", "%s", strings.Join(files, ", "))
	if ok {
		fmt.Fprintf(out, "==> %s: OK\n", title)
	} else {
		fmt.Fprintf(out, "==> %s: FAILED\n", title)
	}
	return ok
}

func howItEnded(res *bootResult) string {
	switch {
	case res.timedOut:
		return "before the timeout"
	case res.interrupted:
		return "before the run was interrupted"
	case res.stopped != "":
		return "before QEMU was stopped (" + res.stopped + ")"
	case res.exitErr != nil:
		return fmt.Sprintf("before QEMU exited (%v; see qemu.stderr)", res.exitErr)
	default:
		return "before QEMU exited"
	}
}

func switchTarget(line string) string {
	if sw, ok := bootlog.ParseSwitch(line); ok {
		return "the image's init " + sw.Init
	}
	return "the image's init"
}

func statusList(m map[int]int) string {
	var keys []int
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d×%d", m[k], k))
	}
	if len(parts) == 0 {
		return "no answers"
	}
	return "answers " + strings.Join(parts, ", ")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func roundDur(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// commas writes 929792 as 929,792.
func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
