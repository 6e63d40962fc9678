package rootdev

// The background fill must never hold the booted system back: on a
// one-CPU node the kernel's own work for it (receiving the stream,
// copying it into the memfd) competes with the real init, and under
// emulation a fill at full speed was seen starving the guest. So each fill
// worker runs on its own thread at the lowest CPU and I/O priority, kernel
// reads go first (pkg/chunkcache), and while other work wants the CPU the fill
// is held to a small rate.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// fillNice is the fill threads' nice value: the lowest.
	fillNice = 19
	// fillBusyRate bounds the fill while the booted system is busy (bytes/s).
	fillBusyRate = 4 << 20
	// fillBusyShare: the system is busy when processes other than the
	// daemon used more than this share of the CPU over the last sample.
	fillBusyShare = 0.25
	// fillSample is how often CPU use is sampled.
	fillSample = time.Second
)

// ioprio_set(2): no wrapper in x/sys.
const (
	ioprioWhoProcess = 1
	ioprioClassShift = 13
	ioprioClassIdle  = 3
)

// fillThread returns functions that lower the calling thread (the fill
// worker is locked to it) and raise it back to the priority it had when
// fillThread was called: the daemon's own, which is 0 under PID 1 but not
// under `nice` (a test run, a daemon started by hand).
func fillThread() (lower, raise func()) {
	tid := unix.Gettid()
	baseNice := 0
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil {
		baseNice = 20 - p // the raw syscall returns 20-nice
	}
	baseIOPrio, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		baseIOPrio = 0
	}
	set := func(nice int, ioprio uintptr) {
		// Failures only cost priority, never correctness: ignore them.
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
		_, _, _ = unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprio)
	}
	return func() { set(fillNice, ioprioClassIdle<<ioprioClassShift) }, func() { set(baseNice, baseIOPrio) }
}

// fillPacer bounds the fill's rate to fillBusyRate while other processes
// use more than fillBusyShare of the CPU, and lets it run free otherwise.
type fillPacer struct {
	mu        sync.Mutex
	sampledAt time.Time
	total     uint64 // all CPU time, from /proc/stat (clock ticks)
	busy      uint64 // user+nice+system of all processes
	self      uint64 // the daemon's own utime+stime
	isBusy    bool
	next      time.Time // the bucket: when the next byte may be fetched
	read      func() (total, busy, self uint64, err error)
	now       func() time.Time
	sleep     func(ctx context.Context, d time.Duration) error
}

// newFillPacer opens the CPU figures now: after switch_root the daemon's
// root is the emptied initramfs, with no /proc to open.
func newFillPacer() *fillPacer {
	p := &fillPacer{now: time.Now, sleep: sleepCtx}
	stat, err1 := os.Open("/proc/stat")
	self, err2 := os.Open("/proc/self/stat")
	if err := errors.Join(err1, err2); err != nil {
		p.read = func() (uint64, uint64, uint64, error) { return 0, 0, 0, err }
		return p
	}
	p.read = func() (uint64, uint64, uint64, error) { return readCPU(stat, self) }
	return p
}

// Pace is chunkcache.Options.FillPace.
func (p *fillPacer) Pace(ctx context.Context, n int64) error {
	p.mu.Lock()
	now := p.now()
	if now.Sub(p.sampledAt) >= fillSample {
		p.sample(now)
	}
	if !p.isBusy {
		p.next = time.Time{}
		p.mu.Unlock()
		return nil
	}
	if p.next.Before(now) {
		p.next = now
	}
	wait := p.next.Sub(now)
	p.next = p.next.Add(time.Duration(float64(n) / fillBusyRate * float64(time.Second)))
	p.mu.Unlock()
	return p.sleep(ctx, wait)
}

// Busy says whether the fill is being held back, for the progress line.
func (p *fillPacer) Busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.isBusy
}

func (p *fillPacer) sample(now time.Time) {
	total, busy, self, err := p.read()
	if err != nil {
		// Without figures assume the system is busy: pacing costs only time.
		p.isBusy, p.sampledAt = true, now
		return
	}
	if !p.sampledAt.IsZero() && total > p.total {
		others := float64(busy-p.busy) - float64(self-p.self)
		p.isBusy = others/float64(total-p.total) > fillBusyShare
	}
	p.sampledAt, p.total, p.busy, p.self = now, total, busy, self
}

// readCPU reads the system's CPU time and this process's, in clock ticks,
// from /proc/stat and /proc/self/stat opened before (proc files read anew
// from offset 0).
func readCPU(stat, me *os.File) (total, busy, self uint64, err error) {
	buf := make([]byte, 4096) // the first line of /proc/stat is all it needs
	n, err := stat.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return 0, 0, 0, err
	}
	total, busy, err = parseProcStat(string(buf[:n]))
	if err != nil {
		return 0, 0, 0, err
	}
	n, err = me.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return 0, 0, 0, err
	}
	self, err = parseSelfStat(string(buf[:n]))
	return total, busy, self, err
}

// parseProcStat sums the first "cpu" line: all columns, and the ones
// processes spend (user, nice, system). Interrupt time is left out of the
// latter: the fill's own network interrupts must not make the system look busy.
func parseProcStat(s string) (total, busy uint64, err error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q: %w", v, err)
		}
		if i >= 7 { // steal, guest, guest_nice: not this system's work
			break
		}
		total += n
		if i <= 2 {
			busy += n
		}
	}
	return total, busy, nil
}

// parseSelfStat returns utime+stime from /proc/self/stat; the command name
// (field 2) may hold spaces and parentheses, so fields count from the last ')'.
func parseSelfStat(s string) (uint64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/self/stat: no command field")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 { // utime and stime are fields 14 and 15 (f[11], f[12])
		return 0, fmt.Errorf("/proc/self/stat: %d fields", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/self/stat: utime %q stime %q", f[11], f[12])
	}
	return ut + st, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
