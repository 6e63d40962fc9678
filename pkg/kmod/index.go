package kmod

import (
	"path"
	"strings"
)

// The text module indexes depmod writes, modules.dep, modules.alias and
// modules.softdep, parsed once for both sides: the builder reads the host's
// tree with them (builder/internal/kmodtree) and the initramfs's Loader
// reads the filtered copies the builder wrote.

// Normalize returns the canonical form of a module name or alias: kmod
// treats '-' and '_' as the same character outside bracket expressions,
// so both spellings are accepted everywhere.
func Normalize(name string) string {
	if !strings.ContainsRune(name, '-') {
		return name
	}
	b := []byte(name)
	inBracket := false
	for i, c := range b {
		switch {
		case c == '[':
			inBracket = true
		case c == ']':
			inBracket = false
		case c == '-' && !inBracket:
			b[i] = '_'
		}
	}
	return string(b)
}

// Alias is one "alias PATTERN MODULE" line, both sides normalized.
type Alias struct {
	Pattern, Module string
	// glob is true when Pattern holds fnmatch metacharacters; exact
	// patterns are compared with == instead of path.Match.
	glob bool
}

// NewAlias makes an alias of pattern for module (as modules.alias or
// modules.builtin.modinfo spell them).
func NewAlias(pattern, module string) Alias {
	p := Normalize(pattern)
	return Alias{Pattern: p, Module: Normalize(module), glob: strings.ContainsAny(p, `*?[\`)}
}

// Matches says whether the alias stands for name (a normalized name,
// alias or modalias). Patterns are fnmatch globs as modprobe uses them;
// path.Match implements the same syntax except that '*' does not cross
// '/', which alias strings do not contain in practice.
func (a Alias) Matches(name string) bool {
	if a.Pattern == name {
		return true
	}
	if !a.glob {
		return false
	}
	ok, _ := path.Match(a.Pattern, name)
	return ok
}

// ParseAliases reads modules.alias; other lines are skipped.
func ParseAliases(text []byte) []Alias {
	var out []Alias
	for _, f := range indexLines(text) {
		if len(f) == 3 && f[0] == "alias" {
			out = append(out, NewAlias(f[1], f[2]))
		}
	}
	return out
}

// MatchAliases returns the modules whose alias matches name (either
// spelling), in list order without duplicates.
func MatchAliases(list []Alias, name string) []string {
	name = Normalize(name)
	var out []string
	seen := make(map[string]bool)
	for _, a := range list {
		if a.Matches(name) && !seen[a.Module] {
			seen[a.Module] = true
			out = append(out, a.Module)
		}
	}
	return out
}

// Softdep holds the soft dependencies of one module: names or aliases
// exactly as modules.softdep spells them.
type Softdep struct {
	Pre, Post []string
}

// ParseSoftdeps reads "softdep MOD pre: A B post: C" lines, by normalized
// module name; several lines for one module add up. Like kmod, names
// before the first pre:/post: are ignored (the kernel emits such lines for
// modules whose MODULE_SOFTDEP lacks the keyword).
func ParseSoftdeps(text []byte) map[string]Softdep {
	out := make(map[string]Softdep)
	for _, f := range indexLines(text) {
		if len(f) < 3 || f[0] != "softdep" {
			continue
		}
		mod := Normalize(f[1])
		sd := out[mod]
		var cur *[]string
		for _, tok := range f[2:] {
			switch tok {
			case "pre:":
				cur = &sd.Pre
			case "post:":
				cur = &sd.Post
			default:
				if cur != nil {
					*cur = append(*cur, tok)
				}
			}
		}
		out[mod] = sd
	}
	return out
}

// ParseDeps reads modules.dep's "path: dep dep…" lines into module names
// (kernel/fs/ext4/ext4.ko.xz is ext4), by normalized module name.
func ParseDeps(text []byte) map[string][]string {
	out := make(map[string][]string)
	for _, f := range indexLines(text) {
		if !strings.HasSuffix(f[0], ":") {
			continue
		}
		var deps []string
		for _, d := range f[1:] {
			deps = append(deps, moduleName(d))
		}
		out[moduleName(strings.TrimSuffix(f[0], ":"))] = deps
	}
	return out
}

// moduleName is the module of a path in the module tree.
func moduleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i > 0 {
		b = b[:i]
	}
	return Normalize(b)
}

// indexLines splits an index file into the fields of each line that is
// neither empty nor a comment.
func indexLines(text []byte) [][]string {
	var out [][]string
	for _, l := range strings.Split(string(text), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, strings.Fields(l))
	}
	return out
}
