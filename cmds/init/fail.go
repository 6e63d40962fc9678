package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
	"golang.org/x/sys/unix"
)

// failBoot prints the failure block and applies the failure policy. It never
// returns: PID 1 must not exit.
func (b *boot) failBoot(err error) {
	w := b.handler.Console()
	fmt.Fprint(w, bootlog.FailureOf(err, logFile, b.timings).Format())
	p := failPolicy(b.cfg)
	if p.Shell {
		fmt.Fprintln(w, p.ShellLine())
		b.shell()
	}
	unix.Sync()
	fmt.Fprintln(w, p.EndLine())
	if !p.Halt {
		time.Sleep(p.Delay)
		unix.Sync()
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}
	for { // halted; or reboot(2) returned, and PID 1 still must not exit
		time.Sleep(time.Hour)
	}
}

// failPolicy is what the kernel line asks for after a failure; a line that
// did not parse far enough reboots after the default delay.
func failPolicy(cfg *bootcfg.Config) bootlog.Policy {
	if cfg == nil {
		return bootlog.Policy{Delay: bootcfg.DefaultRebootDelay}
	}
	return bootlog.Policy{Shell: cfg.Shell || cfg.OnFail == bootcfg.OnFailShell, Halt: cfg.OnFail == bootcfg.OnFailHalt, Delay: cfg.RebootDelay}
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
	cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/", "TERM=" + cmp.Or(os.Getenv("TERM"), "linux"), `PS1=streamroot:\w# `}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	fmt.Fprintln(w, "streamroot: shell: the boot log is "+logFile+"; type exit to leave")
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			fmt.Fprintf(w, "streamroot: shell: %v\n", err)
		}
	}
}
