package bootlog

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/hint"
)

// The failure block, byte for byte: the harness and the demo parse it.
func TestFailureOf(t *testing.T) {
	_, argErr := bootcfg.Parse("root=live:ftp://x/i")
	if argErr == nil {
		t.Fatal("ftp root accepted")
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"own hint", &StageError{"fetch", fmt.Errorf("GET http://10.77.0.1/missing.squashfs: %w", hint.New(errors.New("404 Not Found"), "the server has no file at that path"))}, `streamroot: ==================== BOOT FAILED ====================
streamroot: stage:   fetch
streamroot: problem: GET http://10.77.0.1/missing.squashfs: 404 Not Found
streamroot: hint:    the server has no file at that path
streamroot: log:     /run/initramfs/streamroot.log (stages: early 1ms)
streamroot: =======================================================
`},
		{"stage hint", &StageError{"network", errors.New("no carrier on any link\nwaited 15s")}, `streamroot: ==================== BOOT FAILED ====================
streamroot: stage:   network
streamroot: problem: no carrier on any link
streamroot:          waited 15s
streamroot: hint:    ` + StageHint("network") + `
streamroot: log:     /run/initramfs/streamroot.log (stages: early 1ms)
streamroot: =======================================================
`},
		{"argument error", &StageError{"config", argErr}, `streamroot: ==================== BOOT FAILED ====================
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
			out := FailureOf(tc.err, "/run/initramfs/streamroot.log", []StageTime{{Stage: "early", Took: time.Millisecond}}).Format()
			if out != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", out, tc.want)
			}
		})
	}
}

// The lines after the block: what the harness waits for is what PID 1
// prints.
func TestPolicyLines(t *testing.T) {
	for _, tc := range []struct {
		p           Policy
		shell, end  string
		reboot      time.Duration
		rebootFound bool
	}{
		{Policy{Delay: 30 * time.Second}, "streamroot: rd.shell: starting a shell; exit it to reboot",
			"streamroot: rebooting in 30 s (streamroot.onfail=reboot; rd.shell gives a shell instead)", 30 * time.Second, true},
		{Policy{Shell: true}, "streamroot: rd.shell: starting a shell; exit it to reboot",
			"streamroot: rebooting in 0 s (streamroot.onfail=reboot; rd.shell gives a shell instead)", 0, true},
		{Policy{Halt: true, Delay: time.Minute}, "streamroot: rd.shell: starting a shell; exit it to halt",
			"streamroot: halted (streamroot.onfail=halt); power-cycle the node to retry", 0, false},
	} {
		if got := tc.p.ShellLine(); got != tc.shell {
			t.Errorf("%+v: shell line %q", tc.p, got)
		}
		if got := tc.p.EndLine(); got != tc.end {
			t.Errorf("%+v: end line %q", tc.p, got)
		}
		d, ok := ParseReboot("[    3.1] x\n" + tc.p.EndLine() + "\n")
		if d != tc.reboot || ok != tc.rebootFound {
			t.Errorf("%+v: ParseReboot = %s, %v", tc.p, d, ok)
		}
	}
	for _, bad := range []string{"", "streamroot: rebooting in soon", "streamroot: rebooting in -1 s", "rebooting in 5 s"} {
		if d, ok := ParseReboot(bad); ok {
			t.Errorf("ParseReboot(%q) = %s", bad, d)
		}
	}
}
