package rootdev

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		in          string
		total, busy uint64
		ok          bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  10 2 3 100 5 7 11 13 17 19\ncpu0 1 2 3 4\n", 10 + 2 + 3 + 100 + 5 + 7 + 11, 15, true},
		{"cpu  1 2 3 4\n", 10, 6, true},
		{"cpu0 1 2 3 4\n", 0, 0, false},
		{"cpu  1 x 3 4\n", 0, 0, false},
		{"", 0, 0, false},
	} {
		total, busy, err := parseProcStat(tc.in)
		if (err == nil) != tc.ok || total != tc.total || busy != tc.busy {
			t.Errorf("parseProcStat(%q) = %d, %d, %v; want %d, %d, ok=%v", tc.in, total, busy, err, tc.total, tc.busy, tc.ok)
		}
	}
}

func TestParseSelfStat(t *testing.T) {
	rest := " S 1 2 3 4 5 6 7 8 9 10 41 59 0 0 20 0 9 0 100 200"
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"112 (exe)" + rest, 100, true},
		{"112 (a) b) (c)" + rest, 100, true}, // a command name with parentheses and spaces
		{"112 (exe) S 1 2", 0, false},
		{"112 exe" + rest, 0, false},
	} {
		got, err := parseSelfStat(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSelfStat(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// The pacer lets the fill run free while the daemon is the only thing
// working, holds it to fillBusyRate while others use the CPU, and assumes
// busy when it cannot read the figures.
func TestFillPacer(t *testing.T) {
	type sample struct {
		total, busy, self uint64
		err               error
	}
	for _, tc := range []struct {
		name    string
		samples []sample
		want    time.Duration // total wait asked for 8 MiB after the second sample
	}{
		{"idle", []sample{{1000, 100, 50, nil}, {2000, 200, 140, nil}}, 0},                   // others: 10 of 1000
		{"only the daemon works", []sample{{1000, 100, 50, nil}, {2000, 1000, 940, nil}}, 0}, // others: 10 of 1000
		{"busy", []sample{{1000, 100, 50, nil}, {2000, 900, 100, nil}}, 2 * time.Second},     // others: 750 of 1000
		{"unreadable", []sample{{0, 0, 0, unix.EIO}, {0, 0, 0, unix.EIO}}, 2 * time.Second},  // assume busy
		{"figures go backwards", []sample{{2000, 100, 50, nil}, {1000, 900, 100, nil}}, 0},   // first sample not busy
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			i := 0
			var waited time.Duration
			p := &fillPacer{
				read: func() (uint64, uint64, uint64, error) {
					s := tc.samples[min(i, len(tc.samples)-1)]
					i++
					return s.total, s.busy, s.self, s.err
				},
				now:   func() time.Time { return now },
				sleep: func(_ context.Context, d time.Duration) error { waited += d; now = now.Add(d); return nil },
			}
			if err := p.Pace(context.Background(), 1<<20); err != nil { // first sample
				t.Fatal(err)
			}
			now = now.Add(fillSample)
			waited = 0
			for range 8 {
				if err := p.Pace(context.Background(), 1<<20); err != nil {
					t.Fatal(err)
				}
			}
			// The bucket starts at the first paced chunk: 8 MiB at 4 MiB/s
			// is 2 s, of which the last chunk's share is still ahead.
			want := tc.want
			if want > 0 {
				want -= time.Second / 4
			}
			if waited != want {
				t.Errorf("waited %s for 8 MiB, want %s", waited, want)
			}
		})
	}
}

// fillThread lowers exactly the calling thread and raises it back.
func TestFillThread(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		tid := unix.Gettid()
		// The test may itself run under nice: compare with where it started.
		p0, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			t.Error(err)
			return
		}
		base := 20 - p0
		lower, raise := fillThread()
		lower()
		// The raw syscall returns 20-nice.
		if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err != nil || 20-p != fillNice {
			t.Errorf("after lower: nice %d (%v), want %d", 20-p, err, fillNice)
		}
		other := make(chan int)
		go func() {
			runtime.LockOSThread()
			p, _ := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
			other <- 20 - p
		}()
		if nice := <-other; nice != base {
			t.Errorf("another thread has nice %d after lower, want the process's %d", nice, base)
		}
		raise()
		if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err != nil || 20-p != base {
			t.Errorf("after raise: nice %d (%v), want the starting %d", 20-p, err, base)
		}
	}()
	<-done
}

// readCPU reads the handles again from the start each time: the daemon
// opens them before switch_root and cannot open them after.
func TestReadCPUAgain(t *testing.T) {
	stat, err := os.Open("/proc/stat")
	if err != nil {
		t.Skip(err)
	}
	defer stat.Close()
	self, err := os.Open("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	t1, b1, s1, err := readCPU(stat, self)
	if err != nil || t1 == 0 {
		t.Fatalf("first read: %d %d %d %v", t1, b1, s1, err)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	} // spend some CPU
	t2, b2, s2, err := readCPU(stat, self)
	if err != nil || t2 < t1 || b2 < b1 || s2 < s1 {
		t.Fatalf("second read went backwards or failed: %d→%d %d→%d %d→%d %v", t1, t2, b1, b2, s1, s2, err)
	}
}
