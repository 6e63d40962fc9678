package builder

import (
	"errors"
	"fmt"
	"log/slog"
	"path"

	"github.com/streamroot/streamroot/builder/internal/kmodtree"
	"github.com/streamroot/streamroot/pkg/kmod"
)

// moduleReport is what the module step found, for build.json and the
// summary line.
type moduleReport struct {
	nics    []string // requested NIC drivers present (module or builtin), normalized
	builtin []string // requested names compiled into the kernel, normalized
	names   []string // modules included, sorted
	// signed counts the modules that kept an appended signature (after
	// decompression): under Secure Boot only those load.
	signed int
}

// addModules resolves the NIC drivers and extra modules against the tree
// in opts.ModDir and adds their closure, decompressed, plus filtered
// index files under /lib/modules/<kver>.
//
// Policy: a NIC driver this kernel lacks is skipped with a warning (the
// default list is a wide net across vendors), but at least one must exist;
// an unknown -modules entry is an error, because those are what the boot
// itself needs (squashfs, overlay, nbd, ...).
func addModules(im *image, opts Options, log *slog.Logger) (moduleReport, error) {
	rep := moduleReport{nics: []string{}, builtin: []string{}, names: []string{}}
	tree, err := kmodtree.Load(opts.ModDir)
	if errors.Is(err, kmodtree.ErrNoDepmod) && opts.ScanModules {
		log.Info("no modules.dep: computing the indexes from the modules' .modinfo", "dir", opts.ModDir)
		tree, err = kmodtree.Scan(opts.ModDir)
	}
	if err != nil {
		return rep, err
	}
	set := tree.NewSet()

	for _, n := range opts.NIC {
		l, err := set.Add(n)
		if err != nil {
			return rep, err
		}
		if !l.Found() {
			log.Warn("NIC driver not in this kernel; skipped", "driver", n, "kver", opts.KVer)
			continue
		}
		if len(l.Modules) == 0 {
			log.Info("NIC driver is built into the kernel", "driver", n)
			rep.builtin = append(rep.builtin, kmod.Normalize(n))
		}
		rep.nics = append(rep.nics, kmod.Normalize(n))
	}
	if len(opts.NIC) > 0 && len(rep.nics) == 0 {
		return rep, fmt.Errorf("-nic: none of %v exists in kernel %s (%s)", opts.NIC, opts.KVer, opts.ModDir)
	}

	for _, n := range opts.Modules {
		l, err := set.Add(n)
		if err != nil {
			return rep, err
		}
		if !l.Found() {
			return rep, fmt.Errorf("-modules: %q is neither a module, an alias nor a builtin of kernel %s (%s)", n, opts.KVer, opts.ModDir)
		}
		if len(l.Modules) == 0 {
			log.Info("module is built into the kernel", "module", n)
			rep.builtin = append(rep.builtin, kmod.Normalize(n))
		}
	}
	for _, w := range set.Warnings() {
		log.Warn(w)
	}

	base := path.Join("/lib/modules", opts.KVer)
	for _, m := range set.Modules() {
		b, err := tree.ReadModule(m)
		if err != nil {
			return rep, err
		}
		if err := im.file(path.Join(base, m.StoredPath()), 0o644, b); err != nil {
			return rep, err
		}
		if kmod.HasSignature(b) {
			rep.signed++
		}
		log.Debug("module", "name", m.Name, "path", m.StoredPath(), "bytes", len(b), "signed", kmod.HasSignature(b))
	}
	idx, err := set.IndexFiles()
	if err != nil {
		return rep, err
	}
	for name, b := range idx {
		if err := im.file(path.Join(base, name), 0o644, b); err != nil {
			return rep, err
		}
	}
	rep.names = set.Names()
	return rep, nil
}
