package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/internal/syncbuf"
)

// runCmd runs a command line as main would and returns the exit code and
// what it printed.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb syncbuf.Buffer
	code := run(context.Background(), args, &env{stdout: &out, stderr: &errb})
	return code, out.String(), errb.String()
}

func TestUsageAndExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderr     string
		oneLineErr bool
	}{
		{"no arguments", nil, 2, "", "Usage: streamroot <command>", false},
		{"help", []string{"help"}, 0, "Commands:\n  serve", "", false},
		{"--help", []string{"--help"}, 0, "  pxe ", "", false},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`, false},
		{"help for a command", []string{"help", "serve"}, 0, "Usage: streamroot serve", "", false},
		{"serve --help", []string{"serve", "--help"}, 0, "-addr host:port", "", false},
		{"extract -h", []string{"extract", "-h"}, 0, "Usage: streamroot extract ISO", "", false},
		{"inspect --help", []string{"inspect", "--help"}, 0, "Usage: streamroot inspect", "", false},
		{"manifest --help", []string{"manifest", "--help"}, 0, "-chunk value", "", false},
		{"pxe --help", []string{"pxe", "--help"}, 0, "-foreman-url URL", "", false},
		{"version", []string{"version"}, 0, "streamroot ", "", false},
		{"unknown flag", []string{"serve", "--nope", "dir"}, 2, "", "streamroot serve: flag provided but not defined: -nope\nRun 'streamroot serve --help' for usage.\n", false},
		{"missing argument", []string{"extract"}, 2, "", "streamroot extract: want exactly one ISO, got 0 arguments", false},
		{"missing file", []string{"manifest", "/nonexistent/img"}, 1, "", "streamroot manifest: open /nonexistent/img: no such file or directory\n", true},
		{"serve a file", []string{"serve", "/etc/hostname"}, 1, "", "streamroot serve: /etc/hostname: not a directory\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, errs)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q does not contain %q", out, tt.stdout)
			}
			if !strings.Contains(errs, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", errs, tt.stderr)
			}
			if tt.oneLineErr && strings.Count(errs, "\n") != 1 {
				t.Errorf("error is not one line: %q", errs)
			}
		})
	}
}

func TestParseFlagsInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos []string
		wantO   string
	}{
		{[]string{"a.iso", "-o", "dir"}, []string{"a.iso"}, "dir"},
		{[]string{"-o", "dir", "a.iso"}, []string{"a.iso"}, "dir"},
		{[]string{"--o=dir", "a.iso", "b"}, []string{"a.iso", "b"}, "dir"},
		{[]string{"a.iso", "--", "-o", "x"}, []string{"a.iso", "-o", "x"}, ""},
	}
	for _, tt := range tests {
		fs := newFlags("t", "")
		o := fs.String("o", "", "")
		pos, err := fs.parse(&env{}, tt.args)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(pos, "|") != strings.Join(tt.wantPos, "|") || *o != tt.wantO {
			t.Errorf("%q: pos %q o %q", tt.args, pos, *o)
		}
	}
}

// TestUsageErrorAsJSON: the subcommands that parse with parseJSON report a
// usage mistake they find after the flags as JSON on stdout with --json
// (and as text only without it); a flag the parser refuses stays text.
func TestUsageErrorAsJSON(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the error, on stderr and in the JSON object
		json bool   // stdout is the JSON error object; else it is empty
	}{
		{"inspect", []string{"inspect", "--json", "--cacert", "ca.pem", "a.img"}, "-cacert and -insecure apply to an https:// URL only", true},
		{"inspect no target", []string{"inspect", "--json"}, "want an IMAGE, ISO or URL", true},
		{"inspect text", []string{"inspect", "--cacert", "ca.pem", "a.img"}, "-cacert and -insecure apply", false},
		{"pxe", []string{"pxe", "--json", "--server", "http://h", "--image", "a.img", "extra"}, `unexpected argument "extra"`, true},
		{"pxe text", []string{"pxe", "--server", "http://h", "--image", "a.img", "extra"}, `unexpected argument "extra"`, false},
		{"trace", []string{"trace", "--json", "a.trace"}, "want -manifest IMAGE.manifest and at least one TRACE file", true},
		{"trace text", []string{"trace", "a.trace"}, "want -manifest IMAGE.manifest", false},
		{"unknown flag", []string{"trace", "--json", "--nope"}, "flag provided but not defined: -nope", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, tt.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", code, errs)
			}
			if !strings.Contains(errs, tt.want) {
				t.Errorf("stderr %q does not contain %q", errs, tt.want)
			}
			if !tt.json {
				if out != "" {
					t.Errorf("stdout %q, want nothing", out)
				}
				return
			}
			var got struct {
				Error, Hint string
				Exit        int
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("stdout %q is not one JSON object: %v", out, err)
			}
			cmd := tt.args[0]
			if !strings.Contains(got.Error, tt.want) || got.Exit != 2 || got.Hint != "run 'streamroot "+cmd+" --help' for usage" {
				t.Errorf("JSON %+v, want error %q, exit 2 and the --help hint", got, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"4MiB", 4 << 20}, {"4M", 4 << 20}, {"64k", 64 << 10}, {"64KiB", 64 << 10}, {"1g", 1 << 30},
		{"65536", 65536}, {"2 MiB", 2 << 20}, {"0", -1}, {"-4M", -1}, {"4X", -1}, {"", -1}, {"1.5M", -1},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if tt.want < 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for n, want := range map[int64]string{100: "100 bytes", 4 << 20: "4 MiB", 3 << 29: "1.5 GiB", 65536: "64 KiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
