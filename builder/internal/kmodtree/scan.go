package kmodtree

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/streamroot/streamroot/pkg/kmod"
)

// Scan builds the tree of dir (a lib/modules/<kver> directory) from the
// modules themselves, for a tree that has no modules.dep: an unpacked
// kernel package (.deb, .rpm), whose indexes depmod would only write on
// install. It computes what depmod writes from each module's .modinfo
// section, which modpost fills at kernel build time: modules.dep from
// "depends=" (the whole closure in reverse load order, as depmod writes
// it), modules.alias from "alias=", modules.softdep from "softdep=".
// modules.builtin, modules.builtin.modinfo and modules.order are read
// from the tree as Load does; the packages ship them.
//
// A name found twice is taken from the first path in lexical order, so
// the result does not depend on the host's directory order (depmod's
// own search order, updates/ first, is configuration a package tree
// does not carry).
func Scan(dir string) (*Tree, error) {
	type info struct {
		path    string
		depends []string
	}
	mods := make(map[string]*info)
	var order []string
	var alias, softdep strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isModuleFile(d.Name()) || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		name := NameFromPath(rel)
		if _, dup := mods[name]; dup {
			return nil
		}
		mi, err := scanModinfo(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		in := &info{path: rel}
		for _, kv := range mi {
			switch kv[0] {
			case "depends":
				for _, dep := range strings.Split(kv[1], ",") {
					if dep = strings.TrimSpace(dep); dep != "" {
						in.depends = append(in.depends, kmod.Normalize(dep))
					}
				}
			case "alias":
				if f := strings.Fields(kv[1]); len(f) == 1 {
					fmt.Fprintf(&alias, "alias %s %s\n", f[0], name)
				}
			case "softdep":
				if v := strings.Join(strings.Fields(kv[1]), " "); v != "" {
					fmt.Fprintf(&softdep, "softdep %s %s\n", name, v)
				}
			}
		}
		mods[name] = in
		order = append(order, name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning modules in %s: %w", dir, err)
	}

	// loadOrder is the dependency closure of a module, dependencies
	// first; visiting guards against a cycle a corrupt module could
	// declare (modpost refuses real ones).
	var dep strings.Builder
	for _, name := range order {
		var seq []string
		seen := map[string]bool{name: true}
		var visit func(n string, from string) error
		visit = func(n, from string) error {
			for _, d := range mods[n].depends {
				if seen[d] {
					continue
				}
				seen[d] = true
				if _, ok := mods[d]; !ok {
					return fmt.Errorf("%s: depends on %s, which is not in the tree (a partial copy?)", mods[from].path, d)
				}
				if err := visit(d, d); err != nil {
					return err
				}
				seq = append(seq, d)
			}
			return nil
		}
		if err := visit(name, name); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		dep.WriteString(mods[name].path + ":")
		for i := len(seq) - 1; i >= 0; i-- {
			dep.WriteString(" " + mods[seq[i]].path)
		}
		dep.WriteString("\n")
	}

	t := &Tree{
		Dir: dir,
		computed: map[string][]byte{
			"modules.dep":     []byte(dep.String()),
			"modules.alias":   []byte(alias.String()),
			"modules.softdep": []byte(softdep.String()),
		},
	}
	return t, t.parse(t.computed["modules.dep"])
}

// isModuleFile reports whether a file name is a module, plain or
// compressed as kmod reads them.
func isModuleFile(name string) bool {
	if strings.HasSuffix(name, ".ko") {
		return true
	}
	for _, s := range compressedSuffixes {
		if strings.HasSuffix(name, ".ko"+s) {
			return true
		}
	}
	return false
}

// maxModinfo bounds the .modinfo section: real ones are a few KiB.
const maxModinfo = 1 << 20

// scanModinfo reads the .modinfo of the module file p: a plain .ko
// through its section headers only (a kernel's modules are hundreds of
// MiB, their .modinfo a few KiB each), a compressed one whole.
func scanModinfo(p string) ([][2]string, error) {
	if strings.HasSuffix(p, ".ko") {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return modinfo(f)
	}
	b, err := readModuleFile(p)
	if err != nil {
		return nil, err
	}
	return Modinfo(b)
}

// Modinfo returns the key=value records of a module's .modinfo section,
// in file order (a key such as alias repeats). b is the uncompressed
// module; it is untrusted input (a package from anywhere).
func Modinfo(b []byte) ([][2]string, error) { return modinfo(bytes.NewReader(b)) }

func modinfo(r io.ReaderAt) ([][2]string, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section (not a kernel module?)")
	}
	if sec.Type == elf.SHT_NOBITS || sec.Size > maxModinfo {
		return nil, fmt.Errorf(".modinfo section of %d bytes", sec.Size)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	var out [][2]string
	for _, rec := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(rec), "=")
		if !ok || k == "" {
			continue
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}
