package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bzimage"
	"github.com/streamroot/streamroot/pkg/ext4"
	"github.com/streamroot/streamroot/pkg/imgfmt"
	"github.com/streamroot/streamroot/pkg/isoread"
	"github.com/streamroot/streamroot/pkg/squashfs"
)

// An ISO read over HTTP: 1 MiB Range requests (a module tree is read
// mostly in order), at most 64 MiB of them kept, and how long a read may
// make no progress.
const (
	isoBlock  = 1 << 20
	isoBudget = 64 << 20
	isoStall  = 60 * time.Second
)

// isoKernelDirs are where live and install ISOs keep the kernel, in the
// order looked at: the Foreman Discovery Image and syslinux ISOs
// (isolinux/vmlinuz0), Fedora/EL (images/pxeboot/vmlinuz), Ubuntu
// (casper/), Debian live (live/vmlinuz-<kver>), SUSE
// (boot/x86_64/loader/linux), then EFI-only layouts.
var isoKernelDirs = []string{"isolinux", "images/pxeboot", "casper", "live", "boot/x86_64/loader", "boot", "EFI/BOOT", "images"}

// isKernelName says whether a file name in those directories may be a
// kernel; its bzImage header decides.
func isKernelName(n string) bool {
	n = strings.ToLower(n)
	return strings.HasPrefix(n, "vmlinuz") || n == "linux" || n == "bzimage"
}

// isoKernel is one kernel found in an ISO.
type isoKernel struct {
	file    *isoread.File
	release string
}

// findISOKernel returns the ISO's kernel: every candidate with a bzImage
// header must be the same release (a multi-kernel ISO is ambiguous).
func findISOKernel(im *isoread.Image) (isoKernel, error) {
	var found []isoKernel
	for _, dir := range isoKernelDirs {
		files, err := im.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, f := range files {
			if f.IsDir || !isKernelName(f.Name) {
				continue
			}
			rel, err := bzimage.Release(f.ReaderAt(), f.Size)
			if err != nil {
				continue
			}
			found = append(found, isoKernel{f, rel})
		}
	}
	if len(found) == 0 {
		return isoKernel{}, withHint(errors.New("no kernel (bzImage) in the ISO"),
			"looked for vmlinuz*, linux and bzImage in %s", strings.Join(isoKernelDirs, ", "))
	}
	for _, k := range found[1:] {
		if k.release != found[0].release {
			return isoKernel{}, fmt.Errorf("the ISO holds kernels of several releases (%s is %s, %s is %s): which one boots is ambiguous",
				found[0].file.Path, found[0].release, k.file.Path, k.release)
		}
	}
	return found[0], nil
}

// rootTree is a read-only filesystem a module tree is copied out of:
// the squashfs of a live ISO, or the ext4 rootfs.img inside it.
type rootTree interface {
	// lookup resolves p as the root would, symlinks followed.
	lookup(p string) (treeNode, error)
	list(n treeNode) ([]treeEntry, error)
	open(n treeNode) (io.ReaderAt, int64, error)
}

type treeNode interface {
	IsDir() bool
	IsRegular() bool
}

type treeEntry struct {
	name string
	node treeNode
}

// imageFS is what squashfs.FS and ext4.FS both offer, with I their
// inode, E their directory entry and F their open file.
type imageFS[I treeNode, E any, F sizedReaderAt] interface {
	Lookup(p string) (I, error)
	ReadDir(in I) ([]E, error)
	Inode(e E) (I, error)
	Open(in I) (F, error)
}

type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// fsTree is the rootTree of an imageFS; name reads an entry's name.
type fsTree[I treeNode, E any, F sizedReaderAt] struct {
	fs   imageFS[I, E, F]
	name func(E) string
}

func (t fsTree[I, E, F]) lookup(p string) (treeNode, error) { return t.fs.Lookup(p) }
func (t fsTree[I, E, F]) list(n treeNode) ([]treeEntry, error) {
	ents, err := t.fs.ReadDir(n.(I))
	if err != nil {
		return nil, err
	}
	out := make([]treeEntry, 0, len(ents))
	for _, e := range ents {
		in, err := t.fs.Inode(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.name(e), err)
		}
		out = append(out, treeEntry{t.name(e), in})
	}
	return out, nil
}
func (t fsTree[I, E, F]) open(n treeNode) (io.ReaderAt, int64, error) {
	f, err := t.fs.Open(n.(I))
	if err != nil {
		return nil, 0, err
	}
	return f, f.Size(), nil
}

func squashTree(s *squashfs.FS) rootTree {
	return fsTree[squashfs.Inode, squashfs.Entry, *squashfs.File]{s, func(e squashfs.Entry) string { return e.Name }}
}

func ext4Tree(f *ext4.FS) rootTree {
	return fsTree[ext4.Inode, ext4.Entry, *ext4.File]{f, func(e ext4.Entry) string { return e.Name }}
}

// fromISO takes the kernel out of an ISO (a file, or an http(s) URL read
// by Range requests) and the module tree of its release out of the
// ISO's root (LiveOS/squashfs.img, and the ext4 LiveOS/rootfs.img inside
// it when there is one), into dir.
func fromISO(ctx context.Context, e *env, file, dir string) (kernelSource, error) {
	var ra io.ReaderAt
	var size int64
	if isHTTP(file) {
		hs, err := openURL(ctx, file, e.httpOptions(isoStall))
		if err != nil {
			return kernelSource{}, err
		}
		file = hs.URL // no password in messages
		ra, size = hs.BlockReader(ctx, isoBlock, isoBudget), hs.Size
	} else {
		f, err := os.Open(file)
		if err != nil {
			return kernelSource{}, fmt.Errorf("--from-iso: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return kernelSource{}, err
		}
		ra, size = f, st.Size()
	}
	im, err := isoread.Open(ra, size)
	if err != nil {
		return kernelSource{}, withHint(fmt.Errorf("%s: %w", file, err), "give the live ISO itself (the Foreman Discovery Image's fdi-*.iso)")
	}
	k, err := findISOKernel(im)
	if err != nil {
		return kernelSource{}, fmt.Errorf("%s: %w", file, err)
	}
	kernel := filepath.Join(dir, "vmlinuz")
	if err := copyOut(k.file.ReaderAt(), k.file.Size, kernel); err != nil {
		return kernelSource{}, fmt.Errorf("%s: %s: %w", file, k.file.Path, err)
	}
	root, where, err := isoRoot(im)
	if err != nil {
		return kernelSource{}, fmt.Errorf("%s: %w", file, err)
	}
	var src treeNode
	var srcPath string
	for _, p := range []string{"lib/modules/" + k.release, "usr/lib/modules/" + k.release} {
		if n, err := root.lookup(p); err == nil && n.IsDir() {
			src, srcPath = n, p
			break
		} else if err != nil && !errors.Is(err, squashfs.ErrNotFound) && !errors.Is(err, ext4.ErrNotFound) {
			return kernelSource{}, fmt.Errorf("%s: %s: %s: %w", file, where, p, err)
		}
	}
	if src == nil {
		return kernelSource{}, withHint(fmt.Errorf("%s: %s has no lib/modules/%s (the release of %s)", file, where, k.release, k.file.Path),
			"the ISO's root must carry its own kernel's modules; else build from the kernel package (--kernel-deb) or a tree (--modules)")
	}
	modDir := filepath.Join(dir, "lib", "modules", k.release)
	var total int64
	if err := copyTree(root, src, srcPath, modDir, &total); err != nil {
		return kernelSource{}, fmt.Errorf("%s: %s: %w", file, where, err)
	}
	return kernelSource{modDir: modDir, kernel: kernel}, nil
}

// isoRoot opens the root filesystem of a live ISO the way the boot
// finds it (imgfmt's layout: the ISO's LiveOS/squashfs.img, then the
// squashfs's LiveOS/rootfs.img when it holds one) and says where it is.
func isoRoot(im *isoread.Image) (rootTree, string, error) {
	layout := imgfmt.DefaultLayout()
	sqf, err := im.Lookup(layout.ISOImage())
	if err != nil {
		return nil, "", withHint(err, "a live ISO keeps its root in %s", layout.ISOImage())
	}
	ra := sqf.ReaderAt()
	head, err := imgfmt.ReadHead(ra, sqf.Size, imgfmt.HeadSize)
	if err != nil {
		return nil, "", err
	}
	facts, err := imgfmt.Probe(head)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", sqf.Path, err)
	}
	if facts.Squashfs == nil {
		return nil, "", fmt.Errorf("%s is %s, not a squashfs: only squashfs live roots are read so far", sqf.Path, facts.Kind)
	}
	s, err := squashfs.New(ra, *facts.Squashfs)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", sqf.Path, err)
	}
	isFile := func(p string) bool {
		in, err := s.Lookup(p)
		return err == nil && in.IsRegular()
	}
	inner := layout.Inner(imgfmt.Squashfs, isFile)
	if inner == "" {
		return squashTree(s), sqf.Path, nil
	}
	in, err := s.Lookup(inner)
	if err != nil {
		return nil, "", err
	}
	file, err := s.Open(in)
	if err != nil {
		return nil, "", fmt.Errorf("%s/%s: %w", sqf.Path, inner, err)
	}
	e, err := ext4.New(file)
	if err != nil {
		return nil, "", fmt.Errorf("%s/%s: %w", sqf.Path, inner, err)
	}
	return ext4Tree(e), sqf.Path + "/" + inner, nil
}

// copyTree copies the directories and regular files under n (at p in
// the root) to dst. Symlinks inside a module tree (build, source: the
// headers) are not part of what a boot loads and are left out.
func copyTree(t rootTree, n treeNode, p, dst string, total *int64) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := t.list(n)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	slices.SortFunc(ents, func(a, b treeEntry) int { return strings.Compare(a.name, b.name) })
	for _, e := range ents {
		if !filepath.IsLocal(e.name) || strings.ContainsRune(e.name, '/') {
			return fmt.Errorf("%s: entry %q", p, e.name)
		}
		sub, to := path.Join(p, e.name), filepath.Join(dst, e.name)
		switch {
		case e.node.IsDir():
			if err := copyTree(t, e.node, sub, to, total); err != nil {
				return err
			}
		case e.node.IsRegular():
			r, size, err := t.open(e.node)
			if err != nil {
				return fmt.Errorf("%s: %w", sub, err)
			}
			if *total += size; *total > maxUnpacked {
				return fmt.Errorf("more than %d bytes of modules: not a module tree", int64(maxUnpacked))
			}
			if err := copyOut(r, size, to); err != nil {
				return fmt.Errorf("%s: %w", sub, err)
			}
		}
	}
	return nil
}

// copyOut writes size bytes of r to a new file p (in the build's
// temporary directory: no fsync, it is read once and removed).
func copyOut(r io.ReaderAt, size int64, p string) error {
	return writeUnpacked(p, io.NewSectionReader(r, 0, size))
}
