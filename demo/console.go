package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bootlog"
)

// watcher follows the serial console line by line and records the moments
// that matter: the initramfs' first line, its switch_root, the first line of
// the image's own init, a failure block, a kernel panic, and (demo) the
// hello of the demo root.
type watcher struct {
	start time.Time // QEMU started

	firstStreamroot time.Time // first "streamroot:" line
	switchAt        time.Time
	switchLine      string // "streamroot: switch: starting /sbin/init (boot took ...)"
	initUpAt        time.Time
	initUpLine      string // first line of the image's init
	boundLine       string // "streamroot: network: bound ..."
	lastProgress    string // last "streamroot: fetch: ... / ..." line

	failure      []string // the BOOT FAILED block's lines
	inFailure    bool
	failureDone  bool
	failureAt    time.Time
	panicLine    string
	panicAt      time.Time
	helloAt      time.Time // the demo root's banner
	hello        map[string]string
	helloDoneAt  time.Time // its key=value line (after the JSON)
	inJSON       bool
	jsonText     strings.Builder
	lines        int
	tailLines    []string // last lines, for a report on failure
	maxTailLines int
}

func newWatcher(start time.Time) *watcher {
	return &watcher{start: start, maxTailLines: 15}
}

var (
	ansiEscape  = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[@-Z\\-_]|c)`)
	kernelMsg   = regexp.MustCompile(`^\[\s*\d+\.\d+\] `)
	pid1Kmsg    = regexp.MustCompile(`^\[\s*\d+\.\d+\] \S+\[1\]: `) // systemd[1]: ... through kmsg
	kernelPanic = regexp.MustCompile(`Kernel panic - not syncing.*`)
)

// cleanLine drops '\r' and terminal escape sequences (SeaBIOS clears the
// screen at power-on; that must not clear the operator's terminal).
func cleanLine(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	return ansiEscape.ReplaceAllString(s, "")
}

// feed takes one cleaned console line seen at t.
func (w *watcher) feed(line string, t time.Time) {
	w.lines++
	if w.maxTailLines > 0 {
		w.tailLines = append(w.tailLines, line)
		if len(w.tailLines) > w.maxTailLines {
			w.tailLines = w.tailLines[1:]
		}
	}
	trimmed := strings.TrimSpace(line)
	// Before switch_root, the initramfs' first line may follow the
	// firmware's unterminated "Booting from ROM.." on the same line.
	if i := strings.Index(trimmed, "streamroot: "); i > 0 && w.switchAt.IsZero() && !kernelMsg.MatchString(trimmed) {
		trimmed = trimmed[i:]
	}
	isStreamroot := strings.HasPrefix(trimmed, "streamroot:")
	if isStreamroot && w.firstStreamroot.IsZero() {
		w.firstStreamroot = t
	}
	if m := kernelPanic.FindString(line); m != "" && w.panicLine == "" {
		w.panicLine, w.panicAt = m, t
	}
	switch {
	case w.inFailure:
		w.failure = append(w.failure, trimmed)
		if bootlog.IsFailureEnd(trimmed) {
			w.inFailure, w.failureDone, w.failureAt = false, true, t
		}
		return
	case bootlog.IsFailureStart(trimmed) && !w.failureDone:
		w.inFailure = true
		w.failure = []string{trimmed}
		return
	}
	if isStreamroot {
		switch {
		case bootlog.IsSwitch(trimmed) && w.switchAt.IsZero():
			w.switchAt, w.switchLine = t, trimmed
		case strings.HasPrefix(trimmed, "streamroot: network: bound "):
			w.boundLine = trimmed
		default:
			if _, ok := bootlog.ParseDownload(trimmed); ok {
				w.lastProgress = trimmed
			}
		}
		return
	}
	if !w.switchAt.IsZero() && w.initUpAt.IsZero() && trimmed != "" &&
		(!kernelMsg.MatchString(trimmed) || pid1Kmsg.MatchString(trimmed)) {
		w.initUpAt, w.initUpLine = t, trimmed
	}
	switch {
	case strings.Contains(line, helloBanner) && w.helloAt.IsZero():
		w.helloAt = t
	case trimmed == jsonBegin:
		w.inJSON = true
		w.jsonText.Reset()
	case trimmed == jsonEnd:
		w.inJSON = false
	case w.inJSON:
		w.jsonText.WriteString(line)
		w.jsonText.WriteByte('\n')
	case strings.HasPrefix(trimmed, helloLine+" ") && w.hello == nil:
		w.hello = parseKV(strings.TrimPrefix(trimmed, helloLine+" "))
		w.helloDoneAt = t
	}
}

// failureBlock is the failure block seen (zero if none).
func (w *watcher) failureBlock() bootlog.Failure {
	f, _, _ := bootlog.FindFailure(strings.Join(w.failure, "\n") + "\n")
	return f
}

// report parses the streamroot.json the demo root printed (nil if none).
func (w *watcher) report() *bootlog.Report {
	s := strings.TrimSpace(w.jsonText.String())
	if s == "" {
		return nil
	}
	var r bootlog.Report
	if json.Unmarshal([]byte(s), &r) != nil {
		return nil
	}
	return &r
}

// parseKV reads "a=1 b=two" (values without spaces).
func parseKV(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}
