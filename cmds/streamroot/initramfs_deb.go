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
)

// maxUnpacked bounds what one kernel package may unpack to: a kernel
// and its modules are a few hundred MiB; beyond that it is a
// decompression bomb, not a kernel.
const maxUnpacked = 4 << 30

// fromDeb unpacks the kernel (boot/vmlinuz-<kver>) and its module tree
// (lib/modules/<kver> or usr/lib/modules/<kver>) of a Debian kernel
// package into dir, and nothing else of it.
func fromDeb(file, dir string) (kernelSource, error) {
	f, err := os.Open(file)
	if err != nil {
		return kernelSource{}, fmt.Errorf("--kernel-deb: %w", err)
	}
	defer f.Close()
	var total int64
	kernels := map[string]string{} // kver → unpacked path
	trees := map[string]string{}   // kver → unpacked lib/modules/<kver>
	err = deb.Walk(f, func(h *tar.Header, body io.Reader) error {
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		kver, keep := debWanted(name)
		if !keep || h.Typeflag != tar.TypeReg {
			return nil
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("entry %q leaves the package root", h.Name)
		}
		if total += h.Size; total > maxUnpacked {
			return fmt.Errorf("more than %d bytes of kernel and modules: not a kernel package", int64(maxUnpacked))
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := writeUnpacked(p, body); err != nil {
			return err
		}
		if strings.HasPrefix(name, "boot/") {
			kernels[kver] = p
		} else {
			trees[kver] = filepath.Join(dir, filepath.FromSlash(name[:strings.Index(name, kver)+len(kver)]))
		}
		return nil
	})
	if err != nil {
		return kernelSource{}, withHint(fmt.Errorf("%s: %w", file, err), "give a kernel image package such as linux-image-<kver>_<version>_amd64.deb")
	}
	var kvers []string
	for k := range kernels {
		if trees[k] != "" {
			kvers = append(kvers, k)
		}
	}
	sort.Strings(kvers)
	switch len(kvers) {
	case 1:
		return kernelSource{modDir: trees[kvers[0]], kernel: kernels[kvers[0]]}, nil
	case 0:
		return kernelSource{}, withHint(fmt.Errorf("%s: no boot/vmlinuz-<kver> with a lib/modules/<kver> beside it", file),
			"the package must be the kernel image itself (linux-image-<kver>), not a meta package or headers")
	default:
		return kernelSource{}, fmt.Errorf("%s: several kernels (%s): which one is ambiguous", file, strings.Join(kvers, ", "))
	}
}

// debWanted says whether a package path is part of the kernel or its
// module tree, and for which release.
func debWanted(name string) (kver string, ok bool) {
	if k, ok := strings.CutPrefix(name, "boot/vmlinuz-"); ok && !strings.Contains(k, "/") {
		return k, validKVer(k)
	}
	for _, pre := range []string{"lib/modules/", "usr/lib/modules/"} {
		if rest, ok := strings.CutPrefix(name, pre); ok {
			k, _, ok := strings.Cut(rest, "/")
			return k, ok && validKVer(k)
		}
	}
	return "", false
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
