package harness

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h           string
		first, last int64
		ok          bool
	}{
		{"bytes=0-0", 0, 0, true},
		{"bytes=10-", 10, 99, true},
		{"bytes=10-1000", 10, 99, true},
		{"bytes=100-", 0, 0, false}, // past the end
		{"bytes=5-4", 0, 0, false},
		{"bytes=-5", 0, 0, false}, // suffix ranges are not used by the node
		{"bytes=0-1,5-6", 0, 0, false},
		{"items=0-1", 0, 0, false},
		{"bytes=9223372036854775807-", 0, 0, false},
	} {
		first, last, ok := ParseRange(tc.h, 100)
		if ok != tc.ok || ok && (first != tc.first || last != tc.last) {
			t.Errorf("ParseRange(%q) = %d, %d, %v; want %d, %d, %v", tc.h, first, last, ok, tc.first, tc.last, tc.ok)
		}
	}
}

// The DNS responder answers A queries with its address after the dropped
// ones, and records both; the Go server serves ranges, counts connections
// and comes back after Stop.
func TestGoPeers(t *testing.T) {
	e := requireHost(t)
	ns := NewNetns(t, e.ArtifactDir(t))
	dns := StartDNS(t, ns, DNSOptions{Answer: netip.MustParseAddr(ServerIP), Drop: func(i int, _ time.Duration) bool { return i == 0 }})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return ns.DialContext(ctx, "udp", dns.Addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := r.LookupNetIP(ctx, "ip4", "boot.lab")
	cancel()
	if err == nil {
		t.Fatal("the first (dropped) query was answered")
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	ips, err := r.LookupNetIP(ctx, "ip4", "boot.lab")
	cancel()
	if err != nil || len(ips) != 1 || ips[0].String() != ServerIP {
		t.Fatalf("lookup: %v %v", ips, err)
	}
	qs := dns.QueriesFor("boot.lab")
	if len(qs) < 2 || qs[0].Answered || !qs[len(qs)-1].Answered {
		t.Errorf("queries: %+v", qs)
	}

	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := StartGoServer(t, ns, ServerIP+":8080", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ServeFile(w, r, p) }))
	get := func() (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL(ServerIP, "img"), nil)
		req.Header.Set("Range", "bytes=2-4")
		c := ns.HTTPClient()
		c.Transport.(*http.Transport).DisableKeepAlives = true
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusPartialContent || body != "234" {
		t.Errorf("GET: %d %q", code, body)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(); code != 0 {
		t.Errorf("stopped server answered %d", code)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != http.StatusPartialContent || body != "234" {
		t.Errorf("GET after restart: %d %q", code, body)
	}
	if n := len(srv.Requests("/img")); n != 2 {
		t.Errorf("%d requests recorded, want 2", n)
	}
	if c := srv.Conns(); c != 2 {
		t.Errorf("%d connections, want 2", c)
	}
}
