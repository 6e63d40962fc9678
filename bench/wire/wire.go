// Package wire records when a boot's DHCP and first HTTP packets crossed a
// bridge, with the kernel's receive timestamps, and works out from them
// what the network alone cost that boot: the network floor of make bench.
//
// It reads an AF_PACKET socket itself rather than through a capture
// library: the module has none that works without cgo and libpcap, and what
// it needs is three fixed header layouts (Ethernet, IPv4, UDP/TCP) and the
// kernel's SO_TIMESTAMPNS stamp, which a user-space clock read after a
// wake-up would blur on a loaded 2-core host. DHCP itself is parsed by
// insomniacslk/dhcp.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// Event is one packet of interest.
type Event struct {
	At time.Time
	// DHCP is the message type of a DHCPv4 packet (0: not DHCP) and XID
	// its transaction id.
	DHCP dhcpv4.MessageType
	XID  uint32
	// TCP: a segment to or from the HTTP server's port. ClientPort names
	// the connection; FromServer its direction; SYN/ACK its flags; Payload
	// the bytes it carries.
	TCP        bool
	ClientPort uint16
	FromServer bool
	SYN, ACK   bool
	Payload    int
}

// maxEvents bounds what one capture keeps: the floor needs the first
// lease and the first request, which come in the first few dozen packets.
const maxEvents = 4096

// Parse reads one Ethernet frame. server and port name the HTTP server;
// ok is false for frames of no interest (or too short to be what their
// headers say).
func Parse(frame []byte, server net.IP, port uint16) (ev Event, ok bool) {
	if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:14]) != 0x0800 {
		return ev, false
	}
	ip := frame[14:]
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return ev, false
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ihl < 20 || total < ihl || total > len(ip) {
		return ev, false
	}
	if binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 { // a later fragment: no L4 header
		return ev, false
	}
	src, dst := net.IP(ip[12:16]), net.IP(ip[16:20])
	l4 := ip[ihl:total]
	switch ip[9] {
	case unix.IPPROTO_UDP:
		if len(l4) < 8 {
			return ev, false
		}
		sp, dp := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		if !(sp == 68 && dp == 67 || sp == 67 && dp == 68) {
			return ev, false
		}
		m, err := dhcpv4.FromBytes(l4[8:])
		if err != nil || m.MessageType() == dhcpv4.MessageTypeNone {
			return ev, false
		}
		return Event{DHCP: m.MessageType(), XID: binary.BigEndian.Uint32(m.TransactionID[:])}, true
	case unix.IPPROTO_TCP:
		if len(l4) < 20 {
			return ev, false
		}
		sp, dp := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		off := int(l4[12]>>4) * 4
		if off < 20 || off > len(l4) {
			return ev, false
		}
		ev = Event{TCP: true, SYN: l4[13]&0x02 != 0, ACK: l4[13]&0x10 != 0, Payload: len(l4) - off}
		switch {
		case dp == port && dst.Equal(server):
			ev.ClientPort = sp
		case sp == port && src.Equal(server):
			ev.ClientPort, ev.FromServer = dp, true
		default:
			return Event{}, false
		}
		return ev, true
	}
	return ev, false
}

// Floor is what the network cost one boot, from its packets.
type Floor struct {
	// DHCPServer is the server's own turnaround for the first lease: the
	// first DISCOVER to the first OFFER (or a rapid-commit ACK) of its
	// transaction, plus the first REQUEST to the ACK. dnsmasq's address
	// probe falls inside it.
	DHCPServer time.Duration
	// DHCPExchange is the first DISCOVER to that ACK, the client's own
	// time between the messages included.
	DHCPExchange time.Duration
	// Connect is the first connection's SYN to its SYN-ACK.
	Connect time.Duration
	// FirstResponse is that connection's first request segment to the
	// first segment of the answer.
	FirstResponse time.Duration
}

// Network is the floor: what any network boot must wait for on this
// network (one lease, one connection, one answer), whatever the client.
func (f Floor) Network() time.Duration { return f.DHCPServer + f.Connect + f.FirstResponse }

// Summarize works out the Floor from a boot's events in order.
func Summarize(evs []Event) (Floor, error) {
	var f Floor
	first := map[[2]uint32]time.Time{} // (xid, type) -> first seen
	var acked bool
	for _, e := range evs {
		if e.DHCP == 0 || acked {
			continue
		}
		k := [2]uint32{e.XID, uint32(e.DHCP)}
		if _, seen := first[k]; !seen {
			first[k] = e.At
		}
		if e.DHCP != dhcpv4.MessageTypeAck && e.DHCP != dhcpv4.MessageTypeOffer {
			continue
		}
		disc, ok := first[[2]uint32{e.XID, uint32(dhcpv4.MessageTypeDiscover)}]
		if !ok {
			continue
		}
		if e.DHCP == dhcpv4.MessageTypeOffer {
			if first[k].Equal(e.At) {
				f.DHCPServer += e.At.Sub(disc)
			}
			continue
		}
		if req, ok := first[[2]uint32{e.XID, uint32(dhcpv4.MessageTypeRequest)}]; ok {
			f.DHCPServer += e.At.Sub(req)
		} else { // rapid commit: the ACK answers the DISCOVER
			f.DHCPServer += e.At.Sub(disc)
		}
		f.DHCPExchange = e.At.Sub(disc)
		acked = true
	}
	if !acked {
		return Floor{}, errors.New("no DHCPv4 DISCOVER answered by an ACK on the wire")
	}
	var conn uint16
	var syn, req time.Time
	for _, e := range evs {
		if !e.TCP {
			continue
		}
		switch {
		case syn.IsZero() && e.SYN && !e.ACK && !e.FromServer:
			conn, syn = e.ClientPort, e.At
		case syn.IsZero() || e.ClientPort != conn:
		case e.SYN && e.ACK && e.FromServer && f.Connect == 0:
			f.Connect = e.At.Sub(syn)
		case req.IsZero() && !e.FromServer && e.Payload > 0:
			req = e.At
		case !req.IsZero() && e.FromServer && e.Payload > 0:
			f.FirstResponse = e.At.Sub(req)
			return f, nil
		}
	}
	return f, errors.New("no HTTP request answered on the wire")
}

// Capture records the events on one interface until Stop.
type Capture struct {
	fd     int
	server net.IP
	port   uint16
	stop   atomic.Bool
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	evs    []Event
	err    error
}

// Start opens the capture on iface. do runs its function in the network
// namespace the interface lives in (the socket stays there); server and
// port name the HTTP server the guest's first request goes to.
func Start(do func(func() error) error, iface string, server net.IP, port uint16) (*Capture, error) {
	c := &Capture{fd: -1, server: server.To4(), port: port, done: make(chan struct{})}
	if c.server == nil {
		return nil, fmt.Errorf("wire: server %s is not IPv4", server)
	}
	err := do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("AF_PACKET socket (needs root): %w", err)
		}
		c.fd = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
		}
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		return nil, fmt.Errorf("wire: capture on %s: %w", iface, err)
	}
	go c.read()
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *Capture) read() {
	defer close(c.done)
	buf := make([]byte, 2048) // DHCP fits; larger frames are cut, their headers kept
	oob := make([]byte, 128)
	for !c.stop.Load() {
		n, oobn, _, _, err := unix.Recvmsg(c.fd, buf, oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("wire: read: %w", err)
			c.mu.Unlock()
			return
		}
		ev, ok := Parse(buf[:n], c.server, c.port)
		if !ok {
			continue
		}
		ev.At = stamp(oob[:oobn])
		c.mu.Lock()
		if len(c.evs) < maxEvents {
			c.evs = append(c.evs, ev)
		}
		full := len(c.evs) >= maxEvents
		c.mu.Unlock()
		if full {
			return
		}
	}
}

// stamp is the kernel's receive time from the control message, or now
// when there is none.
func stamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Now()
}

// Stop ends the capture and returns what it recorded, in order. It may be
// called more than once (a test's cleanup after its own call).
func (c *Capture) Stop() ([]Event, error) {
	c.once.Do(func() {
		c.stop.Store(true)
		<-c.done // the read times out within 200 ms
		unix.Close(c.fd)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evs, c.err
}
