// Package harness runs streamroot's QEMU boot tests against real peers.
//
// Each test gets its own network namespace (netns.go) with a bridge that a
// DHCP server (dnsmasq.go) and an HTTP server (nginx.go) listen on, fixture
// root images built with host tools and cached outside the clone
// (fixture.go), and a QEMU guest under TCG whose serial console the test
// reads (qemu.go). The fixture roots' /sbin/init prints one JSON report line
// (report.go); tests assert on that report and on what the peers saw.
//
// The package is a normal Go package so that several test packages can share
// it; it does nothing unless a test calls it.
package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Addresses and names every test shares. Each test has its own network
// namespace, so these never collide between tests.
const (
	ServerIP  = "10.77.0.1" // br0: DHCP + HTTP server
	Bridge0   = "br0"
	Bridge0IP = "10.77.0.1/24"
	Bridge1   = "br1" // isolated: no DHCP server
	Bridge1IP = "10.78.0.1/24"
	BootMAC   = "52:54:00:12:34:56" // the MAC the seed's BOOTIF= names

	// DefaultBootTimeout bounds one QEMU run (TCG, 1 vCPU).
	DefaultBootTimeout = 150 * time.Second
	// DefaultCache is where fixtures are cached when STREAMROOT_CACHE is unset.
	DefaultCache = "/var/cache/streamroot-tests"
)

// SeedCmdline is the kernel command line of the seed deployment (a Foreman
// discovery node PXE-booting a live image), with root=live:<rootURL>. Boot
// puts GuestConsoleArgs in front of it.
func SeedCmdline(rootURL string) string {
	return "ip=dhcp root=live:" + rootURL + " rd.shell ro acpi=force rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0 rd.shell rd.debug=1 nomodeset proxy.url=https://FOREMAN proxy.type=foreman BOOTIF=01-52-54-00-12-34-56"
}

// FailureCmdline is the seed line for a boot that must fail: without
// rd.shell (a shell would keep the guest up), rebooting at once after the
// failure block so that QEMU (-no-reboot) exits; extra arguments appended.
func FailureCmdline(root string, extra ...string) string {
	return strings.Join(append([]string{
		"ip=dhcp", "root=" + root, "ro", "acpi=force", "rd.luks=0", "rd.md=0", "rd.dm=0", "rd.lvm=0", "rd.debug=1",
		"nomodeset", "proxy.url=https://FOREMAN", "proxy.type=foreman", "BOOTIF=01-52-54-00-12-34-56",
		"streamroot.onfail=reboot", "streamroot.reboot.delay=0",
	}, extra...), " ")
}

// HostTools are the host programs the harness runs.
var HostTools = []string{
	"ip", "dnsmasq", "nginx", "qemu-system-x86_64",
	"mksquashfs", "unsquashfs", "mkfs.ext4",
}

// Env is the configuration of one test binary: what to boot, where fixtures
// are cached and where per-test artifacts (console logs, peer logs) go.
// Create it once in TestMain with NewEnv.
type Env struct {
	Kernel    string // STREAMROOT_KERNEL: the vmlinuz to boot
	Initramfs string // STREAMROOT_INITRAMFS: the initramfs under test
	Cache     string // STREAMROOT_CACHE: fixture cache, outside the clone
	// Artifacts is this run's directory of per-test artifacts
	// (STREAMROOT_ARTIFACTS, default /tmp/streamroot-qemu-tests/<time>-<pid>).
	// A passing test's directory is removed unless KeepArtifacts.
	Artifacts     string
	KeepArtifacts bool // STREAMROOT_KEEP_ARTIFACTS=1
	// VMSlots is how many QEMU guests may run at once on this host, counted
	// across test processes with lock files in Cache (STREAMROOT_VM_SLOTS,
	// default 2).
	VMSlots int

	defaultArtifacts bool

	fixOnce sync.Once
	fix     *Fixtures
	fixErr  error

	leaseFixMu sync.Mutex
	leaseFix   map[string]*leaseFixState // LeaseFixture: one build per name

	mu        sync.Mutex
	artifacts map[string]string // test name -> directory
}

// NewEnv reads the environment contract set by the Makefile.
func NewEnv() *Env {
	e := &Env{
		Kernel:        resolvePath(os.Getenv("STREAMROOT_KERNEL")),
		Initramfs:     resolvePath(os.Getenv("STREAMROOT_INITRAMFS")),
		Cache:         os.Getenv("STREAMROOT_CACHE"),
		Artifacts:     os.Getenv("STREAMROOT_ARTIFACTS"),
		KeepArtifacts: os.Getenv("STREAMROOT_KEEP_ARTIFACTS") == "1",
		VMSlots:       2,
		artifacts:     map[string]string{},
	}
	if e.Cache == "" {
		e.Cache = DefaultCache
	}
	if e.Artifacts == "" {
		e.defaultArtifacts = true
		e.Artifacts = filepath.Join(os.TempDir(), "streamroot-qemu-tests",
			time.Now().Format("20060102-150405")+"-"+strconv.Itoa(os.Getpid()))
	}
	if n, err := strconv.Atoi(os.Getenv("STREAMROOT_VM_SLOTS")); err == nil && n > 0 {
		e.VMSlots = n
	}
	return e
}

// Close removes this run's artifact directory if no test left anything in
// it. Call it at the end of TestMain.
func (e *Env) Close() {
	os.Remove(e.Artifacts) // fails, as it should, when not empty
	if e.defaultArtifacts {
		os.Remove(filepath.Dir(e.Artifacts))
	}
}

// resolvePath makes a relative path from the Makefile (relative to the
// repository root) usable from a test's working directory (its package
// directory).
func resolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if _, err := os.Stat(p); err == nil {
		abs, _ := filepath.Abs(p)
		return abs
	}
	dir, _ := os.Getwd()
	for dir != "/" && dir != "." {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, p)
		}
		dir = filepath.Dir(dir)
	}
	return p
}

// CheckHost reports why this host cannot run the harness: not root, or a
// host tool or the static busybox missing. nil means it can.
func CheckHost() error {
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "must run as root (network namespaces, taps, nginx, dnsmasq)")
	}
	for _, tool := range HostTools {
		if _, err := exec.LookPath(tool); err != nil {
			problems = append(problems, "missing host tool "+tool)
		}
	}
	if _, err := os.Stat(HostBusybox); err != nil {
		problems = append(problems, "missing "+HostBusybox+" (Debian package busybox-static)")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; ") +
			" (make test installs qemu-system-x86 dnsmasq nginx-light squashfs-tools e2fsprogs busybox-static iproute2)")
	}
	return nil
}

// Require is the first call of every boot test: it skips when
// STREAMROOT_KERNEL is unset, and fails when the host or the files are not
// usable.
func (e *Env) Require(t testing.TB) {
	t.Helper()
	if e.Kernel == "" {
		t.Skip("set STREAMROOT_KERNEL and STREAMROOT_INITRAMFS to run the QEMU boot tests (make test does)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the QEMU boot tests must run as root: they create network namespaces and taps and run dnsmasq and nginx (make test does: sudo -E)")
	}
	if err := CheckHost(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.Kernel); err != nil {
		t.Fatalf("STREAMROOT_KERNEL=%s: %v (run make kernel, or point it at a vmlinuz)", e.Kernel, err)
	}
	if e.Initramfs == "" {
		t.Fatal("STREAMROOT_INITRAMFS is unset (run make initramfs; make test sets it)")
	}
	if _, err := os.Stat(e.Initramfs); err != nil {
		t.Fatalf("STREAMROOT_INITRAMFS=%s: %v (run make initramfs)", e.Initramfs, err)
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// ArtifactDir returns the directory for t's artifacts (console log, peer
// configs and logs), the same one for every call in one test. It is removed
// when t passes, unless KeepArtifacts. What an earlier run left there (an
// explicit STREAMROOT_ARTIFACTS used again) is removed first: the peers
// append to their logs, and a test that reads them back (nginx's access
// log for the bytes a boot moved) would count that run's requests too.
func (e *Env) ArtifactDir(t testing.TB) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if dir, ok := e.artifacts[t.Name()]; ok {
		return dir
	}
	dir := filepath.Join(e.Artifacts, unsafeName.ReplaceAllString(t.Name(), "_"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("artifacts: an earlier run's: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	e.artifacts[t.Name()] = dir
	t.Cleanup(func() {
		if t.Failed() || e.KeepArtifacts {
			t.Logf("artifacts kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// acquireVMSlot blocks until one of e.VMSlots lock files in the cache can be
// locked, or ctx ends. Locks are per open file, so they count guests both
// inside this process and across test processes (go test ./... runs packages
// in parallel).
func (e *Env) acquireVMSlot(ctx context.Context) (release func(), err error) {
	dir := filepath.Join(e.Cache, "locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for {
		for i := 0; i < e.VMSlots; i++ {
			f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("vm-slot-%d", i)), os.O_CREATE|os.O_RDWR, 0o644)
			if err != nil {
				return nil, err
			}
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
				return func() { f.Close() }, nil
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no free VM slot (%d in use): %w", e.VMSlots, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// lockFile takes an exclusive flock on path, waiting at most timeout.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: still held after %s: %w", path, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// runCmd runs a short host command, bounded by timeout, and returns its
// combined output; the error includes the command line and the output.
func runCmd(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %s", timeout)
		}
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// process is a long-running peer (dnsmasq, nginx, QEMU) started in its own
// process group, so that Kill reaches its children (nginx workers) too.
type process struct {
	name  string
	cmd   *exec.Cmd
	done  chan struct{} // closed when the process has exited
	err   error         // cmd.Wait's result, valid after done
	start time.Time
	end   time.Time
}

// startProcess starts cmd in a new process group with SIGKILL as parent
// death signal (so peers die with a crashed or timed-out test binary).
func startProcess(name string, cmd *exec.Cmd) (*process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.WaitDelay = 5 * time.Second
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.start = time.Now()
	go func() {
		p.err = cmd.Wait()
		p.end = time.Now()
		close(p.done)
	}()
	return p, nil
}

// spawnReq asks the spawner thread to start a command.
type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

// spawn starts cmd from one OS thread that lives as long as the process.
// Pdeathsig fires when the *thread* that forked the child exits, and the
// harness makes threads exit on purpose (see Netns.Do), so children must
// not be forked from arbitrary threads. This is the package's one global:
// a property of the process, not of a test.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread must outlive every child
			for req := range spawnCh {
				req.errc <- req.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnCh <- spawnReq{cmd, errc}
	return <-errc
}

// Kill SIGKILLs the process group and waits (bounded) for the exit.
func (p *process) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	pgid := p.cmd.Process.Pid // Setpgid: the group id is the PID we started
	syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit 15s after SIGKILL", p.name, pgid)
	}
	// The leader is reaped; its children (nginx workers, which hold the
	// listening socket) may take a moment longer to die.
	deadline := time.Now().Add(10 * time.Second)
	for groupAlive(pgid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: processes of group %d still alive 10s after SIGKILL", p.name, pgid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// groupAlive reports whether a process of group pgid is alive (not a
// zombie: whoever adopted an orphan may reap it late).
func groupAlive(pgid int) bool {
	if syscall.Kill(-pgid, 0) == syscall.ESRCH {
		return false
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state ppid pgrp ...
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// Exited reports whether the process has exited.
func (p *process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
