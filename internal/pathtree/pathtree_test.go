package pathtree

import (
	"fmt"
	"strings"
	"testing"
)

// file is a test entry: a path and a tag to tell which entry a node got.
type file struct{ path, tag string }

// render is the tree in walk order, one node a line: its path (/ for the
// root), "dir" or "file", and the tag of its File.
func render(n *Node[file]) string {
	var b strings.Builder
	var walk func(n *Node[file])
	walk = func(n *Node[file]) {
		kind, p := "file", n.Path
		if n.Dir {
			kind = "dir"
		}
		if p == "" {
			p = "/"
		}
		if !strings.HasSuffix("/"+n.Path, "/"+n.Name) {
			fmt.Fprintf(&b, "name %q does not end path %q\n", n.Name, n.Path)
		}
		fmt.Fprintf(&b, "%s %s %s\n", p, kind, n.File.tag)
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name  string
		files []file
		want  string
	}{
		{"nothing", nil, "/ dir \n"},
		{"one file", []file{{"a", "1"}}, "/ dir \na file 1\n"},
		{"directories implied", []file{{"LiveOS/squashfs.img", "1"}},
			"/ dir \nLiveOS dir \nLiveOS/squashfs.img file 1\n"},
		{"a directory shared, children in the order named", []file{{"d/z", "1"}, {"e", "2"}, {"d/a", "3"}, {"d/s/x", "4"}},
			"/ dir \nd dir \nd/z file 1\nd/a file 3\nd/s dir \nd/s/x file 4\ne file 2\n"},
		{"slashes at the ends dropped", []file{{"/boot/vmlinuz/", "1"}},
			"/ dir \nboot dir \nboot/vmlinuz file 1\n"},
		{"a path twice: one node, the later entry", []file{{"a/b", "1"}, {"a/b", "2"}},
			"/ dir \na dir \na/b file 2\n"},
		// The helpers' images decide what such a tree means; the
		// tree keeps how each name was first used.
		{"a file, then a path below it", []file{{"a", "1"}, {"a/b", "2"}},
			"/ dir \na file 1\na/b file 2\n"},
		{"a directory, then a file of its name", []file{{"a/b", "1"}, {"a", "2"}},
			"/ dir \na dir 2\na/b file 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(Build(tt.files, func(f file) string { return f.path }))
			if got != tt.want {
				t.Errorf("tree:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
