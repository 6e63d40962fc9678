package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress shows how far a long read has come, on stderr when it is a
// terminal: "hashing img: 312 MiB of 1 GiB (30%), 250 MiB/s, ETA 3s",
// redrawn in place a few times a second and ended with a newline. A nil
// *progress does nothing, so callers need not test whether it is on.
type progress struct {
	w     io.Writer
	label string
	total int64
	start time.Time
	done  atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
}

// progressEvery is how often the line is redrawn.
const progressEvery = 250 * time.Millisecond

// startProgress starts a progress line for total bytes, or returns nil
// when stderr is not a terminal or --no-progress was given: scripts and
// logs get no carriage returns.
func startProgress(e *env, off bool, label string, total int64) *progress {
	if off || !e.tty || total <= 0 {
		return nil
	}
	p := &progress{w: e.stderr, label: label, total: total, start: time.Now(), stop: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(time.Now()))
			}
		}
	})
	return p
}

// add counts n more bytes done; safe from several goroutines.
func (p *progress) add(n int) {
	if p != nil {
		p.done.Add(int64(n))
	}
}

// finish stops the redraws and ends the line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	fmt.Fprintf(p.w, "\r%s\x1b[K\n", p.line(time.Now()))
}

// line is the progress text at now.
func (p *progress) line(now time.Time) string {
	done := min(p.done.Load(), p.total)
	s := fmt.Sprintf("%s: %s of %s (%d%%)", p.label, humanBytes(done), humanBytes(p.total), done*100/p.total)
	el := now.Sub(p.start).Seconds()
	if el <= 0 || done == 0 {
		return s
	}
	rate := float64(done) / el
	s += fmt.Sprintf(", %s/s", humanBytes(int64(rate)))
	if done < p.total {
		eta := time.Duration(float64(p.total-done) / rate * float64(time.Second))
		s += fmt.Sprintf(", ETA %s", eta.Round(time.Second))
	}
	return s
}

// progressReaderAt counts what is read through it.
type progressReaderAt struct {
	r io.ReaderAt
	p *progress
}

func (r progressReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := r.r.ReadAt(b, off)
	r.p.add(n)
	return n, err
}

// progressWriter counts what is written through it.
type progressWriter struct {
	w io.Writer
	p *progress
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(n)
	return n, err
}
