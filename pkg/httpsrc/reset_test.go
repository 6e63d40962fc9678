package httpsrc

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// After Reset the next range arrives on a new connection.
func TestResetDialsAnew(t *testing.T) {
	body := strings.Repeat("x", 1<<16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "img", time.Unix(1700000000, 0), strings.NewReader(body))
	}))
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s, err := Open(context.Background(), srv.URL+"/img", Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := Device{Source: s}
	p := make([]byte, 4096)
	for range 3 {
		if err := d.ReadAt(context.Background(), p, 0); err != nil {
			t.Fatal(err)
		}
	}
	before := conns.Load()
	d.Reset()
	if err := d.ReadAt(context.Background(), p, 4096); err != nil {
		t.Fatal(err)
	}
	if conns.Load() != before+1 {
		t.Fatalf("connections %d before Reset, %d after one more read: want one new", before, conns.Load())
	}
}
