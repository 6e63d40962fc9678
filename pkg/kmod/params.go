package kmod

import (
	"fmt"
	"slices"
	"strings"
)

// Module parameters come from the kernel command line as modprobe takes
// them: "<module>.<param>[=<value>]" before a "--", the module's name with
// '-' and '_' alike, a value in double quotes kept as the kernel's own
// parser reads it. The kernel applies such arguments only to built-in
// modules; for loadable ones it is the loader's job, so a line written for
// a dracut initramfs (e.g. "virtio_net.napi_tx=1", "mlx5_core.num_vfs=0")
// means the same here.

// Workaround is a module parameter the loader sets unless the kernel
// command line sets that parameter itself.
type Workaround struct {
	Module, Param, Value string
	Why                  string // what breaks without it, for the log
}

// workarounds are kernel bugs that streamroot's design (a daemon that keeps
// the network busy until the image is in RAM, for the whole life of the
// booted system) turns from rare into likely.
var workarounds = []Workaround{{
	Module: "virtio_net", Param: "napi_tx", Value: "0",
	// Linux without 0d0eff39ceb3 ("virtio_ring: fix infinite loop in
	// virtnet_poll_cleantx when device is broken"; Debian 12's 6.1 is one):
	// at poweroff or reboot, device_shutdown() marks the virtqueues broken;
	// a receive interrupt that comes after (the background fill is
	// receiving) runs virtnet_poll_cleantx, which then loops for ever, so
	// the guest never powers off. Without TX NAPI that loop is not entered;
	// sent buffers are reclaimed on the next transmit, as was the default
	// before Linux 5.14.
	Why: "without it a virtio-net guest can hang at poweroff while receiving (Linux before 0d0eff39ceb3)",
}, {
	Module: "bonding", Param: "max_bonds", Value: "0",
	// The bonding driver makes bond0 at load unless told not to; the boot
	// creates the bonds bond= names itself, and a stray bond0 would reach
	// the real OS as a link nobody configured.
	Why: "without it loading bonding creates an unconfigured bond0",
}}

// maxParamBytes bounds what one module gets: the kernel's command line is
// at most a few KiB, so anything larger is not a command line.
const maxParamBytes = 4096

// cmdlineParams returns each module's parameters from a kernel command
// line, in the order written, as the kernel's parse_args reads them
// ("p=v", "p" for a boolean).
func cmdlineParams(cmdline string) map[string][]string {
	out := map[string][]string{}
	for _, arg := range splitArgs(cmdline) {
		if arg == "--" {
			break // what follows is the init's
		}
		key, _, _ := strings.Cut(arg, "=")
		mod, param, ok := strings.Cut(key, ".")
		if !ok || !validName(mod) || !validParam(param) {
			continue
		}
		mod = Normalize(mod)
		out[mod] = append(out[mod], param+arg[len(key):])
	}
	return out
}

// splitArgs splits a command line at white space outside double quotes, as
// the kernel's next_arg does (quotes stay in the argument).
func splitArgs(s string) []string {
	var args []string
	start, quoted := -1, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			quoted = !quoted
		}
		space := !quoted && (c == ' ' || c == '\t' || c == '\n')
		switch {
		case space && start >= 0:
			args = append(args, s[start:i])
			start = -1
		case !space && start < 0:
			start = i
		}
	}
	if start >= 0 {
		args = append(args, s[start:])
	}
	return args
}

func validName(s string) bool {
	return s != "" && len(s) < 64 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == ""
}

// validParam admits what module_param names are made of ("." occurs in
// names like "nf_conntrack.acct" after the module's own prefix).
func validParam(s string) bool {
	return s != "" && len(s) < 64 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == ""
}

// moduleParams merges the command line's parameters with the workarounds
// it does not override, and bounds each module's string. It returns the
// workarounds it applied by module, for the log when that module loads.
func moduleParams(cmdline string) (map[string]string, map[string][]Workaround) {
	given := cmdlineParams(cmdline)
	out := map[string]string{}
	applied := map[string][]Workaround{}
	for _, w := range workarounds {
		set := slices.ContainsFunc(given[w.Module], func(p string) bool {
			name, _, _ := strings.Cut(p, "=")
			return Normalize(name) == Normalize(w.Param)
		})
		if !set {
			given[w.Module] = append([]string{w.Param + "=" + w.Value}, given[w.Module]...)
			applied[w.Module] = append(applied[w.Module], w)
		}
	}
	for mod, ps := range given {
		s := strings.Join(ps, " ")
		if len(s) > maxParamBytes {
			delete(applied, mod) // not a kernel's command line: nothing for mod
			continue
		}
		out[mod] = s
	}
	return out, applied
}

func (w Workaround) String() string {
	return fmt.Sprintf("%s.%s=%s", w.Module, w.Param, w.Value)
}
