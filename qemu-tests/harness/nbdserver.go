package harness

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NBDServer is Debian's nbd-server in a namespace, exporting files read-only
// under names (the seed's "[discovery] exportname = …" setup). It runs as
// the daemon it is meant to be: nbd-server's foreground mode (-d) serves a
// single connection and exits, which would defeat reconnect tests.
type NBDServer struct {
	Dir     string
	Addr    string // 10.77.0.1:10809
	conf    string
	pidfile string
	ns      *Netns
	pid     int
}

// StartNBDServer exports each name → file of exports and waits until the
// port answers. It is killed by t.Cleanup.
func StartNBDServer(t testing.TB, ns *Netns, exports map[string]string) *NBDServer {
	t.Helper()
	return StartNBDServerOn(t, ns, ServerIP, exports)
}

// StartNBDServerOn is StartNBDServer listening on ip (ServerIP6: NBD over IPv6).
func StartNBDServerOn(t testing.TB, ns *Netns, ip string, exports map[string]string) *NBDServer {
	t.Helper()
	s := &NBDServer{Dir: filepath.Join(ns.Dir, "nbd-server"), Addr: net.JoinHostPort(ip, "10809"), ns: ns}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[generic]\nlistenaddr = %s\nport = 10809\nallowlist = true\n", ip)
	for name, file := range exports {
		conf += fmt.Sprintf("[%s]\nexportname = %s\nreadonly = true\nmultifile = false\ncopyonwrite = false\n", name, file)
	}
	s.conf = filepath.Join(s.Dir, "config")
	s.pidfile = filepath.Join(s.Dir, "nbd-server.pid")
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	t.Logf("nbd-server: pid %d, %s in %s exporting %v", s.pid, s.Addr, ns.Name, exports)
	return s
}

// Start runs nbd-server (again) and waits for its port.
func (s *NBDServer) Start() error {
	os.Remove(s.pidfile)
	out, err := s.ns.Command("nbd-server", "-C", s.conf, "-p", s.pidfile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nbd-server: %w: %s", err, out)
	}
	// It forks into the background: the one ready line is its pid file,
	// then its port.
	err = waitReady(10*time.Second, nil, func() error {
		b, err := os.ReadFile(s.pidfile)
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || perr != nil || pid <= 0 {
			return fmt.Errorf("no pid in %s: %s", s.pidfile, out)
		}
		s.pid = pid
		return nil
	})
	if err == nil {
		err = waitReady(10*time.Second, nil, s.ns.portAnswers(s.Addr))
	}
	if err != nil {
		return fmt.Errorf("nbd-server: %w", err)
	}
	return nil
}

// Stop kills nbd-server and the children it forked per client, so open
// connections break as in a real server crash.
func (s *NBDServer) Stop() error {
	if s.pid == 0 {
		return nil
	}
	pids := append(children(s.pid), s.pid)
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	for _, p := range pids {
		for i := 0; i < 100 && processExists(p); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	s.pid = 0
	return nil
}

// children lists the PIDs whose parent is pid.
func children(pid int) []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command may contain spaces: fields start after the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// processExists reports a live (non-zombie) process.
func processExists(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}
