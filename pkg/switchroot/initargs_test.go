package switchroot

import (
	"slices"
	"strings"
	"testing"
)

func TestInitArgv(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"/sbin/init"}},
		{[]string{"quiet", "single", "console=ttyS0", "3", "emergency", "rd.break"}, []string{"/sbin/init", "single", "3", "emergency"}},
		{[]string{"S", "rescue", "auto", "6", "init=/bin/sh"}, []string{"/sbin/init", "S", "rescue", "auto"}},
	} {
		if got := InitArgv("/sbin/init", tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("InitArgv(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestInitEnv(t *testing.T) {
	want := []string{"HOME=/", "TERM=vt100", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if got := InitEnv("vt100"); !slices.Equal(got, want) {
		t.Errorf("InitEnv(vt100) = %q, want %q", got, want)
	}
	if got := InitEnv(""); !slices.Contains(got, "TERM=linux") {
		t.Errorf("InitEnv(\"\") = %q: no TERM=linux default", got)
	}
}

// Every API filesystem mounted at the start must be carried into the new
// root by Switch, or the booted system loses it (or the initramfs cannot be
// freed under it).
func TestAPIMountsAreMoved(t *testing.T) {
	for _, m := range apiMounts {
		if !slices.ContainsFunc(movedMounts(), func(moved string) bool {
			return m.dst == moved || strings.HasPrefix(m.dst, moved+"/")
		}) {
			t.Errorf("%s (%s) is mounted but not moved at switch_root", m.dst, m.fstype)
		}
	}
}
