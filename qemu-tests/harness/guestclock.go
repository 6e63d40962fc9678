package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxStretch caps how far a loaded host may stretch a wait on a guest: a
// budget of d of the guest's time ends after maxStretch·d of wall time at
// the latest, so no wait is unbounded however starved the host.
const maxStretch = 4

// guestClock is the time a guest has had to make progress: wall time since
// QEMU started, less the time the host kept QEMU runnable but off every
// CPU. Under TCG the guest's vCPU is one host thread; while it waits on the
// run queue the guest stands still, so a boot timeout counted in wall time
// fails a healthy boot on a loaded host (2 QEMUs beside three debootstraps
// on 2 cores: every plain boot killed at its 150 s). Counting the guest's
// time bounds each wait by the guest's progress, and maxStretch still
// bounds it in wall time.
//
// The starvation is the largest run-queue wait of any of QEMU's threads
// (/proc/<pid>/task/<tid>/schedstat, its second field, in ns): the vCPU
// thread's, which waits most. Threads' waits overlap, so they are not
// summed.
type guestClock struct {
	pid   int
	start time.Time
	done  <-chan struct{} // closed when QEMU has exited: its PID may be reused

	mu      sync.Mutex
	starved time.Duration // the largest wait seen: a thread that exits takes its count along
}

func newGuestClock(pid int, start time.Time, done <-chan struct{}) *guestClock {
	return &guestClock{pid: pid, start: start, done: done}
}

// now returns the guest's time since QEMU started.
func (c *guestClock) now() time.Duration {
	return max(time.Since(c.start)-c.starvation(), 0)
}

// starvation returns how long the host has kept the guest from running.
func (c *guestClock) starvation() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
	default:
		c.starved = max(c.starved, runQueueWait(c.pid))
	}
	return c.starved
}

// runQueueWait returns the longest time one thread of pid has spent
// runnable on a run queue, or 0 when that cannot be read (the process has
// gone, or the kernel lacks schedstat: waits then count in wall time).
func runQueueWait(pid int) time.Duration {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var most time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(dir + "/" + task.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		if ns, err := strconv.ParseInt(f[1], 10, 64); err == nil && ns > 0 {
			most = max(most, time.Duration(ns))
		}
	}
	return most
}

// guestDeadline ends a wait after budget of the guest's time, or after
// maxStretch·budget of wall time, whichever comes first.
type guestDeadline struct {
	clock  *guestClock
	budget time.Duration
	at     time.Duration // on the guest's clock
	wallAt time.Time
	begun  time.Time
}

func (c *guestClock) deadline(budget time.Duration) guestDeadline {
	now := time.Now()
	return guestDeadline{clock: c, budget: budget, at: c.now() + budget, wallAt: now.Add(maxStretch * budget), begun: now}
}

// passed reports whether the wait is over.
func (d guestDeadline) passed() bool {
	return time.Now().After(d.wallAt) || d.clock.now() >= d.at
}

// String says how long the wait was, for errors: "150s of the guest's time
// (3m10s wall)".
func (d guestDeadline) String() string {
	wall := time.Since(d.begun)
	if wall-d.budget < time.Second {
		return d.budget.String()
	}
	return fmt.Sprintf("%s of the guest's time (%s wall on this loaded host)", d.budget, wall.Round(time.Second))
}

// expired returns a channel closed once the wait is over, looking at the
// guest's clock every pollEvery until then or until stop is closed: the
// one loop every wait on a guest selects on.
func (d guestDeadline) expired(stop <-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if d.passed() {
					close(out)
					return
				}
			}
		}
	}()
	return out
}

// pollEvery is how often the waits on a guest look at its clock.
const pollEvery = 500 * time.Millisecond
