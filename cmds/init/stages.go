package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/handover"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/imgfmt"
	"github.com/streamroot/streamroot/pkg/kmod"
	"github.com/streamroot/streamroot/pkg/liveroot"
	"github.com/streamroot/streamroot/pkg/netconfig"
	"github.com/streamroot/streamroot/pkg/netup"
	"github.com/streamroot/streamroot/pkg/rootdev"
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
	for _, w := range cfg.Warnings {
		b.log.Warn(w.Arg+": "+w.Reason, "arg", w.Arg)
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
	mode, note, err := rootdev.PlanMode(cfg)
	if err != nil {
		return err
	}
	b.mode = mode
	if note != "" {
		b.log.Warn(note)
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
	if err := l.Load(netconfig.Modules(b.cfg)...); err != nil {
		return fmt.Errorf("load the modules of vlan=/bond=/bridge=: %w", err)
	}
	return nil
}

// network brings up the boot link and gets an address.
func (b *boot) network(ctx context.Context) error {
	nc, notes, err := netconfig.FromBoot(b.cfg)
	if err != nil {
		return err
	}
	for _, n := range notes {
		b.log.Warn(n)
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
	spec, err := rootdev.NewSpec(ctx, b.cfg, b.mode, b.log)
	if err != nil {
		return err
	}
	b.spec = spec
	dev, err := rootdev.Open(ctx, spec, rootdev.Options{Log: b.log, RunDir: runDir})
	if err != nil {
		return err
	}
	b.dev, b.mode = dev, dev.Mode
	return nil
}

// layers mounts the image's layers and the writable overlay at /sysroot.
func (b *boot) layers(context.Context) error {
	r, err := liveroot.Assemble(b.dev.Path(), liveroot.Options{
		Base:        runDir,
		Target:      sysroot,
		LiveDir:     b.cfg.LiveDir,
		SquashImg:   b.cfg.SquashImg,
		OverlaySize: b.cfg.OverlaySize,
	}, b.log)
	if err != nil {
		// An I/O error from the nbd device says little; the daemon
		// records the cause.
		if f := b.dev.Fault(err); f != nil {
			return fmt.Errorf("%s: %w", b.rootDesc(), f)
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
	case b.dev == nil:
	case b.dev.File != "": // ram mode: PID 1 fetched it
		img["size"], img["etag"], img["received"], img["file"] = b.dev.Size, b.dev.ETag, b.dev.Received, b.dev.File
	default: // the block daemon serves it (its own counters are in blockd.log)
		img["size"], img["etag"], img["device"] = b.dev.Size, b.dev.ETag, b.dev.Block
	}
	if m := b.spec.ParsedManifest(); m != nil {
		img["manifest_chunks"] = m.NumChunks()
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
	init, err := liveroot.FindInit(sysroot, append([]string{b.cfg.Init}, imgfmt.InitCandidates()...)...)
	if err != nil {
		return hint.New(err, "the image must contain its own init (e.g. /sbin/init); set init=<path> if it lives elsewhere")
	}
	argv, env := realInit(init, os.Args[1:], envOr("TERM", "linux"))
	b.log.Info(bootlog.Switch{Init: init, Took: time.Since(b.started), Stages: b.stageTimes()}.Message())
	if err := b.writeReport(); err != nil {
		b.log.Warn("cannot write boot report", "err", err)
	}
	return switchroot.Switch(sysroot, init, argv, env)
}

// realInit is the real init's argv and environment: what the kernel gave
// us that is meant for it, and an explicit environment (never ours).
func realInit(init string, args []string, term string) (argv, env []string) {
	argv = append([]string{init}, initArgs(args)...)
	env = []string{
		"HOME=/",
		"TERM=" + term,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	return argv, env
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

// bakedManifest holds the manifest digest `make initramfs IMAGE_MANIFEST=…`
// puts in the initramfs.
const bakedManifest = "/etc/streamroot/manifest.sha256"

// ipOrEmpty renders an optional address ("" when absent, not "<nil>").
func ipOrEmpty(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}
