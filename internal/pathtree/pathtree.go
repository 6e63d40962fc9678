// Package pathtree is a test helper: the directory tree a list of
// slash-separated file paths implies, built once for the test-image
// writers (pkg/isoread/isotest, pkg/squashfs/squashtest) that each lay the
// tree out in their own format. Only test helpers use it; it checks
// nothing, since a test's paths are what the test means to write.
package pathtree

import "strings"

// Node is one element of the tree: the root, a directory or a file.
type Node[T any] struct {
	Name string // the path element; "" for the root
	Path string // from the root, slash-separated, no leading slash; "" for the root
	// Dir: the node was first named as a directory (a path goes on
	// below it); the root is one.
	Dir bool
	// File is the entry of the last path that ends here; the zero T if
	// none does (a directory that is only implied).
	File     T
	Children []*Node[T] // in the order first named, one per name
}

// Build is the tree of files, path giving each one's path: slashes at
// either end are dropped and the directories on the way are made as
// they are first named.
func Build[T any](files []T, path func(T) string) *Node[T] {
	root := &Node[T]{Dir: true}
	for _, f := range files {
		parts := strings.Split(strings.Trim(path(f), "/"), "/")
		d := root
		for i, p := range parts {
			c := d.child(p)
			if c == nil {
				c = &Node[T]{Name: p, Path: strings.Join(parts[:i+1], "/"), Dir: i < len(parts)-1}
				d.Children = append(d.Children, c)
			}
			if i == len(parts)-1 {
				c.File = f
			}
			d = c
		}
	}
	return root
}

// child is n's child called name, or nil.
func (n *Node[T]) child(name string) *Node[T] {
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}
