// Command streamroot is the host-side tool of streamroot, the network-boot
// initramfs: it serves images over HTTP, pulls the live image out of an ISO,
// tells what layout an image has, writes the chunk manifest that pins an
// image, and prints ready PXELinux, iPXE and GRUB boot entries.
//
//	streamroot serve    [-addr 127.0.0.1:8080] [-grace 10s] DIR
//	streamroot extract  ISO [-path LiveOS/squashfs.img] [-o DIR|-] [-f]
//	streamroot inspect  [-json] [-cacert FILE] [-insecure] IMAGE|ISO|URL
//	streamroot manifest IMAGE [-chunk 4MiB] [-o IMAGE.manifest] [-verify] [-json]
//	streamroot keygen   [-o PREFIX] [-f] [-json]
//	streamroot sign     IMAGE -key FILE -version N [-valid-for 720h] [-json]
//	streamroot trace    -manifest IMAGE.manifest TRACE... [-json]
//	streamroot verify   IMAGE|URL -key FILES [-min-version N] [-json]
//	streamroot initramfs (--modules DIR [--kernel FILE] | --kernel-deb FILE) -o DIR [flags]
//	streamroot publish  ISO --tftp-root DIR --http-root DIR --server URL [--foreman --foreman-url URL] [--json]
//	streamroot uki      --kernel FILE --initramfs FILE --cmdline "ARGS" -o OUT.efi [--key KEY --cert CERT]
//	streamroot pxe      --server URL --image PATH [--format pxelinux|ipxe|grub] [--foreman --foreman-url URL] [--json]
//
// Every subcommand has --help. Stdout carries only the result; errors are
// one line on stderr naming the file or URL and the reason, ending in
// "; hint: ..." when there is advice; with --json a failure is also printed
// on stdout as {"error": ..., "hint": ...}. The exit code is 0, 1 for a
// failure, or 2 for a usage error.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/streamroot/streamroot/pkg/textesc"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a subcommand may touch besides its arguments: no globals, so
// tests run commands in parallel.
type env struct {
	stdout, stderr io.Writer
	// json is set by a subcommand that parsed --json: run then reports a
	// failure on stdout as a JSON object too.
	json bool
	// stall, when set, replaces how long an HTTP read may make no
	// progress (tests shorten it).
	stall time.Duration
	// tty: stderr is a terminal, so long work may draw progress there.
	tty bool
}

func commands() []command {
	return []command{
		{"serve", "serve a directory over HTTP with Range, ETag and an access log (labs and tests)", runServe},
		{"extract", "copy LiveOS/squashfs.img (or another file) out of an ISO, no mount needed", runExtract},
		{"inspect", "tell what layout an image, ISO or URL has (ISO → squashfs → rootfs.img, erofs, ext4)", runInspect},
		{"manifest", "write IMAGE.manifest (SHA-256 per chunk) and print the kernel arguments that pin it", runManifest},
		{"keygen", "make a minisign key pair for signing images (the public key is what initramfs --trust-key bakes in)", runKeygen},
		{"sign", "write IMAGE.manifest and its minisign signature: a node with the key baked in boots it unpinned", runSign},
		{"trace", "write the boot traces of booted nodes into IMAGE.manifest as the chunks to fetch first (format 2)", runTrace},
		{"verify", "check an image (file or URL) and its signed manifest as a node with those keys would", runVerify},
		{"pxe", "print a PXELinux, iPXE or GRUB boot entry for an image on an HTTP server", runPXE},
		{"publish", "lay out an ISO for Foreman's PXE templates: ISO + manifest (HTTP), kernel + initramfs (TFTP), entries, a check", runPublish},
		{"uki", "pack kernel, initramfs and command line into one signed unified kernel image (Secure Boot covers all three)", runUKI},
		{"initramfs", "build the initramfs (and copy the kernel) from a module tree or a kernel .deb, no root needed", runInitramfs},
		{"version", "print the version of this binary", runVersion},
	}
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// hintError is an error with advice for the operator: what to check, or
// which flag fixes it.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// withHint attaches advice to err (nil stays nil); run prints it after the
// error as "; hint: ...".
func withHint(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &hintError{err, fmt.Sprintf(format, args...)}
}

// hintOf is the advice attached anywhere in err's chain, or "".
func hintOf(err error) string {
	var he *hintError
	if errors.As(err, &he) {
		return he.hint
	}
	return ""
}

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// errHelp means --help was asked for and printed: exit 0.
var errHelp = errors.New("help printed")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, tty: isTerminal(os.Stderr)})
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		topUsage(e.stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-version", "--version":
		return run(ctx, []string{"version"}, e)
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && name == "help" {
			return run(ctx, []string{args[1], "--help"}, e)
		}
		topUsage(e.stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, e, args[1:])
		if err == nil || errors.Is(err, errHelp) {
			return 0
		}
		code, hint := printErr(e, name, err), hintOf(err)
		if code == 2 && hint == "" {
			hint = fmt.Sprintf("run 'streamroot %s --help' for usage", name)
		}
		if e.json {
			// A JSON failure always carries advice, if only where to look.
			switch {
			case hint != "":
			case errors.Is(err, fs.ErrNotExist):
				hint = "check the path: the file does not exist"
			case errors.Is(err, fs.ErrPermission):
				hint = "check the file's permissions, or run as a user that can read it"
			default:
				hint = fmt.Sprintf("see 'streamroot %s --help'", name)
			}
			writeJSON(e.stdout, struct {
				Error string `json:"error"`
				Hint  string `json:"hint,omitempty"`
				Exit  int    `json:"exit"`
			}{err.Error(), hint, code})
		}
		return code
	}
	fmt.Fprintf(e.stderr, "streamroot: unknown command %q\n", name)
	topUsage(e.stderr)
	return 2
}

// printErr prints err as the CLI promises (one line, the hint at its
// end; a usage error adds the pointer to --help) and returns the exit
// code it calls for.
func printErr(e *env, name string, err error) int {
	msg := err.Error()
	if hint := hintOf(err); hint != "" {
		// On the same line: an error stays one line, for grep and logs.
		msg += "; hint: " + hint
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "streamroot %s: %s\nRun 'streamroot %s --help' for usage.\n", name, oneLine(msg), name)
		return 2
	}
	fmt.Fprintf(e.stderr, "streamroot %s: %s\n", name, oneLine(msg))
	return 1
}

// oneLine keeps an error message on one line, as the CLI promises, with
// anything else a terminal would act on (escape sequences in a name read
// from an image, say) made visible.
func oneLine(s string) string {
	return textesc.Escape(strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " "))
}

func topUsage(w io.Writer) {
	fmt.Fprint(w, `streamroot: host tools for streamroot, the network-boot initramfs.

Usage: streamroot <command> [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'streamroot <command> --help' for the arguments of a command;
'streamroot --version' prints the version.
Stdout carries only the result; messages go to stderr.
Exit codes: 0 success, 1 failure (one line on stderr says why), 2 usage error.
`)
}

// flagSet is a FlagSet with its usage header; errors are reported by run,
// not printed by the flag package.
type flagSet struct {
	*flag.FlagSet
	usage string
}

func newFlags(name, usage string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{fs, usage}
}

// parse parses args allowing flags before and after positional arguments
// ("extract ISO -o DIR"); "--" ends the flags. It prints the usage on
// --help and returns errHelp.
func (fs *flagSet) parse(e *env, args []string) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.printUsage(e.stdout)
			return nil, errHelp
		}
		if err != nil {
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseJSON is parse for a command with --json: asJSON, that flag (nil
// for none), is applied to e as soon as the flags parse, so run reports
// the usage errors the command finds after that (an argument missing or
// extra, flags that do not go together) as JSON too. A flag the parser
// itself refuses fails before -json is known, and stays text.
func (fs *flagSet) parseJSON(e *env, args []string, asJSON *bool) ([]string, error) {
	pos, err := fs.parse(e, args)
	if err != nil {
		return nil, err
	}
	if asJSON != nil {
		e.json = *asJSON
	}
	return pos, nil
}

// parseOne is parseJSON for a command that takes exactly one argument,
// what in the usage error.
func (fs *flagSet) parseOne(e *env, args []string, what string, asJSON *bool) (string, error) {
	pos, err := fs.parseJSON(e, args, asJSON)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usagef("want exactly one %s, got %d arguments", what, len(pos))
	}
	return pos[0], nil
}

// parseNone is parseJSON for a command that takes flags only.
func (fs *flagSet) parseNone(e *env, args []string, asJSON *bool) error {
	pos, err := fs.parseJSON(e, args, asJSON)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	return nil
}

func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprint(w, fs.usage)
	fmt.Fprint(w, "\nFlags (one or two dashes):\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags("version", "Usage: streamroot version\n\nPrints the module version and VCS revision this binary was built from.\n")
	if _, err := fs.parse(e, args); err != nil {
		return err
	}
	v, rev := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = " " + s.Value
			}
		}
	}
	fmt.Fprintf(e.stdout, "streamroot %s%s\n", v, rev)
	return nil
}

// writeJSON prints v as indented JSON, with non-printing runes escaped so
// names read from an image cannot drive a terminal.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(jsonEscapeNonPrint(buf.Bytes()))
	return err
}
