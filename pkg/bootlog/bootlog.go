// Package bootlog is the initramfs's logger: one plain line per record on the
// console, in the form operators grep for ("streamroot: network: bound …"), and
// the same lines in a file the booted system keeps (/run/initramfs/streamroot.log).
//
// It is a slog.Handler rather than slog.TextHandler because a serial console
// is read by people: the stage goes in front, not in a key=value pair, and the
// time is left out on the console (the kernel's own lines carry it) but kept
// in the file.
//
// The lines other programs read back (the failure block, the switch line,
// the stage summary, download and fill progress) are defined in console.go,
// each with its formatter and its parser, so that the init, the QEMU test
// harness and the demo share one definition.
package bootlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// StageKey is the attribute that names the pipeline stage of a record.
const StageKey = "stage"

// Handler writes records to the console and, once attached, to a log file.
// Records written before a file is attached are buffered and flushed into it.
type Handler struct {
	s      *sink
	level  *slog.LevelVar
	stage  string
	prefix []slog.Attr
}

type sink struct {
	mu      sync.Mutex
	console io.Writer
	file    io.Writer
	pending bytes.Buffer
	start   time.Time
}

// New returns a handler printing to console at level (a LevelVar, so rd.debug
// can lower it after the command line is parsed).
func New(console io.Writer, level *slog.LevelVar) *Handler {
	return &Handler{s: &sink{console: console, start: time.Now()}, level: level}
}

// AttachFile starts copying every record into f, beginning with the ones
// logged so far.
func (h *Handler) AttachFile(f io.Writer) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.file = f
	_, err := f.Write(h.s.pending.Bytes())
	h.s.pending.Reset()
	return err
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs implements slog.Handler; a "stage" attribute becomes the line's prefix.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.prefix = append([]slog.Attr(nil), h.prefix...)
	for _, a := range as {
		if a.Key == StageKey {
			n.stage = a.Value.String()
			continue
		}
		n.prefix = append(n.prefix, a)
	}
	return &n
}

// WithGroup implements slog.Handler; groups are flattened (the console has no use for them).
func (h *Handler) WithGroup(string) slog.Handler { return h }

// Handle implements slog.Handler.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("streamroot: ")
	stage := h.stage
	var attrs strings.Builder
	add := func(a slog.Attr) bool {
		if a.Key == StageKey {
			stage = a.Value.String()
			return true
		}
		if a.Equal(slog.Attr{}) {
			return true
		}
		v := a.Value.Resolve().String()
		if strings.ContainsAny(v, " \t\"") || v == "" {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&attrs, " %s=%s", a.Key, v)
		return true
	}
	for _, a := range h.prefix {
		add(a)
	}
	r.Attrs(add)
	if stage != "" {
		b.WriteString(stage)
		b.WriteString(": ")
	}
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("ERROR: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("WARNING: ")
	}
	b.WriteString(r.Message)
	b.WriteString(attrs.String())
	b.WriteByte('\n')
	line := b.String()

	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	_, err := io.WriteString(h.s.console, line)
	stamped := fmt.Sprintf("[%9.3f] %s", time.Since(h.s.start).Seconds(), line)
	if h.s.file != nil {
		_, _ = io.WriteString(h.s.file, stamped)
	} else {
		h.s.pending.WriteString(stamped)
	}
	return err
}

// Console returns a writer for raw console text (failure blocks, shell
// banners) that also lands in the log file.
func (h *Handler) Console() io.Writer { return consoleWriter{h.s} }

type consoleWriter struct{ s *sink }

func (w consoleWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.file != nil {
		_, _ = w.s.file.Write(p)
	} else {
		w.s.pending.Write(p)
	}
	return w.s.console.Write(p)
}

// OpenFile opens (appending) the log file the booted system keeps.
func OpenFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}
