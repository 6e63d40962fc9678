package netup

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
)

// logRec keeps the messages logged through it, for assertions on warnings.
type logRec struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRec) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRec) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRec) WithGroup(string) slog.Handler            { return r }
func (r *logRec) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	r.msgs = append(r.msgs, line)
	return nil
}

func (r *logRec) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

func newLog() (*slog.Logger, *logRec) {
	r := &logRec{}
	return slog.New(r), r
}

func TestCheckNames(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	for _, tc := range []struct {
		in           string
		host, domain bool
	}{
		{"node-17", true, true},
		{"node-17.lab.example", true, true},
		{"A1", true, true},
		{"lab", true, true},
		{long63, true, true},
		{strings.Repeat("a", 64), false, false}, // label over 63
		{strings.Repeat("a.", 32)[:63], true, true},
		{strings.Repeat("ab.", 22)[:65], false, true}, // 65 bytes: too long for sethostname
		{strings.Repeat(long63+".", 4)[:253], false, true},
		{strings.Repeat(long63+".", 4)[:254], false, false},
		{"_ldap.lab", false, true},
		{"", false, false},
		{"lab\nnameserver 6.6.6.6", false, false},
		{"lab nameserver", false, false},
		{"lab\tx", false, false},
		{"lab;x", false, false},
		{"lab#x", false, false},
		{"a..b", false, false},
		{".lab", false, false},
		{"-lab", false, false},
		{"lab-", false, false},
		{"la\x00b", false, false},
		{"\x1b[2Jlab", false, false},
		{"läb", false, false},
		{"lab/../x", false, false},
		{"'$(reboot)'", false, false},
	} {
		if got := CheckHostname(tc.in) == nil; got != tc.host {
			t.Errorf("CheckHostname(%q) ok=%v, want %v", tc.in, got, tc.host)
		}
		if got := CheckDomain(tc.in) == nil; got != tc.domain {
			t.Errorf("CheckDomain(%q) ok=%v, want %v", tc.in, got, tc.domain)
		}
	}
}

func ips(s ...string) []net.IP {
	var out []net.IP
	for _, x := range s {
		out = append(out, net.ParseIP(x).To4())
	}
	return out
}

// checkLease drops each hostile or unusable value with a warning naming its
// DHCP option and showing the value escaped; valid values pass unchanged.
func TestCheckLease(t *testing.T) {
	routes := func(n int) []Route {
		var rs []Route
		for i := range n {
			rs = append(rs, Route{Dest: net.IPNet{IP: net.IPv4(10, byte(i), 0, 0).To4(), Mask: net.CIDRMask(16, 32)}, Gateway: net.IPv4(10, 77, 0, 1)})
		}
		return rs
	}
	for _, tc := range []struct {
		name  string
		in    Lease
		want  func(l *Lease) bool
		warns []string // substrings, each in some warning; none: no warning at all
	}{
		{"valid", Lease{Hostname: "node-17", Domain: "lab.", Search: []string{"lab", "b.lab", "lab."}, DNS: ips("10.77.0.1", "10.77.0.2"), MTU: 1400, Routes: routes(2)},
			func(l *Lease) bool {
				return l.Hostname == "node-17" && l.Domain == "lab" && strings.Join(l.Search, ",") == "lab,b.lab" && len(l.DNS) == 2 && l.MTU == 1400 && len(l.Routes) == 2
			}, nil},
		{"NUL-terminated names", Lease{Hostname: "node\x00", Domain: "lab\x00"},
			func(l *Lease) bool { return l.Hostname == "node" && l.Domain == "lab" }, nil},
		{"domain injects a nameserver", Lease{Domain: "lab\nnameserver 6.6.6.6"},
			func(l *Lease) bool { return l.Domain == "" },
			[]string{`WARN ignoring DHCP option 15 (domain name) "lab\nnameserver 6.6.6.6": not a valid domain name`}},
		{"hostname over 64 bytes", Lease{Hostname: strings.Repeat("h", 40) + "." + strings.Repeat("h", 40)},
			func(l *Lease) bool { return l.Hostname == "" },
			[]string{"ignoring DHCP option 12 (host name)", "not a valid host name (too long: 81 bytes, at most 64)"}},
		{"hostname with escape sequence", Lease{Hostname: "\x1b]0;pwned\x07node"},
			func(l *Lease) bool { return l.Hostname == "" },
			[]string{`"\x1b]0;pwned\anode"`}},
		{"long value is cut in the warning", Lease{Domain: strings.Repeat("x;", 200)},
			func(l *Lease) bool { return l.Domain == "" },
			[]string{`"` + strings.Repeat("x;", 40) + `"…: not a valid domain name`}},
		{"search list", Lease{Search: []string{"ok.lab", "bad lab", "a", "b", "c", "d", "e", "f", "g"}},
			func(l *Lease) bool { return strings.Join(l.Search, ",") == "ok.lab,a,b,c,d,e" },
			[]string{`option 119 (domain search) "bad lab"`, `option 119 (domain search) f g: more than 6 domains`}},
		{"DNS servers", Lease{DNS: ips("0.0.0.0", "255.255.255.255", "224.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")},
			func(l *Lease) bool { return len(l.DNS) == 3 && l.DNS[2].Equal(net.IPv4(10, 0, 0, 3)) },
			[]string{"option 6 (DNS servers) 0.0.0.0", "option 6 (DNS servers) 224.0.0.1", "option 6 (DNS servers) 10.0.0.4: more than 3 servers"}},
		{"tiny MTU", Lease{MTU: 68},
			func(l *Lease) bool { return l.MTU == 0 },
			[]string{"option 26 (interface MTU) 68: below 576"}},
		{"too many routes", Lease{Routes: routes(40)},
			func(l *Lease) bool { return len(l.Routes) == MaxRoutes },
			[]string{"option 121 (classless static routes) 40 routes: more than 32"}},
	} {
		log, rec := newLog()
		l := tc.in
		checkLease(&l, log)
		if !tc.want(&l) {
			t.Errorf("%s: lease after check: %+v", tc.name, l)
		}
		got := rec.text()
		if len(tc.warns) == 0 && got != "" {
			t.Errorf("%s: unexpected warnings:\n%s", tc.name, got)
		}
		for _, w := range tc.warns {
			if !strings.Contains(got, w) {
				t.Errorf("%s: no warning %q in:\n%s", tc.name, w, got)
			}
		}
		for _, c := range got {
			if c < ' ' && c != '\n' || c == 0x7f {
				t.Errorf("%s: a control character reached the log: %q", tc.name, got)
				break
			}
		}
	}
}

// ResolvConf writes only valid names and a bounded server list, even for a
// lease no check has seen (handover and the init call it directly).
func TestResolvConf(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Lease
		want string
	}{
		{"plain", Lease{Domain: "lab", DNS: ips("10.77.0.1")}, "search lab\nnameserver 10.77.0.1\n"},
		{"no domain", Lease{DNS: ips("10.77.0.1", "10.77.0.2")}, "nameserver 10.77.0.1\nnameserver 10.77.0.2\n"},
		{"domain and search", Lease{Domain: "lab", Search: []string{"lab", "b.lab"}, DNS: ips("10.77.0.1")}, "search lab b.lab\nnameserver 10.77.0.1\n"},
		{"injected domain", Lease{Domain: "lab\nnameserver 6.6.6.6", DNS: ips("10.77.0.53")}, "nameserver 10.77.0.53\n"},
		{"injected search", Lease{Search: []string{"x\nnameserver 6.6.6.6", "ok"}, DNS: ips("10.77.0.53")}, "search ok\nnameserver 10.77.0.53\n"},
		{"options line", Lease{Domain: "lab options ndots:15", DNS: ips("10.77.0.53")}, "nameserver 10.77.0.53\n"},
		{"too many servers", Lease{DNS: ips("10.0.0.1", "0.0.0.0", "10.0.0.2", "10.0.0.3", "10.0.0.4")}, "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"},
		{"too many domains", Lease{Domain: "a", Search: []string{"b", "c", "d", "e", "f", "g", "h"}}, "search a b c d e f\n"},
		{"IPv6 server", Lease{DNS: []net.IP{net.ParseIP("2001:db8::53")}}, "nameserver 2001:db8::53\n"},
	} {
		got := string(ResolvConf(&tc.l))
		body, ok := strings.CutPrefix(got, "# written by streamroot from the boot network's lease\n")
		if !ok || body != tc.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}

// ip= takes any DNS name as the host name; one sethostname refuses is
// dropped with a warning instead of failing the network stage.
func TestStaticHostname(t *testing.T) {
	for _, tc := range []struct{ in, want, warn string }{
		{"static-node", "static-node", ""},
		{strings.Repeat("a", 40) + "." + strings.Repeat("b", 40), "", "ignoring the host name \"aaaa"},
	} {
		log, rec := newLog()
		l := staticLease(&Static{Hostname: tc.in}, "ens3", nil, log)
		if l.Hostname != tc.want || !strings.Contains(rec.text(), tc.warn) || tc.warn == "" && rec.text() != "" {
			t.Errorf("%q: host name %q, log %q", tc.in, l.Hostname, rec.text())
		}
	}
}
