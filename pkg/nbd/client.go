package nbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Limits on what a remote server may claim. A hostile or broken server
// must not make the daemon allocate, index or attach by its numbers: every
// one is checked before use.
const (
	// MaxExportSize bounds the export size a server may advertise: 16 TiB,
	// far above any root image, and far below the int64 range (so offsets
	// and ends never wrap) and the kernel's sector counts.
	MaxExportSize = 16 << 40
	// maxOptReply bounds one option reply's payload (an export info is
	// 12 bytes; the protocol caps error strings at 4096).
	maxOptReply = 64 << 10
	// maxOptReplies bounds how many replies one option may get before
	// the server is taken for a broken one.
	maxOptReplies = 64
	// maxExportName is the protocol's limit on an export name.
	maxExportName = 4096
	// maxReadLength bounds one read request: the length field is 32 bits,
	// and servers refuse more than 32 MiB anyway.
	maxReadLength = 32 << 20
)

// ErrExportSize is returned (wrapped, with the server, the export and the
// size) when a server advertises an export size of 0 or above
// MaxExportSize. Retrying does not help: the server's configuration is
// wrong.
var ErrExportSize = errors.New("export size out of range")

// ErrRefused matches (errors.Is) a server's refusal of the export by name
// or by policy: the export name or the server's configuration is wrong,
// and asking again will not help.
var ErrRefused = errors.New("export refused")

// RefusedError is a server's refusal of an export, with its message
// (quoted: it is the server's text).
type RefusedError struct {
	Export string
	Msg    string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("server refused export %q: %s (check the export name and nbd-server's config)", e.Export, e.Msg)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// errOutOfRange is a read the client refuses to send: a caller's bug, not
// worth a reconnect.
var errOutOfRange = errors.New("nbd: read outside the export")

// Client is a connection to a remote NBD export (e.g. Debian's nbd-server),
// usable from many goroutines: requests are pipelined and matched to replies
// by handle.
type Client struct {
	conn     net.Conn
	size     int64
	flags    uint16
	wmu      sync.Mutex
	mu       sync.Mutex
	next     uint64
	pending  map[uint64]*call
	err      error
	closed   chan struct{}
	loopDone chan struct{}
	closeErr sync.Once
}

// call is one request in flight: the reply's data lands in buf.
type call struct {
	buf  []byte
	done chan error // buffered: the reader never blocks on it
}

// Export describes what the server offers.
func (c *Client) Size() int64        { return c.size }
func (c *Client) Flags() uint16      { return c.flags }
func (c *Client) ReadOnly() bool     { return c.flags&FlagReadOnly != 0 }
func (c *Client) RemoteAddr() string { return c.conn.RemoteAddr().String() }

// Dial connects to addr ("host:port") and opens export with the fixed
// newstyle handshake.
func Dial(ctx context.Context, addr, export string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nbd: dial %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	c, err := newClient(conn, export)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("nbd: %s export %q: %w", addr, export, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// newClient runs the handshake on conn and starts matching replies; the
// caller closes conn on an error.
func newClient(conn net.Conn, export string) (*Client, error) {
	c := &Client{conn: conn, pending: map[uint64]*call{}, closed: make(chan struct{}), loopDone: make(chan struct{})}
	if err := c.handshake(export); err != nil {
		return nil, err
	}
	// Checked here, once for both handshake paths: blockd indexes chunks
	// and the kernel counts sectors by this number.
	if c.size <= 0 || c.size > MaxExportSize {
		return nil, fmt.Errorf("%w: the server advertises %d bytes (%#x), the limit is %d (16 TiB) and 0 is refused: a broken or hostile server (check the export's file or device on the server)",
			ErrExportSize, uint64(c.size), uint64(c.size), int64(MaxExportSize))
	}
	go c.readLoop()
	return c, nil
}

func (c *Client) handshake(export string) error {
	be := binary.BigEndian
	if len(export) > maxExportName {
		return fmt.Errorf("export name of %d bytes: the protocol allows %d", len(export), maxExportName)
	}
	var hdr [18]byte
	if _, err := io.ReadFull(c.conn, hdr[:]); err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if be.Uint64(hdr[0:]) != nbdMagic {
		return errors.New("not an NBD server (bad magic)")
	}
	if be.Uint64(hdr[8:]) != optMagic {
		return errors.New("server speaks the old-style protocol only; configure nbd-server with named exports")
	}
	hs := be.Uint16(hdr[16:])
	if hs&hsFixedNewstyle == 0 {
		return errors.New("server does not support fixed newstyle negotiation")
	}
	cflags := uint32(hsFixedNewstyle)
	noZeroes := hs&hsNoZeroes != 0
	if noZeroes {
		cflags |= hsNoZeroes
	}
	if err := binary.Write(c.conn, be, cflags); err != nil {
		return err
	}
	// NBD_OPT_GO: export name, no info requests.
	data := make([]byte, 4+len(export)+2)
	be.PutUint32(data, uint32(len(export)))
	copy(data[4:], export)
	if err := c.sendOpt(optGo, data); err != nil {
		return err
	}
	gotInfo := false
	for range maxOptReplies {
		opt, typ, payload, err := c.readOptReply()
		if err != nil {
			return err
		}
		if opt != optGo {
			return fmt.Errorf("reply to option %d, expected %d", opt, optGo)
		}
		switch {
		case typ == repInfo:
			if len(payload) >= 12 && be.Uint16(payload) == infoExport {
				// The wire size is unsigned: keep all 64 bits until
				// newClient's range check (a huge one reads negative).
				c.size = int64(be.Uint64(payload[2:]))
				c.flags = be.Uint16(payload[10:])
				gotInfo = true
			}
		case typ == repAck:
			if !gotInfo {
				return errors.New("server acknowledged NBD_OPT_GO without export info")
			}
			return nil
		case typ == repErr|1: // NBD_REP_ERR_UNSUP: an old server; use EXPORT_NAME
			return c.exportName(export, noZeroes)
		case typ&repErr != 0:
			// The message is the server's text: quoted, so it cannot
			// drive the console.
			msg := fmt.Sprintf("%q", payload)
			if typ == repErr|6 || typ == repErr|2 { // UNKNOWN / POLICY
				return &RefusedError{Export: export, Msg: msg}
			}
			return fmt.Errorf("server error %#x: %s", typ, msg)
		}
	}
	return fmt.Errorf("more than %d replies to NBD_OPT_GO: not a working NBD server", maxOptReplies)
}

func (c *Client) exportName(export string, noZeroes bool) error {
	if err := c.sendOpt(optExportName, []byte(export)); err != nil {
		return err
	}
	n := 10
	if !noZeroes {
		n += 124
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.conn, b); err != nil {
		return fmt.Errorf("export %q: %w (an unknown export closes the connection)", export, err)
	}
	c.size = int64(binary.BigEndian.Uint64(b))
	c.flags = binary.BigEndian.Uint16(b[8:])
	return nil
}

func (c *Client) sendOpt(opt uint32, data []byte) error {
	b := make([]byte, 16+len(data))
	binary.BigEndian.PutUint64(b, optMagic)
	binary.BigEndian.PutUint32(b[8:], opt)
	binary.BigEndian.PutUint32(b[12:], uint32(len(data)))
	copy(b[16:], data)
	_, err := c.conn.Write(b)
	return err
}

func (c *Client) readOptReply() (opt, typ uint32, payload []byte, err error) {
	var h [20]byte
	if _, err = io.ReadFull(c.conn, h[:]); err != nil {
		return 0, 0, nil, fmt.Errorf("read option reply: %w", err)
	}
	be := binary.BigEndian
	if be.Uint64(h[:]) != repMagic {
		return 0, 0, nil, errors.New("bad option reply magic")
	}
	opt, typ = be.Uint32(h[8:]), be.Uint32(h[12:])
	n := be.Uint32(h[16:])
	if n > maxOptReply {
		return 0, 0, nil, fmt.Errorf("option reply of %d bytes: more than the %d allowed", n, maxOptReply)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.conn, payload)
	return opt, typ, payload, err
}

// readLoop matches simple replies to pending requests.
func (c *Client) readLoop() {
	defer close(c.loopDone)
	r := bufio.NewReaderSize(c.conn, 256<<10)
	for {
		var h [16]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			c.fail(fmt.Errorf("nbd: connection to %s: %w", c.conn.RemoteAddr(), err))
			return
		}
		be := binary.BigEndian
		if be.Uint32(h[:]) != simpleReplyMagic {
			c.fail(fmt.Errorf("nbd: bad reply magic %#x from %s", be.Uint32(h[:]), c.conn.RemoteAddr()))
			return
		}
		errno, handle := be.Uint32(h[4:]), be.Uint64(h[8:])
		c.mu.Lock()
		cl := c.pending[handle]
		delete(c.pending, handle)
		c.mu.Unlock()
		if cl == nil {
			c.fail(fmt.Errorf("nbd: reply for unknown handle %d from %s", handle, c.conn.RemoteAddr()))
			return
		}
		if errno != 0 {
			cl.done <- fmt.Errorf("%w: errno %d", ErrRemote, errno)
			continue
		}
		if _, err := io.ReadFull(r, cl.buf); err != nil {
			cl.done <- err
			c.fail(fmt.Errorf("nbd: connection to %s: %w", c.conn.RemoteAddr(), err))
			return
		}
		cl.done <- nil
	}
}

func (c *Client) fail(err error) {
	c.closeErr.Do(func() {
		c.mu.Lock()
		c.err = err
		for h, cl := range c.pending {
			delete(c.pending, h)
			cl.done <- err
		}
		c.mu.Unlock()
		close(c.closed)
		c.conn.Close()
	})
}

// ReadAt reads len(p) bytes at off, which must lie inside the export.
func (c *Client) ReadAt(ctx context.Context, p []byte, off int64) error {
	n := int64(len(p))
	if off < 0 || off > c.size || n > c.size-off || n > maxReadLength {
		return fmt.Errorf("%w: read of %d bytes at %d, the export on %s has %d (and one read takes at most %d)", errOutOfRange, n, off, c.conn.RemoteAddr(), c.size, maxReadLength)
	}
	if n == 0 {
		return nil
	}
	cl := &call{buf: p, done: make(chan error, 1)}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.next++
	h := c.next
	c.pending[h] = cl
	c.mu.Unlock()
	req := Request{Type: CmdRead, Handle: h, Offset: uint64(off), Length: uint32(len(p))}
	c.wmu.Lock()
	_, err := c.conn.Write(req.Marshal())
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
	}
	select {
	case err := <-cl.done:
		return err
	case <-ctx.Done():
		// The connection is now out of step for this handle: drop it.
		c.fail(fmt.Errorf("nbd: read at %d: %w", off, ctx.Err()))
		<-c.loopDone // p must not be written after we return
		return ctx.Err()
	}
}

// Done is closed when the connection has failed or was closed.
func (c *Client) Done() <-chan struct{} { return c.closed }

// Close sends NBD_CMD_DISC and closes the connection.
func (c *Client) Close() error {
	c.wmu.Lock()
	_, _ = c.conn.Write(Request{Type: CmdDisc}.Marshal())
	c.wmu.Unlock()
	c.fail(errors.New("nbd: client closed"))
	return nil
}

// Redialer is a remote export that reconnects when the server restarts: a
// failed read drops the connection and is retried on a new one until its
// context ends.
type Redialer struct {
	Addr, Export string
	size         int64
	mu           sync.Mutex
	c            *Client
	log          func(msg string, args ...any)
}

// NewRedialer connects once (to learn the size) and returns the export.
func NewRedialer(ctx context.Context, addr, export string, log func(string, ...any)) (*Redialer, error) {
	c, err := Dial(ctx, addr, export)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = func(string, ...any) {}
	}
	return &Redialer{Addr: addr, Export: export, size: c.Size(), c: c, log: log}, nil
}

// Size is the export's size.
func (r *Redialer) Size() int64 { return r.size }

func (r *Redialer) client(ctx context.Context) (*Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c != nil {
		select {
		case <-r.c.Done():
			r.c = nil
		default:
			return r.c, nil
		}
	}
	c, err := Dial(ctx, r.Addr, r.Export)
	if err != nil {
		return nil, err
	}
	if c.Size() != r.size {
		c.Close()
		return nil, fmt.Errorf("nbd: export %q on %s changed size from %d to %d; refusing to mix data", r.Export, r.Addr, r.size, c.Size())
	}
	r.log("reconnected to NBD server", "addr", r.Addr, "export", r.Export)
	r.c = c
	return c, nil
}

// ReadAt reads p at off, reconnecting as needed, until ctx ends.
func (r *Redialer) ReadAt(ctx context.Context, p []byte, off int64) error {
	var last error
	for attempt := 0; ; attempt++ {
		c, err := r.client(ctx)
		if err == nil {
			if err = c.ReadAt(ctx, p, off); err == nil {
				return nil
			}
			if errors.Is(err, ErrRemote) || errors.Is(err, errOutOfRange) {
				return err // the server answered (or never will): an error it will repeat
			}
		}
		last = err
		wait := time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond
		select {
		case <-ctx.Done():
			return fmt.Errorf("nbd %s export %q: %w (last error: %v)", r.Addr, r.Export, ctx.Err(), last)
		case <-time.After(wait):
		}
	}
}
