// Package pathwalk resolves a path inside a filesystem image the way the
// image's own root would see it (stat(2), no mount): symlinks followed
// in every component, an absolute target from the image's root, ".." at
// the root staying there. One walk follows at most MaxHops symlinks, as
// Linux does, and walks at most MaxSteps components, so a crafted image
// (a directory that holds itself, long symlink chains) bounds the work.
// The squashfs and ext4 readers share it.
package pathwalk

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

const (
	// MaxHops is how many symlinks one walk follows (Linux's 40).
	MaxHops = 40
	// MaxSteps is how many components one walk takes; real paths take
	// a few.
	MaxSteps = 256
)

// FS is what a walk needs of a filesystem whose nodes are N.
type FS[N any] interface {
	// Child is the entry name of directory dir; walked is the path of
	// that entry from the root, for messages. Its errors are returned
	// as they are.
	Child(dir N, name, walked string) (N, error)
	// Link is n's target when n is a symlink (ok false otherwise).
	Link(n N) (target string, ok bool, err error)
}

// Resolve walks p from root.
func Resolve[N any](fs FS[N], root N, p string) (N, error) {
	var zero N
	stack := []N{root} // the directories from the root to where the walk is
	var names []string // their names, for messages
	parts := Split(path.Clean("/" + p))
	for steps, hops := 0, 0; len(parts) > 0; {
		if steps++; steps > MaxSteps {
			return zero, fmt.Errorf("%s: resolving it walks more than %d components", p, MaxSteps)
		}
		name := parts[0]
		parts = parts[1:]
		switch name {
		case ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack, names = stack[:len(stack)-1], names[:len(names)-1]
			}
			continue
		}
		n, err := fs.Child(stack[len(stack)-1], name, path.Join(append(slices.Clone(names), name)...))
		if err != nil {
			return zero, err
		}
		target, isLink, err := fs.Link(n)
		if err != nil {
			return zero, err
		}
		if !isLink {
			stack, names = append(stack, n), append(names, name)
			continue
		}
		if hops++; hops > MaxHops {
			return zero, fmt.Errorf("%s: more than %d symlinks", p, MaxHops)
		}
		if path.IsAbs(target) {
			stack, names = stack[:1], nil
		}
		parts = append(Split(target), parts...)
	}
	return stack[len(stack)-1], nil
}

// Split is p's non-empty components, "." and ".." kept.
func Split(p string) []string {
	var out []string
	for part := range strings.SplitSeq(p, "/") {
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}
