package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/handover"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/httpsrc"
	"github.com/streamroot/streamroot/pkg/kmod"
	"github.com/streamroot/streamroot/pkg/liveroot"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/netup"
	"github.com/streamroot/streamroot/pkg/switchroot"
	"golang.org/x/sys/unix"
)

// early mounts the API filesystems and starts the log file.
func (b *boot) early(context.Context) error {
	mounts := []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=000"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	f, err := bootlog.OpenFile(logFile)
	if err != nil {
		return fmt.Errorf("open %s: %w", logFile, err)
	}
	if err := b.handler.AttachFile(f); err != nil {
		return err
	}
	rel, _ := kmod.Release()
	b.log.Info("streamroot starting", "kernel", rel)
	return nil
}

// config parses the kernel command line.
func (b *boot) config(context.Context) error {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read /proc/cmdline: %w", err)
	}
	cmdline := strings.TrimSpace(string(raw))
	cfg, err := bootcfg.Parse(cmdline)
	if cfg != nil {
		// Even a broken line says whether the operator wants a shell.
		b.cfg = cfg
		if cfg.Debug {
			b.level.Set(slog.LevelDebug)
		}
	}
	b.log.Debug("command line", "cmdline", cmdline)
	if err != nil {
		return err
	}
	for _, ign := range cfg.Ignored {
		b.log.Info("ignoring unknown argument (passed on to the real OS)", "arg", ign)
	}
	switch cfg.Root.Kind {
	case bootcfg.RootNone:
		return hint.New(errors.New("no root= on the kernel command line"),
			"add root=live:http://SERVER/squashfs.img (or root=nbd:SERVER:EXPORT) to the kernel arguments")
	}
	if len(cfg.Manifest) == 0 {
		// make initramfs IMAGE_MANIFEST=… pins the image even when the
		// kernel line does not.
		if d, err := os.ReadFile(bakedManifest); err == nil {
			sum, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(string(d)), "sha256:"))
			if err != nil || len(sum) != 32 {
				return fmt.Errorf("%s: not a SHA-256 digest", bakedManifest)
			}
			cfg.Manifest = sum
			b.log.Info("image manifest pinned by the initramfs", "sha256", hex.EncodeToString(sum))
		}
	}
	plan, err := planFetch(cfg.Fetch, len(cfg.SHA256) > 0, len(cfg.Manifest) > 0, nil)
	if err != nil {
		return err
	}
	b.mode = plan.Mode
	if plan.Note != "" {
		b.log.Warn(plan.Note)
	}
	if cfg.NoVerifySSL {
		b.log.Warn("rd.noverifyssl: HTTPS certificates are NOT checked; anyone on the path can replace the root image")
	}
	if cfg.Root.Kind == bootcfg.RootNBD {
		b.log.Info("root", "nbd", net.JoinHostPort(cfg.Root.NBDServer, fmt.Sprint(cfg.Root.NBDPort)), "export", cfg.Root.NBDExport, "mode", b.mode)
		return nil
	}
	b.log.Info("root", "url", cfg.Root.URL.Redacted(), "mode", b.mode)
	return nil
}

// modules loads the drivers of the hardware found, then what the root needs.
func (b *boot) modules(context.Context) error {
	rel, err := kmod.Release()
	if err != nil {
		return err
	}
	l, err := kmod.Open("/", rel, b.log)
	if err != nil {
		return err
	}
	loaded, err := l.LoadForDevices("/sys")
	if err != nil {
		b.log.Warn("some device drivers did not load", "err", err)
	}
	b.log.Info("device drivers", "loaded", strings.Join(loaded, ","))
	// Filesystems for every layout liveroot may meet; loaded now so the
	// layers stage only mounts.
	if err := l.Load("loop", "nbd", "squashfs", "overlay", "isofs", "ext4", "erofs"); err != nil {
		b.log.Warn("some filesystem modules did not load", "err", err)
	}
	return nil
}

// network brings up the boot link and gets an address.
func (b *boot) network(ctx context.Context) error {
	nc, err := netConfig(b.cfg)
	if err != nil {
		return err
	}
	lease, err := netup.Up(ctx, nc, b.log)
	if err != nil {
		return err
	}
	b.lease = lease
	how := "static"
	if lease.DHCP {
		how = fmt.Sprintf("DHCP from %s, lease %s, client id %x", lease.ServerID, lease.LeaseTime, lease.ClientID)
	}
	b.log.Info(fmt.Sprintf("bound %s on %s (%s) via %s", lease.Addr.String(), lease.Iface, lease.MAC, how), "router", ipOrEmpty(lease.Router))
	if len(lease.DNS) > 0 {
		if err := os.WriteFile("/etc/resolv.conf", netup.ResolvConf(lease), 0o644); err != nil {
			return fmt.Errorf("write /etc/resolv.conf: %w", err)
		}
	}
	return nil
}

// rootDesc names the root for messages.
func (b *boot) rootDesc() string {
	if b.cfg.Root.Kind == bootcfg.RootNBD {
		return b.cfg.Root.Arg
	}
	return b.cfg.Root.URL.Redacted()
}

// fetch makes the root image available: a block device served by the
// block daemon (stream, lazy, NBD roots) or a file in RAM (ram mode).
func (b *boot) fetch(ctx context.Context) error {
	if len(b.cfg.Manifest) > 0 && b.manifest == nil {
		if err := b.loadManifest(ctx); err != nil {
			return err
		}
		if err := checkPins(b.cfg.SHA256, b.manifest.SHA256); err != nil {
			return err
		}
	}
	if b.cfg.Root.Kind == bootcfg.RootLive && b.mode == bootcfg.FetchRAM {
		return b.fetchRAM(ctx)
	}
	dc := daemonConfig{Mode: b.mode, Insecure: b.cfg.NoVerifySSL, Retry: b.cfg.Retry,
		ReadTimeout: b.cfg.IOTimeout, CacheMiB: b.cfg.CacheMiB, Debug: b.cfg.Debug}
	if len(b.cfg.SHA256) > 0 {
		dc.SHA256 = hex.EncodeToString(b.cfg.SHA256)
	}
	if b.manifest != nil {
		dc.Manifest, dc.ManifestDigest = b.manifestRaw, hex.EncodeToString(b.cfg.Manifest)
	}
	if b.cfg.Root.Kind == bootcfg.RootNBD {
		dc.NBDAddr = net.JoinHostPort(b.cfg.Root.NBDServer, fmt.Sprint(b.cfg.Root.NBDPort))
		dc.NBDExport = b.cfg.Root.NBDExport
	} else {
		dc.URL = b.cfg.Root.URL.String()
	}
	r, err := b.startBlockd(dc)
	if err != nil {
		return err
	}
	b.device = r
	b.image = r.Device
	return nil
}

// fetchRAM downloads the whole image into RAM (a file on /run's tmpfs, which
// the booted system keeps: the loop device reads from it).
func (b *boot) fetchRAM(ctx context.Context) error {
	url := b.cfg.Root.URL.String()
	opts := httpsrc.Options{Stall: b.cfg.Retry, Log: b.log, InsecureSkipVerify: b.cfg.NoVerifySSL}
	if b.cfg.Root.URL.Scheme == "https" {
		pool, err := caPool()
		if err != nil {
			return err
		}
		opts.RootCAs = pool
	}
	src, err := httpsrc.Open(ctx, url, opts)
	if err != nil {
		return err
	}
	b.src = src
	b.log.Info("image", "url", b.cfg.Root.URL.Redacted(), "size", mib(src.Size), "etag", src.ETag)

	var st unix.Statfs_t
	if err := unix.Statfs("/run", &st); err != nil {
		return fmt.Errorf("statfs /run: %w", err)
	}
	if free := int64(st.Bavail) * st.Bsize; !fitsInRAM(src.Size) || free < src.Size {
		// An OOM in the middle of the boot helps nobody: read lazily
		// instead, if the pins allow it.
		plan, err := planFetch(b.mode, len(b.cfg.SHA256) > 0, b.manifest != nil, &ramShortage{Size: src.Size, Avail: min(memAvailable(), free)})
		if err != nil {
			return fmt.Errorf("%s: %w", b.cfg.Root.URL.Redacted(), err)
		}
		b.log.Warn(plan.Note)
		b.mode = plan.Mode
		return b.fetch(ctx)
	}
	if !src.HasValidator() && b.manifest == nil && len(b.cfg.SHA256) == 0 {
		b.log.Warn(noValidatorWarning(src.URL))
	}
	if err := os.MkdirAll(imageDir, 0o755); err != nil {
		return err
	}
	name := path.Base(b.cfg.Root.URL.Path)
	if name == "/" || name == "." || name == "" {
		name = "root.img"
	}
	dst := filepath.Join(imageDir, name)
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o444)
	if err != nil {
		return err
	}
	fo := httpsrc.FetchOptions{}
	if m := b.manifest; m != nil {
		if m.Size != src.Size {
			f.Close()
			os.Remove(dst)
			return hint.New(fmt.Errorf("%s: the manifest is for an image of %d bytes, the server has %d", url, m.Size, src.Size),
				"the image on the server is not the one the manifest describes: copy the right image or regenerate the manifest")
		}
		fo.Chunk = m.Chunk
		fo.Verify = func(off int64, data []byte) error { return m.VerifyChunk(int(off/m.Chunk), data) }
	}
	fo.Progress = func(p httpsrc.Progress) {
		rate := float64(p.Done) / max(p.Elapsed.Seconds(), 0.001)
		eta := "?"
		if rate > 0 {
			eta = time.Duration(float64(p.Total-p.Done) / rate * float64(time.Second)).Round(time.Second).String()
		}
		b.log.Info(fmt.Sprintf("%s / %s (%d%%) %s/s ETA %s", mib(p.Done), mib(p.Total), p.Done*100/max(p.Total, 1), mib(int64(rate)), eta))
	}
	err = src.Fetch(ctx, f, fo)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", dst, cerr)
	}
	if err != nil {
		// Never leave a partial image where a later step could mount it.
		os.Remove(dst)
		return err
	}
	if len(b.cfg.SHA256) > 0 {
		if err := checkSHA256(dst, b.cfg.SHA256); err != nil {
			os.Remove(dst)
			return hint.New(fmt.Errorf("%s: %w", b.cfg.Root.URL.Redacted(), err), sha256Hint)
		}
		b.log.Info("whole-image sha256 verified")
	}
	if b.manifest != nil {
		b.log.Info("every chunk verified against the manifest", "chunks", b.manifest.NumChunks())
	}
	b.image = dst
	b.log.Info("image complete", "size", mib(src.Size), "received", mib(src.Received()), "file", dst)
	return nil
}

// sha256Hint is the advice when the whole image fails streamroot.sha256=.
const sha256Hint = "the file on the server is not the image the kernel line pins: copy the right image or update streamroot.sha256="

// caPool loads the bundle the builder put in the initramfs.
func caPool() (*x509.CertPool, error) {
	const bundle = "/etc/ssl/certs/ca-certificates.crt"
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

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// layers mounts the image's layers and the writable overlay at /sysroot.
func (b *boot) layers(context.Context) error {
	r, err := liveroot.Assemble(b.image, liveroot.Options{
		Base:        runDir,
		Target:      sysroot,
		LiveDir:     b.cfg.LiveDir,
		SquashImg:   b.cfg.SquashImg,
		OverlaySize: b.cfg.OverlaySize,
	}, b.log)
	if err != nil {
		if b.device != nil {
			// An I/O error from the nbd device says little; the daemon
			// records the cause when the source failed for good.
			if f := daemonFault(); f != nil {
				return fmt.Errorf("%s: %w", b.rootDesc(), f)
			}
			if f := readFault(); f != nil && errors.Is(err, unix.EIO) {
				return fmt.Errorf("%s: %w", b.rootDesc(), f)
			}
		}
		return fmt.Errorf("%s: %w", b.rootDesc(), err)
	}
	b.root = r
	b.log.Info("root assembled", "lower", r.Lower, "overlay", sysroot)
	return nil
}

// handover leaves what the booted system needs to renew the same lease
// (NetworkManager, systemd-networkd, plain files) in /run and the overlay.
func (b *boot) handover(context.Context) error {
	if b.lease != nil {
		run, root := handover.Files(b.lease)
		if err := handover.Write("/run", run); err != nil {
			return err
		}
		if err := handover.Write(sysroot, root); err != nil {
			return err
		}
		for _, f := range append(run, root...) {
			b.log.Debug("wrote", "file", f.Path)
		}
	}
	return b.writeReport()
}

// writeReport records the boot in /run/initramfs/streamroot.json.
func (b *boot) writeReport() error {
	rep := map[string]any{"stages": b.timings}
	if b.lease != nil {
		rep["lease"] = map[string]any{
			"iface": b.lease.Iface, "mac": b.lease.MAC.String(), "address": b.lease.Addr.String(),
			"router": ipOrEmpty(b.lease.Router), "server_id": ipOrEmpty(b.lease.ServerID),
			"lease_seconds": int(b.lease.LeaseTime.Seconds()), "client_id": fmt.Sprintf("%x", b.lease.ClientID), "dhcp": b.lease.DHCP,
		}
	}
	img := map[string]any{"root": b.rootDesc(), "mode": b.mode}
	switch {
	case b.src != nil: // ram mode: PID 1 fetched it
		img["size"], img["etag"], img["received"], img["file"] = b.src.Size, b.src.ETag, b.src.Received(), b.image
	case b.device != nil: // the block daemon serves it (its own counters are in blockd.log)
		img["size"], img["etag"], img["device"] = b.device.Size, b.device.ETag, b.device.Device
	}
	if b.manifest != nil {
		img["manifest_chunks"] = b.manifest.NumChunks()
	}
	rep["image"] = img
	if b.root != nil {
		rep["layers"] = b.root.Layers
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(runDir, "streamroot.json"), data, 0o644)
}

// switchRoot execs the image's init as PID 1 in /sysroot.
func (b *boot) switchRoot(context.Context) error {
	init, err := liveroot.FindInit(sysroot, b.cfg.Init, "/sbin/init", "/usr/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd")
	if err != nil {
		return hint.New(err, "the image must contain its own init (e.g. /sbin/init); set init=<path> if it lives elsewhere")
	}
	argv := append([]string{init}, initArgs(os.Args[1:])...)
	env := []string{
		"HOME=/",
		"TERM=" + envOr("TERM", "linux"),
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	b.log.Info(fmt.Sprintf("starting %s (boot took %s: %s)", init, time.Since(b.started).Round(time.Millisecond), b.summary()))
	if err := b.writeReport(); err != nil {
		b.log.Warn("cannot write boot report", "err", err)
	}
	return switchroot.Switch(sysroot, init, argv, env)
}

// initArgs keeps the arguments the kernel gave us that are meant for the
// real init (runlevels, single, emergency), as dracut does.
func initArgs(args []string) []string {
	var out []string
	for _, a := range args {
		switch a {
		case "single", "s", "S", "1", "2", "3", "4", "5", "emergency", "rescue", "auto":
			out = append(out, a)
		}
	}
	return out
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// memAvailable is the kernel's estimate of memory available for new work.
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// fitsInRAM says whether an image of size bytes can be held in memory with
// room left for the booted OS (a quarter of what is available, at least
// 256 MiB).
func fitsInRAM(size int64) bool {
	avail := memAvailable()
	return size <= avail-max(avail/4, 256<<20)
}

// checkSHA256 hashes the file at path and compares it with want.
func checkSHA256(path string, want []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash %s: %w", path, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("image sha256 is %x, streamroot.sha256 wants %x", got, want)
	}
	return nil
}

// bakedManifest holds the manifest digest `make initramfs IMAGE_MANIFEST=…`
// puts in the initramfs.
const bakedManifest = "/etc/streamroot/manifest.sha256"

// loadManifest fetches the chunk manifest (streamroot.manifest.url=, or the
// image URL + ".manifest") and checks it against the pinned digest, before
// anything is mounted.
func (b *boot) loadManifest(ctx context.Context) error {
	u := b.cfg.ManifestURL
	if u == "" {
		if b.cfg.Root.Kind != bootcfg.RootLive {
			return hint.New(errors.New("streamroot.manifest= needs streamroot.manifest.url= for an NBD root"),
				"serve the manifest over HTTP and name it with streamroot.manifest.url=")
		}
		u = b.cfg.Root.URL.String() + ".manifest"
	}
	opts := httpsrc.Options{Stall: b.cfg.Retry, Log: b.log, InsecureSkipVerify: b.cfg.NoVerifySSL}
	if strings.HasPrefix(u, "https:") {
		pool, err := caPool()
		if err != nil {
			return err
		}
		opts.RootCAs = pool
	}
	data, err := httpsrc.GetSmall(ctx, u, 64<<20, opts)
	if err != nil {
		return hint.New(fmt.Errorf("manifest: %w", err), "publish the manifest next to the image (streamroot manifest IMAGE writes IMAGE.manifest) or name it with streamroot.manifest.url=")
	}
	shown := u // for the console: never the URL's password
	if pu, err := url.Parse(u); err == nil {
		shown = pu.Redacted()
	}
	m, err := manifest.ParsePinned(data, [32]byte(b.cfg.Manifest))
	if err != nil {
		return hint.New(fmt.Errorf("manifest %s: %w", shown, err),
			"the manifest on the server is not the one the kernel line pins: regenerate it with streamroot manifest and update streamroot.manifest=sha256:…")
	}
	b.manifest, b.manifestRaw = m, data
	b.log.Info("manifest verified", "url", shown, "chunks", m.NumChunks(), "chunk", mib(m.Chunk))
	return nil
}

// ipOrEmpty renders an optional address ("" when absent, not "<nil>").
func ipOrEmpty(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}
