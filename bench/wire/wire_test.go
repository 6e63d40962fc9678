package wire

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var server = net.IPv4(10, 77, 0, 1).To4()

// frame wraps an L4 payload in Ethernet and IPv4 headers.
func frame(proto byte, src, dst net.IP, l4 []byte) []byte {
	b := make([]byte, 14+20+len(l4))
	binary.BigEndian.PutUint16(b[12:14], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+len(l4)))
	ip[9] = proto
	copy(ip[12:16], src.To4())
	copy(ip[16:20], dst.To4())
	copy(ip[20:], l4)
	return b
}

func udp(sp, dp uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sp)
	binary.BigEndian.PutUint16(b[2:4], dp)
	copy(b[8:], payload)
	return b
}

func tcp(sp, dp uint16, flags byte, payload int) []byte {
	b := make([]byte, 20+payload)
	binary.BigEndian.PutUint16(b[0:2], sp)
	binary.BigEndian.PutUint16(b[2:4], dp)
	b[12] = 5 << 4
	b[13] = flags
	return b
}

func dhcpMsg(t testing.TB, typ dhcpv4.MessageType, xid uint32) []byte {
	var id dhcpv4.TransactionID
	binary.BigEndian.PutUint32(id[:], xid)
	m, err := dhcpv4.New(dhcpv4.WithMessageType(typ), dhcpv4.WithTransactionID(id))
	if err != nil {
		t.Fatal(err)
	}
	return m.ToBytes()
}

func TestParse(t *testing.T) {
	guest := net.IPv4(10, 77, 0, 50)
	const (
		syn = 0x02
		ack = 0x10
	)
	tests := []struct {
		name  string
		frame []byte
		ok    bool
		want  Event
	}{
		{"discover", frame(17, net.IPv4zero, net.IPv4bcast, udp(68, 67, dhcpMsg(t, dhcpv4.MessageTypeDiscover, 7))), true, Event{DHCP: dhcpv4.MessageTypeDiscover, XID: 7}},
		{"ack", frame(17, server, guest, udp(67, 68, dhcpMsg(t, dhcpv4.MessageTypeAck, 7))), true, Event{DHCP: dhcpv4.MessageTypeAck, XID: 7}},
		{"other udp port", frame(17, guest, server, udp(53, 67, dhcpMsg(t, dhcpv4.MessageTypeAck, 7))), false, Event{}},
		{"not dhcp", frame(17, guest, server, udp(68, 67, []byte("hello"))), false, Event{}},
		{"syn", frame(6, guest, server, tcp(40000, 80, syn, 0)), true, Event{TCP: true, ClientPort: 40000, SYN: true}},
		{"syn-ack", frame(6, server, guest, tcp(80, 40000, syn|ack, 0)), true, Event{TCP: true, ClientPort: 40000, FromServer: true, SYN: true, ACK: true}},
		{"request", frame(6, guest, server, tcp(40000, 80, ack, 100)), true, Event{TCP: true, ClientPort: 40000, ACK: true, Payload: 100}},
		{"other server", frame(6, guest, net.IPv4(10, 77, 0, 2), tcp(40000, 80, syn, 0)), false, Event{}},
		{"other port", frame(6, guest, server, tcp(40000, 22, syn, 0)), false, Event{}},
		{"short", frame(6, guest, server, []byte{1, 2, 3})[:30], false, Event{}},
		{"ipv6", append(make([]byte, 12), 0x86, 0xdd, 0x60), false, Event{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse(tt.frame, server, 80)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("Parse = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	d := func(typ dhcpv4.MessageType, xid uint32, ms int) Event { return Event{At: at(ms), DHCP: typ, XID: xid} }
	seg := func(ms int, port uint16, fromServer, syn, ack bool, payload int) Event {
		return Event{At: at(ms), TCP: true, ClientPort: port, FromServer: fromServer, SYN: syn, ACK: ack, Payload: payload}
	}
	http := []Event{
		seg(5000, 1, false, true, false, 0), // SYN
		seg(5001, 2, false, true, false, 0), // a second connection's SYN: ignored
		seg(5002, 1, true, true, true, 0),   // SYN-ACK: connect 2 ms
		seg(5003, 1, false, false, true, 0), // ACK
		seg(5010, 1, false, false, true, 90),
		seg(5011, 1, true, false, true, 0),    // bare ACK
		seg(5014, 1, true, false, true, 1448), // first answer: 4 ms
	}
	tests := []struct {
		name    string
		evs     []Event
		want    Floor
		wantErr bool
	}{
		{"dora with probe and retransmits", append([]Event{
			d(dhcpv4.MessageTypeDiscover, 9, 0),
			d(dhcpv4.MessageTypeDiscover, 9, 1000),
			d(dhcpv4.MessageTypeOffer, 9, 3000),
			d(dhcpv4.MessageTypeOffer, 9, 3001), // the answer to the retransmit
			d(dhcpv4.MessageTypeRequest, 9, 3100),
			d(dhcpv4.MessageTypeAck, 9, 3102),
			d(dhcpv4.MessageTypeDiscover, 10, 9000), // the real OS's own lease: not the floor
			d(dhcpv4.MessageTypeAck, 10, 9001),
		}, http...), Floor{DHCPServer: 3002 * time.Millisecond, DHCPExchange: 3102 * time.Millisecond, Connect: 2 * time.Millisecond, FirstResponse: 4 * time.Millisecond}, false},
		{"rapid commit", append([]Event{
			d(dhcpv4.MessageTypeDiscover, 3, 0),
			d(dhcpv4.MessageTypeAck, 3, 5),
		}, http...), Floor{DHCPServer: 5 * time.Millisecond, DHCPExchange: 5 * time.Millisecond, Connect: 2 * time.Millisecond, FirstResponse: 4 * time.Millisecond}, false},
		{"ack of another transaction", []Event{
			d(dhcpv4.MessageTypeDiscover, 3, 0),
			d(dhcpv4.MessageTypeAck, 4, 5),
		}, Floor{}, true},
		{"no http answer", []Event{
			d(dhcpv4.MessageTypeDiscover, 3, 0),
			d(dhcpv4.MessageTypeAck, 3, 5),
			seg(10, 1, false, true, false, 0),
		}, Floor{DHCPServer: 5 * time.Millisecond, DHCPExchange: 5 * time.Millisecond}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Summarize(tt.evs)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("Summarize = %+v, %v; want %+v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestCaptureLoopback captures a real DHCP-shaped datagram and a real HTTP
// exchange on lo, with the kernel's timestamps.
func TestCaptureLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (AF_PACKET)")
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer ts.Close()
	_, portS, _ := net.SplitHostPort(ts.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	lo := net.IPv4(127, 0, 0, 1)
	c, err := Start(func(f func() error) error { return f() }, "lo", lo, uint16(port))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: lo, Port: 67})
	if err != nil {
		c.Stop()
		t.Skipf("port 67 in use: %v", err)
	}
	defer srv.Close()
	cli, err := net.DialUDP("udp4", &net.UDPAddr{IP: lo, Port: 68}, &net.UDPAddr{IP: lo, Port: 67})
	if err != nil {
		c.Stop()
		t.Skipf("port 68 in use: %v", err)
	}
	defer cli.Close()
	start := time.Now()
	cli.Write(dhcpMsg(t, dhcpv4.MessageTypeDiscover, 42))
	srv.WriteTo(dhcpMsg(t, dhcpv4.MessageTypeAck, 42), cli.LocalAddr())
	resp, err := http.Get(ts.URL)
	if err != nil {
		c.Stop()
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	end := time.Now()
	time.Sleep(50 * time.Millisecond)
	evs, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Summarize(evs)
	if err != nil {
		t.Fatalf("%v in %+v", err, evs)
	}
	if f.DHCPExchange <= 0 || f.Connect <= 0 || f.FirstResponse <= 0 || f.Network() > end.Sub(start) {
		t.Fatalf("floor %+v outside (0, %s]", f, end.Sub(start))
	}
	for _, e := range evs {
		if e.At.Before(start.Add(-time.Second)) || e.At.After(end.Add(time.Second)) {
			t.Fatalf("event stamped %s, outside the exchange %s..%s", e.At, start, end)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(frame(17, net.IPv4zero, net.IPv4bcast, udp(68, 67, dhcpMsg(f, dhcpv4.MessageTypeDiscover, 7))))
	f.Add(frame(6, server, net.IPv4(10, 77, 0, 50), tcp(80, 40000, 0x12, 0)))
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse(b, server, 80)
	})
}
