// Command builder assembles the streamroot initramfs: the static /init,
// an optional busybox shell, the CA bundle, the kernel modules the boot
// needs (NIC drivers, block and filesystem modules) with everything they
// depend on, as a reproducible newc cpio archive compressed for the
// kernel.
//
// Usage:
//
//	go run ./builder -init build/init -moddir build/kernel/lib/modules/6.1.0-56-amd64 -o build/initramfs.img
//
// The same inputs give the same bytes: record order, inode numbers,
// owners and times do not depend on the host (mtime is SOURCE_DATE_EPOCH
// when set, else 0).
package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/kmod"
)

const (
	defaultNICs = "virtio_net,e1000,e1000e,igb,igc,ixgbe,i40e,ice,bnxt_en,tg3,r8169,mlx5_core,vmxnet3,be2net,qede,atlantic"
	// defaultModules are what the boot pipeline itself uses: virtio
	// transport, the image layers (squashfs, erofs, ext4, iso9660), the
	// overlay, loop and nbd block devices, AF_PACKET for DHCP on a link
	// with no address, virtio-rng so crypto/rand does not stall, and
	// the virtual links dracut's vlan=, bond= (and team=) and bridge=
	// build (loaded only when the kernel line has them).
	defaultModules = "virtio_pci,squashfs,overlay,loop,isofs,ext4,erofs,nbd,af_packet,virtio_rng,8021q,bonding,bridge"
)

func main() {
	opts, verbose, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "builder: %v\n", err)
		os.Exit(2)
	}
	res, err := build(opts, newLogger(os.Stderr, verbose))
	if err != nil {
		fmt.Fprintf(os.Stderr, "builder: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(res.summary())
}

// newLogger logs to w without timestamps: the messages belong to a build
// log where make already orders them, and times would only add noise.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// parseFlags turns the command line into validated options. getenv reads
// SOURCE_DATE_EPOCH; usage goes to stderr.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, bool, error) {
	fs := flag.NewFlagSet("builder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o        options
		nic      = fs.String("nic", defaultNICs, "comma-separated NIC driver modules; names this kernel lacks are skipped, \"none\" for no NIC driver")
		modules  = fs.String("modules", defaultModules, "comma-separated modules or aliases always included; \"none\" for an image without kernel modules")
		extraCA  = fs.String("extra-ca", "", "comma-separated PEM files appended to the CA bundle")
		shell    = fs.String("shell", "/bin/busybox", "static busybox installed as /bin/busybox with applet links, or \"none\"")
		ca       = fs.String("ca", caBundlePath, "CA bundle installed as "+caBundlePath+", or \"none\"")
		manifest = fs.String("manifest-digest", "", "SHA-256 (hex) of the image's chunk manifest, written to /etc/streamroot/manifest.sha256")
		imageURL = fs.String("image-url", "", "the image a path root (Foreman's root=live:/fdi.iso) stands for, written to "+bootcfg.ImageURLFile)
		verbose  = fs.Bool("v", false, "log every module added")
	)
	fs.StringVar(&o.initPath, "init", "", "static /init binary (required)")
	fs.StringVar(&o.kver, "kver", "", "kernel version (default: base name of -moddir)")
	fs.StringVar(&o.moddir, "moddir", "", "kernel module tree, the lib/modules/<kver> directory (default: /lib/modules/<kver>)")
	fs.StringVar(&o.compress, "compress", "zstd", "compression: "+strings.Join(compressions, "|"))
	fs.StringVar(&o.out, "o", "", "output file, replaced atomically (required)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: builder -init PATH -moddir DIR [flags] -o PATH\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	if fs.NArg() > 0 {
		return o, false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	if o.initPath == "" {
		return o, false, errors.New("-init is required")
	}
	if o.out == "" {
		return o, false, errors.New("-o is required")
	}
	if _, err := newCompressor(o.compress, io.Discard); err != nil {
		return o, false, fmt.Errorf("-compress: %w", err)
	}

	if *modules == "none" {
		o.noModules = true
	} else {
		o.modules = splitNames(*modules)
		if *nic != "none" {
			o.nic = splitNames(*nic)
		}
		switch {
		case o.moddir == "" && o.kver == "":
			return o, false, errors.New("-moddir or -kver is required (or -modules none)")
		case o.moddir == "":
			o.moddir = filepath.Join("/lib/modules", o.kver)
		case o.kver == "":
			o.kver = filepath.Base(filepath.Clean(o.moddir))
		}
	}
	if strings.ContainsAny(o.kver, "/\x00") || o.kver == "." || o.kver == ".." {
		return o, false, fmt.Errorf("-kver %q is not a kernel version", o.kver)
	}

	if *shell != "none" {
		o.shell = *shell
	}
	if *ca != "none" {
		o.ca = *ca
	}
	o.extraCA = splitList(*extraCA)

	if *manifest != "" {
		d := strings.ToLower(strings.TrimPrefix(*manifest, "sha256:"))
		if b, err := hex.DecodeString(d); err != nil || len(b) != 32 {
			return o, false, fmt.Errorf("-manifest-digest %q: want 64 hex digits (a SHA-256)", *manifest)
		}
		o.manifestDigest = d
	}

	if *imageURL != "" {
		if _, err := bootcfg.ParseImageURL(*imageURL); err != nil {
			return o, false, fmt.Errorf("-image-url: %w", err)
		}
		o.imageURL = *imageURL
	}

	if s := getenv("SOURCE_DATE_EPOCH"); s != "" {
		// newc stores mtime in 32 bits.
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return o, false, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		o.mtime = v
	}
	return o, *verbose, nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// splitNames is splitList for module names: a name given twice, in
// either spelling, is kept once (the first spelling).
func splitNames(s string) []string {
	var out []string
	seen := make(map[string]bool)
	for _, n := range splitList(s) {
		k := kmod.Normalize(n)
		if !seen[k] {
			seen[k] = true
			out = append(out, n)
		}
	}
	return out
}
