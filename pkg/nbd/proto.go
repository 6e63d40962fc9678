// Package nbd speaks the Network Block Device protocol in both directions
// streamroot needs:
//
//   - Serve answers the Linux nbd driver's requests on one end of a
//     socketpair, so a Go ReaderAt (an HTTP image, a chunk cache, a remote
//     NBD export) becomes /dev/nbdN; Attach hands the other end to the
//     kernel over the nbd generic-netlink family (ioctl fallback).
//   - Dial is a client for remote NBD servers (fixed newstyle handshake,
//     NBD_OPT_GO, falling back to NBD_OPT_EXPORT_NAME).
//
// Written here rather than taken from a library: pojntfx/go-nbd v0.3.2, the
// served Go implementation, answers one request at a time (the kernel sends
// many in parallel, and each may wait on the network) and cannot advertise
// a read-only export; the kernel side (netlink attach) has no Go library.
package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Transmission-phase constants (nbd's doc/proto.md, linux/nbd.h).
const (
	requestMagic     = 0x25609513
	simpleReplyMagic = 0x67446698

	CmdRead  = 0
	CmdWrite = 1
	CmdDisc  = 2
	CmdFlush = 3
	CmdTrim  = 4

	FlagHasFlags     = 1 << 0
	FlagReadOnly     = 1 << 1
	FlagSendFlush    = 1 << 2
	FlagCanMultiConn = 1 << 8

	// Errors in replies are Linux errno values.
	errIO    = 5  // EIO
	errPerm  = 1  // EPERM
	errInval = 22 // EINVAL
)

// Handshake constants.
const (
	nbdMagic        = 0x4e42444d41474943 // "NBDMAGIC"
	optMagic        = 0x49484156454F5054 // "IHAVEOPT"
	repMagic        = 0x3e889045565a9
	hsFixedNewstyle = 1 << 0
	hsNoZeroes      = 1 << 1

	optExportName = 1
	optAbort      = 2
	optGo         = 7

	repAck  = 1
	repInfo = 3
	repErr  = 1 << 31

	infoExport = 0
)

// Request is one transmission-phase request.
type Request struct {
	Flags  uint16
	Type   uint16
	Handle uint64
	Offset uint64
	Length uint32
}

// ReadRequest reads one request header.
func ReadRequest(r io.Reader) (Request, error) {
	var b [28]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return Request{}, err
	}
	return ParseRequest(b[:])
}

// ParseRequest decodes a 28-byte request header.
func ParseRequest(b []byte) (Request, error) {
	if len(b) < 28 {
		return Request{}, fmt.Errorf("nbd: short request header (%d bytes)", len(b))
	}
	be := binary.BigEndian
	if m := be.Uint32(b); m != requestMagic {
		return Request{}, fmt.Errorf("nbd: bad request magic %#x", m)
	}
	return Request{
		Flags:  be.Uint16(b[4:]),
		Type:   be.Uint16(b[6:]),
		Handle: be.Uint64(b[8:]),
		Offset: be.Uint64(b[16:]),
		Length: be.Uint32(b[24:]),
	}, nil
}

// Marshal encodes the request header.
func (q Request) Marshal() []byte {
	b := make([]byte, 28)
	be := binary.BigEndian
	be.PutUint32(b, requestMagic)
	be.PutUint16(b[4:], q.Flags)
	be.PutUint16(b[6:], q.Type)
	be.PutUint64(b[8:], q.Handle)
	be.PutUint64(b[16:], q.Offset)
	be.PutUint32(b[24:], q.Length)
	return b
}

func simpleReply(handle uint64, errno uint32) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint32(b, simpleReplyMagic)
	binary.BigEndian.PutUint32(b[4:], errno)
	binary.BigEndian.PutUint64(b[8:], handle)
	return b
}

// ErrRemote is an error reply from a remote server.
var ErrRemote = errors.New("nbd: server returned an error")
