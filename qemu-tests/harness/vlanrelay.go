package harness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VLANRelay is a switch port in user space that carries one 802.1Q VLAN:
// the host kernel of these machines has no 8021q module, so the tagging
// side of a VLAN test cannot be a kernel VLAN link. The guest's NIC goes
// on Bridge (an isolated bridge of its own); the relay takes frames
// tagged with VID from there, strips the tag and hands them to br0 (DHCP,
// HTTP), and tags br0's frames on the way back. Untagged frames from the
// guest are dropped: the servers are reachable only on the VLAN.
//
// The relay reads frames with AF_PACKET, so it must see whole frames:
// checksum, scatter-gather and segmentation offloads are switched off on
// both of its veths (the guest's NIC needs csum=off,gso=off, which
// RelayNICModel sets), and the kernel's VLAN acceleration, which moves the
// tag out of the frame, is read back from PACKET_AUXDATA.
type VLANRelay struct {
	Bridge string // the bridge to put the guest's NIC on
	VID    int
	// Tagged and Untagged count the guest's frames relayed and dropped.
	Tagged, Untagged atomic.Int64
}

// RelayNICModel is the guest NIC behind a user-space relay (VLANRelay,
// LACPPartner): offloads off, so the frames the relay reads are complete.
const RelayNICModel = "virtio-net-pci,csum=off,gso=off"

// StartVLANRelay creates the guest-side bridge brv<vid>, the two veth
// pairs and the relay; all of it goes with the namespace.
func StartVLANRelay(t testing.TB, ns *Netns, vid int) *VLANRelay {
	t.Helper()
	r := &VLANRelay{Bridge: fmt.Sprintf("brv%d", vid), VID: vid}
	guest, server := fmt.Sprintf("rvg%d", vid), fmt.Sprintf("rvs%d", vid)
	steps := [][]string{
		{"link", "add", r.Bridge, "type", "bridge", "forward_delay", "0"},
		{"link", "set", r.Bridge, "up"},
		{"link", "add", guest + "b", "type", "veth", "peer", "name", guest},
		{"link", "set", guest + "b", "master", r.Bridge},
		{"link", "add", server + "b", "type", "veth", "peer", "name", server},
		{"link", "set", server + "b", "master", Bridge0},
	}
	for _, l := range []string{guest, guest + "b", server, server + "b"} {
		steps = append(steps, []string{"link", "set", l, "up"})
	}
	for _, s := range steps {
		if err := ns.IP(s...); err != nil {
			t.Fatalf("vlan relay: %v", err)
		}
	}
	var gfd, sfd int
	err := ns.Do(func() error {
		for _, l := range []string{guest, guest + "b", server, server + "b", Bridge0} {
			if err := offloadsOff(l); err != nil {
				return err
			}
		}
		var err error
		if gfd, err = packetSocket(guest); err != nil {
			return err
		}
		sfd, err = packetSocket(server)
		return err
	})
	if err != nil {
		t.Fatalf("vlan relay: %v", err)
	}
	done := make(chan struct{}, 2)
	go func() { r.pump(gfd, sfd, true); done <- struct{}{} }()
	go func() { r.pump(sfd, gfd, false); done <- struct{}{} }()
	t.Cleanup(func() {
		// Shutting the sockets down ends both pumps' reads.
		unix.Shutdown(gfd, unix.SHUT_RDWR)
		unix.Shutdown(sfd, unix.SHUT_RDWR)
		unix.Close(gfd)
		unix.Close(sfd)
		t.Logf("vlan relay %d: %d tagged frames from the guest relayed, %d untagged dropped", vid, r.Tagged.Load(), r.Untagged.Load())
	})
	t.Logf("vlan relay: VLAN %d between %s (the guest's NICs) and %s", vid, r.Bridge, Bridge0)
	return r
}

// pump relays frames from one socket to the other: from the guest only
// those tagged with r.VID (untagged), to the guest with the tag added.
func (r *VLANRelay) pump(from, to int, fromGuest bool) {
	buf := make([]byte, 65536+4)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
	for {
		n, oobn, _, sa, err := unix.Recvmsg(from, buf[4:], oob, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if n == 0 {
			return
		}
		if ll, ok := sa.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own writes
		}
		frame := buf[4 : 4+n]
		if n < 14 {
			continue
		}
		tci, tagged := auxVLAN(oob[:oobn])
		if !tagged && n >= 18 && binary.BigEndian.Uint16(frame[12:14]) == 0x8100 {
			tci, tagged = binary.BigEndian.Uint16(frame[14:16]), true
			copy(frame[12:], frame[16:]) // strip the tag written in the frame
			frame = frame[:n-4]
		}
		var out []byte
		if fromGuest {
			if !tagged || int(tci&0x0fff) != r.VID {
				r.Untagged.Add(1)
				continue
			}
			r.Tagged.Add(1)
			out = frame
		} else {
			if tagged {
				continue // not ours to carry
			}
			// Make room for the tag before the EtherType.
			out = buf[:len(frame)+4]
			copy(out[0:12], frame[0:12])
			binary.BigEndian.PutUint16(out[12:], 0x8100)
			binary.BigEndian.PutUint16(out[14:], uint16(r.VID))
		}
		// A frame the peer refuses (too big, link down) is lost, as on a wire.
		_, _ = unix.Write(to, out)
	}
}

// auxVLAN returns the VLAN tag the kernel took out of the frame, if any.
func auxVLAN(oob []byte) (uint16, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			continue
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
			return aux.Vlan_tci, true
		}
	}
	return 0, false
}

// packetSocket is a raw AF_PACKET socket bound to iface, all protocols,
// with PACKET_AUXDATA for the tags the kernel strips.
func packetSocket(iface string) (int, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return -1, err
	}
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, fmt.Errorf("packet socket on %s: %w", iface, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("PACKET_AUXDATA on %s: %w", iface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind packet socket to %s: %w", iface, err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// offloadsOff switches off checksum, scatter-gather, segmentation and
// receive-coalescing offloads on iface (ethtool -K iface tx off sg off tso
// off gso off gro off; this host has no ethtool), so frames crossing it
// are complete and at most one MTU long.
func offloadsOff(iface string) error {
	const siocEthtool = 0x8946
	// ETHTOOL_STXCSUM, _SSG, _STSO, _SGSO, _SGRO (linux/ethtool.h)
	cmds := []uint32{0x17, 0x19, 0x1f, 0x24, 0x2c}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, c := range cmds {
		val := &struct{ cmd, data uint32 }{c, 0}
		var ifr struct {
			name [unix.IFNAMSIZ]byte
			data unsafe.Pointer
			_    [16]byte
		}
		copy(ifr.name[:], iface)
		ifr.data = unsafe.Pointer(val)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), siocEthtool, uintptr(unsafe.Pointer(&ifr)))
		runtime.KeepAlive(val)
		if errno != 0 && errno != unix.EOPNOTSUPP {
			return fmt.Errorf("ethtool offload %#x off on %s: %w", c, iface, errno)
		}
	}
	return nil
}
