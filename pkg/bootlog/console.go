package bootlog

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The console protocol: the lines of the initramfs that other programs read
// back (the QEMU test harness, the demo, the benchmarks). Each has a type
// whose Format (or Message, for lines that go through the slog handler,
// which adds the "streamroot: <stage>: " in front) produces it and a Parse
// function that reads it back, so the two cannot drift apart. Parsers accept
// a line with anything in front of the Prefix (a kmsg timestamp, the
// firmware's unterminated last line) and surrounding white space.

// Prefix begins every line the initramfs prints.
const Prefix = "streamroot: "

// StageTime is one pipeline stage and how long it took. Its JSON form is the
// one of the boot report (/run/initramfs/streamroot.json).
type StageTime struct {
	Stage string        `json:"stage"`
	Took  time.Duration `json:"took_ns"`
}

// FormatStages is the stage summary: "early 75ms, config 28ms, ...", each
// duration rounded to the millisecond.
func FormatStages(ts []StageTime) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.Stage + " " + t.Took.Round(time.Millisecond).String()
	}
	return strings.Join(parts, ", ")
}

// ParseStages reads a stage summary; parts that are not "<name> <duration>"
// are skipped.
func ParseStages(s string) []StageTime {
	var out []StageTime
	for _, part := range strings.Split(s, ", ") {
		name, dur, ok := strings.Cut(strings.TrimSpace(part), " ")
		if !ok || name == "" {
			continue
		}
		d, err := time.ParseDuration(dur)
		if err != nil {
			continue
		}
		out = append(out, StageTime{name, d})
	}
	return out
}

// Switch is the last line of a successful boot, logged by the switch stage:
//
//	streamroot: switch: starting /sbin/init (boot took 5.612s: early 75ms, config 28ms, ...)
type Switch struct {
	Init   string        // the real init's path
	Took   time.Duration // since the initramfs started
	Stages []StageTime
}

const (
	switchLead = Prefix + "switch: starting "
	switchTook = " (boot took "
)

// Message is the log message of the switch stage (without the handler's
// "streamroot: switch: ").
func (s Switch) Message() string {
	return fmt.Sprintf("starting %s (boot took %s: %s)", s.Init, s.Took.Round(time.Millisecond), FormatStages(s.Stages))
}

// Line is the whole console line, without its newline.
func (s Switch) Line() string { return Prefix + "switch: " + s.Message() }

// ParseSwitch reads a switch line.
func ParseSwitch(line string) (Switch, bool) {
	_, rest, ok := strings.Cut(line, switchLead)
	if !ok {
		return Switch{}, false
	}
	rest = strings.TrimRight(rest, " \t\r\n")
	init, rest, ok := strings.Cut(rest, switchTook)
	if !ok || init == "" || strings.ContainsAny(init, " \t") || !strings.HasSuffix(rest, ")") {
		return Switch{}, false
	}
	took, stages, ok := strings.Cut(strings.TrimSuffix(rest, ")"), ": ")
	if !ok {
		return Switch{}, false
	}
	d, err := time.ParseDuration(took)
	if err != nil {
		return Switch{}, false
	}
	return Switch{Init: init, Took: d, Stages: ParseStages(stages)}, true
}

// IsSwitch says whether line is the switch line, even one cut short.
func IsSwitch(line string) bool { return strings.Contains(line, switchLead) }

// Failure is the block PID 1 prints when the boot fails, before its
// failure policy (reboot, halt, shell):
//
//	streamroot: ==================== BOOT FAILED ====================
//	streamroot: stage:   fetch
//	streamroot: problem: GET http://10.77.0.1/missing.squashfs: 404 Not Found
//	streamroot:          (further lines of the problem)
//	streamroot: hint:    check the URL in root=, ...
//	streamroot: log:     /run/initramfs/streamroot.log (stages: early 20ms, ...)
//	streamroot: =======================================================
type Failure struct {
	Stage   string
	Problem string // may hold several lines
	Hint    string
	Log     string // the log file the booted (or rescue) system keeps
	Stages  []StageTime
}

const (
	failOpen     = "==================== BOOT FAILED ===================="
	failClose    = "======================================================="
	failCont     = "         " // a problem's further lines line up under its first
	stagesMarker = " (stages: "
)

// failLabels are the block's field lines, in order, padded so the values
// line up.
var failLabels = [...]string{"stage:   ", "problem: ", "hint:    ", "log:     "}

// Format is the whole block, each line ending in a newline.
func (f Failure) Format() string {
	var b strings.Builder
	b.WriteString(Prefix + failOpen + "\n")
	b.WriteString(Prefix + failLabels[0] + f.Stage + "\n")
	for i, line := range strings.Split(f.Problem, "\n") {
		label := failLabels[1]
		if i > 0 {
			label = failCont
		}
		b.WriteString(Prefix + label + line + "\n")
	}
	b.WriteString(Prefix + failLabels[2] + f.Hint + "\n")
	b.WriteString(Prefix + failLabels[3] + f.Log + stagesMarker + FormatStages(f.Stages) + ")\n")
	b.WriteString(Prefix + failClose + "\n")
	return b.String()
}

// IsFailureStart says whether line opens a failure block.
func IsFailureStart(line string) bool {
	_, rest, ok := strings.Cut(line, Prefix)
	if !ok {
		return false
	}
	rest = strings.TrimSpace(rest)
	head, tail, ok := strings.Cut(rest, " BOOT FAILED ")
	return ok && onlyEquals(head) && onlyEquals(tail)
}

// IsFailureEnd says whether line closes a failure block.
func IsFailureEnd(line string) bool {
	_, rest, ok := strings.Cut(line, Prefix)
	return ok && onlyEquals(strings.TrimSpace(rest))
}

func onlyEquals(s string) bool { return s != "" && strings.Trim(s, "=") == "" }

// FindFailure returns the first complete failure block in console text and
// the block's own text, from the start of its first line through the
// newline of its last. Lines may carry anything in front of the Prefix
// (then the block's lines keep it).
func FindFailure(console string) (f Failure, block string, ok bool) {
	start := -1
	inProblem := false
	for off := 0; off < len(console); {
		nl := strings.IndexByte(console[off:], '\n')
		if nl < 0 {
			return Failure{}, "", false // the rest is a line not yet complete
		}
		line := console[off : off+nl]
		lineStart := off
		off += nl + 1
		if start < 0 {
			if IsFailureStart(line) {
				start = lineStart
			}
			continue
		}
		if IsFailureEnd(line) {
			return f, console[start:off], true
		}
		_, rest, ok := strings.Cut(line, Prefix)
		if !ok {
			continue // a line of other output inside the block
		}
		rest = strings.TrimRight(rest, " \t\r")
		if inProblem && strings.HasPrefix(rest, failCont) {
			f.Problem += "\n" + strings.TrimPrefix(rest, failCont)
			continue
		}
		inProblem = false
		label, value, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch label {
		case "stage":
			f.Stage = value
		case "problem":
			f.Problem, inProblem = value, true
		case "hint":
			f.Hint = value
		case "log":
			if i := strings.LastIndex(value, stagesMarker); i >= 0 && strings.HasSuffix(value, ")") {
				f.Log = value[:i]
				f.Stages = ParseStages(value[i+len(stagesMarker) : len(value)-1])
			} else {
				f.Log = value
			}
		}
	}
	return Failure{}, "", false
}

// Download is the RAM-mode fetch's progress line, logged every few seconds
// by the fetch stage:
//
//	streamroot: fetch: 412.0 MiB / 1024.0 MiB (40%) 85.3 MiB/s ETA 7s
type Download struct {
	Done, Total int64   // bytes
	Rate        float64 // bytes per second; 0 while unknown
}

// Message is the fetch stage's log message.
func (d Download) Message() string {
	eta := "?"
	if d.Rate > 0 {
		eta = time.Duration(float64(d.Total-d.Done) / d.Rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%s / %s (%d%%) %s/s ETA %s", MiB(d.Done), MiB(d.Total), d.Done*100/max(d.Total, 1), MiB(int64(d.Rate)), eta)
}

// ParseDownload reads a download progress line; Done, Total and Rate are
// as exact as the line's tenths of a MiB.
func ParseDownload(line string) (Download, bool) {
	_, rest, ok := strings.Cut(line, Prefix+"fetch: ")
	if !ok {
		return Download{}, false
	}
	done, total, rest, ok := parseOfTotal(rest)
	if !ok {
		return Download{}, false
	}
	if _, ok := percentOf(rest); !ok {
		return Download{}, false
	}
	_, rest, _ = strings.Cut(rest, ")")
	rest, ok = strings.CutPrefix(rest, " ")
	if !ok {
		return Download{}, false
	}
	rateText, eta, ok := strings.Cut(rest, "/s ETA ")
	if !ok {
		return Download{}, false
	}
	rate, ok := parseMiB(rateText)
	if !ok || strings.TrimSpace(eta) == "" {
		return Download{}, false
	}
	return Download{Done: done, Total: total, Rate: float64(rate)}, true
}

// Fill is the block daemon's background fill progress, logged every few
// seconds:
//
//	streamroot: blockd: fill: 512.0 MiB / 1024.0 MiB (50%)
//	streamroot: blockd: fill: 600.0 MiB / 1024.0 MiB (58%) (held to 8.0 MiB/s while the system is busy)
type Fill struct {
	Done, Total int64 // bytes
	Percent     int64 // of the chunks present (Done is estimated from it)
	HeldTo      int64 // bytes per second the fill is held to while the system is busy; 0 if not
}

const fillLead = "fill: "

// Message is the daemon's log message (without "streamroot: blockd: ").
func (f Fill) Message() string {
	note := ""
	if f.HeldTo > 0 {
		note = fmt.Sprintf(" (held to %s/s while the system is busy)", MiB(f.HeldTo))
	}
	return fmt.Sprintf("%s%s / %s (%d%%)%s", fillLead, MiB(f.Done), MiB(f.Total), f.Percent, note)
}

// ParseFill reads a fill progress line.
func ParseFill(line string) (Fill, bool) {
	_, rest, ok := strings.Cut(line, Prefix)
	if !ok {
		return Fill{}, false
	}
	_, rest, ok = strings.Cut(rest, ": "+fillLead) // after the daemon's stage name
	if !ok {
		return Fill{}, false
	}
	done, total, rest, ok := parseOfTotal(rest)
	if !ok {
		return Fill{}, false
	}
	f := Fill{Done: done, Total: total}
	if f.Percent, ok = percentOf(rest); !ok {
		return Fill{}, false
	}
	_, rest, _ = strings.Cut(rest, ")")
	rest = strings.TrimRight(rest, " \t\r\n")
	if rest == "" {
		return f, true
	}
	held, ok := strings.CutPrefix(rest, " (held to ")
	if !ok {
		return Fill{}, false
	}
	held, ok = strings.CutSuffix(held, "/s while the system is busy)")
	if !ok {
		return Fill{}, false
	}
	if f.HeldTo, ok = parseMiB(held); !ok {
		return Fill{}, false
	}
	return f, true
}

// MiB is how the console shows a byte count: "412.0 MiB".
func MiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// maxBytes bounds what a parsed MiB figure may stand for (2^50 MiB), so the
// byte count and its arithmetic stay far from int64's end.
const maxBytes = 1 << 60

func parseMiB(s string) (int64, bool) {
	num, ok := strings.CutSuffix(strings.TrimSpace(s), " MiB")
	if !ok {
		return 0, false
	}
	// Only MiB's own shape, digits and one decimal: then a figure read
	// back formats to the same text.
	whole, tenth, ok := strings.Cut(num, ".")
	if !ok || whole == "" || strings.Trim(whole, "0123456789") != "" || len(tenth) != 1 || tenth[0] < '0' || tenth[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v*(1<<20) > maxBytes {
		return 0, false
	}
	return int64(math.Round(v * (1 << 20))), true
}

// parseOfTotal reads "<a> MiB / <b> MiB" up to the " (" of the percentage,
// returning what follows from there.
func parseOfTotal(s string) (done, total int64, rest string, ok bool) {
	a, rest, ok := strings.Cut(s, " / ")
	if !ok {
		return 0, 0, "", false
	}
	b, rest, ok := strings.Cut(rest, " (")
	if !ok {
		return 0, 0, "", false
	}
	if done, ok = parseMiB(a); !ok {
		return 0, 0, "", false
	}
	if total, ok = parseMiB(b); !ok {
		return 0, 0, "", false
	}
	return done, total, " (" + rest, true
}

// percentOf reads the " (N%)" at the start of s.
func percentOf(s string) (int64, bool) {
	p, ok := strings.CutPrefix(s, " (")
	if !ok {
		return 0, false
	}
	p, _, ok = strings.Cut(p, "%)")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(p, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
