package hint

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

// own is an error type that carries its own hint, as bootcfg.ArgError does.
type own struct{ hint string }

func (o *own) Error() string { return "own" }
func (o *own) Hint() string  { return o.hint }

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"plain", io.EOF, ""},
		{"new", New(io.EOF, "retry"), "retry"},
		{"wrapped", fmt.Errorf("fetch: %w", New(io.EOF, "retry")), "retry"},
		{"outer wins", New(fmt.Errorf("x: %w", New(io.EOF, "inner")), "outer"), "outer"},
		{"empty outer gives way", New(New(io.EOF, "inner"), ""), "inner"},
		{"own type", fmt.Errorf("config: %w", &own{"fix the line"}), "fix the line"},
		{"own type empty", &own{}, ""},
		{"joined: first with a hint", errors.Join(&own{}, io.EOF, &own{"second"}, &own{"third"}), "second"},
		{"joined in a wrap", fmt.Errorf("x: %w", errors.Join(io.EOF, New(io.EOF, "j"))), "j"},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("%s: Of = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A hint changes neither the text nor what errors.Is and errors.As see.
func TestNewIsTransparent(t *testing.T) {
	base := &own{"inner"}
	err := New(fmt.Errorf("read: %w", base), "outer")
	if err.Error() != "read: own" {
		t.Errorf("Error() = %q", err.Error())
	}
	var o *own
	if !errors.As(err, &o) || o != base {
		t.Error("errors.As does not see through the hint")
	}
	var h Hinter = err
	if h.Hint() != "outer" {
		t.Errorf("Hint() = %q", h.Hint())
	}
}
