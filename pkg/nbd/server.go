package nbd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// Backend is what an export reads from. ReadAt must fill p completely or
// fail; ctx ends when the connection goes away.
type Backend interface {
	ReadAt(ctx context.Context, p []byte, off int64) error
	Size() int64
}

// Serve answers transmission-phase requests on conn (the kernel's end is
// already past the handshake: the netlink/ioctl attach skips it) until the
// client disconnects. Reads run concurrently, up to maxInFlight, because
// each may wait on the network; writes and trims are refused (the export is
// read-only; the overlay above takes writes).
func Serve(ctx context.Context, conn io.ReadWriter, b Backend, maxInFlight int, log *slog.Logger) error {
	if maxInFlight <= 0 {
		maxInFlight = 16
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wmu sync.Mutex
	write := func(parts ...[]byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		for _, p := range parts {
			if _, err := conn.Write(p); err != nil {
				return err
			}
		}
		return nil
	}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	size := b.Size()
	if size < 0 {
		return fmt.Errorf("nbd serve: backend size %d is negative", size)
	}
	for {
		req, err := ReadRequest(conn)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("nbd serve: %w", err)
		}
		switch req.Type {
		case CmdRead:
			if !inExport(req.Offset, req.Length, size) {
				if err := write(simpleReply(req.Handle, errInval)); err != nil {
					return err
				}
				continue
			}
			if req.Length == 0 {
				if err := write(simpleReply(req.Handle, 0)); err != nil {
					return err
				}
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Go(func() {
				defer func() { <-sem }()
				buf := make([]byte, req.Length)
				if err := b.ReadAt(ctx, buf, int64(req.Offset)); err != nil {
					log.Error("read failed; returning EIO to the kernel", "offset", req.Offset, "length", req.Length, "err", err)
					_ = write(simpleReply(req.Handle, errIO))
					return
				}
				if err := write(simpleReply(req.Handle, 0), buf); err != nil {
					cancel()
				}
			})
		case CmdDisc:
			return nil
		case CmdFlush:
			if err := write(simpleReply(req.Handle, 0)); err != nil {
				return err
			}
		case CmdWrite:
			// Swallow the payload to stay in sync, then refuse.
			if _, err := io.CopyN(io.Discard, conn, int64(req.Length)); err != nil {
				return err
			}
			if err := write(simpleReply(req.Handle, errPerm)); err != nil {
				return err
			}
		default:
			if err := write(simpleReply(req.Handle, errPerm)); err != nil {
				return err
			}
		}
	}
}

// inExport reports whether a read of n bytes at off lies inside an export
// of size bytes (size >= 0) and within one request's limit. Written so that
// nothing can wrap: off+n overflows for an offset near 2^64, and int64(off)
// goes negative from 2^63.
func inExport(off uint64, n uint32, size int64) bool {
	return n <= maxReadLength && off <= uint64(size) && uint64(n) <= uint64(size)-off
}
