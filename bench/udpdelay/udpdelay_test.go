package udpdelay

import (
	"net"
	"testing"
	"time"
)

// TestRelayPerTransferPorts plays a TFTP-like server: the first reply comes
// from the well-known port, the next from a fresh port that the client
// then talks to; every leg must pass the relay and take about RTT.
func TestRelayPerTransferPorts(t *testing.T) {
	for _, rtt := range []time.Duration{0, 40 * time.Millisecond} {
		t.Run(rtt.String(), func(t *testing.T) {
			srv := listen(t)
			xfer := listen(t)
			go func() { // well-known port: answer "ok", then the transfer port answers "data"
				buf := make([]byte, 64)
				n, from, err := srv.ReadFrom(buf)
				if err != nil {
					return
				}
				srv.WriteTo(append([]byte("ok:"), buf[:n]...), from)
				xfer.WriteTo([]byte("data"), from)
				n, from, err = xfer.ReadFrom(buf)
				if err != nil {
					return
				}
				xfer.WriteTo(append([]byte("ack:"), buf[:n]...), from)
			}()
			ln := listen(t)
			r := &Relay{Target: srv.LocalAddr().(*net.UDPAddr), RTT: rtt, DownAddr: "127.0.0.1:0", UpAddr: "127.0.0.1:0", Idle: time.Second}
			r.Start(ln)
			defer r.Close()

			cl := listen(t)
			cl.SetDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			cl.WriteTo([]byte("rrq"), r.Addr())
			buf := make([]byte, 64)
			got := map[string]net.Addr{}
			for len(got) < 2 {
				n, from, err := cl.ReadFrom(buf)
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				got[string(buf[:n])] = from
			}
			if el := time.Since(start); el < rtt {
				t.Errorf("reply after %v, want at least the RTT %v", el, rtt)
			}
			if got["ok:rrq"] == nil || got["ok:rrq"].String() != r.Addr().String() {
				t.Errorf("the well-known port's reply came from %v, want the relay's %v", got["ok:rrq"], r.Addr())
			}
			port := got["data"]
			if port == nil || port.String() == r.Addr().String() || port.String() == xfer.LocalAddr().String() {
				t.Fatalf("the transfer port's reply came from %v: want a relay port of its own", port)
			}
			start = time.Now()
			cl.WriteTo([]byte("1"), port)
			n, from, err := cl.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if string(buf[:n]) != "ack:1" || from.String() != port.String() {
				t.Errorf("got %q from %v, want ack:1 from %v", buf[:n], from, port)
			}
			if el := time.Since(start); el < rtt {
				t.Errorf("round trip took %v, want at least %v", el, rtt)
			}
			if r.Up.Load() != 4 || r.Down.Load() != int64(len("ok:rrq")+len("data")+len("ack:1")) {
				t.Errorf("counted up %d down %d bytes", r.Up.Load(), r.Down.Load())
			}
			// Bounded lifetime: the idle session goes away.
			deadline := time.Now().Add(10 * time.Second)
			for r.Sessions() != 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if n := r.Sessions(); n != 0 {
				t.Errorf("%d session(s) still open after the idle time", n)
			}
		})
	}
}

// TestRelayMaxSessions: clients beyond MaxSessions are dropped, not served.
func TestRelayMaxSessions(t *testing.T) {
	srv := listen(t)
	ln := listen(t)
	r := &Relay{Target: srv.LocalAddr().(*net.UDPAddr), MaxSessions: 1, UpAddr: "127.0.0.1:0", DownAddr: "127.0.0.1:0"}
	r.Start(ln)
	defer r.Close()
	for range 2 {
		c := listen(t)
		c.WriteTo([]byte("x"), r.Addr())
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Dropped.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if r.Sessions() != 1 || r.Dropped.Load() != 1 {
		t.Errorf("sessions %d dropped %d, want 1 and 1", r.Sessions(), r.Dropped.Load())
	}
}

// listen opens a loopback UDP socket closed at the end of t (the relay
// closes the ones it is given itself; closing twice is harmless).
func listen(t *testing.T) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
