package bootlog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/hint"
)

// StageError is a boot failure with the init stage it happened in.
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string { return e.Stage + ": " + e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

// stageHints are the failure block's advice when an error carries none of
// its own, by the init stage it failed in.
var stageHints = map[string]string{
	"early":    "the kernel lacks devtmpfs/tmpfs/proc support or the initramfs is damaged",
	"config":   "fix the kernel command line (PXELinux APPEND, iPXE kernel line or GRUB linux line); see docs/kernel-args.md",
	"modules":  "rebuild the initramfs for this kernel (make initramfs KVER=$(uname -r of the node's kernel))",
	"network":  "check the cable, the switch port and the DHCP server; ip=, BOOTIF= and rd.net.timeout.* pick the link and the waits",
	"fetch":    "check the URL in root=, that the HTTP server is up and reachable from the node's network; rd.retry=<s> sets how long to keep trying",
	"layers":   "root= must point at a squashfs, erofs or ext4 image, or an ISO with LiveOS/squashfs.img; check the file was copied completely (streamroot inspect)",
	"handover": "the overlay is not writable; check rd.live.overlay.size",
	"switch":   "the image's init could not be started; check that the image boots and has /sbin/init",
}

// StageHint is the advice for a failure in stage whose error has no hint.
func StageHint(stage string) string { return stageHints[stage] }

// FailureOf is the failure block for the error that ended a boot: the
// stage it failed in ("internal" outside any StageError), the problem, the
// hint (the error's own, else the stage's), the log file and the stages
// run so far.
func FailureOf(err error, log string, stages []StageTime) Failure {
	if err == nil {
		err = errors.New("boot pipeline ended without switching root")
	}
	stage := "internal"
	var se *StageError
	if errors.As(err, &se) {
		stage, err = se.Stage, se.Err
	}
	advice := stageHints[stage]
	if h := hint.Of(err); h != "" {
		advice = h
	}
	return Failure{Stage: stage, Problem: err.Error(), Hint: advice, Log: log, Stages: stages}
}

// Policy is what PID 1 does after the failure block: a shell first when
// asked for (rd.shell, streamroot.onfail=shell), then halt, or reboot after
// Delay. Its lines are part of the console protocol: the harness waits for
// the reboot line.
type Policy struct {
	Shell bool
	Halt  bool
	Delay time.Duration
}

const rebootLead = Prefix + "rebooting in "

// ShellLine announces the shell and what follows when it exits.
func (p Policy) ShellLine() string {
	then := "reboot"
	if p.Halt {
		then = "halt"
	}
	return Prefix + "rd.shell: starting a shell; exit it to " + then
}

// EndLine is the last line PID 1 prints: halted, or the reboot countdown.
func (p Policy) EndLine() string {
	if p.Halt {
		return Prefix + "halted (streamroot.onfail=halt); power-cycle the node to retry"
	}
	return fmt.Sprintf("%s%d s (streamroot.onfail=reboot; rd.shell gives a shell instead)", rebootLead, int(p.Delay.Seconds()))
}

// ParseReboot finds the reboot line in console text and the delay it
// announces.
func ParseReboot(console string) (time.Duration, bool) {
	_, rest, ok := strings.Cut(console, rebootLead)
	if !ok {
		return 0, false
	}
	secs, _, ok := strings.Cut(rest, " s")
	n, err := strconv.Atoi(secs)
	if !ok || err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}
