package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/streamroot/streamroot/builder"
	"github.com/streamroot/streamroot/pkg/atomicfile"
	"github.com/streamroot/streamroot/pkg/bzimage"
	"github.com/streamroot/streamroot/pkg/trust"
)

const initramfsUsage = `Usage: streamroot initramfs (--modules DIR [--kernel FILE] | --kernel-deb FILE | --kernel-rpm FILE... | --from-iso ISO|URL) -o DIR
       [--kernel-name vmlinuz] [--initramfs-name initramfs.img] [--init PATH]
       [--shell PATH|none] [--ca FILE|none] [--extra-ca FILES] [--nic LIST] [--add-modules LIST]
       [--compress zstd[:LEVEL]|lz4|xz|gzip|none] [--manifest-digest HEX] [--image-url URL]
       [--trust-key KEYS [--min-version N]] [--json] [-v]

Builds the streamroot initramfs for a kernel and writes DIR/initramfs.img,
and with it the kernel as DIR/vmlinuz, both replaced atomically. The same
code as 'make initramfs'; the same inputs give the same bytes.

The kernel and its modules come from one source:
  --modules DIR      a lib/modules/<kver> tree (its base name is the release);
                     --kernel FILE copies that kernel to DIR/vmlinuz
  --kernel-deb FILE  a Debian kernel package: boot/vmlinuz-<kver> and
                     lib/modules/<kver>, read without dpkg
  --kernel-rpm FILE  EL kernel packages (repeat the flag or separate with commas:
                     kernel-core with kernel-modules): the kernel
                     (lib/modules/<kver>/vmlinuz) and modules, read without rpm
  --from-iso ISO|URL a live ISO (the Foreman Discovery Image), a file or an
                     http(s) URL read by Range requests: its kernel
                     (isolinux/vmlinuz0, images/pxeboot/vmlinuz, ...), and
                     that release's modules from its root, LiveOS/squashfs.img
                     or the ext4 LiveOS/rootfs.img inside it

No root, mount, loop device or other program is needed. A tree without
depmod's modules.dep (a package never installed) gets its indexes computed
from the modules' own .modinfo. Compressed modules (.ko.xz, .ko.zst,
.ko.gz) are stored decompressed, signatures intact.

--trust-key bakes minisign public keys (key files as 'streamroot keygen'
writes them, or the base64 keys, comma-separated) into the initramfs: a node
then boots only images whose manifest one of them signed ('streamroot sign'),
pinned or not; --min-version refuses statements below that version
(docs/trust.md).

--init defaults to streamroot-init next to this binary (the static
cmds/init build; 'make init' writes build/init). Stdout carries the result
lines (--json: one object); the build's log goes to stderr.
`

// initName is the init binary's file name next to the streamroot binary,
// where --init looks by default: a release ships the two side by side.
const initName = "streamroot-init"

// caCandidates are the CA bundles of the common distributions, tried in
// order when --ca is not given: Debian/Ubuntu, then EL/Fedora, then SUSE.
var caCandidates = []string{builder.CABundlePath, "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/ca-bundle.pem"}

type initramfsResult struct {
	Kernel    string `json:"kernel,omitempty"`
	KVer      string `json:"kver"`
	Initramfs string `json:"initramfs"`
	Size      int64  `json:"size"`
	Modules   int    `json:"modules"`
	// SignedModules of Modules kept their appended signature.
	SignedModules int    `json:"signed_modules"`
	Compress      string `json:"compress"`
	ImageURL      string `json:"image_url,omitempty"`
	// TrustKeys are the baked keys' ids, MinVersion the baked minimum.
	TrustKeys  []string `json:"trust_keys,omitempty"`
	MinVersion uint64   `json:"min_version,omitempty"`
}

func runInitramfs(ctx context.Context, e *env, args []string) error {
	fs := newFlags("initramfs", initramfsUsage)
	var (
		modDir      = fs.String("modules", "", "kernel module tree lib/modules/<kver> (the source: one of --modules, --kernel-deb, --kernel-rpm, --from-iso)")
		kernelFile  = fs.String("kernel", "", "with --modules: the kernel to copy to DIR/vmlinuz")
		debFile     = fs.String("kernel-deb", "", "Debian kernel package (.deb) to take the kernel and modules from")
		isoFile     = fs.String("from-iso", "", "live ISO (a file or an http(s) URL) to take the kernel and its modules from")
		rpmFiles    listFlag
		outDir      = fs.String("o", "", "output directory (required)")
		kernelName  = fs.String("kernel-name", "vmlinuz", "file name of the kernel in DIR")
		initrdName  = fs.String("initramfs-name", "initramfs.img", "file name of the initramfs in DIR")
		initPath    = fs.String("init", "", "static /init binary (default: "+initName+" next to this binary)")
		shell       = fs.String("shell", "none", "static busybox for the rescue shell, or \"none\"")
		ca          = fs.String("ca", "", "CA bundle for HTTPS, or \"none\" (default: the host's, by its distribution's path)")
		extraCA     = fs.String("extra-ca", "", "comma-separated PEM files appended to the CA bundle")
		nic         = fs.String("nic", builder.DefaultNICs, "comma-separated NIC driver modules (names the kernel lacks are skipped), or \"none\"")
		addModules  = fs.String("add-modules", builder.DefaultModules, "comma-separated modules or aliases always included")
		compression = fs.String("compress", "zstd", "compression: "+strings.Join(builder.Compressions(), ", "))
		manifestDig = fs.String("manifest-digest", "", "SHA-256 (hex) of the image's chunk manifest, baked in as the pin")
		imageURL    = fs.String("image-url", "", "default image URL, baked in: root=live:/PATH (Foreman's template) then boots it")
		trustKey    = fs.String("trust-key", "", "comma-separated minisign public keys (files or base64), baked in: only images they sign boot")
		minVersion  = fs.String("min-version", "", "lowest signed statement version a node accepts (rollback); needs --trust-key")
		asJSON      = fs.Bool("json", false, "print the result as a JSON object")
		verbose     = fs.Bool("v", false, "log every module added")
	)
	fs.Var(&rpmFiles, "kernel-rpm", "EL kernel package(s) (.rpm) to take the kernel and modules from; repeat or comma-separate")
	if err := fs.parseNone(e, args, asJSON); err != nil {
		return err
	}
	if n := countSet(*modDir, *debFile, *isoFile, strings.Join(rpmFiles, ",")); n != 1 {
		return usagef("give exactly one source: --modules DIR, --kernel-deb FILE, --kernel-rpm FILE or --from-iso ISO")
	}
	if *kernelFile != "" && *modDir == "" {
		return usagef("--kernel goes with --modules (a package brings its own kernel)")
	}
	if *outDir == "" {
		return usagef("-o DIR is required")
	}
	for _, n := range []*string{kernelName, initrdName} {
		if !filepath.IsLocal(*n) || strings.ContainsRune(*n, '/') {
			return usagef("%q is not a file name inside -o DIR", *n)
		}
	}
	if *kernelName == *initrdName {
		return usagef("--kernel-name and --initramfs-name are both %q", *kernelName)
	}

	// The builder's own flag parser validates everything the two front
	// ends share; give it the equivalent command line rather than
	// checking the values a second way.
	bargs := []string{"-compress", *compression, "-nic", *nic, "-modules", *addModules,
		"-shell", *shell, "-o", filepath.Join(*outDir, *initrdName), "-moddir", "placeholder"}
	bargs = appendSet(bargs, flagValue{"-extra-ca", *extraCA}, flagValue{"-manifest-digest", *manifestDig},
		flagValue{"-image-url", *imageURL}, flagValue{"-trust-key", *trustKey}, flagValue{"-min-version", *minVersion})
	if *initPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return withHint(fmt.Errorf("finding this binary: %w", err), "name the init with --init PATH")
		}
		*initPath = filepath.Join(filepath.Dir(exe), initName)
		if _, err := os.Stat(*initPath); err != nil {
			return withHint(fmt.Errorf("--init: %w", err), "put the static init (make init: build/init) there as %s, or name it with --init PATH", initName)
		}
	}
	bargs = append(bargs, "-init", *initPath)
	caPath, err := pickCA(*ca)
	if err != nil {
		return err
	}
	bargs = append(bargs, "-ca", caPath)
	opts, _, err := builder.ParseFlags(bargs, os.Getenv, io.Discard)
	if err != nil {
		return &usageError{err.Error()}
	}
	opts.ScanModules = true
	log := builder.NewLogger(e.stderr, *verbose)

	src := kernelSource{modDir: *modDir, kernel: *kernelFile}
	if *modDir == "" {
		tmp, err := os.MkdirTemp("", "streamroot-initramfs-")
		if err != nil {
			return withHint(err, "set TMPDIR to a writable directory with room for the kernel's modules")
		}
		defer os.RemoveAll(tmp)
		switch {
		case *debFile != "":
			src, err = fromDeb(*debFile, tmp)
		case *isoFile != "":
			src, err = fromISO(ctx, e, *isoFile, tmp)
		default:
			src, err = fromRPM(rpmFiles, tmp)
		}
		if err != nil {
			return err
		}
	}
	opts.ModDir = filepath.Clean(src.modDir)
	opts.KVer = filepath.Base(opts.ModDir)
	if err := checkRelease(src.kernel, opts.KVer); err != nil {
		return err
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	// The initramfs first: it is what fails on a bad input, and a failed
	// build then leaves DIR as it was.
	br, err := builder.Build(opts, log)
	if err != nil {
		return err
	}
	res := initramfsResult{KVer: opts.KVer, ImageURL: opts.ImageURL,
		Initramfs: br.Path, Size: br.Size, Modules: br.Modules, SignedModules: br.SignedModules, Compress: br.Compress, MinVersion: opts.MinVersion}
	keys, err := trust.ParseKeys([]byte(strings.Join(opts.TrustKeys, "\n"))) // checked by ParseFlags
	if err != nil {
		return err
	}
	for _, k := range keys {
		res.TrustKeys = append(res.TrustKeys, trust.KeyID(k.ID()))
	}
	if src.kernel != "" {
		res.Kernel = filepath.Join(*outDir, *kernelName)
		if err := copyKernel(src.kernel, res.Kernel); err != nil {
			return err
		}
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(res)
	}
	if res.Kernel != "" {
		fmt.Fprintf(e.stdout, "kernel: %s (%s)\n", res.Kernel, res.KVer)
	}
	fmt.Fprintln(e.stdout, br.Summary())
	if len(res.TrustKeys) > 0 {
		fmt.Fprintf(e.stdout, "trusted keys: %s (min version %d): only images they sign boot\n", strings.Join(res.TrustKeys, ", "), res.MinVersion)
	}
	return nil
}

// listFlag is a flag given several times or as a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// countSet is how many of the strings are not empty.
func countSet(s ...string) int {
	n := 0
	for _, v := range s {
		if v != "" {
			n++
		}
	}
	return n
}

// flagValue is one flag of a command line handed on to another parser
// (the builder's, or initramfs' from publish), and its value.
type flagValue struct{ flag, v string }

// appendSet appends "flag value" to args for each flag whose value is set
// (not ""), in order: a flag left out keeps the other parser's default
// rather than being given an empty value it may refuse.
func appendSet(args []string, flags ...flagValue) []string {
	for _, f := range flags {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	return args
}

// kernelSource is where one build's kernel and module tree are on disk.
type kernelSource struct {
	modDir string // lib/modules/<kver>
	kernel string // the kernel image, or "" (--modules without --kernel)
}

// checkRelease refuses a kernel whose bzImage header names another
// release than the module tree: its modules would not load (vermagic),
// and the boot would find no NIC driver. A kernel that is not an x86
// bzImage (another architecture) is not checked.
func checkRelease(kernel, kver string) error {
	if kernel == "" {
		return nil
	}
	f, err := os.Open(kernel)
	if err != nil {
		return fmt.Errorf("--kernel: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	rel, err := bzimage.Release(f, st.Size())
	if errors.Is(err, bzimage.ErrNotBzImage) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", kernel, err)
	}
	if rel != kver {
		return withHint(fmt.Errorf("%s is kernel %s, but the modules are for %s", kernel, rel, kver),
			"give the module tree of that kernel (lib/modules/%s)", rel)
	}
	return nil
}

// pickCA resolves --ca: a path or "none" as given, else the first bundle
// of caCandidates the host has.
func pickCA(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	for _, p := range caCandidates {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", withHint(errors.New("no CA bundle on this host (looked at "+strings.Join(caCandidates, ", ")+")"),
		"name one with --ca FILE, or --ca none for an image that only boots http:// URLs")
}

// copyKernel copies the kernel image to dst atomically, 0644 as a TFTP
// server wants it.
func copyKernel(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("--kernel: %w", err)
	}
	defer f.Close()
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, f)
		return err
	})
}
