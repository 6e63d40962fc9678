package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/streamroot/streamroot/pkg/atomicfile"
)

// Bounds of the parts around the QEMU run.
const (
	serveStartTimeout = 15 * time.Second
	helloPoweroffWait = 30 * time.Second // demo: after the hello, the root powers off
	failureGrace      = 2 * time.Second  // after a failure block: a few more lines
	panicGrace        = 5 * time.Second
)

// run is one demo or qemu run. ok reports whether the image's init came
// up (qemu) or the demo root said hello (demo); err is a problem on the
// host side (missing files, QEMU would not start).
func run(ctx context.Context, cfg *config) (ok bool, err error) {
	out := cfg.out
	say := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }

	for _, f := range []struct{ what, path string }{
		{"kernel", cfg.kernel}, {"initramfs", cfg.initramfs},
	} {
		if _, err := os.Stat(f.path); err != nil {
			return false, fmt.Errorf("%s %s: %w (make kernel initramfs builds it)", f.what, f.path, err)
		}
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return false, errors.New("qemu-system-x86_64 not found: install qemu-system-x86 (make demo does, as root)")
	}
	work, err := filepath.Abs(cfg.work)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return false, err
	}
	relayExe, err := os.Executable()
	if err != nil {
		return false, err
	}

	// The image and where the guest finds it.
	var src *source
	if cfg.cmd == "demo" {
		start := time.Now()
		img, err := buildDemoRoot(ctx, filepath.Join(work, "www"))
		if err != nil {
			return false, fmt.Errorf("demo root: %w", err)
		}
		st, _ := os.Stat(img)
		say("demo root: %s (%s, busybox-static + a hello /sbin/init) ready in %s", img, humanBytes(st.Size()), roundDur(time.Since(start)))
		src = &source{serveDir: filepath.Dir(img), servePath: "/" + demoImageName, file: img}
	} else {
		src, err = resolveSource(cfg.image, cfg.netMode)
		if err != nil {
			return false, err
		}
	}

	var srv *server
	port := 0
	var fwds []forward
	if src.serveDir != "" {
		if _, err := os.Stat(cfg.streamroot); err != nil {
			return false, fmt.Errorf("streamroot CLI %s: %w (go build -o build/streamroot ./cmds/streamroot)", cfg.streamroot, err)
		}
		srv, err = startServe(cfg.streamroot, src.serveDir, filepath.Join(work, "serve.log"))
		if err != nil {
			return false, err
		}
		defer srv.stop()
		port = srv.port
		fwds = append(fwds, forward{port, "127.0.0.1:" + strconv.Itoa(port)})
		say("streamroot serve %s on 127.0.0.1:%d (pid %d), access log %s", src.serveDir, port, srv.cmd.Process.Pid, srv.logPath)
	} else if src.fwdAddr != "" {
		p, _ := strconv.Atoi(src.fwdAddr[strings.LastIndexByte(src.fwdAddr, ':')+1:])
		fwds = append(fwds, forward{p, src.fwdAddr})
	}
	guestURL := src.guestURL(cfg.netMode, port)

	// A private copy of the initramfs: others may rebuild it meanwhile.
	initrd := filepath.Join(work, "initramfs.img")
	err = atomicfile.Write(initrd, 0o644, func(w io.Writer) error {
		in, err := os.Open(cfg.initramfs)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = io.Copy(w, in)
		return err
	})
	if err != nil {
		return false, err
	}

	cmdline := kernelLine(guestURL, cfg)
	args := qemuArgs(cfg, initrd, cmdline, netdevArg(cfg.netMode, relayExe, fwds))
	switch {
	case cfg.netMode == "open":
		say("network: QEMU user networking (NAT): the guest can reach %s (the host's loopback) and any other address the host can", guestServer)
	case len(fwds) > 0:
		say("network: QEMU user networking, restrict=on: the guest reaches only %s:%d, forwarded to %s", guestServer, fwds[0].guestPort, fwds[0].hostAddr)
	}
	say("kernel line: %s", cmdline)
	say("booting QEMU (%s, %d MiB; bounded to %s); console log %s", map[string]string{"tcg": "TCG, -cpu max", "kvm": "KVM"}[cfg.accel],
		cfg.memMiB, cfg.timeout, filepath.Join(work, "console.log"))
	fmt.Fprintln(out)

	res, err := boot(ctx, cfg, args, work)
	if err != nil {
		return false, err
	}
	var acc *access
	if srv != nil {
		srv.stop() // flushes the access log
		f, err := os.Open(srv.logPath)
		if err == nil {
			a := parseAccessLog(f, src.servePath)
			f.Close()
			acc = &a
		}
	}
	return summarize(out, cfg, res, src, acc, work), nil
}

// kernelLine is the guest's kernel command line.
func kernelLine(url string, cfg *config) string {
	parts := []string{"console=ttyS0", "panic=-1", "ip=dhcp", "root=live:" + url}
	if cfg.mode != "" {
		parts = append(parts, "streamroot.fetch="+cfg.mode)
	}
	if cfg.quiet {
		parts = append(parts, "quiet")
	}
	if a := strings.Join(strings.Fields(cfg.appendArgs), " "); a != "" {
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// qemuArgs is QEMU's command line: -kernel boot with the serial console on
// stdout, one virtio NIC on user networking, no reboot (panic=-1 and a
// failed boot's reboot end QEMU).
func qemuArgs(cfg *config, initrd, cmdline, netdev string) []string {
	accel := []string{"-accel", "tcg", "-cpu", "max"} // the default CPU has no RDRAND: the Go init would stall
	if cfg.accel == "kvm" {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	return append(accel,
		"-m", strconv.Itoa(cfg.memMiB), "-smp", "1",
		"-nographic", "-no-reboot",
		"-kernel", cfg.kernel, "-initrd", initrd, "-append", cmdline,
		"-netdev", netdev,
		// romfile=: no iPXE option ROM, -kernel boots directly.
		"-device", "virtio-net-pci,netdev=n0,romfile=",
	)
}

// server is a running `streamroot serve`.
type server struct {
	cmd     *exec.Cmd
	port    int
	logPath string
	done    chan struct{}
	stopped bool
}

var servingURL = regexp.MustCompile(`url=http://127\.0\.0\.1:(\d+)/`)

// startServe runs `streamroot serve -addr 127.0.0.1:0 dir`, copies its
// stderr (the access log) to logPath and returns once it says which port
// it took.
func startServe(bin, dir, logPath string) (*server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "-addr", "127.0.0.1:0", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	s := &server{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	portc := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if m := servingURL.FindStringSubmatch(sc.Text()); m != nil && !sent {
				p, _ := strconv.Atoi(m[1])
				portc <- p
				sent = true
			}
		}
		io.Copy(logf, pr)
		logf.Close()
		cmd.Wait()
		close(s.done)
	}()
	select {
	case s.port = <-portc:
		return s, nil
	case <-s.done:
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%s serve exited: %s", bin, strings.TrimSpace(string(b)))
	case <-time.After(serveStartTimeout):
		s.stop()
		return nil, fmt.Errorf("%s serve did not say its port within %s", bin, serveStartTimeout)
	}
}

// stop ends the server by its PID: SIGTERM (it finishes requests in flight
// within 10 s), then SIGKILL.
func (s *server) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(12 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// bootResult is what the console showed.
type bootResult struct {
	w           *watcher
	exitedAfter time.Duration // QEMU's run time when it ended by itself; 0 if we stopped it
	exitErr     error         // QEMU's exit status
	stopped     string        // why we stopped QEMU ("" if it ended by itself)
	timedOut    bool
	interrupted bool
}

// boot runs QEMU, shows its console live and stops it when the run has
// shown what it needed to (or at the timeout), always by its PID.
func boot(ctx context.Context, cfg *config, args []string, work string) (*bootResult, error) {
	conLog, err := os.Create(filepath.Join(work, "console.log"))
	if err != nil {
		return nil, err
	}
	defer conLog.Close()
	stderrLog, err := os.Create(filepath.Join(work, "qemu.stderr"))
	if err != nil {
		return nil, err
	}
	defer stderrLog.Close()
	os.WriteFile(filepath.Join(work, "qemu.cmdline"), []byte(shellJoin(append([]string{"qemu-system-x86_64"}, args...))+"\n"), 0o644)

	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.Stdin = nil // /dev/null: the console is output only
	cmd.Stderr = stderrLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start QEMU: %w", err)
	}
	start := time.Now()
	w := newWatcher(start)
	res := &bootResult{w: w}

	type line struct {
		s  string
		at time.Time
	}
	lines := make(chan line, 1024)
	exited := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(io.TeeReader(pipe, conLog), 64<<10)
		for {
			s, err := r.ReadString('\n')
			if s != "" {
				lines <- line{strings.TrimSuffix(s, "\n"), time.Now()}
			}
			if err != nil {
				break
			}
		}
		close(lines)
		exited <- cmd.Wait() // after the last read, as os/exec requires
	}()

	deadline := time.NewTimer(cfg.timeout)
	defer deadline.Stop()
	var stopTimer <-chan time.Time
	var stopWhy string
	stopAfter := func(d time.Duration, why string) {
		if stopTimer == nil && res.stopped == "" {
			stopTimer, stopWhy = time.After(d), why
		}
	}
	var killedAt time.Time
	kill := func(why string) {
		if res.stopped == "" {
			res.stopped = why
			killedAt = time.Now()
			cmd.Process.Kill() // by PID; its relays die with it (Pdeathsig)
		}
	}
	var bounded <-chan time.Time // after the kill: QEMU must be gone soon
	for {
		if !killedAt.IsZero() && bounded == nil {
			bounded = time.After(20 * time.Second)
		}
		var exitc <-chan error
		if lines == nil { // every line shown: now QEMU's exit
			exitc = exited
		}
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			s := cleanLine(l.s)
			fmt.Fprintln(cfg.out, s)
			hadFailure, hadPanic, hadHello, hadInit := w.failureDone, w.panicLine != "", w.hello != nil, !w.initUpAt.IsZero()
			w.feed(s, l.at)
			switch {
			case w.failureDone && !hadFailure:
				stopAfter(failureGrace, "the boot failed")
			case w.panicLine != "" && !hadPanic:
				stopAfter(panicGrace, "the kernel panicked")
			case cfg.cmd == "demo" && w.hello != nil && !hadHello:
				stopAfter(helloPoweroffWait, "the demo root did not power off within "+helloPoweroffWait.String()+" of its hello")
			case cfg.cmd == "qemu" && !w.initUpAt.IsZero() && !hadInit:
				stopAfter(cfg.linger, fmt.Sprintf("its init came up; stopped after LINGER=%s", cfg.linger))
			}
		case err := <-exitc:
			res.exitErr = err
			if res.stopped == "" {
				res.exitedAfter = time.Since(start)
			}
			return res, nil
		case <-stopTimer:
			stopTimer = nil
			kill(stopWhy)
		case <-deadline.C:
			res.timedOut = true
			kill(fmt.Sprintf("TIMEOUT: still running after %s", cfg.timeout))
		case <-ctx.Done():
			res.interrupted = true
			kill("interrupted")
			ctx = context.Background()
		case <-bounded:
			return res, fmt.Errorf("QEMU (pid %d) did not exit 20 s after SIGKILL", cmd.Process.Pid)
		}
	}
}

// shellJoin quotes args for a copy-paste shell line.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
