package harness

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// NginxOptions configure the HTTP server. The zero value serves an empty
// docroot on 10.77.0.1:80.
type NginxOptions struct {
	Listen    string // default 10.77.0.1:80
	Docroot   string // default <artifacts>/nginx/docroot (created)
	LimitRate string // nginx limit_rate per connection, e.g. "2m"; "" = unlimited
	Extra     string // more directives for the server block
}

// Nginx is an nginx master (and its workers) serving a directory in a
// namespace. Static files get Range, If-Range and ETag support from nginx
// itself. Its access log records, per request:
//
//	$msec $remote_addr $request_method $status $bytes_sent $body_bytes_sent "$http_range" "$http_if_range" $request_uri
type Nginx struct {
	Dir           string // prefix: nginx.conf, logs, temp dirs
	Docroot       string
	Addr          string // host:port
	AccessLogPath string // see AccessLog
	ErrorLogPath  string

	ns   *Netns
	conf string

	mu   sync.Mutex
	proc *process
}

// AccessEntry is one access log line.
type AccessEntry struct {
	Time      time.Time
	Remote    string
	Method    string
	Status    int
	BytesSent int64 // with headers
	BodyBytes int64
	Range     string // Range request header, "" if none
	IfRange   string
	URI       string // as requested, with query
	Path      string // URI without the query
}

const nginxLogFormat = `'$msec $remote_addr $request_method $status $bytes_sent $body_bytes_sent "$http_range" "$http_if_range" $request_uri'`

var accessLine = regexp.MustCompile(`^(\d+)\.(\d+) (\S+) (\S+) (\d+) (\d+) (\d+) "([^"]*)" "([^"]*)" (\S+)$`)

// StartNginx writes a configuration, starts nginx in ns, waits until it
// accepts connections and registers its kill with t.Cleanup.
func StartNginx(t testing.TB, ns *Netns, opts NginxOptions) *Nginx {
	t.Helper()
	opts.Listen = cmp.Or(opts.Listen, ServerIP+":80")
	n := &Nginx{Dir: filepath.Join(ns.Dir, "nginx"), Addr: opts.Listen, ns: ns}
	n.Docroot = opts.Docroot
	if n.Docroot == "" {
		n.Docroot = filepath.Join(n.Dir, "docroot")
	}
	for _, d := range []string{n.Dir, n.Docroot, filepath.Join(n.Dir, "temp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n.AccessLogPath = filepath.Join(n.Dir, "access.log")
	n.ErrorLogPath = filepath.Join(n.Dir, "error.log")
	n.conf = filepath.Join(n.Dir, "nginx.conf")
	limit := ""
	if opts.LimitRate != "" {
		limit = "limit_rate " + opts.LimitRate + ";"
	}
	tmp := filepath.Join(n.Dir, "temp")
	conf := fmt.Sprintf(`# written by qemu-tests/harness
daemon off;
master_process on;
user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[2]s info;
events { worker_connections 256; }
http {
	types { application/octet-stream squashfs img iso bin; }
	default_type application/octet-stream;
	log_format streamroot %[3]s;
	access_log %[4]s streamroot;
	client_body_temp_path %[5]s/body;
	proxy_temp_path %[5]s/proxy;
	fastcgi_temp_path %[5]s/fastcgi;
	uwsgi_temp_path %[5]s/uwsgi;
	scgi_temp_path %[5]s/scgi;
	sendfile on;
	keepalive_timeout 30s;
	server {
		listen %[6]s;
		root %[7]s;
		%[8]s
		%[9]s
		location / { }
	}
}
`, n.Dir, n.ErrorLogPath, nginxLogFormat, n.AccessLogPath, tmp, opts.Listen, n.Docroot, limit, opts.Extra)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(20*time.Second, "ip", "netns", "exec", ns.Name, "nginx", "-t", "-q", "-p", n.Dir, "-e", n.ErrorLogPath, "-c", n.conf); err != nil {
		t.Fatalf("nginx config: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Error(err)
		}
	})
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("nginx: %s serving %s (limit_rate %q)", opts.Listen, n.Docroot, opts.LimitRate)
	return n
}

// Start starts nginx (again) and waits until it accepts connections.
func (n *Nginx) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.Exited() {
		return errors.New("nginx: already running")
	}
	cmd := n.ns.Command("nginx", "-p", n.Dir, "-e", n.ErrorLogPath, "-c", n.conf)
	p, err := startPeer("nginx", cmd, filepath.Join(n.Dir, "nginx.stderr"), 15*time.Second, n.ns.portAnswers(n.Addr))
	if err != nil {
		el, _ := os.ReadFile(n.ErrorLogPath)
		return fmt.Errorf("%w\nerror.log:\n%s", err, Tail(string(el), 20))
	}
	n.proc = p
	return nil
}

// Stop SIGKILLs the master and its workers (one process group): clients see
// their connections die mid-transfer, as with a crashed server.
func (n *Nginx) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return nil
	}
	return n.proc.Kill()
}

// Restart is Stop then Start.
func (n *Nginx) Restart() error {
	if err := n.Stop(); err != nil {
		return err
	}
	return n.Start()
}

// URL returns the http URL of a docroot path ("plain.squashfs").
func (n *Nginx) URL(name string) string {
	return "http://" + strings.TrimSuffix(n.Addr, ":80") + "/" + strings.TrimPrefix(name, "/")
}

// AddFile puts src into the docroot as name: a hard link when possible
// (fixtures are large), else a copy. Replace served files, never modify them
// in place: a hard link shares the cached fixture.
func (n *Nginx) AddFile(src, name string) error {
	return linkOrCopy(src, filepath.Join(n.Docroot, name))
}

// CopyFile copies src to dst, created or truncated (mode 0666 before the
// umask, as os.Create): a real copy where a hard link would share a
// cached fixture.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// AccessLog returns the parsed access log. A request in flight when nginx
// was killed has no line: nginx logs a request when it completes.
func (n *Nginx) AccessLog() []AccessEntry {
	return LogLines(n.AccessLogPath, ParseAccessLine)
}

// LogLines returns the lines of the log file at path that parse, in order,
// skipping those that do not (a line being written); nil when there is no
// log yet.
func LogLines[T any](path string, parse func(line string) (T, bool)) []T {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if e, ok := parse(sc.Text()); ok {
			out = append(out, e)
		}
	}
	return out
}

// ParseAccessLine parses one line of the harness's log format.
func ParseAccessLine(line string) (AccessEntry, bool) {
	m := accessLine.FindStringSubmatch(line)
	if m == nil {
		return AccessEntry{}, false
	}
	sec, _ := strconv.ParseInt(m[1], 10, 64)
	ms, _ := strconv.ParseInt(m[2], 10, 64)
	e := AccessEntry{Time: time.Unix(sec, ms*int64(time.Millisecond)), Remote: m[3], Method: m[4], URI: m[10]}
	e.Status, _ = strconv.Atoi(m[5])
	e.BytesSent, _ = strconv.ParseInt(m[6], 10, 64)
	e.BodyBytes, _ = strconv.ParseInt(m[7], 10, 64)
	if m[8] != "-" {
		e.Range = m[8]
	}
	if m[9] != "-" {
		e.IfRange = m[9]
	}
	e.Path, _, _ = strings.Cut(e.URI, "?")
	return e, true
}

// BytesSent sums the body bytes of the completed requests for uriPath
// ("/plain.squashfs"; the query is ignored).
func (n *Nginx) BytesSent(uriPath string) int64 {
	var sum int64
	for _, e := range n.AccessLog() {
		if e.Path == uriPath {
			sum += e.BodyBytes
		}
	}
	return sum
}

// Requests returns the access log entries for uriPath.
func (n *Nginx) Requests(uriPath string) []AccessEntry {
	var out []AccessEntry
	for _, e := range n.AccessLog() {
		if e.Path == uriPath {
			out = append(out, e)
		}
	}
	return out
}

// ExpectServedWhole asserts that the first request for each file's URL
// path was answered 200 and that at least the local file's size went out
// as body bytes: files are (local path, URL path) pairs.
func (n *Nginx) ExpectServedWhole(t testing.TB, files [][2]string) {
	t.Helper()
	for _, f := range files {
		st, err := os.Stat(f[0])
		if err != nil {
			t.Fatal(err)
		}
		reqs := n.Requests(f[1])
		if len(reqs) == 0 {
			t.Errorf("nginx never served %s", f[1])
			continue
		}
		if reqs[0].Status != 200 || n.BytesSent(f[1]) < st.Size() {
			t.Errorf("%s: status %d, %d body bytes sent, want 200 and %d bytes", f[1], reqs[0].Status, n.BytesSent(f[1]), st.Size())
		}
	}
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
