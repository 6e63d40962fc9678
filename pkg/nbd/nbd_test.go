package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/streamroot/streamroot/internal/testimg"
)

type memBackend []byte

func (m memBackend) Size() int64 { return int64(len(m)) }
func (m memBackend) ReadAt(_ context.Context, p []byte, off int64) error {
	copy(p, m[off:])
	return nil
}

// slowBackend delays reads at low offsets so replies come back out of order.
type slowBackend struct{ memBackend }

func (s slowBackend) ReadAt(ctx context.Context, p []byte, off int64) error {
	if off == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	return s.memBackend.ReadAt(ctx, p, off)
}

func socketpair(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
}

// The kernel's side of the transmission phase, played by the test: many
// requests in flight, replies matched by handle, writes refused.
func TestServe(t *testing.T) {
	img := testimg.Random(1<<20, 3)
	srv, kern := socketpair(t)
	defer kern.Close()
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), srv, slowBackend{img}, 4, slog.New(slog.DiscardHandler))
		srv.Close()
	}()

	reqs := []Request{
		{Type: CmdRead, Handle: 1, Offset: 0, Length: 4096},
		{Type: CmdRead, Handle: 2, Offset: 8192, Length: 65536},
		{Type: CmdRead, Handle: 3, Offset: 1<<20 - 512, Length: 512},
		{Type: CmdRead, Handle: 4, Offset: 1 << 20, Length: 512}, // beyond the end
		{Type: CmdWrite, Handle: 5, Offset: 0, Length: 3},
		{Type: CmdFlush, Handle: 6},
	}
	for _, q := range reqs {
		kern.Write(q.Marshal())
		if q.Type == CmdWrite {
			kern.Write([]byte("abc"))
		}
	}
	got := map[uint64]uint32{}
	var order []uint64
	for range reqs {
		var h [16]byte
		if _, err := io.ReadFull(kern, h[:]); err != nil {
			t.Fatal(err)
		}
		if m := binary.BigEndian.Uint32(h[:]); m != simpleReplyMagic {
			t.Fatalf("reply magic %#x", m)
		}
		errno, handle := binary.BigEndian.Uint32(h[4:]), binary.BigEndian.Uint64(h[8:])
		got[handle] = errno
		order = append(order, handle)
		for _, q := range reqs {
			if q.Handle == handle && q.Type == CmdRead && errno == 0 {
				buf := make([]byte, q.Length)
				if _, err := io.ReadFull(kern, buf); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf, img[q.Offset:q.Offset+uint64(q.Length)]) {
					t.Errorf("handle %d: wrong data", handle)
				}
			}
		}
	}
	want := map[uint64]uint32{1: 0, 2: 0, 3: 0, 4: errInval, 5: errPerm, 6: 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("errnos %v, want %v", got, want)
	}
	if order[0] == 1 {
		t.Errorf("reply order %v: the slow read did not let later ones pass", order)
	}
	kern.Write(Request{Type: CmdDisc}.Marshal())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(Request{Type: CmdRead, Handle: 7, Offset: 4096, Length: 512}.Marshal())
	f.Add([]byte{0x25, 0x60, 0x95, 0x13})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseRequest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(q.Marshal(), b[:28]) {
			t.Fatalf("round trip of %x gave %x", b[:28], q.Marshal())
		}
	})
}

// Against Debian's nbd-server: handshake, export size, read-only flag,
// concurrent reads, and a clear refusal of an unknown export.
//
// nbd-server runs as the daemon it is, forking per client: its foreground
// mode (-d) serves one connection in the main process, so a dial that timed
// out on a loaded host (the client hangs up mid-greeting) killed it with
// SIGPIPE and every later dial met a dead port.
func TestClientAgainstNBDServer(t *testing.T) {
	bin, err := exec.LookPath("nbd-server")
	if err != nil {
		t.Skip("nbd-server not installed (make test installs it)")
	}
	dir := t.TempDir()
	img := testimg.Random(3<<20+4096, 3)
	path := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(dir, "config")
	pidfile := filepath.Join(dir, "nbd-server.pid")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[generic]\nlistenaddr = 127.0.0.1\nport = %d\n[disk]\nexportname = %s\nreadonly = true\n", port, path)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-C", conf, "-p", pidfile).CombinedOutput(); err != nil {
		t.Fatalf("nbd-server: %v: %s", err, out)
	}
	pid := waitPidfile(t, pidfile)
	// The daemon leads its own session: its process group is it and the
	// children it forked per client.
	t.Cleanup(func() { _ = unix.Kill(-pid, unix.SIGKILL) })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// nbd-server may take seconds to listen on a loaded host: wait while it
	// runs (bounded at a minute), not for a fixed number of tries.
	var c *Client
	for deadline := time.Now().Add(time.Minute); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err = Dial(ctx, addr, "disk")
		cancel()
		if err == nil {
			break
		}
		if unix.Kill(pid, 0) != nil {
			t.Fatalf("nbd-server (pid %d) exited before it answered: %v", pid, err)
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer c.Close()
	if c.Size() != int64(len(img)) || !c.ReadOnly() {
		t.Fatalf("size %d readonly %v", c.Size(), c.ReadOnly())
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			off := int64(i) * 200_000
			buf := make([]byte, 100_000)
			if err := c.ReadAt(context.Background(), buf, off); err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(buf, img[off:off+int64(len(buf))]) {
				t.Errorf("read at %d: wrong data", off)
			}
		})
	}
	wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Dial(ctx, addr, "nosuch"); err == nil {
		t.Error("unknown export accepted")
	} else if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Errorf("error %q: want the server's refusal naming the export", err)
	}
}

// waitPidfile returns the pid a forking daemon wrote, waiting up to a
// minute: on a loaded host the fork and the write may lag.
func waitPidfile(t *testing.T, path string) int {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
	}
	t.Fatalf("no pid in %s after a minute", path)
	return 0
}
