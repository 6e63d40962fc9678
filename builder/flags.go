// Package builder assembles the streamroot initramfs: the static /init,
// an optional busybox shell, the CA bundle, the kernel modules the boot
// needs (NIC drivers, block and filesystem modules) with everything they
// depend on, as a reproducible newc cpio archive compressed for the
// kernel. Two front ends call Build: the builder command
// (builder/cmd/builder, what `make initramfs` runs, with the flags
// ParseFlags reads) and `streamroot initramfs`, which first takes the
// kernel and its modules out of a .deb, an .rpm or an ISO.
//
// The same inputs give the same bytes: record order, inode numbers,
// owners and times do not depend on the host (mtime is SOURCE_DATE_EPOCH
// when set, else 0).
package builder

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/streamroot/streamroot/pkg/kmod"
	"github.com/streamroot/streamroot/pkg/trust"
)

const (
	DefaultNICs = "virtio_net,e1000,e1000e,igb,igc,ixgbe,i40e,ice,bnxt_en,tg3,r8169,mlx5_core,vmxnet3,be2net,qede,atlantic"
	// DefaultModules are what the boot pipeline itself uses: virtio
	// transport, the image layers (squashfs, erofs, ext4, iso9660), the
	// overlay, loop and nbd block devices, AF_PACKET for DHCP on a link
	// with no address, virtio-rng so crypto/rand does not stall, and
	// the virtual links dracut's vlan=, bond= (and team=) and bridge=
	// build (loaded only when the kernel line has them).
	DefaultModules = "virtio_pci,squashfs,overlay,loop,isofs,ext4,erofs,nbd,af_packet,virtio_rng,8021q,bonding,bridge"
)

// NewLogger logs to w without timestamps: the messages belong to a build
// log where make already orders them, and times would only add noise.
func NewLogger(w io.Writer, verbose bool) *slog.Logger {
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

// ParseFlags turns the command line into validated Options. getenv reads
// SOURCE_DATE_EPOCH; usage goes to stderr.
func ParseFlags(args []string, getenv func(string) string, stderr io.Writer) (Options, bool, error) {
	fs := flag.NewFlagSet("builder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o        Options
		nic      = fs.String("nic", DefaultNICs, "comma-separated NIC driver modules; names this kernel lacks are skipped, \"none\" for no NIC driver")
		modules  = fs.String("modules", DefaultModules, "comma-separated modules or aliases always included; \"none\" for an image without kernel modules")
		extraCA  = fs.String("extra-ca", "", "comma-separated PEM files appended to the CA bundle")
		shell    = fs.String("shell", "/bin/busybox", "static busybox installed as /bin/busybox with applet links, or \"none\"")
		ca       = fs.String("ca", CABundlePath, "CA bundle installed as "+CABundlePath+", or \"none\"")
		manifest = fs.String("manifest-digest", "", "SHA-256 (hex) of the image's chunk manifest, written to /etc/streamroot/manifest.sha256")
		verbose  = fs.Bool("v", false, "log every module added")
		imageURL = fs.String("image-url", "", "default image URL, written to "+ImageURLPath+" (root=live:/PATH then means this URL)")
		trustKey = fs.String("trust-key", "", "comma-separated minisign public keys (files, or the base64 key itself) written to "+trust.KeysFile+": only images they sign boot")
	)
	fs.Uint64Var(&o.MinVersion, "min-version", 0, "lowest signed statement version a node accepts (rollback), written to "+trust.MinVersionFile+"; needs -trust-key")
	fs.StringVar(&o.Init, "init", "", "static /init binary (required)")
	fs.StringVar(&o.KVer, "kver", "", "kernel version (default: base name of -moddir)")
	fs.StringVar(&o.ModDir, "moddir", "", "kernel module tree, the lib/modules/<kver> directory (default: /lib/modules/<kver>)")
	fs.StringVar(&o.Compress, "compress", "zstd", "compression: "+strings.Join(compressions, "|"))
	fs.StringVar(&o.Out, "o", "", "output file, replaced atomically (required)")
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

	if o.Init == "" {
		return o, false, errors.New("-init is required")
	}
	if o.Out == "" {
		return o, false, errors.New("-o is required")
	}
	if _, err := NewCompressor(o.Compress, io.Discard); err != nil {
		return o, false, fmt.Errorf("-compress: %w", err)
	}

	if *modules == "none" {
		o.NoModules = true
	} else {
		o.Modules = splitNames(*modules)
		if *nic != "none" {
			o.NIC = splitNames(*nic)
		}
		switch {
		case o.ModDir == "" && o.KVer == "":
			return o, false, errors.New("-moddir or -kver is required (or -modules none)")
		case o.ModDir == "":
			o.ModDir = filepath.Join("/lib/modules", o.KVer)
		case o.KVer == "":
			o.KVer = filepath.Base(filepath.Clean(o.ModDir))
		}
	}
	if strings.ContainsAny(o.KVer, "/\x00") || o.KVer == "." || o.KVer == ".." {
		return o, false, fmt.Errorf("-kver %q is not a kernel version", o.KVer)
	}

	if *shell != "none" {
		o.Shell = *shell
	}
	if *ca != "none" {
		o.CA = *ca
	}
	o.ExtraCA = splitList(*extraCA)

	if *manifest != "" {
		d := strings.ToLower(strings.TrimPrefix(*manifest, "sha256:"))
		if b, err := hex.DecodeString(d); err != nil || len(b) != 32 {
			return o, false, fmt.Errorf("-manifest-digest %q: want 64 hex digits (a SHA-256)", *manifest)
		}
		o.ManifestDigest = d
	}

	var err error
	if o.TrustKeys, err = ReadTrustKeys(splitList(*trustKey)); err != nil {
		return o, false, fmt.Errorf("-trust-key: %w", err)
	}
	if o.MinVersion > 0 && len(o.TrustKeys) == 0 {
		return o, false, errors.New("-min-version needs -trust-key: a version is only checked in a signed statement")
	}
	if o.ImageURL, err = CheckImageURL(*imageURL); err != nil {
		return o, false, fmt.Errorf("-image-url: %w", err)
	}

	if s := getenv("SOURCE_DATE_EPOCH"); s != "" {
		// newc stores mtime in 32 bits.
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return o, false, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		o.MTime = v
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
