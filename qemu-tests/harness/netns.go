package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	netnsDir  = "/var/run/netns"
	ownerDir  = "/run/streamroot-tests/netns" // <ns> -> "<pid> <starttime>" of the test binary
	nsPrefix  = "sr-"
	ipTimeout = 20 * time.Second
)

// Netns is one test's network namespace: lo up, bridge br0 (10.77.0.1/24)
// for the DHCP and HTTP servers, and an isolated bridge br1 (10.78.0.1/24)
// with no server. Guests' taps are created inside it, and QEMU runs inside
// it, so no guest traffic can leave it. Nothing connects it to the host's
// network.
type Netns struct {
	Name string // sr-<8 hex>
	Dir  string // artifact directory of the test

	mu      sync.Mutex
	nextTap int
}

var sweepOnce sync.Once

// NewNetns creates a namespace for t (removed by t.Cleanup, after the
// processes started in it are killed: cleanups run last-in first-out).
func (e *Env) NewNetns(t testing.TB) *Netns {
	t.Helper()
	return NewNetns(t, e.ArtifactDir(t))
}

// NewNetns creates a namespace whose peers keep their files under dir.
func NewNetns(t testing.TB, dir string) *Netns {
	t.Helper()
	sweepOnce.Do(sweepStaleNetns)
	var b [4]byte
	rand.Read(b[:])
	n := &Netns{Name: nsPrefix + hex.EncodeToString(b[:]), Dir: dir}
	if _, err := runCmd(ipTimeout, "ip", "netns", "add", n.Name); err != nil {
		t.Fatalf("netns: %v", err)
	}
	writeOwner(n.Name)
	t.Cleanup(func() {
		if _, err := runCmd(ipTimeout, "ip", "netns", "del", n.Name); err != nil {
			t.Errorf("netns: %v", err)
		}
		os.Remove(filepath.Join(ownerDir, n.Name))
	})
	steps := [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", Bridge0, "type", "bridge", "forward_delay", "0"},
		{"addr", "add", Bridge0IP, "dev", Bridge0},
		{"link", "set", Bridge0, "up"},
		{"link", "add", Bridge1, "type", "bridge", "forward_delay", "0"},
		{"addr", "add", Bridge1IP, "dev", Bridge1},
		{"link", "set", Bridge1, "up"},
	}
	for _, s := range steps {
		if err := n.IP(s...); err != nil {
			t.Fatalf("netns %s: %v", n.Name, err)
		}
	}
	t.Logf("netns %s: br0 %s, br1 %s", n.Name, Bridge0IP, Bridge1IP)
	return n
}

// IP runs `ip -n <ns> args...`.
func (n *Netns) IP(args ...string) error {
	_, err := runCmd(ipTimeout, "ip", append([]string{"-n", n.Name}, args...)...)
	return err
}

// Command returns a command that runs inside the namespace
// (`ip netns exec <ns> name args...`; ip execs, so the PID is the program's).
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// AddTap creates a persistent tap device in the namespace, enslaved to
// bridge and up, and returns its name (tap0, tap1, ... per namespace).
func (n *Netns) AddTap(bridge string) (string, error) {
	n.mu.Lock()
	name := "tap" + strconv.Itoa(n.nextTap)
	n.nextTap++
	n.mu.Unlock()
	for _, s := range [][]string{
		{"tuntap", "add", "dev", name, "mode", "tap"},
		{"link", "set", name, "master", bridge},
		{"link", "set", name, "up"},
	} {
		if err := n.IP(s...); err != nil {
			return "", err
		}
	}
	return name, nil
}

// Do runs fn on an OS thread that has entered the namespace. Sockets fn
// creates belong to the namespace (and stay there when used from other
// goroutines later); goroutines fn starts do NOT run in the namespace. The
// thread is never unlocked, so the runtime discards it when fn returns.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join(netnsDir, n.Name))
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// doIn runs fn inside the namespace n and hands back its value: the
// sockets it opens stay bound to that namespace after the thread leaves it.
func doIn[T any](n *Netns, fn func() (T, error)) (T, error) {
	var v T
	err := n.Do(func() error {
		var err error
		v, err = fn()
		return err
	})
	return v, err
}

// DialContext dials addr from inside the namespace.
func (n *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return doIn(n, func() (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
}

// Listen opens a listener inside the namespace (e.g. a Go HTTP server on
// 10.77.0.1:8080); it can be served from any goroutine.
func (n *Netns) Listen(network, addr string) (net.Listener, error) {
	return doIn(n, func() (net.Listener, error) { return net.Listen(network, addr) })
}

// ListenPacket opens a packet socket inside the namespace (e.g. a UDP
// relay on br1's address).
func (n *Netns) ListenPacket(network, addr string) (net.PacketConn, error) {
	return doIn(n, func() (net.PacketConn, error) { return net.ListenPacket(network, addr) })
}

// HTTPClient returns a client whose connections are made inside the
// namespace. It never uses a proxy and never resolves names: give it URLs
// with IP addresses.
func (n *Netns) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         n.DialContext,
			DisableCompression:  true,
			MaxIdleConnsPerHost: 2,
		},
	}
}

// writeOwner records which test process owns a namespace, so a later run
// can remove namespaces left behind by a killed one.
func writeOwner(ns string) {
	if os.MkdirAll(ownerDir, 0o755) != nil {
		return
	}
	os.WriteFile(filepath.Join(ownerDir, ns), []byte(selfIdentity()), 0o644)
}

// selfIdentity is "<pid> <starttime>", unique across PID reuse.
func selfIdentity() string { return processIdentity(os.Getpid()) }

func processIdentity(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces; fields after ')' are plain.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return strconv.Itoa(pid) + " " + f[19] // field 22: starttime
}

// sweepStaleNetns removes namespaces this harness created in a test process
// that no longer exists (killed by go test's -timeout, say), after killing
// the processes that test started in them (by PID, from `ip netns pids`).
func sweepStaleNetns() {
	entries, err := os.ReadDir(ownerDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		ns := e.Name()
		if !strings.HasPrefix(ns, nsPrefix) {
			continue
		}
		owner, _ := os.ReadFile(filepath.Join(ownerDir, ns))
		f := strings.Fields(string(owner))
		if len(f) == 2 {
			if pid, err := strconv.Atoi(f[0]); err == nil && processIdentity(pid) == string(owner) {
				continue // its test process is still running
			}
		}
		if out, err := runCmd(ipTimeout, "ip", "netns", "pids", ns); err == nil {
			for _, p := range strings.Fields(out) {
				if pid, err := strconv.Atoi(p); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		runCmd(ipTimeout, "ip", "netns", "del", ns)
		os.Remove(filepath.Join(ownerDir, ns))
	}
}
