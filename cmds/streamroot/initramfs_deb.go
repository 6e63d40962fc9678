package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/streamroot/streamroot/pkg/deb"
	"github.com/streamroot/streamroot/pkg/rpm"
)

// maxUnpacked bounds what one kernel package may unpack to: a kernel
// and its modules are a few hundred MiB; beyond that it is a
// decompression bomb, not a kernel.
const maxUnpacked = 4 << 30

// fromDeb unpacks the kernel (boot/vmlinuz-<kver>) and its module tree
// (lib/modules/<kver> or usr/lib/modules/<kver>) of a Debian kernel
// package into dir, and nothing else of it.
func fromDeb(file, dir string) (kernelSource, error) {
	u := newUnpacker(dir)
	f, err := os.Open(file)
	if err != nil {
		return kernelSource{}, fmt.Errorf("--kernel-deb: %w", err)
	}
	defer f.Close()
	err = deb.Walk(f, func(h *tar.Header, body io.Reader) error {
		return u.add(h.Name, h.Typeflag == tar.TypeReg, h.Size, body)
	})
	if err != nil {
		return kernelSource{}, withHint(fmt.Errorf("%s: %w", file, err), "give a kernel image package such as linux-image-<kver>_<version>_amd64.deb")
	}
	return u.result(file, "the package must be the kernel image itself (linux-image-<kver>), not a meta package or headers")
}

// fromRPM unpacks the kernel and module tree of EL kernel packages
// (kernel-core carries the kernel as lib/modules/<kver>/vmlinuz and the
// common modules, kernel-modules the rest) into dir.
func fromRPM(files []string, dir string) (kernelSource, error) {
	u := newUnpacker(dir)
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return kernelSource{}, fmt.Errorf("--kernel-rpm: %w", err)
		}
		err = rpm.Walk(f, func(e rpm.File, body io.Reader) error {
			return u.add(e.Name, e.IsRegular(), e.Size, body)
		})
		f.Close()
		if err != nil {
			return kernelSource{}, withHint(fmt.Errorf("%s: %w", file, err), "give the kernel's own packages, such as kernel-core-<version>.rpm and kernel-modules-<version>.rpm")
		}
	}
	return u.result(strings.Join(files, ", "), "kernel-core carries the kernel: give it with the modules packages")
}

// unpacker collects a kernel and module tree from package entries.
type unpacker struct {
	dir     string
	total   int64
	kernels map[string]string // kver → unpacked kernel
	trees   map[string]string // kver → unpacked lib/modules/<kver>
}

func newUnpacker(dir string) *unpacker {
	return &unpacker{dir: dir, kernels: map[string]string{}, trees: map[string]string{}}
}

// add unpacks one package entry if it is part of a kernel or its
// module tree.
func (u *unpacker) add(archName string, regular bool, size int64, body io.Reader) error {
	name := path.Clean(strings.TrimPrefix(archName, "./"))
	kver, treeRoot, keep := debWanted(name)
	if !keep || !regular {
		return nil
	}
	if !filepath.IsLocal(name) {
		return fmt.Errorf("entry %q leaves the package root", archName)
	}
	if u.total += size; u.total > maxUnpacked {
		return fmt.Errorf("more than %d bytes of kernel and modules: not a kernel package", int64(maxUnpacked))
	}
	if treeRoot == "" || name == treeRoot+"/vmlinuz" {
		// EL keeps the kernel in the module tree (kernel-core's
		// lib/modules/<kver>/vmlinuz); it is the kernel, not a module.
		p := filepath.Join(u.dir, "kernel-"+kver)
		if err := writeUnpacked(p, body); err != nil {
			return err
		}
		u.kernels[kver] = p
		return nil
	}
	if err := writeUnpacked(filepath.Join(u.dir, filepath.FromSlash(name)), body); err != nil {
		return err
	}
	u.trees[kver] = filepath.Join(u.dir, filepath.FromSlash(treeRoot))
	return nil
}

// result is the one kernel with a module tree the packages held.
func (u *unpacker) result(what, hint string) (kernelSource, error) {
	var kvers []string
	for k := range u.kernels {
		if u.trees[k] != "" {
			kvers = append(kvers, k)
		}
	}
	sort.Strings(kvers)
	switch len(kvers) {
	case 1:
		return kernelSource{modDir: u.trees[kvers[0]], kernel: u.kernels[kvers[0]]}, nil
	case 0:
		return kernelSource{}, withHint(fmt.Errorf("%s: no kernel (boot/vmlinuz-<kver> or lib/modules/<kver>/vmlinuz) with a lib/modules/<kver> beside it", what), "%s", hint)
	default:
		return kernelSource{}, fmt.Errorf("%s: several kernels (%s): which one is ambiguous", what, strings.Join(kvers, ", "))
	}
}

// debWanted says whether a package path is part of the kernel or its
// module tree, for which release, and the tree's root path.
func debWanted(name string) (kver, treeRoot string, ok bool) {
	if k, ok := strings.CutPrefix(name, "boot/vmlinuz-"); ok && !strings.Contains(k, "/") {
		return k, "", validKVer(k)
	}
	for _, pre := range []string{"lib/modules/", "usr/lib/modules/"} {
		if rest, ok := strings.CutPrefix(name, pre); ok {
			k, _, ok := strings.Cut(rest, "/")
			return k, pre + k, ok && validKVer(k)
		}
	}
	return "", "", false
}

// validKVer rejects what cannot be a kernel release directory name.
func validKVer(k string) bool {
	return k != "" && k != "." && k != ".." && !strings.ContainsAny(k, "/\x00")
}

// writeUnpacked writes one unpacked file, its directories created.
func writeUnpacked(p string, body io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s: twice in the package", p)
	}
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
