package main

import (
	"context"
	"crypto/sha256"
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
	"github.com/streamroot/streamroot/pkg/measure"
	"github.com/streamroot/streamroot/pkg/netconfig"
	"github.com/streamroot/streamroot/pkg/netup"
	"github.com/streamroot/streamroot/pkg/rootdev"
	"github.com/streamroot/streamroot/pkg/switchroot"
	"github.com/streamroot/streamroot/pkg/trust"
)

// early mounts the API filesystems and starts the log file.
func (b *boot) early(context.Context) error {
	if err := switchroot.MountAPI(); err != nil {
		return err
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
	cfg, err := bootcfg.ParseWith(cmdline, builtIn())
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
	baked, err := trust.LoadBaked(trust.KeysFile, trust.MinVersionFile)
	if err != nil {
		return hint.New(fmt.Errorf("the initramfs's trusted keys: %w", err), "rebuild the initramfs with streamroot initramfs --trust-key (make initramfs TRUST_KEY=)")
	}
	if b.trust, err = trust.Narrow(baked, cfg.Trust, cfg.MinVersion); err != nil {
		return hint.New(err, "streamroot.trust= and streamroot.min_version= can only narrow what the initramfs trusts: name its keys, or drop them")
	}
	b.mode, err = rootdev.Plan(cfg, rootdev.BakedManifest, b.trust, b.log)
	return err
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
	if err := l.Load(netconfig.Modules(b.cfg)...); err != nil {
		return fmt.Errorf("load the modules of vlan=/bond=/bridge=: %w", err)
	}
	// Filesystems for every layout liveroot may meet load while the
	// network comes up (under a second of the boot, mostly signature
	// checks, that DHCP's round trips would otherwise follow); the fetch
	// stage, the first to need nbd or loop, waits for them. The loader is
	// not shared: no stage before fetch loads a module.
	done := make(chan error, 1)
	b.fsModules = done
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("loading the filesystem modules panicked: %v", p)
			}
		}()
		done <- l.Load("loop", "nbd", "squashfs", "overlay", "isofs", "ext4", "erofs")
	}()
	return nil
}

// waitFSModules waits for the filesystem modules the modules stage started
// loading; a module that did not load is a warning here and, if the root
// needs it, the mount's error later.
func (b *boot) waitFSModules() {
	if b.fsModules == nil {
		return
	}
	if err := <-b.fsModules; err != nil {
		b.log.Warn("some filesystem modules did not load", "err", err)
	}
	b.fsModules = nil
}

// openTPM finds the TPM the measure stage extends (streamroot.tpm=). It
// runs before the network so that streamroot.tpm=required on a node
// without one fails before anything is fetched.
func (b *boot) openTPM(context.Context) error {
	if b.cfg.TPM == bootcfg.TPMOff {
		b.log.Info("streamroot.tpm=off: this boot is not measured")
		return nil
	}
	t, err := measure.Open()
	switch {
	case err == nil:
		b.tpm = t
		b.log.Info("TPM found: the image will be measured before switch_root", "device", t.Path, "pcr", measure.PCR)
	case b.cfg.TPM == bootcfg.TPMRequired:
		return hint.New(fmt.Errorf("streamroot.tpm=required: %w", err),
			"enable the TPM 2.0 in the firmware (QEMU: -tpmdev emulator + -device tpm-tis), or boot without streamroot.tpm=required")
	case errors.Is(err, measure.ErrNoTPM):
		b.log.Info("no TPM 2.0 on this node: this boot is not measured")
	default:
		b.log.Warn("TPM unusable: this boot is not measured", "err", err)
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
	b.log.Info(lease.Bound(), "router", ipOrEmpty(lease.Router))
	if len(lease.DNS) > 0 {
		if err := os.WriteFile("/etc/resolv.conf", netup.ResolvConf(lease), 0o644); err != nil {
			return fmt.Errorf("write /etc/resolv.conf: %w", err)
		}
	}
	return nil
}

// fetch makes the root image available: a block device served by the
// block daemon (stream, lazy, NBD roots) or a file in RAM (ram mode).
func (b *boot) fetch(ctx context.Context) error {
	spec, err := rootdev.NewSpec(ctx, b.cfg, b.mode, b.trust, b.log)
	if err != nil {
		return err
	}
	b.waitFSModules() // nbd for the daemon, loop for a RAM image
	dev, err := rootdev.Open(ctx, spec, rootdev.Options{Log: b.log, RunDir: runDir})
	if err != nil {
		return err
	}
	b.spec, b.dev, b.mode = spec, dev, dev.Mode
	return nil
}

// layers mounts the image's layers and the writable overlay at /sysroot.
func (b *boot) layers(ctx context.Context) error {
	r, err := liveroot.Assemble(b.dev.Path(), liveroot.Options{
		Base:        runDir,
		Target:      sysroot,
		LiveDir:     b.cfg.LiveDir,
		SquashImg:   b.cfg.SquashImg,
		OverlaySize: b.cfg.OverlaySize,
	}, b.log)
	if err != nil {
		// An I/O error from the nbd device says little; the daemon
		// found the cause.
		if f := b.dev.Fault(ctx, err); f != nil {
			err = f
		}
		return fmt.Errorf("%s: %w", b.dev.Name(), err)
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
	rep := bootlog.Report{Stages: b.timings, Image: b.dev.Record()}
	if l := b.lease; l != nil {
		rep.Lease = &bootlog.ReportLease{Iface: l.Iface, MAC: l.MAC.String(), Address: netOrEmpty(l.Addr), Router: ipOrEmpty(l.Router),
			ServerID: ipOrEmpty(l.ServerID), LeaseSeconds: int(l.LeaseTime.Seconds()), ClientID: fmt.Sprintf("%x", l.ClientID), DHCP: l.DHCP,
			IPv6: handover.Lease6JSON(l)}
	}
	if b.root != nil {
		rep.Layers = b.root.Layers
	}
	return rep.WriteFile(filepath.Join(runDir, "streamroot.json"))
}

// measure extends the image's identity into the TPM and systemd's
// measurement log in /run, which switch_root moves into the booted root.
func (b *boot) measure(context.Context) error {
	if b.tpm == nil {
		return nil
	}
	defer b.tpm.Close()
	// The verified identity: the URL without a password, and the signing
	// key and version of a signed image (empty and 0 when unsigned).
	v := b.spec.Verified
	id := measure.Identity{URL: v.URL, ImageSHA256: b.spec.SHA256, KeyID: v.KeyID, Version: v.Version}
	if len(b.spec.Manifest) > 0 {
		d := sha256.Sum256(b.spec.Manifest)
		id.ManifestDigest = d[:]
	}
	rec, err := b.tpm.Measure(id, "")
	if err != nil {
		if b.cfg.TPM == bootcfg.TPMRequired {
			return hint.New(err, "the TPM did not take the measurement; boot without streamroot.tpm=required to go on unmeasured")
		}
		b.log.Warn("the image was not measured", "err", err)
		return nil
	}
	banks := make([]string, len(rec.Digests))
	for i, d := range rec.Digests {
		banks[i] = d.HashAlg
	}
	b.log.Info("image measured", "pcr", rec.PCR, "banks", strings.Join(banks, ","), "event", rec.Content.String, "log", measure.LogPath)
	return nil
}

// switchRoot execs the image's init as PID 1 in /sysroot.
func (b *boot) switchRoot(context.Context) error {
	init, err := liveroot.FindInit(sysroot, append([]string{b.cfg.Init}, imgfmt.InitCandidates()...)...)
	if err != nil {
		return hint.New(err, "the image must contain its own init (e.g. /sbin/init); set init=<path> if it lives elsewhere")
	}
	argv, env := switchroot.InitArgv(init, os.Args[1:]), switchroot.InitEnv(os.Getenv("TERM"))
	b.log.Info(bootlog.Switch{Init: init, Took: time.Since(b.started), Stages: b.timings}.Message())
	if err := b.writeReport(); err != nil {
		b.log.Warn("cannot write boot report", "err", err)
	}
	return switchroot.Switch(sysroot, init, argv, env)
}

// builtIn reads what the builder put in the initramfs for the parser: the
// image URL (-image-url) a path root such as Foreman's root=live:/fdi.iso
// stands for. Missing means none; bootcfg checks the URL itself.
func builtIn() bootcfg.Defaults {
	b, _ := os.ReadFile(bootcfg.ImageURLFile)
	return bootcfg.Defaults{ImageURL: strings.TrimSpace(string(b))}
}

// ipOrEmpty renders an optional address ("" when absent, not "<nil>").
func ipOrEmpty(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

// netOrEmpty renders the IPv4 address with its prefix, "" on an
// IPv6-only link (not "<nil>").
func netOrEmpty(n net.IPNet) string {
	if n.IP == nil {
		return ""
	}
	return n.String()
}
