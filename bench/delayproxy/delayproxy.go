// Package delayproxy is a user-space TCP proxy that adds round-trip latency:
// every chunk read from one side is written to the other side RTT/2 after
// it arrived, in order, without limiting bandwidth (chunks in flight are
// queued, not serialised behind each other's delay). It is how the
// benchmarks put a WAN between a client and an HTTP server that both live on
// this machine (loopback, or a network namespace of the QEMU harness).
package delayproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards every connection accepted on its listener to Target.
type Proxy struct {
	// Target is the upstream "host:port".
	Target string
	// RTT is the added round-trip time; each direction is delayed RTT/2.
	RTT time.Duration
	// Dial opens the upstream connection (default net.Dialer); a proxy in a
	// network namespace passes the namespace's dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  chan struct{}

	// Conns counts accepted connections; Up and Down count bytes forwarded
	// to and from the target.
	Conns    atomic.Int64
	Up, Down atomic.Int64
}

// Start serves ln until Close. It takes ownership of ln.
func (p *Proxy) Start(ln net.Listener) {
	p.ln = ln
	p.conns = map[net.Conn]struct{}{}
	p.done = make(chan struct{})
	if p.Dial == nil {
		var d net.Dialer
		p.Dial = d.DialContext
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.Conns.Add(1)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
}

// Listen opens a loopback listener on addr ("127.0.0.1:0") and starts
// serving it.
func Listen(addr, target string, rtt time.Duration) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{Target: target, RTT: rtt}
	p.Start(ln)
	return p, nil
}

// Addr is the listening address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every open connection and waits for the
// forwarding goroutines (bounded: they only wait on closed sockets and
// timers of at most RTT/2).
func (p *Proxy) Close() error {
	err := p.ln.Close()
	close(p.done)
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		select {
		case <-p.done:
			c.Close()
			return false
		default:
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) serve(down net.Conn) {
	if !p.track(down, true) {
		return
	}
	defer p.track(down, false)
	defer down.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	up, err := p.Dial(ctx, "tcp", p.Target)
	cancel()
	if err != nil {
		return
	}
	if !p.track(up, true) {
		return
	}
	defer p.track(up, false)
	defer up.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(up, down, &p.Up) }()
	go func() { defer wg.Done(); p.pipe(down, up, &p.Down) }()
	wg.Wait()
}

type chunk struct {
	at   time.Time
	data []byte
	eof  bool
}

// pipe copies src to dst, each chunk RTT/2 after it was read. When src
// ends, dst's write side is closed (after the delay) so a half-close
// travels like the data does.
func (p *Proxy) pipe(dst, src net.Conn, count *atomic.Int64) {
	half := p.RTT / 2
	// The queue bounds memory: 4096 chunks of at most 64 KiB in flight.
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{at: time.Now(), data: buf[:n]}
			}
			if err != nil {
				q <- chunk{at: time.Now(), eof: errors.Is(err, io.EOF)}
				return
			}
		}
	}()
	for c := range q {
		if d := time.Until(c.at.Add(half)); d > 0 {
			select {
			case <-time.After(d):
			case <-p.done:
				go func() {
					for range q { // let the reader finish
					}
				}()
				return
			}
		}
		if c.data == nil {
			if tc, ok := dst.(interface{ CloseWrite() error }); ok && c.eof {
				tc.CloseWrite()
			} else {
				dst.Close()
			}
			continue
		}
		if _, err := dst.Write(c.data); err != nil {
			src.Close() // unblocks the reader; the queue drains
			for range q {
			}
			return
		}
		count.Add(int64(len(c.data)))
	}
}
