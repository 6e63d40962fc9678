package harness

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// NIC is one guest network card, on a tap in the test's namespace.
type NIC struct {
	MAC    string // default BootMAC
	Bridge string // default br0 (DHCP + HTTP); br1 has no server
	Model  string // default virtio-net-pci
}

// BootOptions describe one QEMU run.
type BootOptions struct {
	Name string // label for logs and files, default "vm"
	// Netns runs QEMU inside this namespace, with NICs on its bridges.
	// nil: no network at all (-nic none).
	Netns *Netns
	// NICs default to one NIC with BootMAC on br0 when Netns is set.
	NICs []NIC
	// Append follows GuestConsoleArgs on the kernel command line.
	Append    string
	Kernel    string // default Env.Kernel
	Initramfs string // default Env.Initramfs
	MemoryMiB int    // default 1024
	RNG       bool   // add -device virtio-rng-pci
	TPM       *SWTPM // attach this software TPM (StartSWTPM)
	// Timeout bounds the whole QEMU run (it is killed then), default
	// DefaultBootTimeout, in the guest's time: a loaded host that keeps
	// QEMU off the CPU stretches it, up to maxStretch times. Waiting for
	// a free VM slot does not count.
	Timeout  time.Duration
	QEMUArgs []string // appended to the command line
}

// VM is a running (or finished) QEMU guest. Its serial console is kept in
// memory (without '\r') and written to ConsolePath as it arrives.
type VM struct {
	Name        string
	ConsolePath string
	StderrPath  string
	Cmdline     []string // the QEMU command line
	Started     time.Time

	t        testing.TB
	proc     *process
	con      *console
	clock    *guestClock // every wait on the guest counts its time (guestclock.go)
	timeout  time.Duration
	timedOut atomic.Bool
	logOnce  sync.Once
}

// Boot starts QEMU under TCG (-accel tcg -cpu max: no KVM here, and the
// default CPU lacks RDRAND, which stalls a Go init) with the kernel, the
// initramfs and the kernel arguments of opts. At most Env.VMSlots guests run
// at once; Boot waits for a slot. The guest is killed by t.Cleanup, and its
// console tail is logged if t failed.
func (e *Env) Boot(t testing.TB, opts BootOptions) *VM {
	t.Helper()
	opts.Name = cmp.Or(opts.Name, "vm")
	opts.Kernel = cmp.Or(opts.Kernel, e.Kernel)
	opts.Initramfs = cmp.Or(opts.Initramfs, e.Initramfs)
	opts.MemoryMiB = cmp.Or(opts.MemoryMiB, 1024)
	opts.Timeout = cmp.Or(opts.Timeout, DefaultBootTimeout)
	if opts.Netns != nil && opts.NICs == nil {
		opts.NICs = []NIC{{MAC: BootMAC, Bridge: Bridge0}}
	}
	if opts.Netns == nil && len(opts.NICs) > 0 {
		t.Fatal("vm: NICs need a Netns")
	}
	var args []string
	if len(opts.NICs) == 0 {
		args = append(args, "-nic", "none") // else QEMU adds a user-mode NIC
	}
	for i, nic := range opts.NICs {
		if nic.MAC == "" {
			nic.MAC = BootMAC
		}
		if nic.Bridge == "" {
			nic.Bridge = Bridge0
		}
		if nic.Model == "" {
			nic.Model = "virtio-net-pci"
		}
		tap, err := opts.Netns.AddTap(nic.Bridge)
		if err != nil {
			t.Fatalf("vm: %v", err)
		}
		args = append(args,
			"-netdev", fmt.Sprintf("tap,id=n%d,ifname=%s,script=no,downscript=no", i, tap),
			// romfile=: no iPXE option ROM, -kernel boots directly.
			"-device", fmt.Sprintf("%s,netdev=n%d,mac=%s,romfile=", nic.Model, i, nic.MAC))
		t.Logf("%s: NIC %d %s on %s/%s", opts.Name, i, nic.MAC, tap, nic.Bridge)
	}
	if opts.RNG {
		args = append(args, "-device", "virtio-rng-pci")
	}
	if opts.TPM != nil {
		args = append(args, opts.TPM.QEMUArgs()...)
	}
	kernelArgs := GuestConsoleArgs + opts.Append
	return e.startVM(t, vmSpec{
		name: opts.Name, netns: opts.Netns, memoryMiB: opts.MemoryMiB, timeout: opts.Timeout,
		args:  slices.Concat([]string{"-kernel", opts.Kernel, "-initrd", opts.Initramfs, "-append", kernelArgs}, args, opts.QEMUArgs),
		doing: "started", detail: "\n  append: " + kernelArgs,
	})
}

// vmSpec is one QEMU run as Boot and BootPXE hand it to startVM.
type vmSpec struct {
	name      string
	netns     *Netns // nil: QEMU runs in the host's namespace
	memoryMiB int
	timeout   time.Duration
	args      []string // after the options every run has
	// doing and detail describe the start in the log: "<name>: QEMU pid N
	// <doing> (waited …), console <path><detail>".
	doing, detail string
	// uefi, when set, boots OVMF instead of SeaBIOS (uefi.go).
	uefi *UEFI
}

// startVM runs QEMU under TCG with the serial console on stdout and
// -no-reboot, once a VM slot is free; the guest is killed at its timeout
// and by t.Cleanup, which also logs its console tail if t failed.
func (e *Env) startVM(t testing.TB, s vmSpec) *VM {
	t.Helper()
	dir := e.ArtifactDir(t)
	vm := &VM{Name: s.name, t: t, timeout: s.timeout}

	// Unique file names when a test boots more than once.
	var conFile *os.File
	for i := 1; ; i++ {
		base := s.name
		if i > 1 {
			base += "-" + strconv.Itoa(i)
		}
		vm.ConsolePath = filepath.Join(dir, base+".console.log")
		vm.StderrPath = filepath.Join(dir, base+".qemu-stderr.log")
		f, err := os.OpenFile(vm.ConsolePath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			conFile = f
			break
		}
		if !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	vm.con = newConsole(conFile)
	stderr, err := os.Create(vm.StderrPath)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()

	args := append([]string{
		"-accel", "tcg", "-cpu", "max",
		"-m", strconv.Itoa(s.memoryMiB), "-smp", "1",
		"-nographic", "-no-reboot",
	}, s.args...)
	if s.uefi != nil {
		fw, err := s.uefi.qemuArgs(strings.TrimSuffix(vm.ConsolePath, ".console.log") + ".OVMF_VARS.fd")
		if err != nil {
			t.Fatalf("vm: %v", err)
		}
		args = append(args, fw...)
	}
	var cmd *exec.Cmd
	if s.netns != nil {
		cmd = s.netns.Command("qemu-system-x86_64", args...)
	} else {
		cmd = exec.Command("qemu-system-x86_64", args...)
	}
	vm.Cmdline = cmd.Args
	cmd.Stdout = vm.con
	cmd.Stderr = stderr

	slotCtx, cancel := context.WithTimeout(context.Background(), slotWait(t))
	defer cancel()
	waitStart := time.Now()
	release, err := e.acquireVMSlot(slotCtx)
	if err != nil {
		t.Fatalf("vm: %v", err)
	}
	waited := time.Since(waitStart)
	vm.proc, err = startProcess("qemu", cmd)
	if err != nil {
		release()
		t.Fatalf("vm: %v", err)
	}
	vm.Started = vm.proc.start
	vm.clock = newGuestClock(cmd.Process.Pid, vm.proc.start, vm.proc.done)
	t.Logf("%s: QEMU pid %d %s (waited %s for a VM slot), console %s%s",
		s.name, cmd.Process.Pid, s.doing, waited.Round(time.Millisecond), vm.ConsolePath, s.detail)

	go func() {
		defer release()
		select {
		case <-vm.proc.done:
		case <-vm.clock.deadline(s.timeout).expired(vm.proc.done):
			vm.timedOut.Store(true)
			vm.proc.Kill()
		}
	}()
	t.Cleanup(func() {
		if err := vm.proc.Kill(); err != nil {
			t.Error(err)
		}
		vm.logExit()
		conFile.Close()
		if line := KernelTrouble(vm.Console()); line != "" {
			// A guest that starved is a bug to find, whatever else the test saw.
			t.Errorf("%s: the guest kernel reported: %s", vm.Name, line)
		}
		if t.Failed() {
			t.Logf("%s: console, last 100 lines (full: %s):\n%s", vm.Name, vm.ConsolePath, Tail(vm.Console(), 100))
			if se, _ := os.ReadFile(vm.StderrPath); len(se) > 0 {
				t.Logf("%s: QEMU stderr:\n%s", vm.Name, Tail(string(se), 30))
			}
		}
	})
	return vm
}

// GuestConsoleArgs lead every test guest's kernel command line: the serial
// console, a reboot (which -no-reboot turns into QEMU's exit) on panic, and
// no_timer_check: under TCG on a loaded host the kernel's boot-time check
// that the IO-APIC timer ticks can miss its window and panic ("IO-APIC +
// timer doesn't work!") before any of our code runs. watchdog_thresh=60
// (soft lockups reported after 120 s, not 20): under TCG the guest's clock
// is the host's, so a guest whose vCPU thread a loaded host did not run for
// half a minute saw its own watchdog "stuck for 26s" (a dracut Debian boot
// beside other work); a CPU really stuck in the guest kernel still shows
// within a boot's timeout, and KernelTrouble still fails the test.
const GuestConsoleArgs = "console=ttyS0 panic=-1 no_timer_check watchdog_thresh=60 "

// kernelTrouble matches the kernel's reports of a CPU held too long.
var kernelTrouble = regexp.MustCompile(`(?m)^.*(BUG: soft lockup|Watchdog detected hard LOCKUP).*$`)

// KernelTrouble returns the first console line in which the guest kernel
// reported a soft or hard lockup, or "".
func KernelTrouble(console string) string {
	return strings.TrimSpace(kernelTrouble.FindString(console))
}

// slotWait is how long Boot may wait for a VM slot: until shortly before
// the test binary's deadline, at most 30 minutes.
func slotWait(t testing.TB) time.Duration {
	d := 30 * time.Minute
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := tt.Deadline(); ok {
			if left := time.Until(dl) - 2*time.Minute; left < d {
				d = max(left, 10*time.Second)
			}
		}
	}
	return d
}

// logExit logs the wall time of the run once, when QEMU has exited.
func (vm *VM) logExit() {
	if !vm.proc.Exited() {
		return
	}
	vm.logOnce.Do(func() {
		how := "exit status 0"
		if vm.timedOut.Load() {
			how = "killed at the boot timeout " + vm.timeout.String() + " of the guest's time"
		} else if vm.proc.err != nil {
			how = vm.proc.err.Error()
		}
		starved := ""
		if d := vm.clock.starvation(); d >= time.Second {
			starved = fmt.Sprintf("; the host kept it off the CPU for %s", d.Round(time.Second))
		}
		vm.t.Logf("%s: QEMU ran %s wall (%s%s)", vm.Name, vm.proc.end.Sub(vm.proc.start).Round(time.Millisecond), how, starved)
	})
}

// Console returns the console output so far, without '\r'.
func (vm *VM) Console() string {
	s, _ := vm.con.snapshot()
	return s
}

// Exited reports whether QEMU has exited.
func (vm *VM) Exited() bool { return vm.proc.Exited() }

// Done is closed when QEMU has exited.
func (vm *VM) Done() <-chan struct{} { return vm.proc.done }

// Kill kills QEMU (and waits for it).
func (vm *VM) Kill() error {
	err := vm.proc.Kill()
	vm.logExit()
	return err
}

// Wait waits for QEMU to exit (bounded by the boot timeout, when the guest
// is killed) and returns why it exited: nil for a clean exit (guest power
// off, or a reboot with -no-reboot).
func (vm *VM) Wait() error {
	<-vm.proc.done
	vm.logExit()
	return vm.exitErr()
}

// WaitExit waits at most timeout of the guest's time for QEMU to exit by
// itself.
func (vm *VM) WaitExit(timeout time.Duration) error {
	dl := vm.clock.deadline(timeout)
	select {
	case <-vm.proc.done:
		vm.logExit()
		return vm.exitErr()
	case <-dl.expired(vm.proc.done):
		return fmt.Errorf("%s: QEMU still running %s later", vm.Name, dl)
	}
}

func (vm *VM) exitErr() error {
	if vm.timedOut.Load() {
		return fmt.Errorf("%s: killed at the boot timeout (%s of the guest's time)", vm.Name, vm.timeout)
	}
	if vm.proc.err != nil {
		se, _ := os.ReadFile(vm.StderrPath)
		return fmt.Errorf("%s: QEMU: %w: %s", vm.Name, vm.proc.err, strings.TrimSpace(Tail(string(se), 5)))
	}
	return nil
}

// WaitFor waits at most timeout of the guest's time (see guestClock) for
// re to match the console (all of it,
// from the start of the boot) and returns the match. It fails early when
// QEMU exits without a match.
func (vm *VM) WaitFor(re *regexp.Regexp, timeout time.Duration) (string, error) {
	return vm.waitUntil(timeout, re.String(), func(s string) (string, bool) {
		loc := re.FindStringIndex(s)
		if loc == nil {
			return "", false
		}
		return s[loc[0]:loc[1]], true
	})
}

// WaitForString waits for a literal string on the console.
func (vm *VM) WaitForString(s string, timeout time.Duration) error {
	_, err := vm.WaitFor(regexp.MustCompile(regexp.QuoteMeta(s)), timeout)
	return err
}

// waitUntil polls match on the console whenever output arrives (at most
// every 50 ms) until it reports true, timeout of the guest's time, or
// QEMU's exit.
func (vm *VM) waitUntil(timeout time.Duration, what string, match func(string) (string, bool)) (string, error) {
	return vm.waitUntilDeadline(vm.clock.deadline(timeout), what, match)
}

// waitUntilDeadline is waitUntil with a deadline several waits may share.
func (vm *VM) waitUntilDeadline(dl guestDeadline, what string, match func(string) (string, bool)) (string, error) {
	stop := make(chan struct{})
	defer close(stop)
	expired := dl.expired(stop)
	for {
		s, changed := vm.con.snapshot()
		if m, ok := match(s); ok {
			return m, nil
		}
		select {
		case <-changed:
		case <-vm.proc.done:
			// Wait has returned: all output was copied.
			if m, ok := match(vm.Console()); ok {
				return m, nil
			}
			vm.logExit()
			why := "QEMU exited"
			if err := vm.exitErr(); err != nil {
				why = err.Error()
			}
			return "", fmt.Errorf("%s: %s before the console showed %q", vm.Name, why, what)
		case <-expired:
			return "", fmt.Errorf("%s: console did not show %q within %s", vm.Name, what, dl)
		}
		time.Sleep(50 * time.Millisecond) // batch small console writes
	}
}

// console collects QEMU's serial output.
type console struct {
	file *os.File

	mu      sync.Mutex
	buf     []byte
	changed chan struct{} // closed and replaced on every write
}

func newConsole(f *os.File) *console {
	return &console{file: f, changed: make(chan struct{})}
}

func (c *console) Write(p []byte) (int, error) {
	c.file.Write(p) // best effort: the in-memory copy is what tests read
	c.mu.Lock()
	for _, b := range p {
		if b != '\r' {
			c.buf = append(c.buf, b)
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return len(p), nil
}

func (c *console) snapshot() (string, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf), c.changed
}
