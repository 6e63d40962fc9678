package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PeerFiles are a server's files in a test's namespace (a DHCP server's
// log and lease database) and its process.
type PeerFiles struct {
	Dir       string // the server's files
	LeaseFile string
	LogFile   string

	proc *process
}

// newPeerFiles makes a server's directory dir in ns's artifact directory
// and names its lease file ("" for none) and log file in it.
func newPeerFiles(t testing.TB, ns *Netns, dir, lease, log string) PeerFiles {
	t.Helper()
	p := PeerFiles{Dir: filepath.Join(ns.Dir, dir)}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if lease != "" {
		p.LeaseFile = filepath.Join(p.Dir, lease)
	}
	p.LogFile = filepath.Join(p.Dir, log)
	return p
}

// dnsmasqFiles are newPeerFiles for a dnsmasq, with what an earlier one
// left in dir removed: it appends to both files.
func dnsmasqFiles(t testing.TB, ns *Netns, dir string) PeerFiles {
	t.Helper()
	p := newPeerFiles(t, ns, dir, "leases", "dnsmasq.log")
	os.Remove(p.LeaseFile)
	os.Remove(p.LogFile)
	return p
}

// Log returns the server's log so far.
func (p *PeerFiles) Log() string {
	b, _ := os.ReadFile(p.LogFile)
	return string(b)
}

// Stop kills the server (its files stay readable).
func (p *PeerFiles) Stop() error { return p.proc.Kill() }

// readyPoll is how often a peer's readiness is checked.
const readyPoll = 50 * time.Millisecond

// waitReady checks ready until it reports nil, for at most within, or
// until p (when not nil) has exited; then the error is ready's last.
func waitReady(within time.Duration, p *process, ready func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("exited (%v) before it was ready: %w", p.err, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", within, err)
		}
		time.Sleep(readyPoll)
	}
}

// startPeer starts a server a test talks to (dnsmasq, Kea, nginx): cmd,
// with its stdout and stderr appended to outPath, then waits until ready
// (waitReady). A peer that exits first or is not ready in time is killed,
// and the error carries the tail of its output.
func startPeer(name string, cmd *exec.Cmd, outPath string, within time.Duration, ready func() error) (*process, error) {
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startProcess(name, cmd)
	if err != nil {
		return nil, err
	}
	if err := waitReady(within, p, ready); err != nil {
		p.Kill()
		se, _ := os.ReadFile(outPath)
		return nil, fmt.Errorf("%s did not start: %w\n%s:\n%s", name, err, outPath, Tail(string(se), 20))
	}
	return p, nil
}

// logShows is a readiness check: the file at path contains line.
func logShows(path, line string) func() error {
	return func() error {
		b, _ := os.ReadFile(path)
		if !strings.Contains(string(b), line) {
			return fmt.Errorf("no %q in %s yet:\n%s", line, path, Tail(string(b), 20))
		}
		return nil
	}
}

// portAnswers is a readiness check: addr accepts a TCP connection inside
// the namespace.
func (n *Netns) portAnswers(addr string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := n.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("%s accepts no connection in netns %s: %w", addr, n.Name, err)
		}
		return c.Close()
	}
}

// startTestPeer is startPeer for a peer that lives as long as the test:
// one that does not start fails t, and t.Cleanup kills it.
func startTestPeer(t testing.TB, name string, cmd *exec.Cmd, outPath string, within time.Duration, ready func() error) *process {
	t.Helper()
	p, err := startPeer(name, cmd, outPath, within, ready)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Kill(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// parseOptional parses a file a peer writes once it has something to say
// (a lease file): none yet means nothing to parse.
func parseOptional[T any](path string, parse func([]byte) ([]T, error)) ([]T, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parse(b)
}
