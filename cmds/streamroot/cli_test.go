package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/syncbuf"
	"github.com/streamroot/streamroot/pkg/isoread/isotest"
	"github.com/streamroot/streamroot/pkg/squashfs/squashtest"
)

// cliCase is one command line and what it must print and return.
type cliCase struct {
	name string
	args []string // {d} is the fixture directory, {url} a server on it, {down} a URL nothing answers
	code int
	// out and errs are substrings stdout and stderr must contain; an
	// empty out means stdout must be empty unless anyOut is set.
	out, errs []string
	anyOut    bool
	// notIn must appear in neither stdout nor stderr (passwords).
	notIn []string
	// jsonOut: stdout is one JSON object; on failure it has "error" and
	// "exit" equal to code.
	jsonOut bool
	// stdoutLines, when set, is the exact line count of stdout.
	stdoutLines int
	// tty runs the command as if stderr were a terminal.
	tty bool
	// stderrLines, when set, is the line count of a failure's stderr
	// (else 1, or 2 for a usage error).
	stderrLines int
	// jsonArray: stdout is one JSON array.
	jsonArray bool
}

// cliFixtures writes the images the table uses and returns the directory
// and the URL of a server on it (with a password in the URL, which no
// output may show).
func cliFixtures(t *testing.T) (dir, url, down string) {
	t.Helper()
	dir = t.TempDir()
	sq := squashtest.Build([]squashtest.File{{Path: "LiveOS/rootfs.img", Data: ext4Image(3*squashtest.Block+100, 3, "root")}})
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sq.img", sq)
	write("short.img", sq[:4096])
	write("changed.img", sq)
	write("padded.img", append(sq[:len(sq):len(sq)], make([]byte, 4096)...)) // bootable, but not sq.img's size
	write("fdi.iso", isotest.Build([]isotest.File{{Path: "LiveOS/squashfs.img", Data: sq}, {Path: "LiveOS/other.img", Data: sq}}, isotest.Options{RockRidge: true}))
	os.Mkdir(filepath.Join(dir, "out"), 0o755)
	base, _ := newTestServer(t, dir)
	url = strings.Replace(base, "http://", "http://op:s3cret@", 1)
	// A port that was free a moment ago: nothing answers there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down = "http://" + ln.Addr().String() + "/x.img"
	ln.Close()
	return dir, url, down
}

// TestCLI runs every subcommand's success and failure paths as a user
// meets them: stdout only the result, one line on stderr for an error
// (with its hint), the documented exit status, and --json failures as a
// JSON object. The cases run in order: manifest writes what -verify and
// pxe --manifest read.
func TestCLI(t *testing.T) {
	dir, url, down := cliFixtures(t)
	cases := []cliCase{
		// version and help
		{name: "version", args: []string{"version"}, out: []string{"streamroot "}, stdoutLines: 1},
		{name: "--version", args: []string{"--version"}, out: []string{"streamroot "}, stdoutLines: 1},
		{name: "-version", args: []string{"-version"}, out: []string{"streamroot "}, stdoutLines: 1},

		// serve
		{name: "serve port only", args: []string{"serve", "-addr", "8080", "{d}"}, code: 2, errs: []string{`-addr "8080": want host:port`, "--help"}},
		{name: "serve bad port", args: []string{"serve", "-addr", ":http-alt", "{d}"}, code: 2, errs: []string{"port must be a number"}},
		{name: "serve negative grace", args: []string{"serve", "-grace", "-1s", "{d}"}, code: 2, errs: []string{"must not be negative"}},
		{name: "serve bad log format", args: []string{"serve", "-log-format", "xml", "{d}"}, code: 2, errs: []string{`-log-format "xml": want text, json or combined`}},
		{name: "serve a file", args: []string{"serve", "{d}/sq.img"}, code: 1, errs: []string{"not a directory"}},
		{name: "serve two dirs", args: []string{"serve", "{d}", "{d}"}, code: 2, errs: []string{"want exactly one DIR"}},

		// extract
		{name: "extract", args: []string{"extract", "{d}/fdi.iso", "-o", "{d}/out"}, out: []string{"/out/squashfs.img: ", "sha256 "}, stdoutLines: 1},
		{name: "extract again refuses", args: []string{"extract", "{d}/fdi.iso", "-o", "{d}/out"}, code: 1, errs: []string{"squashfs.img exists; hint: -f replaces it"}},
		{name: "extract -f", args: []string{"extract", "-f", "{d}/fdi.iso", "-o", "{d}/out"}, out: []string{"squashfs.img: "}},
		{name: "extract --force", args: []string{"extract", "--force", "{d}/fdi.iso", "-o", "{d}/out"}, out: []string{"squashfs.img: "}},
		{name: "extract -o -", args: []string{"extract", "{d}/fdi.iso", "-o", "-"}, anyOut: true, errs: []string{"LiveOS/squashfs.img: ", "sha256 "}},
		{name: "extract a URL", args: []string{"extract", "{url}/fdi.iso"}, code: 2, errs: []string{"extract reads a local ISO file, not a URL", "hint: download it first"}, notIn: []string{"s3cret"}},
		{name: "extract -o a file", args: []string{"extract", "{d}/fdi.iso", "-o", "{d}/sq.img"}, code: 1, errs: []string{"not a directory; hint: -o names the directory"}},
		{name: "extract no ISO", args: []string{"extract"}, code: 2, errs: []string{"want exactly one ISO"}},

		// inspect
		{name: "inspect image", args: []string{"inspect", "{d}/sq.img"}, out: []string{"dracut's live layout"}, anyOut: true},
		{name: "inspect -json", args: []string{"inspect", "-json", "{d}/sq.img"}, jsonOut: true},
		{name: "inspect other squashimg", args: []string{"inspect", "{d}/fdi.iso", "-path", "LiveOS/other.img"},
			out: []string{"root=live:<URL of the .iso> with rd.live.squashimg=other.img on the kernel line boots it"}},
		{name: "inspect -squashimg", args: []string{"inspect", "-squashimg", "other.img", "{d}/fdi.iso"}, out: []string{"with rd.live.squashimg=other.img"}},
		{name: "inspect default ISO", args: []string{"inspect", "{d}/fdi.iso"}, out: []string{"root=live:<URL of the .iso> boots it"}},
		{name: "inspect truncated", args: []string{"inspect", "{d}/short.img"}, code: 1, anyOut: true,
			out:  []string{"contents unknown: not read: the squashfs is truncated (4096 of "},
			errs: []string{"cannot boot: truncated", "hint: the copy is incomplete"}},
		{name: "inspect -json truncated", args: []string{"inspect", "-json", "{d}/short.img"}, code: 1, jsonOut: true, errs: []string{"cannot boot"}},
		{name: "inspect /dev/zero", args: []string{"inspect", "/dev/zero"}, code: 1, errs: []string{"/dev/zero: a character device, not an image file or block device; hint: "}},
		{name: "inspect a directory", args: []string{"inspect", "{d}"}, code: 1, errs: []string{"a directory, not an image file"}},
		{name: "inspect URL", args: []string{"inspect", "{url}/sq.img"}, out: []string{"op:xxxxx@", "fetched: "}, notIn: []string{"s3cret"}},
		{name: "inspect URL down", args: []string{"inspect", "{down}"}, code: 1, errs: []string{"connection refused", "hint: nothing answers at that address"}},
		{name: "inspect -json URL down", args: []string{"inspect", "-json", "{down}"}, code: 1, jsonOut: true},
		{name: "inspect -cacert local", args: []string{"inspect", "-cacert", "{d}/sq.img", "{d}/sq.img"}, code: 2, errs: []string{"https:// URL only"}},
		{name: "inspect -cacert not PEM", args: []string{"inspect", "-cacert", "{d}/sq.img", "https://127.0.0.1:1/x"}, code: 1, errs: []string{"no PEM certificate"}},
		{name: "inspect ftp", args: []string{"inspect", "ftp://u:pw@h/x"}, code: 2, errs: []string{"only http:// and https://"}},
		{name: "inspect several", args: []string{"inspect", "{d}/sq.img", "{d}/fdi.iso"}, out: []string{"layout: squashfs", "\n\n{d}/fdi.iso: ", "layout: iso9660"}},
		{name: "inspect several, some failing", args: []string{"inspect", "{d}/sq.img", "{d}/nope", "{d}/short.img"}, code: 1, anyOut: true,
			out: []string{"layout: squashfs", "contents unknown"}, errs: []string{"nope: no such file", "short.img: cannot boot", "2 of 3 targets cannot boot or could not be read"}, stderrLines: 3},
		{name: "inspect -json several", args: []string{"inspect", "-json", "{d}/sq.img", "{d}/nope"}, code: 1, stderrLines: 2, jsonArray: true, out: []string{"[\n  {", `"error": "open {d}/nope: no such file or directory"`}},
		{name: "inspect -manifest several", args: []string{"inspect", "-manifest", "{d}/sq.img.manifest", "{d}/sq.img", "{d}/fdi.iso"}, code: 2, errs: []string{"give one target with it"}},
		{name: "inspect missing", args: []string{"inspect", "{d}/nope"}, code: 1, errs: []string{"no such file"}},

		// manifest
		{name: "manifest", args: []string{"manifest", "{d}/sq.img"}, out: []string{"streamroot.manifest=sha256:", "\nstreamroot.sha256="}, stdoutLines: 2,
			errs: []string{"wrote ", "sq.img.manifest: "}},
		{name: "manifest changed", args: []string{"manifest", "{d}/changed.img"}, anyOut: true},
		{name: "manifest progress on a terminal", args: []string{"manifest", "{d}/sq.img"}, tty: true, stdoutLines: 2, anyOut: true,
			errs: []string{"\rhashing ", "sq.img: ", " (100%)", "/s\x1b[K\n", "wrote "}},
		{name: "manifest -no-progress", args: []string{"manifest", "-no-progress", "-verify", "{d}/sq.img"}, tty: true, stdoutLines: 2, anyOut: true,
			errs: []string{"matches"}, notIn: []string{"\r", "verifying"}},
		{name: "extract progress on a terminal", args: []string{"extract", "{d}/fdi.iso", "-o", "-"}, tty: true, anyOut: true,
			errs: []string{"\rextracting LiveOS/squashfs.img: ", " (100%)"}},
		{name: "manifest no progress into a pipe", args: []string{"manifest", "-verify", "{d}/sq.img"}, stdoutLines: 2, anyOut: true, notIn: []string{"\r"}},
		{name: "inspect checks the manifest beside", args: []string{"inspect", "{d}/sq.img"}, anyOut: true,
			out: []string{"manifest: " + "{d}/sq.img.manifest", "the image's size (streamroot.manifest=sha256:"}},
		{name: "inspect truncated and a stale manifest", args: []string{"inspect", "-manifest", "{d}/sq.img.manifest", "{d}/short.img"}, code: 1, anyOut: true,
			errs: []string{"cannot boot: truncated", "hint: the copy is incomplete"}},
		{name: "inspect -manifest of another size", args: []string{"inspect", "-manifest", "{d}/sq.img.manifest", "{d}/padded.img"}, code: 1, anyOut: true,
			errs: []string{"cannot boot: ", "sq.img.manifest is for a ", "hint: the image or the manifest is stale"}},
		{name: "inspect URL and its manifest", args: []string{"inspect", "{url}/sq.img"}, notIn: []string{"s3cret"},
			out: []string{"manifest: http://op:xxxxx@127.0.0.1:", "/sq.img.manifest, 1 chunk of 4 MiB, the image's size (streamroot.manifest=sha256:"}},
		{name: "inspect URL without a manifest", args: []string{"inspect", "{url}/fdi.iso"}, out: []string{"note: no manifest at http://op:xxxxx@127.0.0.1:", "/fdi.iso.manifest: "}},
		{name: "inspect URL, stale manifest", args: []string{"inspect", "{url}/padded.img"}, code: 1, anyOut: true, notIn: []string{"s3cret"},
			errs: []string{"/padded.img.manifest is for a ", "hint: the image or the manifest on the server is stale"}},
		{name: "manifest -verify", args: []string{"manifest", "-verify", "{d}/sq.img"}, stdoutLines: 2, out: []string{"streamroot.manifest=sha256:"}, errs: []string{"matches"}},
		{name: "manifest -json", args: []string{"manifest", "-json", "-verify", "{d}/sq.img"}, jsonOut: true, out: []string{`"kernel_args": [`}},
		{name: "manifest -json missing", args: []string{"manifest", "-json", "{d}/nope"}, code: 1, jsonOut: true},
		{name: "manifest /dev/zero", args: []string{"manifest", "/dev/zero"}, code: 1, errs: []string{"/dev/zero: not a regular file (a character device); hint: "}},
		{name: "manifest -verify without one", args: []string{"manifest", "-verify", "{d}/short.img"}, code: 1, errs: []string{"hint: write one first"}},
		{name: "manifest bad chunk", args: []string{"manifest", "-chunk", "3KiB", "{d}/sq.img"}, code: 2, errs: []string{"power of two"}},

		// pxe
		{name: "pxe", args: []string{"pxe", "--server", "http://10.0.0.1", "--image", "sq.img"}, out: []string{"APPEND initrd=initramfs.img ip=dhcp root=live:http://10.0.0.1/sq.img"}, stdoutLines: 5},
		{name: "pxe -json", args: []string{"pxe", "--json", "--server", "http://10.0.0.1", "--image", "sq.img"}, jsonOut: true, out: []string{`"kernel_args": "ip=dhcp root=live:http://10.0.0.1/sq.img"`}},
		{name: "pxe # in image", args: []string{"pxe", "--server", "http://10.0.0.1", "--image", "a#b.img"}, code: 2, errs: []string{`'#' would end the URL's path`, "%23"}},
		{name: "pxe ? in image", args: []string{"pxe", "--server", "http://10.0.0.1", "--image", "a?b.img"}, code: 2, errs: []string{`'?' would end`}},
		{name: "pxe query on server", args: []string{"pxe", "--server", "http://10.0.0.1?a=1", "--image", "x.img"}, code: 2, errs: []string{"?query"}},
		{name: "pxe .. in image", args: []string{"pxe", "--server", "http://10.0.0.1", "--image", "../x.img"}, code: 2, errs: []string{"a .. segment leaves the server's directory"}},
		{name: "pxe password", args: []string{"pxe", "--server", "http://op:s3cret@10.0.0.1", "--image", "x.img"},
			out: []string{"MENU LABEL streamroot: http://op:xxxxx@10.0.0.1/x.img", "root=live:http://op:s3cret@10.0.0.1/x.img"}},
		{name: "pxe password in an error", args: []string{"pxe", "--server", "ftp://op:s3cret@10.0.0.1", "--image", "x.img"}, code: 2, errs: []string{"op:xxxxx@"}, notIn: []string{"s3cret"}},
		{name: "pxe foreman-url ftp", args: []string{"pxe", "--foreman", "--foreman-url", "ftp://f", "--server", "http://10.0.0.1", "--image", "x.img"}, code: 2,
			errs: []string{"--foreman-url", "Foreman or its Smart Proxy"}, notIn: []string{"fetches the image"}},
		{name: "pxe --manifest", args: []string{"pxe", "--server", "http://10.0.0.1", "--image", "sq.img", "--manifest", "{d}/sq.img.manifest"},
			out: []string{" streamroot.manifest=sha256:", " streamroot.sha256="}},
		{name: "pxe --manifest of another image", args: []string{"pxe", "--server", "http://10.0.0.1", "--image", "other.img", "--manifest", "{d}/sq.img.manifest"},
			anyOut: true, errs: []string{"warning: the node fetches <image URL>.manifest, i.e. other.img.manifest"}},
		{name: "pxe --manifest stale", args: []string{"pxe", "--server", "http://10.0.0.1", "--image", "changed.img", "--manifest", "{d}/changed.img.manifest"},
			code: 1, errs: []string{"is not", "changed.img's", "hint: the image changed since"}},
		{name: "pxe -json failure", args: []string{"pxe", "--json", "--server", "http://10.0.0.1"}, code: 2, jsonOut: true, errs: []string{"--image is required"}},
		{name: "pxe no server", args: []string{"pxe", "--image", "x"}, code: 2, errs: []string{"--server is required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "inspect URL, stale manifest" {
				// sq.img's manifest published as padded.img's.
				m, err := os.ReadFile(filepath.Join(dir, "sq.img.manifest"))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(dir, "padded.img.manifest"), m, 0o644)
			}
			if c.name == "pxe --manifest stale" {
				// The image changed after its manifest was written.
				if err := os.Truncate(filepath.Join(dir, "changed.img"), 8192); err != nil {
					t.Fatal(err)
				}
			}
			args := make([]string, len(c.args))
			for i, a := range c.args {
				a = strings.ReplaceAll(a, "{d}", dir)
				a = strings.ReplaceAll(a, "{url}", url)
				args[i] = strings.ReplaceAll(a, "{down}", down)
			}
			for i, w := range c.out {
				c.out[i] = strings.ReplaceAll(w, "{d}", dir)
			}
			var out, errb syncbuf.Buffer
			code := run(context.Background(), args, &env{stdout: &out, stderr: &errb, stall: 2 * time.Second, tty: c.tty})
			stdout, stderr := out.String(), errb.String()
			checkCLI(t, c, code, stdout, stderr)
		})
	}
}

func checkCLI(t *testing.T, c cliCase, code int, stdout, stderr string) {
	t.Helper()
	if code != c.code {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, stdout, stderr)
	}
	for _, w := range c.out {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout %q does not contain %q", stdout, w)
		}
	}
	if len(c.out) == 0 && !c.anyOut && !c.jsonOut && stdout != "" {
		t.Errorf("stdout %q, want nothing (messages go to stderr)", stdout)
	}
	for _, w := range c.errs {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not contain %q", stderr, w)
		}
	}
	for _, w := range c.notIn {
		if strings.Contains(stdout+stderr, w) {
			t.Errorf("output shows %q:\nstdout: %s\nstderr: %s", w, stdout, stderr)
		}
	}
	if c.stdoutLines != 0 && strings.Count(stdout, "\n") != c.stdoutLines {
		t.Errorf("stdout has %d lines, want %d: %q", strings.Count(stdout, "\n"), c.stdoutLines, stdout)
	}
	if c.code != 0 {
		// One line, plus the pointer to --help for a usage error (or
		// one per failed target and a summary for several targets).
		want := 1
		if c.code == 2 {
			want = 2
		}
		if c.stderrLines != 0 {
			want = c.stderrLines
		}
		if n := strings.Count(stderr, "\n"); n != want {
			t.Errorf("stderr has %d lines, want %d: %q", n, want, stderr)
		}
	}
	if c.jsonArray {
		var arr []map[string]any
		if err := json.Unmarshal([]byte(stdout), &arr); err != nil {
			t.Errorf("stdout is not a JSON array: %v: %q", err, stdout)
		}
	}
	if c.jsonOut {
		var obj map[string]any
		dec := json.NewDecoder(strings.NewReader(stdout))
		if err := dec.Decode(&obj); err != nil {
			t.Fatalf("stdout is not JSON: %v: %q", err, stdout)
		}
		if dec.More() {
			t.Errorf("more than one JSON value on stdout: %q", stdout)
		}
		if c.code != 0 {
			if e, _ := obj["error"].(string); e == "" {
				t.Errorf("failure JSON without error: %q", stdout)
			}
			if h, _ := obj["hint"].(string); h == "" {
				t.Errorf("failure JSON without hint: %q", stdout)
			}
		}
	}
}

// TestServeStopsWithSlowClient: SIGTERM while a client reads slowly
// waits -grace, closes the connection, logs what it waited for and the
// aborted response, and exits 0 (it was asked to stop, and stopped).
func TestServeStopsWithSlowClient(t *testing.T) {
	dir := t.TempDir()
	// Far more than socket buffers hold, so the response is in flight
	// while the client does not read.
	if err := os.WriteFile(filepath.Join(dir, "big.img"), make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, errb, stop := startServe(t, "-addr", "127.0.0.1:0", "-grace", "200ms", dir)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /big.img HTTP/1.1\r\nHost: x\r\nUser-Agent: slow-reader/1\r\n\r\n")
	// Read the status line, then stop reading.
	buf := make([]byte, 64)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(buf), "HTTP/1.1 200") {
		t.Fatalf("response %q", buf)
	}
	stop(60 * time.Second)
	log := errb.String()
	for _, w := range []string{"msg=\"shutting down\"", "requests_in_flight=1", "grace=200ms",
		"level=WARN msg=\"grace period over", "msg=stopped", "agent=slow-reader/1", "note=\"client aborted"} {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q:\n%s", w, log)
		}
	}
	if strings.Contains(log, "context deadline exceeded") {
		t.Errorf("shutdown reported as a failure:\n%s", log)
	}
}

// TestProgressLine: the text of the progress line, rate and ETA included.
func TestProgressLine(t *testing.T) {
	start := time.Unix(1000, 0)
	p := &progress{label: "hashing img", total: 1 << 30, start: start}
	if got, want := p.line(start), "hashing img: 0 bytes of 1 GiB (0%)"; got != want {
		t.Errorf("at start %q, want %q", got, want)
	}
	p.done.Store(256 << 20)
	if got, want := p.line(start.Add(2*time.Second)), "hashing img: 256 MiB of 1 GiB (25%), 128 MiB/s, ETA 6s"; got != want {
		t.Errorf("midway %q, want %q", got, want)
	}
	p.done.Store(1 << 30)
	if got, want := p.line(start.Add(8*time.Second)), "hashing img: 1 GiB of 1 GiB (100%), 128 MiB/s"; got != want {
		t.Errorf("done %q, want %q", got, want)
	}
}

// TestServeLogIfRange: the access log says whether If-Range matched, and
// logs a refused request at WARN.
func TestServeLogIfRange(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "img"), []byte("hello world"), 0o644)
	base, log := newTestServer(t, dir)
	resp, _ := do(t, "HEAD", base+"/img", nil)
	etag := resp.Header.Get("ETag")
	if r, _ := do(t, "GET", base+"/img", map[string]string{"Range": "bytes=0-1", "If-Range": etag}); r.StatusCode != 206 {
		t.Fatalf("matching If-Range: %d", r.StatusCode)
	}
	if r, _ := do(t, "GET", base+"/img", map[string]string{"Range": "bytes=0-1", "If-Range": `"stale"`}); r.StatusCode != 200 {
		t.Fatalf("stale If-Range: %d", r.StatusCode)
	}
	do(t, "GET", base+"/missing", nil)
	for _, w := range []string{"status=206 bytes=2", "if_range=match", `if_range="changed: whole file sent"`, "level=WARN msg=request method=GET path=/missing", "note=\"not found\""} {
		if !strings.Contains(log.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, log.String())
		}
	}
}

// TestServeCombinedLog: -log-format combined writes the access log as
// log analysers read Apache's and nginx's, with client fields escaped.
func TestServeCombinedLog(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "img"), []byte("hello world"), 0o644)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var text, combined syncbuf.Buffer
	srv := httptest.NewServer(&fileServer{root: root, log: slog.New(slog.NewTextHandler(&text, nil)), combined: &combined})
	defer srv.Close()
	do(t, "GET", srv.URL+"/img", map[string]string{"Range": "bytes=0-4", "User-Agent": `evil" agent\x`, "Referer": "http://r/"})
	do(t, "GET", srv.URL+"/missing", map[string]string{"User-Agent": "streamroot-init"})
	lines := strings.Split(strings.TrimSuffix(combined.String(), "\n"), "\n")
	re := []*regexp.Regexp{
		regexp.MustCompile(`^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET /img HTTP/1\.1" 206 5 "http://r/" "evil\\" agent\\\\x"$`),
		regexp.MustCompile(`^127\.0\.0\.1 - - \[[^]]+\] "GET /missing HTTP/1\.1" 404 \d+ "-" "streamroot-init"$`),
	}
	if len(lines) != len(re) {
		t.Fatalf("combined log %q, want %d lines", combined.String(), len(re))
	}
	for i, r := range re {
		if !r.MatchString(lines[i]) {
			t.Errorf("line %d %q does not match %s", i, lines[i], r)
		}
	}
	if text.String() != "" {
		t.Errorf("the access log went to slog too: %s", text.String())
	}
}
