package builder

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// entry is one file of the initramfs before serialization.
type entry struct {
	mode           uint64 // cpio S_IF* type bits | permissions
	data           []byte // file contents, or symlink target
	rmajor, rminor uint64 // device numbers of a device node
}

// image is the initramfs content as a map from archive path (relative,
// no leading slash) to entry. It is built completely in memory — tens of
// MiB at most — so serialization sees a fixed set and can sort it, and a
// host file changing during the write cannot corrupt a record.
type image struct {
	entries map[string]*entry
}

func newImage() *image {
	return &image{entries: make(map[string]*entry)}
}

// cleanPath turns "/a/b" or "a/b/" into "a/b"; it refuses the root itself
// and anything escaping it, which would be nonsense in an archive.
func cleanPath(p string) (string, error) {
	c := path.Clean("/" + p)[1:]
	if c == "" || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("invalid archive path %q", p)
	}
	return c, nil
}

// dir adds directory p and any missing parents, all with mode perm. An
// existing directory is left as it is.
func (im *image) dir(p string, perm uint64) error {
	c, err := cleanPath(p)
	if err != nil {
		return err
	}
	if e, ok := im.entries[c]; ok {
		if e.mode&cpio.S_IFMT != cpio.S_IFDIR {
			return fmt.Errorf("%s: exists and is not a directory", c)
		}
		return nil
	}
	if parent := path.Dir(c); parent != "." {
		if err := im.dir(parent, perm); err != nil {
			return err
		}
	}
	im.entries[c] = &entry{mode: cpio.S_IFDIR | perm}
	return nil
}

// add inserts a non-directory entry, creating its parent directories with
// mode 0755. Adding a path twice is an error: two sources for one file is
// a bug in the caller, never something to resolve silently.
func (im *image) add(p string, e *entry) error {
	c, err := cleanPath(p)
	if err != nil {
		return err
	}
	if _, ok := im.entries[c]; ok {
		return fmt.Errorf("%s: added twice", c)
	}
	if parent := path.Dir(c); parent != "." {
		if err := im.dir(parent, 0o755); err != nil {
			return err
		}
	}
	im.entries[c] = e
	return nil
}

func (im *image) file(p string, perm uint64, data []byte) error {
	return im.add(p, &entry{mode: cpio.S_IFREG | perm, data: data})
}

func (im *image) symlink(p, target string) error {
	return im.add(p, &entry{mode: cpio.S_IFLNK | 0o777, data: []byte(target)})
}

func (im *image) charDev(p string, perm, major, minor uint64) error {
	return im.add(p, &entry{mode: cpio.S_IFCHR | perm, rmajor: major, rminor: minor})
}

// lookup returns the entry at p, if any.
func (im *image) lookup(p string) (*entry, bool) {
	c, err := cleanPath(p)
	if err != nil {
		return nil, false
	}
	e, ok := im.entries[c]
	return e, ok
}

// pathLess orders paths component by component ("a/b" < "a-b" because the
// components "a" < "a-b"), which is find(1) order: every directory comes
// before its contents, so the kernel never meets a file whose parent it
// has not created.
func pathLess(a, b string) bool {
	ae, be := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(ae) && i < len(be); i++ {
		if ae[i] != be[i] {
			return ae[i] < be[i]
		}
	}
	return len(ae) < len(be)
}

// sortedPaths returns the archive paths in pathLess order.
func (im *image) sortedPaths() []string {
	paths := make([]string, 0, len(im.entries))
	for p := range im.entries {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return pathLess(paths[i], paths[j]) })
	return paths
}

// writeCPIO serializes the image as a newc archive with a trailer.
//
// Every header field is set here rather than copied from the host, which
// is what makes the output reproducible: inode numbers are positions in
// the sorted order (unique and non-zero; the kernel only consults them for
// hard links, which need nlink >= 2 on a regular file, and there are
// none), nlink is 1 for non-directories and 2 + subdirectories for
// directories, owner is root, and every mtime is the given one.
//
// cpio.MakeReproducible is not used: it keeps whatever Ino it is given and
// turns nlink > 1 into MaxUint64 (0xFFFFFFFF in newc), which would be
// wrong for directories; with every field set explicitly it has nothing
// left to do.
func (im *image) writeCPIO(w io.Writer, mtime uint64) error {
	paths := im.sortedPaths()
	subdirs := make(map[string]uint64)
	for _, p := range paths {
		if im.entries[p].mode&cpio.S_IFMT == cpio.S_IFDIR {
			if parent := path.Dir(p); parent != "." {
				subdirs[parent]++
			}
		}
	}
	rw := cpio.Newc.Writer(w)
	for i, p := range paths {
		e := im.entries[p]
		nlink := uint64(1)
		if e.mode&cpio.S_IFMT == cpio.S_IFDIR {
			nlink = 2 + subdirs[p]
		}
		rec := cpio.Record{
			Info: cpio.Info{
				Ino:      uint64(i + 1),
				Mode:     e.mode,
				NLink:    nlink,
				MTime:    mtime,
				FileSize: uint64(len(e.data)),
				Rmajor:   e.rmajor,
				Rminor:   e.rminor,
				Name:     p,
			},
		}
		if len(e.data) > 0 {
			rec.ReaderAt = bytes.NewReader(e.data)
		}
		if err := rw.WriteRecord(rec); err != nil {
			return fmt.Errorf("cpio: %s: %w", p, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("cpio: trailer: %w", err)
	}
	return nil
}
