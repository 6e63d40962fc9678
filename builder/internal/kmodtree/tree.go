// Package kmodtree reads a kernel module tree (lib/modules/<kver>) as left
// by depmod and answers the questions the initramfs builder asks: which
// files make up the closure of a set of modules, how to read a module
// uncompressed, and what the filtered index files look like once only that
// closure is shipped.
//
// It parses the text indexes (modules.dep, modules.alias, modules.softdep,
// modules.builtin, modules.builtin.modinfo) rather than the .bin tries:
// the text files are what depmod always writes, and they are small enough
// to scan.
package kmodtree

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/streamroot/streamroot/pkg/kmod"
)

// Module is one loadable module listed in modules.dep.
type Module struct {
	// Name is the normalized module name (dashes replaced by underscores).
	Name string
	// Path is the module file relative to the tree, as modules.dep lists
	// it; it may end in .ko.xz, .ko.zst or .ko.gz.
	Path string
	// Deps are the Paths of the modules this one needs, in modules.dep
	// order (which is the reverse of load order).
	Deps []string
}

// StoredPath is the path the module gets in the initramfs: Path with any
// compression suffix removed, because the builder stores modules
// decompressed so that the runtime can finit_module them directly.
func (m *Module) StoredPath() string { return StoredPath(m.Path) }

// Tree is a parsed module tree.
type Tree struct {
	// Dir is the lib/modules/<kver> directory on the host.
	Dir string

	mods     map[string]*Module // by normalized name
	byPath   map[string]*Module // by Path as in modules.dep
	depOrder []string           // module names in modules.dep order
	aliases  []kmod.Alias
	builtin  map[string]bool // normalized names from modules.builtin
	// builtinAliases come from the "<mod>.alias=" lines of
	// modules.builtin.modinfo: modules.alias only covers loadable modules,
	// so without these an alias such as crypto-crc32c would look unknown
	// on a kernel that builds crc32c in.
	builtinAliases []kmod.Alias
	softdeps       map[string]kmod.Softdep
	// computed are the index files Scan made, by name; they stand in
	// for files the tree lacks.
	computed map[string][]byte
}

// ErrNoDepmod reports a module tree without modules.dep.
var ErrNoDepmod = errors.New("no modules.dep")

// Load parses the module tree in dir (a lib/modules/<kver> directory).
// modules.dep is required; the other indexes are optional.
func Load(dir string) (*Tree, error) {
	t := &Tree{Dir: dir}
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if errors.Is(err, fs.ErrNotExist) {
		// A raw unpacked kernel package ships modules without indexes;
		// say how to make them instead of failing on the first lookup.
		base, kver := depmodArgs(dir)
		return nil, fmt.Errorf("%s: %w: run `depmod -b %s %s` first", dir, ErrNoDepmod, base, kver)
	}
	if err != nil {
		return nil, err
	}
	return t, t.parse(dep)
}

// parse reads modules.dep (given) and the optional indexes into t, whose
// maps it makes: Load and Scan differ only in where the indexes come from.
func (t *Tree) parse(dep []byte) error {
	t.mods, t.byPath, t.builtin = map[string]*Module{}, map[string]*Module{}, map[string]bool{}
	if err := t.parseDep(dep); err != nil {
		return fmt.Errorf("%s/modules.dep: %w", t.Dir, err)
	}
	if err := t.parseOptional("modules.alias", func(b []byte) error { t.aliases = kmod.ParseAliases(b); return nil }); err != nil {
		return err
	}
	t.softdeps = map[string]kmod.Softdep{}
	if err := t.parseOptional("modules.softdep", func(b []byte) error { t.softdeps = kmod.ParseSoftdeps(b); return nil }); err != nil {
		return err
	}
	if err := t.parseOptional("modules.builtin", t.parseBuiltin); err != nil {
		return err
	}
	return t.parseOptional("modules.builtin.modinfo", t.parseBuiltinModinfo)
}

// depmodArgs splits .../lib/modules/<kver> into the depmod base directory
// and kernel version, for the hint in the missing-modules.dep error.
func depmodArgs(dir string) (base, kver string) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	kver = filepath.Base(abs)
	mods := filepath.Dir(abs)
	if filepath.Base(mods) == "modules" && filepath.Base(filepath.Dir(mods)) == "lib" {
		return filepath.Dir(filepath.Dir(mods)), kver
	}
	return "<root containing lib/modules>", kver
}

func (t *Tree) parseOptional(name string, parse func([]byte) error) error {
	b, err := t.readIndex(name)
	if err != nil {
		return err
	}
	if b == nil {
		return nil
	}
	if err := parse(b); err != nil {
		return fmt.Errorf("%s/%s: %w", t.Dir, name, err)
	}
	return nil
}

// compressedSuffixes are the module compressions kmod understands.
var compressedSuffixes = []string{".xz", ".zst", ".gz"}

// StoredPath strips a compression suffix from a module path: x.ko.xz →
// x.ko. Other paths are returned unchanged.
func StoredPath(p string) string {
	for _, s := range compressedSuffixes {
		if strings.HasSuffix(p, ".ko"+s) {
			return strings.TrimSuffix(p, s)
		}
	}
	return p
}

// NameFromPath derives a module name from its file path the way kmod does:
// the base name without .ko and compression suffix, normalized.
func NameFromPath(p string) string {
	base := path.Base(StoredPath(p))
	return kmod.Normalize(strings.TrimSuffix(base, ".ko"))
}

// relPath turns a modules.dep path into a tree-relative one. Old depmods
// wrote absolute /lib/modules/<kver>/... paths.
func (t *Tree) relPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return p
	}
	prefix := "/lib/modules/" + filepath.Base(t.Dir) + "/"
	return strings.TrimPrefix(p, prefix)
}

func (t *Tree) parseDep(b []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, deps, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("line %d: no ':' in %q", n, line)
		}
		m := &Module{Path: t.relPath(strings.TrimSpace(file))}
		m.Name = NameFromPath(m.Path)
		for _, d := range strings.Fields(deps) {
			m.Deps = append(m.Deps, t.relPath(d))
		}
		// The paths become host reads and archive names: keep both
		// inside the tree whatever the file says.
		for _, p := range append([]string{m.Path}, m.Deps...) {
			if !filepath.IsLocal(p) || !strings.Contains(path.Base(p), ".ko") {
				return fmt.Errorf("line %d: %q is not a module path inside the tree", n, p)
			}
		}
		// depmod lists each name once (the highest-priority directory
		// wins); keep the first if a hand-made file repeats one.
		if _, dup := t.mods[m.Name]; dup {
			continue
		}
		t.mods[m.Name] = m
		t.byPath[m.Path] = m
		t.depOrder = append(t.depOrder, m.Name)
	}
	return sc.Err()
}

func (t *Tree) parseBuiltin(b []byte) error {
	for _, line := range lines(b) {
		t.builtin[NameFromPath(line)] = true
	}
	return nil
}

// parseBuiltinModinfo reads NUL-separated "module.key=value" records; only
// the aliases are of interest.
func (t *Tree) parseBuiltinModinfo(b []byte) error {
	for _, rec := range bytes.Split(b, []byte{0}) {
		mod, val, ok := strings.Cut(string(rec), ".alias=")
		if !ok || mod == "" || val == "" || strings.ContainsAny(mod, "=") {
			continue
		}
		t.builtin[kmod.Normalize(mod)] = true
		t.builtinAliases = append(t.builtinAliases, kmod.NewAlias(val, mod))
	}
	return nil
}

// lines returns the non-empty, non-comment lines of b, trimmed.
func lines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// Module returns the loadable module called name (either spelling).
func (t *Tree) Module(name string) (*Module, bool) {
	m, ok := t.mods[kmod.Normalize(name)]
	return m, ok
}

// Lookup is what a name resolves to.
type Lookup struct {
	// Modules are the loadable modules the name stands for: itself, or
	// every module an alias matches.
	Modules []*Module
	// Builtin is true when the name (or one of its alias targets) is
	// compiled into the kernel.
	Builtin bool
	// Alias is true when the name was resolved through an alias.
	Alias bool
}

// Found reports whether the name means anything to this kernel.
func (l Lookup) Found() bool { return len(l.Modules) > 0 || l.Builtin }

// Lookup resolves a module name or alias, in modprobe's order: a module
// of that name, a builtin of that name, then aliases of loadable and
// builtin modules. Alias targets whose file is missing from the tree are
// skipped, so a half-copied tree does not resolve to nothing silently
// later.
func (t *Tree) Lookup(name string) Lookup {
	n := kmod.Normalize(name)
	if m, ok := t.mods[n]; ok {
		return Lookup{Modules: []*Module{m}}
	}
	if t.builtin[n] {
		return Lookup{Builtin: true}
	}
	l := Lookup{Alias: true}
	for _, mod := range kmod.MatchAliases(t.aliases, n) {
		if t.builtin[mod] {
			l.Builtin = true
			continue
		}
		m, ok := t.mods[mod]
		if !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(t.Dir, filepath.FromSlash(m.Path))); err != nil {
			continue
		}
		l.Modules = append(l.Modules, m)
	}
	if len(kmod.MatchAliases(t.builtinAliases, n)) > 0 {
		l.Builtin = true
	}
	return l
}

// readIndex returns the named index file (computed by Scan, else read
// from the tree), or nil if there is none.
func (t *Tree) readIndex(name string) ([]byte, error) {
	if b, ok := t.computed[name]; ok {
		return b, nil
	}
	b, err := os.ReadFile(filepath.Join(t.Dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}
