package kmodtree

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// maxModuleSize bounds a decompressed module. The largest in-tree modules
// are tens of MiB (GPU drivers); anything far beyond is a corrupt file or
// a decompression bomb, not a module.
const maxModuleSize = 512 << 20

// ReadModule returns the contents of m, decompressed. Modules are stored
// uncompressed in the initramfs: the initramfs itself is compressed, and
// the runtime then hands plain files to finit_module without needing the
// kernel's in-kernel module decompression (often not configured).
//
// Decompressing keeps a signed module's signature: the kernel signs the
// .ko and appends the signature before the build compresses the file, so
// the decompressed bytes are exactly the signed module.
func (t *Tree) ReadModule(m *Module) ([]byte, error) {
	return readModuleFile(filepath.Join(t.Dir, filepath.FromSlash(m.Path)))
}

// readModuleFile reads the module file p, decompressed by its suffix.
func readModuleFile(p string) ([]byte, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(p, ".ko"):
		return checkELF(p, raw)
	case strings.HasSuffix(p, ".ko.xz"):
		// The xz reader accepts every check type (kernel build systems
		// use CRC32 or CRC64) and verifies it.
		xr, err := xz.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		r = xr
	case strings.HasSuffix(p, ".ko.zst"):
		zr, err := zstd.NewReader(bytes.NewReader(raw), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(p, ".ko.gz"):
		gr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		r = gr
	default:
		return nil, fmt.Errorf("%s: unknown module file suffix", p)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: decompressing: %w", p, err)
	}
	if len(out) > maxModuleSize {
		return nil, fmt.Errorf("%s: decompresses to more than %d bytes", p, maxModuleSize)
	}
	return checkELF(p, out)
}

// checkELF catches a truncated or mis-decompressed module at build time,
// where the error names the file, rather than as EINVAL from finit_module
// on the booting machine.
func checkELF(p string, b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, []byte("\x7fELF")) {
		return nil, fmt.Errorf("%s: not an ELF object", p)
	}
	return b, nil
}
