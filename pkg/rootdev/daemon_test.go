package rootdev

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A DNS server that does not answer is asked again until rd.retry; one that
// says the name does not exist is not; every error names the URL, without
// its password, and carries a hint.
func TestPinAddrRetriesWithinRetry(t *testing.T) {
	timeout := &net.DNSError{Err: "i/o timeout", Name: "boot.lab", Server: "10.77.0.1:53", IsTimeout: true, IsTemporary: true}
	nx := &net.DNSError{Err: "no such host", Name: "boot.lab", Server: "10.77.0.1:53", IsNotFound: true}
	for _, tc := range []struct {
		name      string
		answers   []error // per call; past the end: the last one
		wantErr   string
		minCalls  int
		maxCalls  int
		minTime   time.Duration
		maxTime   time.Duration
		wantAddr  string
		wantRetry bool
	}{
		{name: "never answers", answers: []error{timeout}, wantErr: "no answer within 1.5s (rd.retry)", minCalls: 3, maxCalls: 100, minTime: 1400 * time.Millisecond, maxTime: 4 * time.Second},
		{name: "nxdomain", answers: []error{nx}, wantErr: "no such host", minCalls: 1, maxCalls: 1, maxTime: 500 * time.Millisecond},
		{name: "answers late", answers: []error{timeout, timeout, nil}, minCalls: 3, maxCalls: 3, maxTime: 4 * time.Second, wantAddr: "10.77.0.1:80"},
		{name: "timeout then nxdomain", answers: []error{timeout, nx}, wantErr: "no such host", minCalls: 2, maxCalls: 2, maxTime: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			lookup := func(ctx context.Context, host string) ([]string, error) {
				i := int(calls.Add(1)) - 1
				err := tc.answers[min(i, len(tc.answers)-1)]
				if err == nil {
					return []string{"10.77.0.1"}, nil
				}
				return nil, err
			}
			u, _ := url.Parse("http://user:secret@boot.lab/x.squashfs")
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			start := time.Now()
			addr, pinned, err := pinAddrWith(context.Background(), lookup, u, 1500*time.Millisecond, log)
			took := time.Since(start)
			if n := int(calls.Load()); n < tc.minCalls || n > tc.maxCalls {
				t.Errorf("%d lookups, want %d–%d", n, tc.minCalls, tc.maxCalls)
			}
			if took < tc.minTime || took > tc.maxTime {
				t.Errorf("took %s, want %s–%s", took, tc.minTime, tc.maxTime)
			}
			if tc.wantErr == "" {
				if err != nil || addr != "boot.lab:80" || pinned != tc.wantAddr {
					t.Fatalf("got %q %q %v, want boot.lab:80 %s", addr, pinned, err, tc.wantAddr)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, want := range []string{"http://user:xxxxx@boot.lab/x.squashfs", "resolve boot.lab", tc.wantErr} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("error %q shows the password", msg)
			}
			var h interface{ Hint() string }
			if !errors.As(err, &h) || h.Hint() == "" {
				t.Errorf("error %q carries no hint", msg)
			}
		})
	}
}

// An IP address needs no lookup.
func TestPinAddrIP(t *testing.T) {
	u, _ := url.Parse("https://10.77.0.1/x")
	addr, pinned, err := pinAddrWith(context.Background(), func(context.Context, string) ([]string, error) {
		t.Fatal("looked up an IP address")
		return nil, nil
	}, u, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || addr != "10.77.0.1:443" || pinned != addr {
		t.Fatalf("got %q %q %v", addr, pinned, err)
	}
}

func TestLazyCacheBytes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		argMiB, total int64
		want          int64
	}{
		{"argument wins", 32, 64 << 30, 32 << 20},
		{"argument above the default", 1024, 512 << 20, 1 << 30},
		{"512 MiB node: RAM/16", 0, 512 << 20, 32 << 20},
		{"2 GiB node: RAM/16", 0, 2 << 30, 128 << 20},
		{"64 GiB node: capped", 0, 64 << 30, 256 << 20},
		{"meminfo unreadable", 0, 0, 64 << 20},
	} {
		if got := lazyCacheBytes(tc.argMiB, tc.total); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestMemTotal(t *testing.T) {
	if n := memTotal(); n <= 0 {
		t.Fatalf("memTotal() = %d on a Linux host", n)
	}
}

// A panic in a daemon goroutine that defers survive is logged, not fatal.
func TestSurvive(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer survive("boot-trace prefetch", log)
		panic("a bug")
	}()
	<-done
	if got := buf.String(); !strings.Contains(got, "boot-trace prefetch failed: panic: a bug; the root keeps reading from the server") {
		t.Errorf("log %q", got)
	}
}
