// Package udpdelay is a user-space UDP relay that adds round-trip latency,
// the UDP counterpart of delayproxy, for TFTP: every datagram is delayed
// RTT/2 in each direction, in order, through bounded queues (a full queue
// drops the datagram, as a congested link would; TFTP retransmits).
//
// TFTP answers each request from a new ephemeral server port, and the client
// then talks to that port. The relay therefore stands as the client's
// server: a datagram from a new client address gets its own upstream socket
// towards Target; a reply from Target's own address goes back through the
// listening socket, and a reply from any other server port gets its own
// downstream socket, so the client sees a new port per transfer too and
// every datagram, both ways, passes a delay queue.
package udpdelay

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the relay's bounds.
const (
	DefaultIdle        = 30 * time.Second
	DefaultMaxSessions = 64
	DefaultQueue       = 4096 // datagrams waiting in one direction of one path
	maxDatagram        = 65535
)

// Relay forwards datagrams between the clients of its listening socket and
// Target.
type Relay struct {
	// Target is the real server ("10.77.0.1:69").
	Target *net.UDPAddr
	// RTT is the added round-trip time; each direction is delayed RTT/2.
	RTT time.Duration
	// Listen opens the relay's further sockets: downstream ones on
	// DownAddr ("10.77.0.2:0") and upstream ones on UpAddr ("127.0.0.1:0"
	// or ":0"). Default net.ListenPacket; a relay in a network namespace
	// passes the namespace's.
	Listen           func(network, addr string) (net.PacketConn, error)
	DownAddr, UpAddr string
	// Idle closes a client's sockets after this long without a datagram
	// (default DefaultIdle); MaxSessions bounds the clients at once
	// (default DefaultMaxSessions): datagrams of further ones are dropped.
	Idle        time.Duration
	MaxSessions int

	ln       net.PacketConn
	mu       sync.Mutex
	sessions map[string]*session
	done     chan struct{}
	wg       sync.WaitGroup

	// Up and Down count bytes forwarded to and from Target; Dropped counts
	// datagrams dropped (full queue, too many clients, socket errors).
	Up, Down, Dropped atomic.Int64
}

// session is one client address and the sockets that serve it.
type session struct {
	client net.Addr
	up     net.PacketConn
	toUp   *queue
	down   map[string]*queue // server port's address → queue to the client from its downstream socket
	toLn   *queue            // replies from Target itself, sent from the listening socket
	last   atomic.Int64      // unix nanoseconds of the last datagram
	closed chan struct{}
	socks  []net.PacketConn
}

// Start serves ln until Close. It takes ownership of ln.
func (r *Relay) Start(ln net.PacketConn) {
	if r.Listen == nil {
		r.Listen = net.ListenPacket
	}
	if r.Idle <= 0 {
		r.Idle = DefaultIdle
	}
	if r.MaxSessions <= 0 {
		r.MaxSessions = DefaultMaxSessions
	}
	r.ln = ln
	r.sessions = map[string]*session{}
	r.done = make(chan struct{})
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.readLoop(ln, func(b []byte, from net.Addr) {
			if s := r.session(from); s != nil {
				s.toUp.push(b, r.Target)
			} else {
				r.Dropped.Add(1)
			}
		})
	}()
	go func() {
		defer r.wg.Done()
		r.reap()
	}()
}

// Addr is the listening address.
func (r *Relay) Addr() net.Addr { return r.ln.LocalAddr() }

// Close stops the relay and closes every socket; datagrams still queued are
// dropped.
func (r *Relay) Close() error {
	select {
	case <-r.done:
		return nil
	default:
	}
	close(r.done)
	err := r.ln.Close()
	r.mu.Lock()
	for k, s := range r.sessions {
		s.close()
		delete(r.sessions, k)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

// readLoop reads c until it is closed, handing each datagram (a copy) to f.
func (r *Relay) readLoop(c net.PacketConn, f func([]byte, net.Addr)) {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-r.done:
				return
			default:
				continue // e.g. ICMP port unreachable reported on a socket
			}
		}
		f(append([]byte(nil), buf[:n]...), from)
	}
}

// session returns the client's session, opening its upstream socket on the
// first datagram; nil when the relay is full or closing.
func (r *Relay) session(client net.Addr) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	default:
	}
	if s, ok := r.sessions[client.String()]; ok {
		s.last.Store(time.Now().UnixNano())
		return s
	}
	if len(r.sessions) >= r.MaxSessions {
		return nil
	}
	up, err := r.Listen("udp", r.UpAddr)
	if err != nil {
		return nil
	}
	s := &session{client: client, up: up, down: map[string]*queue{}, closed: make(chan struct{}), socks: []net.PacketConn{up}}
	s.last.Store(time.Now().UnixNano())
	s.toUp = r.newQueue(s, up, &r.Up)
	s.toLn = r.newQueue(s, r.ln, &r.Down)
	r.sessions[client.String()] = s
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.readLoop(up, func(b []byte, from net.Addr) { r.fromServer(s, b, from) })
	}()
	return s
}

// fromServer queues a reply to the client: from the listening socket when it
// came from Target itself, else from the downstream socket of that server
// port (opened on its first reply).
func (r *Relay) fromServer(s *session, b []byte, from net.Addr) {
	s.last.Store(time.Now().UnixNano())
	if from.String() == r.Target.String() {
		s.toLn.push(b, s.client)
		return
	}
	r.mu.Lock()
	q, ok := s.down[from.String()]
	if !ok {
		select {
		case <-s.closed:
			r.mu.Unlock()
			r.Dropped.Add(1)
			return
		default:
		}
		d, err := r.Listen("udp", r.DownAddr)
		if err != nil {
			r.mu.Unlock()
			r.Dropped.Add(1)
			return
		}
		s.socks = append(s.socks, d)
		q = r.newQueue(s, d, &r.Down)
		s.down[from.String()] = q
		server := from
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.readLoop(d, func(b []byte, c net.Addr) {
				if c.String() != s.client.String() {
					r.Dropped.Add(1) // only the session's client may use its port
					return
				}
				s.last.Store(time.Now().UnixNano())
				s.toUp.push(b, server)
			})
		}()
	}
	r.mu.Unlock()
	q.push(b, s.client)
}

// reap closes sessions idle for longer than Idle.
func (r *Relay) reap() {
	tick := time.NewTicker(max(r.Idle/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-r.done:
			return
		case now := <-tick.C:
			r.mu.Lock()
			for k, s := range r.sessions {
				if now.Sub(time.Unix(0, s.last.Load())) > r.Idle {
					s.close()
					delete(r.sessions, k)
				}
			}
			r.mu.Unlock()
		}
	}
}

// Sessions is the number of clients being relayed now.
func (r *Relay) Sessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

func (s *session) close() {
	close(s.closed)
	for _, c := range s.socks {
		c.Close()
	}
}

// queue delays datagrams by a fixed time and writes them from one socket, in
// order.
type queue struct {
	ch      chan pending
	half    time.Duration
	dropped *atomic.Int64
}

type pending struct {
	due time.Time
	b   []byte
	to  net.Addr
}

func (r *Relay) newQueue(s *session, from net.PacketConn, count *atomic.Int64) *queue {
	q := &queue{ch: make(chan pending, DefaultQueue), half: r.RTT / 2, dropped: &r.Dropped}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			var p pending
			select {
			case <-s.closed:
				return
			case p = <-q.ch:
			}
			if d := time.Until(p.due); d > 0 {
				timer.Reset(d)
				select {
				case <-s.closed:
					return
				case <-timer.C:
				}
			}
			// Counted before the write, so a reader that has the datagram
			// sees it counted.
			count.Add(int64(len(p.b)))
			if _, err := from.WriteTo(p.b, p.to); err != nil {
				count.Add(-int64(len(p.b)))
				r.Dropped.Add(1)
			}
		}
	}()
	return q
}

// push queues b for to, due RTT/2 from now; a full queue drops it.
func (q *queue) push(b []byte, to net.Addr) {
	select {
	case q.ch <- pending{time.Now().Add(q.half), b, to}:
	default:
		q.dropped.Add(1)
	}
}
