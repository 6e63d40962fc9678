package builder

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path"
)

// Options is the validated configuration of one build. ParseFlags makes
// it from the builder's command line, `streamroot initramfs` from its own,
// tests fill it directly.
type Options struct {
	Init           string   // the static /init binary on the host
	KVer           string   // kernel release; "" only with NoModules
	ModDir         string   // lib/modules/<kver> on the host; "" with NoModules
	NoModules      bool     // -modules none: no kernel modules at all
	NIC            []string // NIC driver names, deduplicated
	Modules        []string // extra module names or aliases, deduplicated
	Shell          string   // busybox path; "" for none
	CA             string   // base CA bundle; "" for none
	ExtraCA        []string
	Compress       string
	Out            string
	ManifestDigest string // lowercase hex, or ""
	ImageURL       string // written to /etc/streamroot/image-url, or ""
	// TrustKeys are minisign public keys (base64, ReadTrustKeys), written
	// to trust.KeysFile: with any, only images they sign boot.
	TrustKeys []string
	// MinVersion is the lowest signed version a node accepts, written to
	// trust.MinVersionFile; 0 for none. Needs TrustKeys.
	MinVersion uint64
	MTime      uint64 // every record's mtime (SOURCE_DATE_EPOCH or 0)
	// ScanModules computes modules.dep, modules.alias and
	// modules.softdep from the modules' own .modinfo when ModDir has no
	// modules.dep (an unpacked kernel package), instead of failing.
	ScanModules bool
}

// Result describes a written image.
type Result struct {
	Path         string
	Size         int64
	Uncompressed int64
	Modules      int
	// SignedModules of Modules carry their appended signature.
	SignedModules int
	Compress      string
}

// Summary is the one line printed on stdout after a build.
func (r Result) Summary() string {
	return fmt.Sprintf("initramfs: %s %d bytes (%.2f MiB, %s), %d modules (%d signed), uncompressed %d",
		r.Path, r.Size, float64(r.Size)/(1<<20), r.Compress, r.Modules, r.SignedModules, r.Uncompressed)
}

// buildInfo is /etc/streamroot/build.json: what went into the image, for
// the runtime's logs and for `streamroot inspect`. It holds nothing that
// differs between two builds of the same inputs (no time, host or path).
type buildInfo struct {
	KVer     string `json:"kver,omitempty"`
	Compress string `json:"compress"`
	// NICDrivers are the requested NIC drivers this kernel has, as
	// modules or builtin, in request order.
	NICDrivers []string `json:"nic_drivers"`
	// Modules are the module names in the image, sorted.
	Modules []string `json:"modules"`
	// SignedModules is how many of Modules carry an appended signature
	// (Secure Boot loads no other).
	SignedModules int `json:"signed_modules"`
	// Builtin are requested names (NIC or -modules) compiled into the
	// kernel, so nothing was shipped for them.
	Builtin []string `json:"builtin"`
	Shell   bool     `json:"shell"`
}

// baseDirs exist in every image: the mount points and directories /init
// uses before anything else can create them.
var baseDirs = []string{
	"/bin", "/dev", "/etc", "/etc/ssl/certs", "/lib", "/lib/modules",
	"/proc", "/run", "/sys", "/sysroot", "/tmp", "/usr",
}

// assemble collects the whole initramfs content in memory.
func assemble(opts Options, log *slog.Logger) (*image, moduleReport, error) {
	im := newImage()
	rep := moduleReport{nics: []string{}, builtin: []string{}, names: []string{}}
	for _, d := range baseDirs {
		if err := im.dir(d, 0o755); err != nil {
			return nil, rep, err
		}
	}
	// The kernel opens /dev/console for init's stdio before anything can
	// mount devtmpfs; without the node, init starts with no console and
	// the boot log of PID 1 is lost.
	if err := im.charDev("/dev/console", 0o600, 5, 1); err != nil {
		return nil, rep, err
	}
	if err := im.charDev("/dev/null", 0o666, 1, 3); err != nil {
		return nil, rep, err
	}

	initBin, machine, err := readStaticELF(opts.Init, "-init")
	if err != nil {
		return nil, rep, err
	}
	if err := im.file("/init", 0o755, initBin); err != nil {
		return nil, rep, err
	}
	if opts.Shell != "" {
		if err := addShell(im, opts.Shell, machine); err != nil {
			return nil, rep, err
		}
	}
	if opts.CA != "" || len(opts.ExtraCA) > 0 {
		ca, err := loadCABundle(opts.CA, opts.ExtraCA, log)
		if err != nil {
			return nil, rep, err
		}
		if err := im.file(CABundlePath, 0o644, ca); err != nil {
			return nil, rep, err
		}
	}
	if opts.KVer != "" {
		if err := im.dir(path.Join("/lib/modules", opts.KVer), 0o755); err != nil {
			return nil, rep, err
		}
	}
	if !opts.NoModules {
		if rep, err = addModules(im, opts, log); err != nil {
			return nil, rep, err
		}
	}
	if opts.ManifestDigest != "" {
		if err := im.file("/etc/streamroot/manifest.sha256", 0o644, []byte(opts.ManifestDigest+"\n")); err != nil {
			return nil, rep, err
		}
	}
	if opts.ImageURL != "" {
		if err := im.file(ImageURLPath, 0o644, []byte(opts.ImageURL+"\n")); err != nil {
			return nil, rep, err
		}
	}
	if err := addTrust(im, opts); err != nil {
		return nil, rep, err
	}
	info := buildInfo{
		KVer:          opts.KVer,
		Compress:      opts.Compress,
		NICDrivers:    rep.nics,
		Modules:       rep.names,
		SignedModules: rep.signed,
		Builtin:       rep.builtin,
		Shell:         opts.Shell != "",
	}
	j, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, rep, err
	}
	if err := im.file("/etc/streamroot/build.json", 0o644, append(j, '\n')); err != nil {
		return nil, rep, err
	}
	return im, rep, nil
}

// Build assembles the image and writes it, compressed, to opts.Out.
func Build(opts Options, log *slog.Logger) (Result, error) {
	im, rep, err := assemble(opts, log)
	if err != nil {
		return Result{}, err
	}
	var raw int64
	size, err := writeAtomic(opts.Out, func(w io.Writer) error {
		zw, err := NewCompressor(opts.Compress, w)
		if err != nil {
			return err
		}
		cw := &countingWriter{w: zw}
		// The cpio writer issues many tiny writes (magic, header, name,
		// padding); batch them before the compressor.
		bw := bufio.NewWriterSize(cw, 256<<10)
		if err := im.writeCPIO(bw, opts.MTime); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		raw = cw.n
		return zw.Close()
	})
	if err != nil {
		return Result{}, fmt.Errorf("writing %s: %w", opts.Out, err)
	}
	return Result{Path: opts.Out, Size: size, Uncompressed: raw, Modules: len(rep.names), SignedModules: rep.signed, Compress: opts.Compress}, nil
}
