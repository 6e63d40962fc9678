// Package kmod loads kernel modules from the initramfs's module tree: by name,
// by alias, and for the devices the kernel has found (their sysfs modalias).
//
// Dependency order, builtin modules and already-loaded modules are handled by
// u-root's kmodule.Prober (modules.dep, modules.builtin, /proc/modules). What
// it lacks, and this package adds, is alias resolution (modules.alias) and
// softdeps (modules.softdep): the builder writes both files filtered to the
// modules it packed, so a match here always has a file to load.
package kmod

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// Loader loads modules of one kernel release.
type Loader struct {
	dir      string
	prober   *kmodule.Prober
	aliases  []Alias
	softdeps map[string]Softdep
	deps     map[string][]string     // modules.dep, by module name
	params   map[string]string       // from the command line and workarounds
	applied  map[string][]Workaround // workarounds in params, for the log
	loaded   map[string]bool
	log      *slog.Logger
}

// Release returns the running kernel's release (uname -r).
func Release() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// Open reads the module indexes of release under root ("/" at boot), and
// the module parameters on root's proc/cmdline.
func Open(root, release string, log *slog.Logger) (*Loader, error) {
	start := time.Now()
	dir := filepath.Join(root, "lib/modules", release)
	if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err != nil {
		have, _ := filepath.Glob(filepath.Join(root, "lib/modules/*"))
		for i := range have {
			have[i] = filepath.Base(have[i])
		}
		return nil, fmt.Errorf("no modules for kernel %s in the initramfs (it has: %s): build the initramfs with KVER=%s: %w",
			release, strings.Join(have, ", "), release, err)
	}
	p, err := kmodule.NewProber(kmodule.ProbeOpts{RootDir: root, KVer: release})
	if err != nil {
		return nil, fmt.Errorf("read %s/modules.dep: %w", dir, err)
	}
	l := &Loader{dir: dir, prober: p, deps: map[string][]string{}, loaded: map[string]bool{}, log: log}
	cmdline, err := os.ReadFile(filepath.Join(root, "proc/cmdline"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("module parameters: %w", err)
	}
	l.params, l.applied = moduleParams(string(cmdline))
	text, err := readIndex(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	l.deps = ParseDeps(text)
	if text, err = readIndex(filepath.Join(dir, "modules.alias")); err != nil {
		return nil, err
	}
	l.aliases = ParseAliases(text)
	if text, err = readIndex(filepath.Join(dir, "modules.softdep")); err != nil {
		return nil, err
	}
	l.softdeps = ParseSoftdeps(text)
	// The modules stage is a large share of a boot under TCG; what the
	// indexes cost apart from the loads is what this line is for.
	log.Debug("module indexes read", "dir", dir, "modules", len(l.deps), "aliases", len(l.aliases),
		"took", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// readIndex reads an optional index file: none is an empty one.
func readIndex(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Resolve maps a module name or an alias to module names. Matching uses the
// shell patterns of modules.alias; path.Match suffices because the buses we
// probe (pci, virtio, usb, acpi ids) have no '/' in their modaliases.
func (l *Loader) Resolve(nameOrAlias string) []string {
	mods := MatchAliases(l.aliases, nameOrAlias)
	if len(mods) == 0 && !strings.Contains(nameOrAlias, ":") {
		mods = []string{Normalize(nameOrAlias)}
	}
	return mods
}

// Load loads each named module (or alias) with its dependencies and softdeps.
// A module that is builtin or already loaded is not an error.
func (l *Loader) Load(names ...string) error {
	var errs []error
	for _, n := range names {
		mods := l.Resolve(n)
		if len(mods) == 0 {
			errs = append(errs, fmt.Errorf("module %s: not in the initramfs", n))
			continue
		}
		for _, m := range mods {
			if err := l.load(m, 0); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (l *Loader) load(mod string, depth int) error {
	if l.loaded[mod] || depth > 8 {
		return nil
	}
	l.loaded[mod] = true
	sd := l.softdeps[mod]
	for _, pre := range sd.Pre {
		for _, m := range l.Resolve(pre) {
			// A softdep is a preference, not a requirement (the kernel may
			// have the crypto builtin): log and go on.
			if err := l.load(m, depth+1); err != nil {
				l.log.Debug("softdep not loaded", "module", mod, "softdep", m, "err", err)
			}
		}
	}
	for _, d := range l.deps[mod] {
		if l.params[d] != "" {
			if err := l.load(d, depth+1); err != nil {
				return err
			}
		}
	}
	params := l.params[mod]
	start := time.Now()
	if err := l.prober.Probe(mod, params); err != nil {
		return fmt.Errorf("load module %s (parameters %q): %w", mod, params, signatureRefusal(mod, l.deps[mod], err))
	}
	for _, w := range l.applied[mod] {
		l.log.Info("module parameter set to work around a kernel bug", "module", mod, "param", w.String(),
			"why", w.Why, "override", fmt.Sprintf("%s.%s= on the kernel command line", w.Module, w.Param))
	}
	l.log.Debug("module loaded", "module", mod, "params", params, "took", time.Since(start).Round(time.Millisecond))
	for _, post := range sd.Post {
		for _, m := range l.Resolve(post) {
			if err := l.load(m, depth+1); err != nil {
				l.log.Debug("softdep not loaded", "module", mod, "softdep", m, "err", err)
			}
		}
	}
	return nil
}

// LoadForDevices loads the drivers of every device in sysfs that has one in
// the initramfs, and repeats while loading creates new devices (virtio_pci
// creates the virtio bus devices that virtio_net binds to). It returns the
// modules it loaded.
func (l *Loader) LoadForDevices(sysfs string) ([]string, error) {
	var loaded []string
	seen := map[string]bool{}
	read := map[string]bool{}
	var errs []error
	for round := 0; round < 5; round++ {
		start := time.Now()
		aliases, err := modaliases(sysfs, read)
		if err != nil {
			return loaded, err
		}
		var fresh []string
		for _, a := range aliases {
			if seen[a] {
				continue
			}
			seen[a] = true
			for _, m := range MatchAliases(l.aliases, a) {
				if !l.loaded[m] && !slices.Contains(fresh, m) {
					fresh = append(fresh, m)
				}
			}
		}
		l.log.Debug("devices scanned", "round", round+1, "modaliases", len(aliases), "drivers", strings.Join(fresh, ","),
			"took", time.Since(start).Round(time.Millisecond))
		if len(fresh) == 0 {
			break
		}
		for _, m := range fresh {
			if err := l.load(m, 0); err != nil {
				errs = append(errs, err)
				continue
			}
			loaded = append(loaded, m)
		}
	}
	return loaded, errors.Join(errs...)
}

// modaliases returns the modalias of every device under sysfs's buses
// that read does not hold yet, and adds those devices to read: a device's
// modalias never changes, and under TCG each sysfs read costs, so a later
// round reads only the devices the loads since created. Listing the
// directories and opening each modalias directly spares the stat per
// device a glob would make. A bus or device that vanishes mid-scan, or has
// no modalias, is skipped.
func modaliases(sysfs string, read map[string]bool) ([]string, error) {
	bus := filepath.Join(sysfs, "bus")
	buses, err := os.ReadDir(bus)
	if err != nil {
		return nil, fmt.Errorf("list the buses in %s: %w", bus, err)
	}
	var out []string
	for _, b := range buses {
		dir := filepath.Join(bus, b.Name(), "devices")
		devs, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, d := range devs {
			dev := filepath.Join(dir, d.Name())
			if read[dev] {
				continue
			}
			m, err := os.ReadFile(filepath.Join(dev, "modalias"))
			if err != nil {
				continue
			}
			read[dev] = true
			if s := strings.TrimSpace(string(m)); s != "" {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
