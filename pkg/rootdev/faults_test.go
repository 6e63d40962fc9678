package rootdev

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/hint"
	"golang.org/x/sys/unix"
)

// PID 1's side of fd 4 before the device is up: the device, the daemon's
// error with its hint, a daemon that died, one that never answers, and
// faults found before the answer (kept for later).
func TestAwaitReady(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		wait      time.Duration
		dev       string
		faults    int
		err, hint string
	}{
		{"ready", `{"ready":{"device":"/dev/nbd0","size":4096,"etag":"\"v1\""}}` + "\n", time.Minute, "/dev/nbd0", 0, "", ""},
		{"fault first", `{"fault":{"kind":"permanent","error":"gone"}}` + "\n" + `{"ready":{"device":"/dev/nbd1"}}` + "\n", time.Minute, "/dev/nbd1", 1, "", ""},
		{"failed", `{"ready":{"error":"resolve boot.lab: no such host","hint":"check the DNS"}}` + "\n", time.Minute, "", 0, "resolve boot.lab", "check the DNS"},
		{"died", "", time.Minute, "", 0, "block daemon exited before its device was ready", ""},
		{"died after a fault", `{"fault":{"kind":"read","error":"x"}}` + "\n", time.Minute, "", 1, "block daemon exited before its device was ready", ""},
		{"silent", "block", 200 * time.Millisecond, "", 0, "block daemon not ready after 200ms", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader = strings.NewReader(tc.in)
			if tc.in == "block" {
				pr, pw := io.Pipe()
				defer pw.Close()
				r = pr
			}
			c := newDaemonConn(r, io.Discard)
			got, err := c.awaitReady(tc.wait)
			if len(c.sync(context.Background())) != tc.faults {
				t.Errorf("faults %+v, want %d", c.faults, tc.faults)
			}
			if tc.err == "" {
				if err != nil || got.Device != tc.dev {
					t.Fatalf("awaitReady = %+v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || hint.Of(err) != tc.hint {
				t.Fatalf("awaitReady: %v (hint %q), want %q", err, hint.Of(err), tc.err)
			}
		})
	}
}

// fakeDaemon is the daemon's side of the fault channel over real pipes,
// as RunDaemon sets it up, and the Device PID 1 holds at its other end.
type fakeDaemon struct {
	rep    *reporter
	dev    *Device
	dir    string
	bootR  *os.File // the daemon's end of the boot pipe
	bootW  *os.File
	synced chan struct{} // closed when serveSyncs returned
}

func newFakeDaemon(t *testing.T, answerSyncs bool) *fakeDaemon {
	t.Helper()
	answerR, answerW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	bootR, bootW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { answerR.Close(); bootR.Close(); bootW.Close() })
	d := &fakeDaemon{rep: newReporter(answerW, quiet()), dir: t.TempDir(), bootR: bootR, bootW: bootW, synced: make(chan struct{})}
	run, err := os.OpenRoot(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close() })
	d.rep.run = run
	d.rep.answer(ready{Device: "/dev/nbd0", Size: 1 << 20})
	if answerSyncs {
		go func() { d.rep.serveSyncs(bootR); close(d.synced) }()
	}
	conn := newDaemonConn(answerR, bootW)
	conn.wait = 300 * time.Millisecond
	r, err := conn.awaitReady(time.Minute)
	if err != nil || r.Device != "/dev/nbd0" {
		t.Fatalf("awaitReady = %+v, %v", r, err)
	}
	d.dev = &Device{Mode: bootcfg.FetchStream, Block: r.Device, Size: r.Size, conn: conn, bootPipe: bootW}
	return d
}

func (d *fakeDaemon) file(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, name))
	if err != nil {
		t.Fatalf("the booted system's record: %v", err)
	}
	return string(b)
}

func TestFaultChannel(t *testing.T) {
	ctx := context.Background()
	eio := &os.PathError{Op: "mount", Path: "/dev/nbd0", Err: unix.EIO}

	t.Run("none", func(t *testing.T) {
		d := newFakeDaemon(t, true)
		if f := d.dev.Fault(ctx, eio); f != nil {
			t.Fatalf("no fault found, Fault = %v", f)
		}
	})

	// The first failed kernel read is what an I/O error at mount time
	// reports; other mount errors do not borrow it.
	t.Run("read", func(t *testing.T) {
		d := newFakeDaemon(t, true)
		d.rep.fault(Fault{Kind: FaultRead, Error: "chunk 3: sha256 mismatch", Hint: "copy the image again"})
		d.rep.fault(Fault{Kind: FaultRead, Error: "chunk 4: sha256 mismatch", Hint: "later"})
		if f := d.dev.Fault(ctx, unix.EINVAL); f != nil {
			t.Errorf("a mount error that is no I/O error reports the read fault: %v", f)
		}
		f := d.dev.Fault(ctx, eio)
		if f == nil || f.Error() != "the block daemon could not read the image for the kernel: chunk 3: sha256 mismatch" || hint.Of(f) != "copy the image again" {
			t.Errorf("Fault = %v (hint %q)", f, hint.Of(f))
		}
		var rec ready
		if err := json.Unmarshal([]byte(d.file(t, readFaultFile)), &rec); err != nil || rec.Error != "chunk 3: sha256 mismatch" || rec.Hint != "copy the image again" {
			t.Errorf("blockd.readfault = %+v, %v", rec, err)
		}
	})

	// A permanent fault explains any mount error, and comes before a read
	// fault it caused.
	t.Run("permanent", func(t *testing.T) {
		d := newFakeDaemon(t, true)
		d.rep.fault(Fault{Kind: FaultRead, Error: "read 4096 bytes at 0: the image changed"})
		d.rep.permanent(errors.New("the image changed on the server"))
		for _, mountErr := range []error{unix.EINVAL, eio} {
			f := d.dev.Fault(ctx, mountErr)
			if f == nil || f.Error() != "the block daemon stopped reading the image: the image changed on the server" ||
				!strings.Contains(hint.Of(f), "reboot to boot the new image") {
				t.Errorf("Fault(%v) = %v (hint %q)", mountErr, f, hint.Of(f))
			}
		}
		if got := d.file(t, faultFile); got != "the image changed on the server\n" {
			t.Errorf("blockd.fault = %q", got)
		}
	})

	// After the exec (the boot pipe closes) the daemon stops talking on fd
	// 4 and never blocks on it; the files still record what it finds.
	t.Run("after the boot", func(t *testing.T) {
		d := newFakeDaemon(t, true)
		d.bootW.Close()
		<-d.synced
		done := make(chan struct{})
		go func() {
			for range 1000 { // far more than a pipe holds, were they sent
				d.rep.permanent(errors.New("the whole image does not match streamroot.sha256="))
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("the daemon blocked reporting a fault after the boot")
		}
		if got := d.file(t, faultFile); got != "the whole image does not match streamroot.sha256=\n" {
			t.Errorf("blockd.fault = %q", got)
		}
		if f := d.dev.Fault(ctx, eio); f != nil {
			t.Errorf("Fault after the boot pipe closed = %v", f)
		}
	})

	// A daemon that does not answer the sync costs PID 1 the wait, not
	// the boot's failure path; what it sent is still reported.
	t.Run("silent", func(t *testing.T) {
		d := newFakeDaemon(t, false)
		d.rep.fault(Fault{Kind: FaultRead, Error: "chunk 1: timeout", Hint: "h"})
		for i := range 2 {
			start := time.Now()
			if f := d.dev.Fault(ctx, eio); f == nil || !strings.Contains(f.Error(), "chunk 1: timeout") {
				t.Errorf("Fault #%d = %v", i, f)
			}
			if took := time.Since(start); took > 30*time.Second || i == 1 && took > 5*time.Second {
				t.Errorf("Fault #%d waited %s", i, took)
			}
		}
	})

	// A daemon that died after finding a fault: PID 1 still reads what it
	// sent.
	t.Run("daemon gone", func(t *testing.T) {
		d := newFakeDaemon(t, false)
		d.rep.permanent(errors.New("gone"))
		d.rep.mu.Lock()
		d.rep.closeLocked() // its fd 4 closes as it exits
		d.rep.mu.Unlock()
		d.bootR.Close()
		if f := d.dev.Fault(ctx, unix.EINVAL); f == nil || !strings.Contains(f.Error(), "stopped reading the image: gone") {
			t.Errorf("Fault = %v", f)
		}
	})

	// A read the cache fails is reported through readFaults before it
	// returns, with the advice for its cause.
	t.Run("from the cache", func(t *testing.T) {
		d := newFakeDaemon(t, true)
		cache, _, err := newCache(&Spec{Mode: bootcfg.FetchLazy, IOTimeout: 200 * time.Millisecond}, &source{Source: sized(1 << 20)}, d.rep, nil, quiet())
		if err != nil {
			t.Fatal(err)
		}
		if err := (&readFaults{Cache: cache, rep: d.rep}).ReadAt(ctx, make([]byte, 4096), 0); err == nil {
			t.Fatal("a read of a source that fails every read succeeded")
		}
		f := d.dev.Fault(ctx, eio)
		if f == nil || !strings.Contains(f.Error(), "could not read the image for the kernel") || !strings.Contains(hint.Of(f), "see its lines above (blockd:)") {
			t.Errorf("Fault = %v (hint %q)", f, hint.Of(f))
		}
	})
}
