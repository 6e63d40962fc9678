// Command streamroot-demo is behind `make demo` and `make qemu` (see
// docs/demo.md): it boots the streamroot initramfs in QEMU with user-mode
// networking against `streamroot serve` on the host's loopback, shows the
// serial console live and ends with a summary of the boot.
//
//	streamroot-demo demo [flags]         build a demo root, serve it, boot it
//	streamroot-demo qemu [flags] IMAGE   boot a squashfs/erofs/ext4 image or ISO (path or loopback URL)
//
// The guest's network is QEMU's user-mode stack (no root, no bridge). By
// default it is restricted (restrict=on): the guest reaches nothing but
// 10.0.2.2:<port>, which QEMU forwards (guestfwd) to the server on the host's
// 127.0.0.1:<port> through this program's hidden `relay` command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func init() {
	// Children are started with Pdeathsig, which fires when the *thread*
	// that forked them exits: start them all from the main thread.
	runtime.LockOSThread()
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == relayCommand {
		os.Exit(relayMain(os.Args[2:]))
	}
	os.Exit(mainErr(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Usage:
  streamroot-demo demo [flags]          make a demo root, serve it, boot it in QEMU (make demo)
  streamroot-demo qemu [flags] IMAGE    boot an image or ISO: a local path, or an http(s) URL
                                        on this machine's loopback (make qemu IMAGE=...)

Flags (the make variable in brackets):
`

// usageError is a bad command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func mainErr(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return fail(stderr, err, 2)
	}
	cfg.out = stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, cfg)
	if err != nil {
		return fail(stderr, err, 1)
	}
	if !ok {
		return 1
	}
	return 0
}

// fail prints err as one line and returns the exit code: 2 for a usage
// error, else code.
func fail(stderr io.Writer, err error, code int) int {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "streamroot-demo: %s\n", ue.msg)
		return 2
	}
	fmt.Fprintf(stderr, "streamroot-demo: %v\n", err)
	return code
}

// config is one run.
type config struct {
	cmd        string // "demo" or "qemu"
	image      string // qemu: path or URL
	kernel     string
	initramfs  string
	streamroot string // the host CLI (serve)
	work       string // console log, server log, demo root
	appendArgs string // extra kernel arguments, last on the line
	mode       string // "", stream, ram, lazy
	timeout    time.Duration
	linger     time.Duration // qemu: keep the guest running this long after its init came up
	memMiB     int
	accel      string // tcg or kvm
	netMode    string // restricted (default) or open
	quiet      bool   // add "quiet" to the kernel line
	out        io.Writer
}

func parseArgs(args []string, stderr io.Writer) (*config, error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return nil, &usageError{"want a command: demo or qemu"}
	}
	cfg := &config{cmd: args[0]}
	switch cfg.cmd {
	case "demo", "qemu":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, usage)
		newFlagSet(&config{cmd: "qemu"}, stderr).PrintDefaults()
		return nil, flag.ErrHelp
	default:
		return nil, &usageError{fmt.Sprintf("unknown command %q (want demo or qemu)", cfg.cmd)}
	}
	fs := newFlagSet(cfg, stderr)
	timeout := fs.String("timeout", "300", "`bound` of the QEMU run: seconds or a Go duration (5m) [TIMEOUT]")
	linger := fs.String("linger", "20", "qemu: `seconds` the guest keeps running after its init came up, then it is stopped [LINGER]")
	// Flags may follow the image: parse, take one positional, parse again.
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	rest := fs.Args()
	var pos []string
	for len(rest) > 0 {
		pos = append(pos, rest[0])
		if err := fs.Parse(rest[1:]); err != nil {
			return nil, err
		}
		rest = fs.Args()
	}
	switch {
	case cfg.cmd == "demo" && len(pos) > 0:
		return nil, &usageError{fmt.Sprintf("demo takes no arguments (got %q)", pos[0])}
	case cfg.cmd == "qemu" && len(pos) != 1:
		return nil, &usageError{"qemu wants exactly one IMAGE: a squashfs/erofs/ext4 image or an ISO, as a path or a loopback URL (make qemu IMAGE=...)"}
	case cfg.cmd == "qemu":
		cfg.image = pos[0]
	}
	var err error
	if cfg.timeout, err = parseSeconds("timeout", *timeout); err != nil {
		return nil, err
	}
	if cfg.linger, err = parseSeconds("linger", *linger); err != nil {
		return nil, err
	}
	if cfg.timeout <= 0 {
		return nil, &usageError{"-timeout must be positive"}
	}
	switch cfg.mode {
	case "", "stream", "ram", "lazy":
	default:
		return nil, &usageError{fmt.Sprintf("-mode %q: want stream, ram or lazy", cfg.mode)}
	}
	switch cfg.accel {
	case "tcg", "kvm":
	default:
		return nil, &usageError{fmt.Sprintf("-accel %q: want tcg or kvm", cfg.accel)}
	}
	switch cfg.netMode {
	case "restricted", "open":
	default:
		return nil, &usageError{fmt.Sprintf("-net %q: want restricted or open", cfg.netMode)}
	}
	if strings.ContainsAny(cfg.appendArgs, "\r\n") {
		return nil, &usageError{"-append must be one line"}
	}
	if cfg.memMiB == 0 {
		cfg.memMiB = 1024
		if cfg.cmd == "qemu" {
			cfg.memMiB = 2048
		}
	}
	if cfg.work == "" {
		cfg.work = "build/" + cfg.cmd
	}
	return cfg, nil
}

func newFlagSet(cfg *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("streamroot-demo "+cfg.cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.kernel, "kernel", "build/kernel/vmlinuz", "`vmlinuz` to boot (make kernel)")
	fs.StringVar(&cfg.initramfs, "initramfs", "build/initramfs.img", "streamroot `initramfs` (make initramfs); copied before the boot")
	fs.StringVar(&cfg.streamroot, "streamroot", "build/streamroot", "the streamroot host CLI `binary`, for 'serve'")
	fs.StringVar(&cfg.work, "work", "", "`directory` for the console log, the server log and the demo root (default build/<command>)")
	fs.StringVar(&cfg.appendArgs, "append", "", "extra kernel `arguments`, last on the line [APPEND]")
	fs.StringVar(&cfg.mode, "mode", "", "fetch `mode`: stream, ram or lazy (streamroot.fetch=); default: the initramfs' own (stream) [MODE]")
	fs.IntVar(&cfg.memMiB, "mem", 0, "guest RAM in `MiB` (default 1024 for demo, 2048 for qemu) [MEM]")
	fs.StringVar(&cfg.accel, "accel", "tcg", "QEMU accelerator: tcg (-cpu max) or kvm (-cpu host) [ACCEL]")
	fs.StringVar(&cfg.netMode, "net", "restricted", "guest network: restricted (only the loopback server, via 10.0.2.2) or open (QEMU's default NAT: any URL) [NET]")
	fs.BoolVar(&cfg.quiet, "quiet", cfg.cmd == "demo", "add 'quiet' to the kernel line: the console shows streamroot's lines, not the kernel's [QUIET=0|1]")
	return fs
}

// parseSeconds reads "300", "300s" or "5m".
func parseSeconds(name, s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n < 0 {
			return 0, &usageError{fmt.Sprintf("-%s %q: must not be negative", name, s)}
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, &usageError{fmt.Sprintf("-%s %q: want seconds (300) or a duration (5m)", name, s)}
	}
	return d, nil
}
