package harness

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSOptions configure a DNSServer.
type DNSOptions struct {
	Addr string // UDP listen address, default 10.77.0.1:53
	// Answer is the address every A query gets; the zero value answers
	// nothing (every query is read and dropped: a DNS server that is
	// there but never replies).
	Answer netip.Addr
	// Drop, if set, is asked for each query: the query's index (0-based)
	// and the time since the first query. true drops it unanswered.
	Drop func(i int, sinceFirst time.Duration) bool
}

// DNSQuery is one query the server read.
type DNSQuery struct {
	Time     time.Time
	Name     string // as asked, with the trailing dot
	Type     dnsmessage.Type
	Answered bool
}

// DNSServer is a minimal in-namespace DNS responder over UDP: dnsmasq
// cannot be told to stay silent, or to answer only from the Nth query on.
// Queries other than A get an empty NOERROR answer (no AAAA here).
type DNSServer struct {
	Addr string

	opts DNSOptions
	conn net.PacketConn

	mu      sync.Mutex
	queries []DNSQuery
}

// StartDNS listens in ns and serves until t ends.
func StartDNS(t testing.TB, ns *Netns, opts DNSOptions) *DNSServer {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = ServerIP + ":53"
	}
	d := &DNSServer{Addr: opts.Addr, opts: opts}
	err := ns.Do(func() error {
		var err error
		d.conn, err = net.ListenPacket("udp", opts.Addr)
		return err
	})
	if err != nil {
		t.Fatalf("dns: %v", err)
	}
	t.Cleanup(func() { d.conn.Close() })
	go d.serve()
	t.Logf("dns: %s (answer %v)", opts.Addr, opts.Answer)
	return d
}

func (d *DNSServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		d.mu.Lock()
		i := len(d.queries)
		var since time.Duration
		if i > 0 {
			since = time.Since(d.queries[0].Time)
		}
		answer := d.opts.Answer.IsValid() && (d.opts.Drop == nil || !d.opts.Drop(i, since))
		d.queries = append(d.queries, DNSQuery{Time: time.Now(), Name: q.Name.String(), Type: q.Type, Answered: answer})
		d.mu.Unlock()
		if !answer {
			continue
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
		b.EnableCompression()
		if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
			continue
		}
		if q.Type == dnsmessage.TypeA && q.Class == dnsmessage.ClassINET && d.opts.Answer.Is4() {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60}
			if b.AResource(rh, dnsmessage.AResource{A: d.opts.Answer.As4()}) != nil {
				continue
			}
		}
		msg, err := b.Finish()
		if err != nil {
			continue
		}
		d.conn.WriteTo(msg, from)
	}
}

// Queries returns the queries read so far.
func (d *DNSServer) Queries() []DNSQuery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]DNSQuery(nil), d.queries...)
}

// QueriesFor returns the queries for name (without the trailing dot,
// case-insensitive).
func (d *DNSServer) QueriesFor(name string) []DNSQuery {
	var out []DNSQuery
	for _, q := range d.Queries() {
		if strings.EqualFold(strings.TrimSuffix(q.Name, "."), name) {
			out = append(out, q)
		}
	}
	return out
}
