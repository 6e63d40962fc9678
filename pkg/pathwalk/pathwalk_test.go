package pathwalk

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
)

// mapFS is a tree of paths: a value starting with "->" is a symlink.
type mapFS map[string]string

var errNotFound = errors.New("not found")

func (m mapFS) Child(dir string, name, walked string) (string, error) {
	p := path.Join(dir, name)
	if _, ok := m[p]; !ok {
		return "", fmt.Errorf("%s: %w", walked, errNotFound)
	}
	return p, nil
}

func (m mapFS) Link(n string) (string, bool, error) {
	t, ok := strings.CutPrefix(m[n], "->")
	return t, ok, nil
}

func TestResolve(t *testing.T) {
	fs := mapFS{
		"/usr": "dir", "/usr/lib": "dir", "/usr/lib/modules": "dir", "/usr/lib/modules/1.0": "dir",
		"/lib": "->usr/lib", "/abs": "->/usr/lib/modules", "/loop": "->loop", "/up": "->../../usr",
		"/wide": "->" + strings.Repeat("./", 300) + "usr",
	}
	for _, tc := range []struct{ p, want, err string }{
		{"lib/modules/1.0", "/usr/lib/modules/1.0", ""},
		{"/abs/1.0", "/usr/lib/modules/1.0", ""},
		{"up/lib/../lib/modules", "/usr/lib/modules", ""},
		{"../../usr/./lib", "/usr/lib", ""},
		{"", "/", ""},
		{"lib/nothing", "", "not found"},
		{"loop", "", "more than 40 symlinks"},
		{"wide", "", "more than 256 components"},
	} {
		got, err := Resolve[string](fs, "/", tc.p)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Resolve(%q) = %q, %v; want error %q", tc.p, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.p, got, err, tc.want)
		}
	}
}
