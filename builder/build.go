package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path"

	"github.com/streamroot/streamroot/pkg/bootcfg"
)

// options is the validated configuration of one build; parseFlags makes
// it from the command line, tests fill it directly.
type options struct {
	initPath       string
	kver           string
	moddir         string   // lib/modules/<kver> on the host; "" with noModules
	noModules      bool     // -modules none: no kernel modules at all
	nic            []string // NIC driver names, deduplicated
	modules        []string // extra module names or aliases, deduplicated
	shell          string   // busybox path; "" for none
	ca             string   // base CA bundle; "" for none
	extraCA        []string
	compress       string
	out            string
	manifestDigest string // lowercase hex, or ""
	imageURL       string // -image-url, checked, or ""
	mtime          uint64 // every record's mtime (SOURCE_DATE_EPOCH or 0)
}

// result describes a written image.
type result struct {
	path         string
	size         int64
	uncompressed int64
	modules      int
	compress     string
}

// summary is the one line printed on stdout after a build.
func (r result) summary() string {
	return fmt.Sprintf("initramfs: %s %d bytes (%.2f MiB, %s), %d modules, uncompressed %d",
		r.path, r.size, float64(r.size)/(1<<20), r.compress, r.modules, r.uncompressed)
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
func assemble(opts options, log *slog.Logger) (*image, moduleReport, error) {
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

	initBin, machine, err := readStaticELF(opts.initPath, "-init")
	if err != nil {
		return nil, rep, err
	}
	if err := im.file("/init", 0o755, initBin); err != nil {
		return nil, rep, err
	}
	if opts.shell != "" {
		if err := addShell(im, opts.shell, machine); err != nil {
			return nil, rep, err
		}
	}
	if opts.ca != "" || len(opts.extraCA) > 0 {
		ca, err := loadCABundle(opts.ca, opts.extraCA, log)
		if err != nil {
			return nil, rep, err
		}
		if err := im.file(caBundlePath, 0o644, ca); err != nil {
			return nil, rep, err
		}
	}
	if opts.kver != "" {
		if err := im.dir(path.Join("/lib/modules", opts.kver), 0o755); err != nil {
			return nil, rep, err
		}
	}
	if !opts.noModules {
		if rep, err = addModules(im, opts, log); err != nil {
			return nil, rep, err
		}
	}
	if opts.manifestDigest != "" {
		if err := im.file("/etc/streamroot/manifest.sha256", 0o644, []byte(opts.manifestDigest+"\n")); err != nil {
			return nil, rep, err
		}
	}
	if opts.imageURL != "" {
		if err := im.file(bootcfg.ImageURLFile, 0o644, []byte(opts.imageURL+"\n")); err != nil {
			return nil, rep, err
		}
	}
	info := buildInfo{
		KVer:       opts.kver,
		Compress:   opts.compress,
		NICDrivers: rep.nics,
		Modules:    rep.names,
		Builtin:    rep.builtin,
		Shell:      opts.shell != "",
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

// build assembles the image and writes it, compressed, to opts.out.
func build(opts options, log *slog.Logger) (result, error) {
	im, rep, err := assemble(opts, log)
	if err != nil {
		return result{}, err
	}
	var raw int64
	size, err := writeAtomic(opts.out, func(w io.Writer) error {
		zw, err := newCompressor(opts.compress, w)
		if err != nil {
			return err
		}
		cw := &countingWriter{w: zw}
		// The cpio writer issues many tiny writes (magic, header, name,
		// padding); batch them before the compressor.
		bw := bufio.NewWriterSize(cw, 256<<10)
		if err := im.writeCPIO(bw, opts.mtime); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		raw = cw.n
		return zw.Close()
	})
	if err != nil {
		return result{}, fmt.Errorf("writing %s: %w", opts.out, err)
	}
	return result{path: opts.out, size: size, uncompressed: raw, modules: len(rep.names), compress: opts.compress}, nil
}
