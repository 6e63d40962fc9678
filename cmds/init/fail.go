package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/hint"
	"golang.org/x/sys/unix"
)

// stageHints are the advice when an error carries none of its own.
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

// failBoot prints the failure block and applies the failure policy. It never
// returns: PID 1 must not exit.
func (b *boot) failBoot(err error) {
	w := b.handler.Console()
	printFailure(w, err, b.stageTimes())

	policy := bootcfg.OnFailReboot
	delay := 30 * time.Second
	shell := false
	if b.cfg != nil {
		policy, delay, shell = b.cfg.OnFail, b.cfg.RebootDelay, b.cfg.Shell
	}
	if shell || policy == bootcfg.OnFailShell {
		fmt.Fprintln(w, "streamroot: rd.shell: starting a shell; exit it to "+map[bool]string{true: "halt", false: "reboot"}[policy == bootcfg.OnFailHalt])
		b.shell()
	}
	unix.Sync()
	if policy == bootcfg.OnFailHalt {
		fmt.Fprintln(w, "streamroot: halted (streamroot.onfail=halt); power-cycle the node to retry")
		for {
			time.Sleep(time.Hour)
		}
	}
	fmt.Fprintf(w, "streamroot: rebooting in %d s (streamroot.onfail=reboot; rd.shell gives a shell instead)\n", int(delay.Seconds()))
	time.Sleep(delay)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	for { // reboot(2) does not return; if it did, PID 1 still must not exit
		time.Sleep(time.Hour)
	}
}

// failure splits a boot's error into the block's fields: the stage it
// failed in ("internal" outside any), the hint (the error's own, else the
// stage's), and the error itself.
func failure(err error) (stage, advice string, problem error) {
	if err == nil {
		err = errors.New("boot pipeline ended without switching root")
	}
	stage = "internal"
	var se *stageError
	if errors.As(err, &se) {
		stage = se.stage
		err = se.err
	}
	advice = stageHints[stage]
	if h := hint.Of(err); h != "" {
		advice = h
	}
	return stage, advice, err
}

// printFailure writes the failure block (bootlog's definition, which demo/
// and the QEMU harness parse).
func printFailure(w io.Writer, err error, stages []bootlog.StageTime) {
	stage, advice, problem := failure(err)
	fmt.Fprint(w, bootlog.Failure{Stage: stage, Problem: problem.Error(), Hint: advice, Log: logFile, Stages: stages}.Format())
}

// shell runs an interactive shell on the console and waits for it.
func (b *boot) shell() {
	w := b.handler.Console()
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		fmt.Fprintln(w, "streamroot: no shell in this initramfs (built with SHELL=none)")
		return
	}
	tty, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(w, "streamroot: cannot open /dev/console for a shell: %v\n", err)
		return
	}
	defer tty.Close()
	cmd := exec.Command(sh)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/", "TERM=" + envOr("TERM", "linux"), `PS1=streamroot:\w# `}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	fmt.Fprintln(w, "streamroot: shell: the boot log is "+logFile+"; type exit to leave")
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			fmt.Fprintf(w, "streamroot: shell: %v\n", err)
		}
	}
}
