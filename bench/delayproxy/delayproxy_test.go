package delayproxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// An echo server behind the proxy: a request and its answer take one RTT
// more than without it, the bytes arrive intact and in order, and a
// half-close travels through.
func TestDelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	const rtt = 80 * time.Millisecond
	p, err := Listen("127.0.0.1:0", ln.Addr().String(), rtt)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte("streamroot "), 50000) // 550 kB: several chunks
	start := time.Now()
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo through the proxy: got %d bytes, want %d (or they differ)", len(got), len(msg))
	}
	if took < rtt || took > rtt+time.Second {
		t.Errorf("echo took %s, want about one RTT (%s)", took, rtt)
	}
	if p.Conns.Load() != 1 || p.Up.Load() != int64(len(msg)) || p.Down.Load() != int64(len(msg)) {
		t.Errorf("counters: conns %d up %d down %d", p.Conns.Load(), p.Up.Load(), p.Down.Load())
	}
}
