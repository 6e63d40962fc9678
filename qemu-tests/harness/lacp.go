package harness

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// LACPPartner is an 802.3ad switch in user space for a guest's bond: the
// host kernel has no bonding driver, and a Linux bridge never forwards
// LACP frames. Each of the guest's bonded NICs goes on a bridge of its own
// (Bridges, in order); the partner reads and writes their taps directly
// (AF_PACKET sees a bridge port's frames before the bridge does), answers
// every LACPDU as one aggregator in sync, collecting and distributing, and
// carries every other frame between the ports and br0 (DHCP, HTTP): from
// br0 to the port the guest last sent on, as a switch that learned its MAC.
type LACPPartner struct {
	Bridges []string
	// System is the partner's LACP system id: the guest's bond reports it
	// as its partner's MAC once negotiated.
	System net.HardwareAddr
	// Answered counts the LACPDUs answered.
	Answered atomic.Int64

	t     testing.TB
	ns    *Netns
	ports int
	mu    sync.Mutex
	last  int            // the tap fd the guest last sent data on
	seen  map[string]int // frames from the guest by port and EtherType, for the log
	ended []string       // why a port's reader stopped
}

// LACPNICModel is the guest NIC of an 802.3ad bond: RelayNICModel with a
// speed and full duplex, which virtio-net otherwise leaves unknown, and
// the bonding driver sends no LACPDU on a port that is not full duplex.
const LACPNICModel = RelayNICModel + ",speed=1000,duplex=full"

// lacpMAC is the Slow Protocols multicast address LACPDUs go to.
var lacpMAC = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x02}

// StartLACPPartner makes ports isolated bridges brl0… for the guest's
// NICs and a veth to br0; the taps must be the namespace's first ports
// taps (tap0…: the VM's NICs in order, the first Boot of the namespace).
func StartLACPPartner(t testing.TB, ns *Netns, ports int) *LACPPartner {
	t.Helper()
	p := &LACPPartner{System: net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x11, 0x11}, last: -1, seen: map[string]int{}}
	var steps [][]string
	for i := 0; i < ports; i++ {
		br := fmt.Sprintf("brl%d", i)
		p.Bridges = append(p.Bridges, br)
		steps = append(steps, []string{"link", "add", br, "type", "bridge", "forward_delay", "0"}, []string{"link", "set", br, "up"})
	}
	steps = append(steps,
		[]string{"link", "add", "rls0b", "type", "veth", "peer", "name", "rls0"},
		[]string{"link", "set", "rls0b", "master", Bridge0},
		[]string{"link", "set", "rls0b", "up"}, []string{"link", "set", "rls0", "up"})
	for _, s := range steps {
		if err := ns.IP(s...); err != nil {
			t.Fatalf("lacp partner: %v", err)
		}
	}
	p.t = t
	p.ns = ns
	p.ports = ports
	t.Logf("lacp partner: system %s on %v, data to %s", p.System, p.Bridges, Bridge0)
	return p
}

// Attach opens the guest's taps (after Boot created them) and starts the
// partner; it ends with the test.
func (p *LACPPartner) Attach() {
	t := p.t
	t.Helper()
	var taps []int
	var server int
	err := p.ns.Do(func() error {
		for _, l := range []string{"rls0", "rls0b", Bridge0} {
			if err := offloadsOff(l); err != nil {
				return err
			}
		}
		for i := 0; i < p.ports; i++ {
			fd, err := packetSocket(fmt.Sprintf("tap%d", i))
			if err != nil {
				return err
			}
			taps = append(taps, fd)
		}
		var err error
		server, err = packetSocket("rls0")
		return err
	})
	if err != nil {
		t.Fatalf("lacp partner: %v", err)
	}
	for i, fd := range taps {
		go p.fromGuest(fd, i+1, server)
	}
	go p.fromServer(server)
	t.Cleanup(func() {
		for _, fd := range append(taps, server) {
			unix.Shutdown(fd, unix.SHUT_RDWR)
			unix.Close(fd)
		}
		p.mu.Lock()
		t.Logf("lacp partner: %d LACPDUs answered; frames from the guest by port and EtherType %v; readers ended: %v", p.Answered.Load(), p.seen, p.ended)
		p.mu.Unlock()
	})
}

// fromGuest answers LACPDUs on one port and passes data to br0.
func (p *LACPPartner) fromGuest(fd, port, server int) {
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if err == unix.EINTR || err == unix.ENETDOWN {
				continue // a tap goes down and up while QEMU opens it
			}
			p.mu.Lock()
			p.ended = append(p.ended, fmt.Sprintf("port %d: %v", port, err))
			p.mu.Unlock()
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		f := buf[:n]
		if n < 14 {
			continue
		}
		p.mu.Lock()
		p.seen[fmt.Sprintf("%d/%04x", port, binary.BigEndian.Uint16(f[12:14]))]++
		p.mu.Unlock()
		if binary.BigEndian.Uint16(f[12:14]) == 0x8809 {
			if reply := p.answer(f, port); reply != nil {
				_, _ = unix.Write(fd, reply)
				p.Answered.Add(1)
			}
			continue
		}
		p.mu.Lock()
		p.last = fd
		p.mu.Unlock()
		_, _ = unix.Write(server, f)
	}
}

// fromServer passes br0's frames to the port the guest last sent on.
func (p *LACPPartner) fromServer(server int) {
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(server, buf, 0)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		p.mu.Lock()
		fd := p.last
		p.mu.Unlock()
		if fd >= 0 {
			_, _ = unix.Write(fd, buf[:n])
		}
	}
}

// answer is the partner's LACPDU for the guest's one on port: our actor
// information, in sync, collecting and distributing, and the guest's
// actor information echoed as our partner's.
func (p *LACPPartner) answer(f []byte, port int) []byte {
	// Ethernet header, then subtype 1 (LACP), version, actor TLV (1, 20).
	if len(f) < 14+2+20 || f[14] != 1 || f[16] != 1 || f[17] != 20 {
		return nil
	}
	guestActor := f[18 : 18+18] // priority … state, without the reserved bytes
	out := make([]byte, 14+110)
	copy(out[0:6], lacpMAC)
	copy(out[6:12], []byte{0x02, 0x00, 0x00, 0x00, 0x11, byte(0x10 + port)})
	binary.BigEndian.PutUint16(out[12:], 0x8809)
	b := out[14:]
	b[0], b[1] = 1, 1 // LACP, version 1
	// Actor: system priority, system, key, port priority, port, state.
	b[2], b[3] = 1, 20
	binary.BigEndian.PutUint16(b[4:], 0x8000)
	copy(b[6:12], p.System)
	binary.BigEndian.PutUint16(b[12:], 1)
	binary.BigEndian.PutUint16(b[14:], 0x80)
	binary.BigEndian.PutUint16(b[16:], uint16(port))
	// Activity, short timeout, aggregation, sync, collecting, distributing.
	b[18] = 0x3f
	// Partner: the guest's actor as it sent it.
	b[22], b[23] = 2, 20
	copy(b[24:42], guestActor)
	// Collector information: max delay 0; then the terminator and padding.
	b[42], b[43] = 3, 16
	if bytes.Equal(b[24:26], []byte{0, 0}) {
		return nil // no system priority: not a real actor
	}
	return out
}
