package kmodtree

import (
	"fmt"
	"sort"
	"strings"

	"github.com/streamroot/streamroot/pkg/kmod"
)

// Set is a set of modules closed under dependencies: adding a module adds
// its modules.dep dependencies and its softdep pre: and post: modules,
// recursively. The runtime loads from this set only, so anything modprobe
// would pull in must be here.
type Set struct {
	t        *Tree
	mods     map[string]*Module
	warnings []string
	warned   map[string]bool
}

// NewSet returns an empty set over t.
func (t *Tree) NewSet() *Set {
	return &Set{t: t, mods: make(map[string]*Module), warned: make(map[string]bool)}
}

// Add resolves name (module name or alias, either spelling) and adds every
// module it stands for, with their closure. The Lookup tells the caller
// whether the name was found at all (a builtin needs no files); whether
// an unknown name is fatal is the caller's policy.
func (s *Set) Add(name string) (Lookup, error) {
	l := s.t.Lookup(name)
	for _, m := range l.Modules {
		if err := s.add(m); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (s *Set) add(m *Module) error {
	if _, ok := s.mods[m.Name]; ok {
		return nil
	}
	s.mods[m.Name] = m
	for _, dp := range m.Deps {
		d, ok := s.t.byPath[dp]
		if !ok {
			return fmt.Errorf("modules.dep: %s depends on %s, which has no entry of its own (stale depmod?)", m.Path, dp)
		}
		if err := s.add(d); err != nil {
			return err
		}
	}
	sd := s.t.softdeps[m.Name]
	for _, dep := range append(append([]string(nil), sd.Pre...), sd.Post...) {
		l := s.t.Lookup(dep)
		if !l.Found() {
			// modprobe skips a missing softdep too; the module still
			// loads, possibly with a slower fallback.
			s.warn(fmt.Sprintf("softdep %s of %s matches no module or builtin; skipped", dep, m.Name))
			continue
		}
		for _, sm := range l.Modules {
			if err := s.add(sm); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Set) warn(msg string) {
	if !s.warned[msg] {
		s.warned[msg] = true
		s.warnings = append(s.warnings, msg)
	}
}

// Warnings returns the non-fatal problems met while adding modules, in
// the order they were first seen.
func (s *Set) Warnings() []string { return s.warnings }

// Contains reports whether the module called name is in the set.
func (s *Set) Contains(name string) bool {
	_, ok := s.mods[kmod.Normalize(name)]
	return ok
}

// Modules returns the set in modules.dep order, which is stable for a
// given tree.
func (s *Set) Modules() []*Module {
	out := make([]*Module, 0, len(s.mods))
	for _, n := range s.t.depOrder {
		if m, ok := s.mods[n]; ok {
			out = append(out, m)
		}
	}
	return out
}

// Names returns the sorted module names in the set.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.mods))
	for n := range s.mods {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// IndexFiles returns the index files to ship next to the set, keyed by
// file name: modules.dep, modules.alias, modules.softdep and modules.order
// filtered to the set and rewritten to the stored (.ko) names, and
// modules.builtin and modules.builtin.modinfo copied whole, since the
// runtime must recognise every builtin to avoid looking for its file.
// Files missing from the tree are left out (except modules.dep).
func (s *Set) IndexFiles() (map[string][]byte, error) {
	out := make(map[string][]byte)

	var dep strings.Builder
	for _, m := range s.Modules() {
		dep.WriteString(m.StoredPath())
		dep.WriteString(":")
		for _, d := range m.Deps {
			dep.WriteString(" ")
			dep.WriteString(StoredPath(d))
		}
		dep.WriteString("\n")
	}
	out["modules.dep"] = []byte(dep.String())

	filters := []struct {
		name string
		keep func(fields []string) (string, bool)
	}{
		{"modules.alias", func(f []string) (string, bool) {
			return "", len(f) == 3 && f[0] == "alias" && s.Contains(f[2])
		}},
		{"modules.softdep", func(f []string) (string, bool) {
			return "", len(f) >= 2 && f[0] == "softdep" && s.Contains(f[1])
		}},
		{"modules.order", func(f []string) (string, bool) {
			if len(f) != 1 {
				return "", false
			}
			m, ok := s.mods[NameFromPath(f[0])]
			if !ok {
				return "", false
			}
			return m.StoredPath(), true
		}},
	}
	for _, fl := range filters {
		b, err := s.t.readIndex(fl.name)
		if err != nil {
			return nil, err
		}
		if b == nil {
			continue
		}
		var sb strings.Builder
		for _, line := range strings.SplitAfter(string(b), "\n") {
			t := strings.TrimSpace(line)
			if t == "" {
				continue
			}
			if strings.HasPrefix(t, "#") {
				sb.WriteString(t + "\n")
				continue
			}
			repl, keep := fl.keep(strings.Fields(t))
			if !keep {
				continue
			}
			if repl == "" {
				repl = t
			}
			sb.WriteString(repl + "\n")
		}
		out[fl.name] = []byte(sb.String())
	}

	for _, name := range []string{"modules.builtin", "modules.builtin.modinfo"} {
		b, err := s.t.readIndex(name)
		if err != nil {
			return nil, err
		}
		if b != nil {
			out[name] = b
		}
	}
	return out, nil
}
