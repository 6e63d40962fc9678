// Package rootdev is the root device: the image the layers stage mounts,
// made available either as a file in RAM (ram mode: PID 1 downloads it) or
// as /dev/nbdN served by the block daemon (stream and lazy modes, NBD
// roots), and the faults that device can report.
//
// A Spec is built once from the parsed kernel line (NewSpec): the fetch
// mode the pins allow, the source (an HTTP(S) URL or an NBD server and
// export), TLS settings, timeouts, the verified chunk manifest and the
// whole-image hash. Open turns it into a Device. The block daemon is this
// same binary re-executed as "@streamroot-blockd" (systemd's
// root-storage-daemon convention, so it survives switch_root and
// shutdown); its main is RunDaemon, and it is handed the Spec over a pipe.
package rootdev

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/httpsrc"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/trust"
	"golang.org/x/sys/unix"
)

// Where things are unless Options say otherwise.
const (
	// DefaultRunDir survives switch_root: the daemon's log and fault files
	// and the RAM image stay visible to the booted system.
	DefaultRunDir = "/run/initramfs"
	// DefaultCABundle is the bundle the builder puts in the initramfs.
	DefaultCABundle = "/etc/ssl/certs/ca-certificates.crt"
)

// Spec is the root device to open, decided once from the kernel line.
// It is what PID 1 hands the block daemon (as JSON on fd 3).
type Spec struct {
	// Mode is the fetch mode the pins allow (PlanMode); never
	// bootcfg.FetchDefault. Open may still fall back to lazy for an image
	// that does not fit in RAM.
	Mode bootcfg.FetchMode `json:"mode"`
	// URL is an HTTP(S) source; NBDAddr (host:port) and NBDExport a
	// remote NBD one. Exactly one of URL and NBDAddr is set.
	URL       string `json:"url,omitempty"`
	NBDAddr   string `json:"nbd_addr,omitempty"`
	NBDExport string `json:"nbd_export,omitempty"`
	// Name is the root as messages show it (the URL without a password,
	// or the NBD argument).
	Name string `json:"name"`
	// Insecure skips HTTPS certificate checks (rd.noverifyssl); CABundle
	// is the PEM file HTTPS servers are checked against.
	Insecure bool   `json:"insecure,omitempty"`
	CABundle string `json:"ca_bundle,omitempty"`
	// Retry is how long a source that makes no progress is retried
	// (rd.retry); IOTimeout how long a kernel read may wait
	// (streamroot.io.timeout).
	Retry     time.Duration `json:"retry"`
	IOTimeout time.Duration `json:"read_timeout"`
	// CacheMiB is streamroot.cache=: lazy mode's memory bound; 0 means
	// the default (lazyCacheBytes).
	CacheMiB int64 `json:"cache_mib,omitempty"`
	// SHA256 is the whole-image pin (streamroot.sha256=), or nil.
	SHA256 []byte `json:"sha256,omitempty"`
	// Manifest is the chunk manifest's text, already checked against its
	// pin by NewSpec; manifest is its parsed form.
	Manifest []byte             `json:"manifest,omitempty"`
	manifest *manifest.Manifest // nil: no manifest pinned
	// Verified is the booted image's identity (its manifest's digest and,
	// when signed, the key and version), for the boot's record and its
	// measurement; not sent to the daemon.
	Verified trust.Verified `json:"-"`
	Debug    bool           `json:"debug,omitempty"`
}

// ParsedManifest is the verified chunk manifest, or nil when none is
// pinned (or there is no Spec yet).
func (s *Spec) ParsedManifest() *manifest.Manifest {
	if s == nil {
		return nil
	}
	return s.manifest
}

// PlanMode is the fetch mode the kernel line asks for and its pins allow,
// with a console note when it differs from what was asked or leaves a pin
// unchecked ("" if none). It refuses combinations that would let bytes
// failing streamroot.sha256= reach the kernel unnoticed.
func PlanMode(cfg *bootcfg.Config) (bootcfg.FetchMode, string, error) {
	p, err := planFetch(cfg.Fetch, len(cfg.SHA256) > 0, len(cfg.Manifest) > 0, nil)
	return p.Mode, p.Note, err
}

// Plan is the config stage's part of the root device: it refuses a line
// without a root, pins the image with the initramfs's baked manifest
// (baked; see BakedManifest) when the line pins none, and decides the
// fetch mode (PlanMode; a trust policy, pol non-nil, means a signed
// manifest will be verified), logging the root, the mode and what the
// operator should know about them.
func Plan(cfg *bootcfg.Config, baked string, pol *trust.Policy, log *slog.Logger) (bootcfg.FetchMode, error) {
	if cfg.Root.Kind == bootcfg.RootNone {
		return "", hint.New(errors.New("no root= on the kernel command line"),
			"add root=live:http://SERVER/squashfs.img (or root=nbd:SERVER:EXPORT) to the kernel arguments")
	}
	if len(cfg.Manifest) == 0 {
		sum, err := ReadBakedManifest(baked)
		if err != nil {
			return "", err
		}
		if sum != nil {
			cfg.Manifest = sum
			log.Info("image manifest pinned by the initramfs", "sha256", hex.EncodeToString(sum))
		}
	}
	p, err := planFetch(cfg.Fetch, len(cfg.SHA256) > 0, len(cfg.Manifest) > 0 || pol != nil, nil)
	if err != nil {
		return "", err
	}
	mode, note := p.Mode, p.Note
	if pol != nil {
		log.Info("only images signed by a trusted key boot", "keys", strings.Join(pol.IDs(), ","), "min_version", pol.MinVersion)
	}
	if note != "" {
		log.Warn(note)
	}
	if cfg.NoVerifySSL {
		log.Warn("rd.noverifyssl: HTTPS certificates are NOT checked; anyone on the path can replace the root image")
	}
	if cfg.Root.Kind == bootcfg.RootNBD {
		log.Info("root", "nbd", net.JoinHostPort(cfg.Root.NBDServer, fmt.Sprint(cfg.Root.NBDPort)), "export", cfg.Root.NBDExport, "mode", mode)
	} else {
		if cfg.Root.Path != "" {
			log.Info("root=live:"+cfg.Root.Path+" is the image URL built into the initramfs", "file", bootcfg.ImageURLFile)
		}
		log.Info("root", "url", cfg.Root.URL.Redacted(), "mode", mode)
	}
	return mode, nil
}

// NewSpec builds the Spec for cfg's root in the planned mode, fetching the
// pinned or signed chunk manifest (if any) and checking it against its
// pin, its signature (pol non-nil: then one is required, pinned or not)
// and streamroot.sha256=, before anything is mounted.
func NewSpec(ctx context.Context, cfg *bootcfg.Config, mode bootcfg.FetchMode, pol *trust.Policy, log *slog.Logger) (*Spec, error) {
	s := &Spec{Mode: mode, Insecure: cfg.NoVerifySSL, CABundle: DefaultCABundle, Retry: cfg.Retry,
		IOTimeout: cfg.IOTimeout, CacheMiB: cfg.CacheMiB, SHA256: cfg.SHA256, Debug: cfg.Debug}
	switch cfg.Root.Kind {
	case bootcfg.RootNBD:
		s.NBDAddr = net.JoinHostPort(cfg.Root.NBDServer, fmt.Sprint(cfg.Root.NBDPort))
		s.NBDExport = cfg.Root.NBDExport
		s.Name = cfg.Root.Arg
	case bootcfg.RootLive:
		s.URL = cfg.Root.URL.String()
		s.Name = cfg.Root.URL.Redacted()
	default:
		return nil, errors.New("no network root to open")
	}
	s.Verified.URL = s.Name
	if len(cfg.Manifest) == 0 && pol == nil {
		return s, nil
	}
	u := cfg.ManifestURL
	if u == "" {
		if s.URL == "" {
			what := "streamroot.manifest="
			if pol != nil {
				what = "an initramfs with trusted keys"
			}
			return nil, hint.New(fmt.Errorf("%s needs streamroot.manifest.url= for an NBD root", what),
				"serve the manifest over HTTP and name it with streamroot.manifest.url=")
		}
		u = s.URL + ".manifest"
	}
	if err := s.loadManifest(ctx, u, cfg.Manifest, pol, log); err != nil {
		return nil, err
	}
	if err := checkPins(s.SHA256, s.manifest.SHA256); err != nil {
		return nil, err
	}
	return s, nil
}

// Options say where Open and the daemon keep their files.
type Options struct {
	Log *slog.Logger
	// RunDir holds the daemon's log and fault files and, in ram mode, the
	// image (RunDir/image/<name>); default DefaultRunDir.
	RunDir string
	// Exe is the binary re-executed as the daemon; default /proc/self/exe.
	Exe string
}

func (o Options) withDefaults() Options {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.RunDir == "" {
		o.RunDir = DefaultRunDir
	}
	if o.Exe == "" {
		o.Exe = "/proc/self/exe"
	}
	return o
}

// Device is an opened root device.
type Device struct {
	// Mode is the fetch mode Open used: Spec.Mode, or lazy when the image
	// did not fit in RAM.
	Mode bootcfg.FetchMode
	// File is the image in RAM (ram mode); Block the daemon's nbd device.
	// Exactly one is set.
	File  string
	Block string
	// Size and ETag are the image's, as pinned when it was opened;
	// Received is what was downloaded (ram mode).
	Size     int64
	ETag     string
	Received int64

	spec *Spec
	// conn is the fault channel to the daemon (nil for a RAM image).
	conn *daemonConn
	// bootPipe stays open in PID 1 and closes (CLOEXEC) when the real
	// init is exec'd: the daemon's cue to start the background fill.
	// Holding it here keeps it from being collected (and closed) early.
	bootPipe *os.File
}

// Path is what the layers stage mounts: the file or the block device.
func (d *Device) Path() string {
	if d.File != "" {
		return d.File
	}
	return d.Block
}

// Fault is the cause the daemon found for a failed read of the device,
// as an error for the failure block, or nil: a permanent fault (the image
// changed or was removed on the server, or failed its whole-image hash)
// for any mount error, the first failed kernel read for an I/O error. It
// asks the daemon over the fault channel for every fault found so far
// (waiting at most a few seconds, or until ctx ends). A RAM image has no
// daemon and no faults.
func (d *Device) Fault(ctx context.Context, mountErr error) error {
	if d.conn == nil {
		return nil
	}
	faults := d.conn.sync(ctx)
	for _, kind := range []FaultKind{FaultPermanent, FaultRead} {
		if kind == FaultRead && !errors.Is(mountErr, unix.EIO) {
			break
		}
		for _, f := range faults {
			if f.Kind == kind {
				return f.Err()
			}
		}
	}
	return nil
}

// Name is the root as messages show it (Spec.Name).
func (d *Device) Name() string {
	if d.spec == nil {
		return ""
	}
	return d.spec.Name
}

// Record is the device as the boot report (/run/initramfs/streamroot.json)
// shows it.
func (d *Device) Record() *bootlog.ReportImage {
	r := &bootlog.ReportImage{Root: d.Name(), Mode: string(d.Mode), Size: d.Size, ETag: d.ETag}
	if d.spec != nil {
		v := d.spec.Verified
		r.ManifestSHA256, r.KeyID, r.Version = v.ManifestSHA256, v.KeyID, v.Version
	}
	if d.File != "" { // ram mode: PID 1 fetched it
		r.Received, r.File = d.Received, d.File
	} else { // the block daemon serves it (its own counters are in blockd.log)
		r.Device = d.Block
	}
	if m := d.spec.ParsedManifest(); m != nil {
		r.ManifestChunks = m.NumChunks()
	}
	return r
}

// Open makes the root image available: in RAM (an HTTP(S) root in ram
// mode that fits), otherwise through the block daemon.
func Open(ctx context.Context, s *Spec, o Options) (*Device, error) {
	o = o.withDefaults()
	if s.URL != "" && s.Mode == bootcfg.FetchRAM {
		d, err := fetchRAM(ctx, s, o)
		if err != nil || d != nil {
			return d, err
		}
		// It did not fit: s.Mode is lazy now.
	}
	return startDaemon(s, o)
}

// httpOptions are the root's retry bound and TLS settings for a request
// to its server: the CA bundle is loaded only for an https one, so an
// http root boots on an initramfs built without a bundle.
func (s *Spec) httpOptions(https bool, log *slog.Logger) (httpsrc.Options, error) {
	opts := httpsrc.Options{Stall: s.Retry, Log: log, InsecureSkipVerify: s.Insecure}
	if https {
		pool, err := caPool(s.CABundle)
		if err != nil {
			return httpsrc.Options{}, err
		}
		opts.RootCAs = pool
	}
	return opts, nil
}

// caPool loads the CA bundle for HTTPS sources.
func caPool(bundle string) (*x509.CertPool, error) {
	if bundle == "" {
		bundle = DefaultCABundle
	}
	pem, err := os.ReadFile(bundle)
	if err != nil {
		return nil, hint.New(fmt.Errorf("HTTPS root but no CA bundle: %w", err), "rebuild the initramfs with a CA bundle (CA=…)")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificates", bundle)
	}
	return pool, nil
}

// redact shows a URL without its password, for the console.
func redact(u string) string {
	if pu, err := url.Parse(u); err == nil {
		return pu.Redacted()
	}
	return u
}

// memInfo reads one field of /proc/meminfo in bytes, or 0 if unknown.
func memInfo(field string) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb); err != nil || kb < 0 || kb > 1<<42 {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// memAvailable is the kernel's estimate of memory available for new work.
func memAvailable() int64 { return memInfo("MemAvailable") }

// memTotal is the RAM the kernel manages, or 0 if unknown.
func memTotal() int64 { return memInfo("MemTotal") }

// fitsInRAM says whether an image of size bytes can be held in memory with
// room left for the booted OS (a quarter of what is available, at least
// 256 MiB).
func fitsInRAM(size, avail int64) bool {
	return size <= avail-max(avail/4, 256<<20)
}

// fit decides, once the image's size is known, whether s.Mode can hold it
// (free bounds where the copy would live, beside the RAM): the same rules
// as PlanMode, with the shortage. A fall back to lazy changes s.Mode and
// is logged. It then checks that a pinned manifest describes an image of
// that size.
func (s *Spec) fit(size, free int64, log *slog.Logger) error {
	if s.Mode != bootcfg.FetchLazy {
		if avail := memAvailable(); !fitsInRAM(size, avail) || free < size {
			// An OOM in the middle of the boot helps nobody: read lazily
			// instead, if the pins allow it.
			plan, err := planFetch(s.Mode, len(s.SHA256) > 0, s.manifest != nil, &ramShortage{Size: size, Avail: min(avail, free)})
			if err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			log.Warn(plan.Note)
			s.Mode = plan.Mode
		}
	}
	if m := s.manifest; m != nil && m.Size != size {
		return hint.New(fmt.Errorf("%s: the manifest is for an image of %d bytes, the server has %d", s.Name, m.Size, size),
			"the image on the server is not the one the manifest describes: copy the right image or regenerate the manifest")
	}
	return nil
}

// runFile is a file in the run directory.
func runFile(runDir, name string) string { return filepath.Join(runDir, name) }
