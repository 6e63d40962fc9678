package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The nbd generic-netlink interface (linux/nbd-netlink.h); x/sys has none
// of these.
const (
	nbdCmdConnect    = 1
	nbdCmdDisconnect = 2

	nbdAttrIndex           = 1
	nbdAttrSizeBytes       = 2
	nbdAttrBlockSizeBytes  = 3
	nbdAttrTimeout         = 4
	nbdAttrServerFlags     = 5
	nbdAttrSockets         = 7
	nbdAttrDeadConnTimeout = 8

	nbdSockItem = 1
	nbdSockFD   = 1

	// ioctls (linux/nbd.h), for kernels without the netlink family.
	nbdSetSock       = 0xab00
	nbdSetBlkSize    = 0xab01
	nbdDoIt          = 0xab03
	nbdClearSock     = 0xab04
	nbdSetSizeBlocks = 0xab07
	nbdSetTimeout    = 0xab09
	nbdSetFlags      = 0xab0a
)

// Device is a kernel nbd device bound to our end of a socketpair.
type Device struct {
	Index int
	Path  string
	// Conn is the daemon's end: pass it to Serve.
	Conn *os.File
}

// AttachOptions configure the kernel side.
type AttachOptions struct {
	Size      int64
	BlockSize int64         // 512..4096, default 4096
	Timeout   time.Duration // per request; the kernel fails I/O after it
	ReadOnly  bool
}

// Attach creates a socketpair and connects a free /dev/nbdN to one end
// through netlink (the ioctl path blocks a thread in NBD_DO_IT, so it is only
// the fallback). Serve must answer on Device.Conn.
func Attach(o AttachOptions) (*Device, error) {
	if o.BlockSize == 0 {
		o.BlockSize = 4096
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("nbd: socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "nbd-daemon")
	kernel := os.NewFile(uintptr(fds[1]), "nbd-kernel")
	flags := uint64(FlagHasFlags | FlagSendFlush | FlagCanMultiConn)
	if o.ReadOnly {
		flags |= FlagReadOnly
	}
	idx, err := attachNetlink(int(kernel.Fd()), o, flags)
	if err != nil {
		var nerr error
		idx, nerr = attachIoctl(kernel, o, flags)
		if nerr != nil {
			ours.Close()
			kernel.Close()
			return nil, fmt.Errorf("nbd: attach: netlink: %v; ioctl: %w", err, nerr)
		}
	} else {
		// The kernel holds its own reference to the socket now.
		kernel.Close()
	}
	return &Device{Index: idx, Path: fmt.Sprintf("/dev/nbd%d", idx), Conn: ours}, nil
}

func attachNetlink(fd int, o AttachOptions, flags uint64) (int, error) {
	fam, err := netlink.GenlFamilyGet("nbd")
	if err != nil {
		return -1, fmt.Errorf("genl family nbd (is the nbd module loaded?): %w", err)
	}
	req := nl.NewNetlinkRequest(int(fam.ID), unix.NLM_F_ACK)
	req.AddData(&nl.Genlmsg{Command: nbdCmdConnect, Version: 1})
	req.AddData(nl.NewRtAttr(nbdAttrSizeBytes, nl.Uint64Attr(uint64(o.Size))))
	req.AddData(nl.NewRtAttr(nbdAttrBlockSizeBytes, nl.Uint64Attr(uint64(o.BlockSize))))
	req.AddData(nl.NewRtAttr(nbdAttrServerFlags, nl.Uint64Attr(flags)))
	// No NBD_CFLAG_DISCONNECT_ON_CLOSE: every mount and probe opens and
	// closes the device, and the last close would tear it down. A dead
	// daemon closes the socket, which fails pending I/O by itself.
	if o.Timeout > 0 {
		req.AddData(nl.NewRtAttr(nbdAttrTimeout, nl.Uint64Attr(uint64(o.Timeout.Seconds()))))
	}
	socks := nl.NewRtAttr(nbdAttrSockets|unix.NLA_F_NESTED, nil)
	item := socks.AddRtAttr(nbdSockItem|unix.NLA_F_NESTED, nil)
	item.AddRtAttr(nbdSockFD, nl.Uint32Attr(uint32(fd)))
	req.AddData(socks)
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return -1, fmt.Errorf("NBD_CMD_CONNECT: %w", err)
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofGenlmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			return -1, err
		}
		for _, a := range attrs {
			if a.Attr.Type == nbdAttrIndex && len(a.Value) >= 4 {
				return int(binary.NativeEndian.Uint32(a.Value)), nil
			}
		}
	}
	return -1, errors.New("NBD_CMD_CONNECT: no device index in the reply")
}

// attachIoctl is the pre-4.12 path: configure a free device with ioctls and
// park a locked OS thread in NBD_DO_IT for the device's lifetime.
func attachIoctl(kernel *os.File, o AttachOptions, flags uint64) (int, error) {
	for i := 0; i < 64; i++ {
		dev, err := os.OpenFile(fmt.Sprintf("/dev/nbd%d", i), os.O_RDWR, 0)
		if err != nil {
			if os.IsNotExist(err) {
				break
			}
			continue
		}
		fd := int(dev.Fd())
		if err := unix.IoctlSetInt(fd, nbdSetSock, int(kernel.Fd())); err != nil {
			dev.Close()
			continue // busy
		}
		steps := []struct {
			req uint
			val int
		}{
			{nbdSetBlkSize, int(o.BlockSize)},
			{nbdSetSizeBlocks, int(o.Size / o.BlockSize)},
			{nbdSetFlags, int(flags)},
			{nbdSetTimeout, int(o.Timeout.Seconds())},
		}
		for _, s := range steps {
			if err := unix.IoctlSetInt(fd, s.req, s.val); err != nil {
				_ = unix.IoctlSetInt(fd, nbdClearSock, 0)
				dev.Close()
				return -1, fmt.Errorf("nbd%d ioctl %#x: %w", i, s.req, err)
			}
		}
		go func() {
			runtime.LockOSThread() // NBD_DO_IT blocks this thread until disconnect
			_ = unix.IoctlSetInt(fd, nbdDoIt, 0)
			_ = unix.IoctlSetInt(fd, nbdClearSock, 0)
			dev.Close()
			kernel.Close()
		}()
		return i, nil
	}
	return -1, errors.New("no free /dev/nbdN")
}

// WaitReady waits until the kernel reports the device's size, i.e. the
// connection is live and the partition scan is done.
func WaitReady(index int, size int64, timeout time.Duration) error {
	p := fmt.Sprintf("/sys/block/nbd%d/size", index)
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(p)
		var sectors int64
		if err == nil {
			fmt.Sscanf(string(b), "%d", &sectors)
			if sectors*512 == size || (sectors > 0 && sectors*512 >= size-4096) {
				if _, err := os.Stat(fmt.Sprintf("/dev/nbd%d", index)); err == nil {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nbd%d did not come up within %s (size %d sectors)", index, timeout, sectors)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
