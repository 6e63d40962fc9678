package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
)

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
	var se *bootlog.StageError
	if !errors.As(err, &se) || se.Stage != "fetch" || !strings.Contains(se.Err.Error(), "panic: runtime error: index out of range") {
		t.Fatalf("run = %v", err)
	}
	if !slices.Equal(ran, []string{"config", "fetch"}) || len(b.timings) != 2 {
		t.Errorf("ran %q, timings %v", ran, b.timings)
	}
	out := bootlog.FailureOf(err, logFile, b.timings).Format()
	if !strings.Contains(out, "streamroot: stage:   fetch\n") || !strings.Contains(out, "streamroot: hint:    "+bootlog.StageHint("fetch")+"\n") ||
		!strings.Contains(out, "(stages: config ") || !strings.Contains(out, ", fetch ") {
		t.Errorf("failure block:\n%s", out)
	}
}

// The failure policy the kernel line asks for, and the one of a line that
// did not parse.
func TestFailPolicy(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    bootlog.Policy
	}{
		{"", bootlog.Policy{Delay: 30 * time.Second}},
		{"root=live:http://x/i", bootlog.Policy{Delay: 30 * time.Second}},
		{"root=live:http://x/i rd.shell", bootlog.Policy{Shell: true, Delay: 30 * time.Second}},
		{"root=live:http://x/i streamroot.onfail=shell", bootlog.Policy{Shell: true, Delay: 30 * time.Second}},
		{"root=live:http://x/i streamroot.onfail=halt rd.shell", bootlog.Policy{Shell: true, Halt: true, Delay: 30 * time.Second}},
		{"root=live:http://x/i streamroot.reboot.delay=0", bootlog.Policy{}},
	} {
		var cfg *bootcfg.Config
		if tc.cmdline != "" {
			var err error
			if cfg, err = bootcfg.Parse(tc.cmdline); err != nil {
				t.Fatal(err)
			}
		}
		if got := failPolicy(cfg); got != tc.want {
			t.Errorf("%q: policy %+v, want %+v", tc.cmdline, got, tc.want)
		}
	}
}
