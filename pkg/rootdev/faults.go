package rootdev

// The fault channel: how PID 1 learns what the block daemon found wrong
// with the image while the boot still runs. The daemon writes JSON lines
// on fd 4 (first its ready answer, then each kind of fault the first time
// it is found, and the answers to PID 1's syncs); PID 1 writes "sync N"
// lines on the boot pipe (fd 5) and reads fd 4 up to the daemon's "sync N":
// the daemon sends a fault before the failing read returns, so by then
// PID 1 has every fault behind the mount error it is explaining. When the
// boot pipe closes (the real init was exec'd) the daemon closes fd 4; the
// files in the run directory (blockd.fault, blockd.readfault) are the
// booted system's record of the same faults.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamroot/streamroot/pkg/hint"
)

// FaultKind says what a Fault stopped.
type FaultKind string

const (
	// FaultPermanent: the daemon stopped fetching for good (the image
	// changed on the server or was removed, or failed its whole-image
	// hash); reads of what it had not fetched fail.
	FaultPermanent FaultKind = "permanent"
	// FaultRead: a read the kernel asked for failed (a corrupt chunk, a
	// server that stopped answering); the kernel saw EIO.
	FaultRead FaultKind = "read"
)

// Fault is one thing the daemon found wrong with the image.
type Fault struct {
	Kind  FaultKind `json:"kind"`
	Error string    `json:"error"`
	Hint  string    `json:"hint,omitempty"`
}

// Err is the fault as the failure block shows it.
func (f Fault) Err() error {
	what := "the block daemon could not read the image for the kernel"
	if f.Kind == FaultPermanent {
		what = "the block daemon stopped reading the image"
	}
	return hint.New(fmt.Errorf("%s: %s", what, f.Error), f.Hint)
}

// permanentHint is the advice for a FaultPermanent.
const permanentHint = "the image on the server was replaced or removed while this node booted; reboot to boot the new image " +
	"(replace images under a new name, then point the boot config at it, so booting nodes keep theirs)"

// message is one line on fd 4; exactly one field is set.
type message struct {
	Ready *ready  `json:"ready,omitempty"`
	Fault *Fault  `json:"fault,omitempty"`
	Sync  *uint64 `json:"sync,omitempty"`
}

// syncWait bounds how long PID 1 waits for the daemon's answer to a sync:
// the daemon answers at once unless it is wedged or gone.
const syncWait = 15 * time.Second

// reporter is the daemon's end of the fault channel, and the keeper of the
// fault files. A nil reporter records nothing (tests of other parts).
type reporter struct {
	mu   sync.Mutex
	enc  *json.Encoder  // fd 4; nil once the boot pipe closed or fd 4 broke
	out  io.WriteCloser // what enc writes to
	run  *os.Root       // the run directory; nil: no record files
	log  *slog.Logger
	sent map[FaultKind]bool
}

func newReporter(out io.WriteCloser, log *slog.Logger) *reporter {
	return &reporter{enc: json.NewEncoder(out), out: out, log: log, sent: map[FaultKind]bool{}}
}

// send writes m on fd 4 if PID 1 still listens. A write that fails (PID 1
// exec'd the real init, closing its end) ends the channel: faults go on
// being recorded in the files.
func (r *reporter) send(m message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.enc == nil {
		return
	}
	if err := r.enc.Encode(m); err != nil {
		r.closeLocked()
	}
}

func (r *reporter) closeLocked() {
	if r.out != nil {
		r.out.Close()
	}
	r.enc, r.out = nil, nil
}

// answer sends the ready answer (or the daemon's failure) to PID 1.
func (r *reporter) answer(a ready) { r.send(message{Ready: &a}) }

// fault records f in its file and, the first time its kind is found, tells
// PID 1.
func (r *reporter) fault(f Fault) {
	if r == nil {
		return
	}
	r.mu.Lock()
	first := !r.sent[f.Kind]
	r.sent[f.Kind] = true
	r.mu.Unlock()
	if r.run != nil {
		var name string
		var data []byte
		switch f.Kind {
		case FaultPermanent: // the latest cause: a revocation after an earlier fault says why reads fail now
			name, data = faultFile, []byte(f.Error+"\n")
		case FaultRead: // the first failed read: the later ones follow from it
			if first {
				b, _ := json.Marshal(ready{Error: f.Error, Hint: f.Hint})
				name, data = readFaultFile, append(b, '\n')
			}
		}
		if name != "" {
			if err := r.run.WriteFile(name, data, 0o644); err != nil {
				r.log.Warn("cannot record the fault", "file", r.run.Name()+"/"+name, "err", err)
			}
		}
	}
	if first {
		r.send(message{Fault: &f})
	}
}

// permanent records err as the FaultPermanent that stopped the daemon.
func (r *reporter) permanent(err error) {
	r.fault(Fault{Kind: FaultPermanent, Error: err.Error(), Hint: permanentHint})
}

// serveSyncs answers PID 1's syncs from the boot pipe until it closes (the
// real init was exec'd, or PID 1 is gone), then closes fd 4.
func (r *reporter) serveSyncs(boot io.Reader) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error(fmt.Sprintf("fault channel: panic: %v", p))
		}
		r.mu.Lock()
		r.closeLocked()
		r.mu.Unlock()
	}()
	sc := bufio.NewScanner(boot)
	for sc.Scan() {
		if n, err := strconv.ParseUint(strings.TrimPrefix(sc.Text(), "sync "), 10, 64); err == nil {
			r.send(message{Sync: &n})
		}
	}
}

// daemonConn is PID 1's end of the fault channel: the daemon's fd 4 and
// the boot pipe's write end.
type daemonConn struct {
	dec    *json.Decoder
	boot   io.Writer
	mu     sync.Mutex // faults: a reader abandoned after a timeout may still add one
	faults []Fault
	syncs  uint64
	wait   time.Duration // for a sync's answer: syncWait
	broken error         // fd 4 ended or timed out: nothing more is read from it
}

func newDaemonConn(answers io.Reader, boot io.Writer) *daemonConn {
	return &daemonConn{dec: json.NewDecoder(answers), boot: boot, wait: syncWait}
}

// read decodes fd 4's messages, collecting faults, until done says the
// awaited one came, for at most wait. It reads on its own goroutine (a
// pipe read cannot be cancelled); after a timeout that goroutine is
// abandoned with the decoder (what it still reads is kept), and the
// channel counts as broken.
func (c *daemonConn) read(ctx context.Context, wait time.Duration, done func(message) bool) (message, error) {
	if c.broken != nil {
		return message{}, c.broken
	}
	type result struct {
		m   message
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var res result
		defer func() {
			if p := recover(); p != nil {
				res.err = fmt.Errorf("reading the block daemon's answer: panic: %v", p)
			}
			ch <- res
		}()
		for {
			var m message
			if res.err = c.dec.Decode(&m); res.err != nil {
				return
			}
			if m.Fault != nil {
				c.mu.Lock()
				c.faults = append(c.faults, *m.Fault)
				c.mu.Unlock()
			}
			if done(m) {
				res.m = m
				return
			}
		}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case res := <-ch:
		if res.err != nil {
			c.broken = res.err
		}
		return res.m, res.err
	case <-t.C:
		c.broken = fmt.Errorf("no answer from the block daemon within %s", wait)
	case <-ctx.Done():
		c.broken = ctx.Err()
	}
	return message{}, c.broken
}

// awaitReady reads the daemon's ready answer, for at most wait (in ram
// mode the whole image arrives first; progress is logged meanwhile).
func (c *daemonConn) awaitReady(wait time.Duration) (ready, error) {
	m, err := c.read(context.Background(), wait, func(m message) bool { return m.Ready != nil })
	switch {
	case errors.Is(err, io.EOF):
		return ready{}, errors.New("block daemon exited before its device was ready")
	case err != nil && strings.HasPrefix(err.Error(), "no answer"):
		return ready{}, fmt.Errorf("block daemon not ready after %s", wait)
	case err != nil:
		return ready{}, err
	}
	return *m.Ready, m.Ready.err()
}

// sync asks the daemon for every fault it found so far. A daemon that is
// gone or does not answer leaves the faults it sent until then.
func (c *daemonConn) sync(ctx context.Context) []Fault {
	if c.broken == nil {
		c.syncs++
		n := c.syncs
		done := func(m message) bool { return m.Sync != nil && *m.Sync == n }
		if _, err := fmt.Fprintf(c.boot, "sync %d\n", n); err != nil {
			// The daemon is gone; what it sent before is still in the
			// pipe, up to its end.
			done = func(message) bool { return false }
		}
		_, _ = c.read(ctx, c.wait, done)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.faults)
}
