package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// strictBackend fails the test on any read outside [0, size): Serve must
// refuse such a request itself, whatever the kernel (or a fuzzer) sends.
// Data is a pattern of the offset, so misplaced reads show.
type strictBackend struct {
	t    testing.TB
	size int64
	mu   sync.Mutex
	bad  []string
}

func (b *strictBackend) Size() int64 { return b.size }

func (b *strictBackend) ReadAt(_ context.Context, p []byte, off int64) error {
	n := int64(len(p))
	if off < 0 || off > b.size || n > b.size-off || n == 0 {
		b.mu.Lock()
		b.bad = append(b.bad, fmt.Sprintf("ReadAt(%d bytes at %d) on a %d-byte backend", n, off, b.size))
		b.mu.Unlock()
		b.t.Errorf("backend read of %d bytes at %d, size %d: Serve let an out-of-range request through", n, off, b.size)
		return errors.New("out of range")
	}
	for i := range p {
		p[i] = pattern(off + int64(i))
	}
	return nil
}

func pattern(off int64) byte { return byte(off ^ off>>8 ^ off>>16) }

// rwConn is a transmission-phase stream from a byte slice; the replies
// collect in out (Serve writes under its own lock).
type rwConn struct {
	io.Reader
	out *bytes.Buffer
}

func (c rwConn) Write(p []byte) (int, error) { return c.out.Write(p) }

type wantReply struct {
	handle uint64
	errno  uint32
	data   int64 // -1: no data follows; else the read's length
	off    uint64
}

// modelServe is what Serve must answer to stream, worked out independently
// of Serve's code: it renumbers handles 1, 2, … in place (so each reply
// names one request), and says which replies must come back before Serve
// stops (Disc, EOF, a torn header or payload, a bad magic), and how many
// bytes of data they carry in all.
func modelServe(stream []byte, size int64) (want []wantReply, total int64) {
	for pos, h := 0, uint64(1); len(stream)-pos >= 28; h++ {
		q, err := ParseRequest(stream[pos:])
		if err != nil {
			return want, total
		}
		binary.BigEndian.PutUint64(stream[pos+8:], h)
		pos += 28
		r := wantReply{handle: h, data: -1, off: q.Offset}
		switch q.Type {
		case CmdRead:
			// Offset <= size <= MaxInt64 first, so the sum cannot wrap.
			if q.Length <= 32<<20 && q.Offset <= uint64(size) && q.Offset+uint64(q.Length) <= uint64(size) {
				r.data = int64(q.Length)
				total += int64(q.Length)
			} else {
				r.errno = errInval
			}
		case CmdDisc:
			return want, total
		case CmdFlush:
		case CmdWrite:
			if uint64(len(stream)-pos) < uint64(q.Length) {
				return want, total // torn payload: Serve stops without a reply
			}
			pos += int(q.Length)
			r.errno = errPerm
		default:
			r.errno = errPerm
		}
		want = append(want, r)
	}
	return want, total
}

// checkServe runs Serve over stream against a strict backend and compares
// every reply with the model.
func checkServe(t testing.TB, stream []byte, size int64, skipOver int64) {
	stream = bytes.Clone(stream)
	want, total := modelServe(stream, size)
	if total > skipOver {
		return // a valid but huge read: slow, and nothing new to learn
	}
	b := &strictBackend{t: t, size: size}
	var out bytes.Buffer
	_ = Serve(context.Background(), rwConn{bytes.NewReader(stream), &out}, b, 4, slog.New(slog.DiscardHandler))
	byHandle := map[uint64]wantReply{}
	for _, w := range want {
		byHandle[w.handle] = w
	}
	var got []uint64
	for out.Len() > 0 {
		var h [16]byte
		if _, err := io.ReadFull(&out, h[:]); err != nil {
			t.Fatalf("torn reply header: %v", err)
		}
		be := binary.BigEndian
		if m := be.Uint32(h[:]); m != simpleReplyMagic {
			t.Fatalf("reply magic %#x", m)
		}
		errno, handle := be.Uint32(h[4:]), be.Uint64(h[8:])
		w, ok := byHandle[handle]
		if !ok {
			t.Fatalf("reply for handle %d, which no request got (or a second one)", handle)
		}
		delete(byHandle, handle)
		got = append(got, handle)
		if errno != w.errno {
			t.Fatalf("handle %d: errno %d, want %d", handle, errno, w.errno)
		}
		if w.data >= 0 {
			data := out.Next(int(w.data))
			if int64(len(data)) != w.data {
				t.Fatalf("handle %d: %d bytes of data, want %d", handle, len(data), w.data)
			}
			for i, c := range data {
				if c != pattern(int64(w.off)+int64(i)) {
					t.Fatalf("handle %d: wrong byte at %d", handle, i)
				}
			}
		}
	}
	if len(byHandle) != 0 {
		slices.Sort(got)
		t.Fatalf("%d requests got no reply (replies: %v)", len(byHandle), got)
	}
}

func reqs(qs ...Request) []byte {
	var b []byte
	for _, q := range qs {
		b = append(b, q.Marshal()...)
	}
	return b
}

// A request whose end wraps past 2^64, or whose offset reads negative as
// an int64, is refused with EINVAL: it never reaches the backend.
func TestServeBounds(t *testing.T) {
	const size = 1 << 20
	tests := []struct {
		name   string
		off    uint64
		length uint32
		errno  uint32
	}{
		{"first byte", 0, 1, 0},
		{"last byte", size - 1, 1, 0},
		{"whole export", 0, size, 0},
		{"empty at the end", size, 0, 0},
		{"one byte past the end", size, 1, errInval},
		{"crosses the end", size - 1, 2, errInval},
		{"end wraps past 2^64", math.MaxUint64 - 511, 1024, errInval},
		{"end wraps to exactly 0", math.MaxUint64 - 1023, 1024, errInval},
		{"offset negative as int64", 1 << 63, 512, errInval},
		{"offset MaxInt64", math.MaxInt64, 1, errInval},
		{"empty far past the end", math.MaxUint64, 0, errInval},
		{"longer than a request may be", 0, 32<<20 + 1, errInval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &strictBackend{t: t, size: size}
			var out bytes.Buffer
			in := reqs(Request{Type: CmdRead, Handle: 9, Offset: tt.off, Length: tt.length}, Request{Type: CmdDisc})
			if err := Serve(context.Background(), rwConn{bytes.NewReader(in), &out}, b, 4, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			if out.Len() < 16 {
				t.Fatalf("no reply (%d bytes)", out.Len())
			}
			if errno := binary.BigEndian.Uint32(out.Bytes()[4:]); errno != tt.errno {
				t.Errorf("errno %d, want %d", errno, tt.errno)
			}
			if want := 16 + int(tt.length); tt.errno == 0 && out.Len() != want {
				t.Errorf("%d bytes of reply, want %d", out.Len(), want)
			}
		})
	}
	// And the same through the model, with every request of the table in
	// one stream.
	var qs []Request
	for _, tt := range tests {
		qs = append(qs, Request{Type: CmdRead, Offset: tt.off, Length: tt.length})
	}
	checkServe(t, reqs(qs...), size, math.MaxInt64)
}

// FuzzServe drives Serve with arbitrary request streams: every request
// gets exactly the reply an independent model predicts, and no read
// outside the export reaches the backend.
func FuzzServe(f *testing.F) {
	f.Add(reqs(Request{Type: CmdRead, Handle: 1, Offset: math.MaxUint64 - 511, Length: 1024}), uint32(1<<20))
	f.Add(reqs(Request{Type: CmdRead, Offset: 1 << 63, Length: 512}, Request{Type: CmdFlush}), uint32(4096))
	f.Add(append(reqs(Request{Type: CmdRead, Offset: 100, Length: 50}, Request{Type: CmdWrite, Length: 3}), append([]byte("abc"), reqs(Request{Type: CmdTrim}, Request{Type: CmdDisc})...)...), uint32(200))
	f.Add(reqs(Request{Type: CmdRead, Offset: 4095, Length: 1}, Request{Type: CmdRead, Offset: 4096, Length: 0}, Request{Type: CmdWrite, Length: 1 << 30}), uint32(4096))
	f.Add([]byte{0x25, 0x60, 0x95, 0x13, 0, 0}, uint32(0))
	f.Add(reqs(Request{Type: CmdRead, Offset: math.MaxInt64 - 4096, Length: 4096}), uint32(math.MaxUint32))
	f.Fuzz(func(t *testing.T, stream []byte, sz uint32) {
		// Small exports, and (top bit set) ones near the int64 limit, where
		// int64(offset) and offset+length are closest to wrapping.
		size := int64(sz % (1<<20 + 1))
		if sz&(1<<31) != 0 {
			size = math.MaxInt64 - int64(sz&0xffff)
		}
		checkServe(t, stream, size, 4<<20)
	})
}

// fakeNBD is a newstyle NBD server on loopback that runs handle on every
// connection: the test plays a broken or hostile server.
func fakeNBD(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				handle(c)
			})
		}
	})
	return ln.Addr().String()
}

// greet sends the fixed-newstyle greeting and reads the client's flags.
func greet(c net.Conn) error {
	b := make([]byte, 18)
	binary.BigEndian.PutUint64(b, nbdMagic)
	binary.BigEndian.PutUint64(b[8:], optMagic)
	binary.BigEndian.PutUint16(b[16:], hsFixedNewstyle|hsNoZeroes)
	if _, err := c.Write(b); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, 4))
	return err
}

func readOpt(c net.Conn) (opt uint32, data []byte, err error) {
	var h [16]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return 0, nil, err
	}
	data = make([]byte, binary.BigEndian.Uint32(h[12:]))
	_, err = io.ReadFull(c, data)
	return binary.BigEndian.Uint32(h[8:]), data, err
}

func optReply(opt, typ uint32, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint64(b, repMagic)
	binary.BigEndian.PutUint32(b[8:], opt)
	binary.BigEndian.PutUint32(b[12:], typ)
	binary.BigEndian.PutUint32(b[16:], uint32(len(payload)))
	return append(b, payload...)
}

func exportInfo(size uint64) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, infoExport)
	binary.BigEndian.PutUint64(b[2:], size)
	binary.BigEndian.PutUint16(b[10:], FlagHasFlags|FlagReadOnly)
	return b
}

// afterOption is a fake server's handler that greets the client and reads
// its first option before handing the connection to handle.
func afterOption(handle func(c net.Conn)) func(net.Conn) {
	return func(c net.Conn) {
		if greet(c) != nil {
			return
		}
		if _, _, err := readOpt(c); err != nil {
			return
		}
		handle(c)
	}
}

// goServer answers NBD_OPT_GO with an export of size, then serves reads of
// the pattern, recording every request it gets.
func goServer(size uint64, got chan<- Request) func(net.Conn) {
	return afterOption(func(c net.Conn) {
		c.Write(append(optReply(optGo, repInfo, exportInfo(size)), optReply(optGo, repAck, nil)...))
		for {
			q, err := ReadRequest(c)
			if err != nil || q.Type == CmdDisc {
				return
			}
			if got != nil {
				got <- q
			}
			data := make([]byte, q.Length)
			for i := range data {
				data[i] = pattern(int64(q.Offset) + int64(i))
			}
			c.Write(append(simpleReply(q.Handle, 0), data...))
		}
	})
}

// exportNameServer refuses NBD_OPT_GO as unsupported (an old server) and
// answers NBD_OPT_EXPORT_NAME with size.
func exportNameServer(size uint64) func(net.Conn) {
	return afterOption(func(c net.Conn) {
		c.Write(optReply(optGo, repErr|1, nil))
		if _, _, err := readOpt(c); err != nil {
			return
		}
		b := make([]byte, 10)
		binary.BigEndian.PutUint64(b, size)
		binary.BigEndian.PutUint16(b[8:], FlagHasFlags|FlagReadOnly)
		c.Write(b)
		io.Copy(io.Discard, c)
	})
}

func dialFake(t *testing.T, addr string) (*Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Dial(ctx, addr, "disk")
}

// A server advertising an absurd export size (0, or one that reads
// negative as an int64 and panicked blockd.New) is refused at the
// handshake, naming the server and the size.
func TestDialRefusesExportSize(t *testing.T) {
	tests := []struct {
		name  string
		serve func(uint64) func(net.Conn)
		size  uint64
		ok    bool
	}{
		{"negative as int64", func(s uint64) func(net.Conn) { return goServer(s, nil) }, 0xFFFFFF0000000000, false},
		{"zero", func(s uint64) func(net.Conn) { return goServer(s, nil) }, 0, false},
		{"one over the limit", func(s uint64) func(net.Conn) { return goServer(s, nil) }, MaxExportSize + 1, false},
		{"MaxInt64", func(s uint64) func(net.Conn) { return goServer(s, nil) }, math.MaxInt64, false},
		{"at the limit", func(s uint64) func(net.Conn) { return goServer(s, nil) }, MaxExportSize, true},
		{"one byte", func(s uint64) func(net.Conn) { return goServer(s, nil) }, 1, true},
		{"EXPORT_NAME: negative as int64", exportNameServer, 1 << 63, false},
		{"EXPORT_NAME: zero", exportNameServer, 0, false},
		{"EXPORT_NAME: 1 MiB", exportNameServer, 1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeNBD(t, tt.serve(tt.size))
			c, err := dialFake(t, addr)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if c.Size() != int64(tt.size) {
					t.Errorf("size %d, want %d", c.Size(), tt.size)
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("export of %d bytes accepted", tt.size)
			}
			msg := err.Error()
			for _, w := range []string{addr, `"disk"`, strconv.FormatUint(tt.size, 10), "16 TiB", "check the export"} {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if !errors.Is(err, ErrExportSize) {
				t.Errorf("error %q is not ErrExportSize", msg)
			}
		})
	}
}

// Option replies from a hostile server: every length is bounded before
// anything is allocated, the handshake ends, and the server's text reaches
// the console quoted.
func TestDialHostileHandshake(t *testing.T) {
	tests := []struct {
		name  string
		reply func(c net.Conn)
		want  string
	}{
		{"huge option reply", func(c net.Conn) {
			b := optReply(optGo, repInfo, nil)
			binary.BigEndian.PutUint32(b[16:], math.MaxUint32)
			c.Write(b)
		}, "option reply of 4294967295 bytes"},
		{"endless info replies", func(c net.Conn) {
			for {
				if _, err := c.Write(optReply(optGo, repInfo, exportInfo(4096))); err != nil {
					return
				}
			}
		}, "more than 64 replies"},
		{"ack without info", func(c net.Conn) { c.Write(optReply(optGo, repAck, nil)) }, "without export info"},
		{"reply to another option", func(c net.Conn) { c.Write(optReply(optAbort, repAck, nil)) }, "reply to option 2"},
		{"escape sequences in an error", func(c net.Conn) {
			c.Write(optReply(optGo, repErr|6, []byte("no\x1b[2J\nnameserver 6.6.6.6")))
		}, `server refused export "disk": "no\x1b[2J\nnameserver 6.6.6.6"`},
		{"bad reply magic", func(c net.Conn) { c.Write(make([]byte, 20)) }, "bad option reply magic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeNBD(t, afterOption(func(c net.Conn) {
				tt.reply(c)
				io.Copy(io.Discard, c)
			}))
			c, err := dialFake(t, addr)
			if err == nil {
				c.Close()
				t.Fatal("handshake accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if strings.ContainsAny(err.Error(), "\x1b\n") {
				t.Errorf("error %q carries control characters", err)
			}
			if refused := strings.Contains(tt.want, "refused export"); errors.Is(err, ErrRefused) != refused {
				t.Errorf("error %q: errors.Is(ErrRefused) = %v, want %v", err, !refused, refused)
			}
		})
	}
}

// The client never sends a read outside the export (the server would see
// an offset that wrapped), and reads inside it work.
func TestClientReadAtBounds(t *testing.T) {
	const size = 1 << 20
	got := make(chan Request, 16)
	c, err := dialFake(t, fakeNBD(t, goServer(size, got)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, r := range []struct {
		off int64
		n   int
	}{{-1, 1}, {size, 1}, {size - 1, 2}, {math.MaxInt64, 1}, {math.MaxInt64 - 10, 20}, {0, 32<<20 + 1}} {
		if err := c.ReadAt(ctx, make([]byte, r.n), r.off); err == nil || !strings.Contains(err.Error(), "outside the export") {
			t.Errorf("ReadAt(%d bytes at %d) = %v, want a refusal", r.n, r.off, err)
		}
	}
	buf := make([]byte, 100)
	if err := c.ReadAt(ctx, buf, size-100); err != nil {
		t.Fatal(err)
	}
	for i, b := range buf {
		if b != pattern(size-100+int64(i)) {
			t.Fatalf("wrong byte at %d", i)
		}
	}
	if err := c.ReadAt(ctx, nil, size); err != nil {
		t.Errorf("empty read at the end: %v", err)
	}
	close(got)
	var sent []Request
	for q := range got {
		sent = append(sent, q)
	}
	if len(sent) != 1 || sent[0].Offset != size-100 || sent[0].Length != 100 {
		t.Errorf("the server got %+v, want only the one read inside the export", sent)
	}
}

// A Redialer does not retry a read the client refuses: it would never
// succeed.
func TestRedialerOutOfRange(t *testing.T) {
	r, err := NewRedialer(context.Background(), fakeNBD(t, goServer(4096, nil)), "disk", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = r.ReadAt(ctx, make([]byte, 2), 4095)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "outside the export") {
		t.Errorf("ReadAt past the end: %v (ctx %v), want an immediate refusal", err, ctx.Err())
	}
}

// Transmission-phase replies from a hostile server: a reply for a handle
// never sent, or a second one for the same handle, ends the connection
// with an error naming the server.
func TestClientHostileReplies(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reply func(q Request) []byte
		want  string
	}{
		{"unknown handle", func(q Request) []byte { return simpleReply(q.Handle+1000, 0) }, "unknown handle"},
		{"bad magic", func(q Request) []byte { return make([]byte, 16) }, "bad reply magic"},
		{"twice", func(q Request) []byte {
			return append(append(simpleReply(q.Handle, 0), make([]byte, q.Length)...), simpleReply(q.Handle, 0)...)
		}, "unknown handle"},
		{"short data", func(q Request) []byte { return append(simpleReply(q.Handle, 0), 1, 2) }, "EOF"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeNBD(t, afterOption(func(c net.Conn) {
				c.Write(append(optReply(optGo, repInfo, exportInfo(1<<20)), optReply(optGo, repAck, nil)...))
				q, err := ReadRequest(c)
				if err != nil {
					return
				}
				c.Write(tt.reply(q))
				if tt.name == "short data" {
					return // close: the data never comes
				}
				io.Copy(io.Discard, c)
			}))
			c, err := dialFake(t, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = c.ReadAt(ctx, make([]byte, 64), 0)
			if tt.name == "twice" {
				if err != nil {
					t.Fatalf("first reply: %v", err)
				}
				select {
				case <-c.Done():
				case <-ctx.Done():
					t.Fatal("a second reply for one handle did not end the connection")
				}
				c.mu.Lock()
				err = c.err
				c.mu.Unlock()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
			if ctx.Err() != nil {
				t.Error("the client waited for the deadline instead of failing")
			}
		})
	}
}

// FuzzHandshake plays arbitrary server bytes to the client's handshake and
// transmission phase: no panic, no hang, and any export it accepts has a
// size within the limit.
func FuzzHandshake(f *testing.F) {
	greeting := make([]byte, 18)
	binary.BigEndian.PutUint64(greeting, nbdMagic)
	binary.BigEndian.PutUint64(greeting[8:], optMagic)
	binary.BigEndian.PutUint16(greeting[16:], hsFixedNewstyle|hsNoZeroes)
	good := slices.Concat(greeting, optReply(optGo, repInfo, exportInfo(1<<20)), optReply(optGo, repAck, nil), simpleReply(1, 0), make([]byte, 512))
	f.Add(good)
	f.Add(slices.Concat(greeting, optReply(optGo, repInfo, exportInfo(0xFFFFFF0000000000)), optReply(optGo, repAck, nil)))
	f.Add(slices.Concat(greeting, optReply(optGo, repErr|1, nil), []byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 3}))
	f.Add(slices.Concat(greeting, optReply(optGo, repErr|6, []byte("nope"))))
	f.Add(slices.Concat(greeting, optReply(optGo, repInfo, exportInfo(4096)), optReply(optGo, repAck, nil), simpleReply(7, 0)))
	f.Fuzz(func(t *testing.T, server []byte) {
		cli, srv := net.Pipe()
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cli.Close() // first: unblocks the server's Write
		wg.Go(func() { io.Copy(io.Discard, srv) })
		wg.Go(func() { srv.Write(server); srv.Close() })
		// No deadlines: the server's bytes end in EOF, so the client must
		// finish on its own; one that waits is caught by the fuzzer's hang
		// detection (and pipe deadline timers, thousands a second, would
		// pile up).
		c, err := newClient(cli, "disk")
		if err != nil {
			return
		}
		if c.Size() <= 0 || c.Size() > MaxExportSize {
			t.Fatalf("accepted an export of %d bytes", c.Size())
		}
		_ = c.ReadAt(context.Background(), make([]byte, min(512, c.Size())), 0)
		c.Close()
	})
}
