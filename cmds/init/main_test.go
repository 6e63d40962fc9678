package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/hint"
)

func TestBreakBefore(t *testing.T) {
	for _, tc := range []struct {
		breaks []string
		stage  string
		want   bool
	}{
		{nil, "switch", false},
		{[]string{"fetch"}, "fetch", true},
		{[]string{"fetch"}, "layers", false},
		{[]string{"pre-mount"}, "layers", true}, // dracut's hook names
		{[]string{"cmdline"}, "config", true},
		{[]string{"initqueue"}, "network", true},
		{[]string{"pre-pivot"}, "switch", true},
		{[]string{"pre-udev", "mount"}, "modules", true},
		{[]string{"pre-udev", "mount"}, "layers", true},
		{[]string{"pre-udev", "mount"}, "network", false},
		{[]string{"nonsense"}, "fetch", false},
	} {
		if got := breakBefore(tc.breaks, tc.stage); got != tc.want {
			t.Errorf("breakBefore(%q, %s) = %v", tc.breaks, tc.stage, got)
		}
	}
	// rd.break alone is "before switch" (bootcfg's doing): it must stop there.
	cfg, err := bootcfg.Parse("root=live:http://x/i rd.break")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"early", "config", "modules", "network", "fetch", "layers", "handover", "switch"} {
		if got := breakBefore(cfg.Break, st); got != (st == "switch") {
			t.Errorf("plain rd.break (%q): break before %s = %v", cfg.Break, st, got)
		}
	}
}

func TestRealInit(t *testing.T) {
	argv, env := realInit("/sbin/init", []string{"quiet", "single", "console=ttyS0", "3", "emergency", "rd.break"}, "vt100")
	if want := []string{"/sbin/init", "single", "3", "emergency"}; !slices.Equal(argv, want) {
		t.Errorf("argv %q, want %q", argv, want)
	}
	if want := []string{"HOME=/", "TERM=vt100", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}; !slices.Equal(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}
}

// A stage that panics ends the pipeline with an error naming that stage,
// as a failing one does; later stages do not run.
func TestRunRecoversStagePanic(t *testing.T) {
	b := &boot{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var ran []string
	st := func(name string, f func()) stage {
		return stage{name, func(context.Context) error { ran = append(ran, name); f(); return nil }}
	}
	err := b.run(context.Background(), []stage{
		st("config", func() {}),
		st("fetch", func() {
			var workers []int
			_ = workers[len(ran)] // a runtime panic, as a bug would be
		}),
		st("layers", func() {}),
	})
	var se *stageError
	if !errors.As(err, &se) || se.stage != "fetch" || !strings.Contains(se.err.Error(), "panic: runtime error: index out of range") {
		t.Fatalf("run = %v", err)
	}
	if !slices.Equal(ran, []string{"config", "fetch"}) || len(b.timings) != 2 {
		t.Errorf("ran %q, timings %v", ran, b.timings)
	}
	var out bytes.Buffer
	printFailure(&out, err, b.stageTimes())
	if !strings.Contains(out.String(), "streamroot: stage:   fetch\n") || !strings.Contains(out.String(), "streamroot: hint:    "+stageHints["fetch"]+"\n") {
		t.Errorf("failure block:\n%s", out.String())
	}
}

// The failure block, byte for byte: the harness and the demo parse it.
func TestPrintFailure(t *testing.T) {
	_, argErr := bootcfg.Parse("root=live:ftp://x/i")
	if argErr == nil {
		t.Fatal("ftp root accepted")
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"own hint", &stageError{"fetch", fmt.Errorf("GET http://10.77.0.1/missing.squashfs: %w", hint.New(errors.New("404 Not Found"), "the server has no file at that path"))}, `streamroot: ==================== BOOT FAILED ====================
streamroot: stage:   fetch
streamroot: problem: GET http://10.77.0.1/missing.squashfs: 404 Not Found
streamroot: hint:    the server has no file at that path
streamroot: log:     /run/initramfs/streamroot.log (stages: early 1ms)
streamroot: =======================================================
`},
		{"stage hint", &stageError{"network", errors.New("no carrier on any link\nwaited 15s")}, `streamroot: ==================== BOOT FAILED ====================
streamroot: stage:   network
streamroot: problem: no carrier on any link
streamroot:          waited 15s
streamroot: hint:    ` + stageHints["network"] + `
streamroot: log:     /run/initramfs/streamroot.log (stages: early 1ms)
streamroot: =======================================================
`},
		{"argument error", &stageError{"config", argErr}, `streamroot: ==================== BOOT FAILED ====================
streamroot: stage:   config
streamroot: problem: ` + argErr.Error() + `
streamroot: hint:    ` + bootcfg.ArgErrors(argErr)[0].Hint() + `
streamroot: log:     /run/initramfs/streamroot.log (stages: early 1ms)
streamroot: =======================================================
`},
		{"no error", nil, `streamroot: ==================== BOOT FAILED ====================
streamroot: stage:   internal
streamroot: problem: boot pipeline ended without switching root
streamroot: hint:    
streamroot: log:     /run/initramfs/streamroot.log (stages: early 1ms)
streamroot: =======================================================
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			printFailure(&out, tc.err, []bootlog.StageTime{{Stage: "early", Took: time.Millisecond}})
			if out.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), tc.want)
			}
		})
	}
}
