package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/streamroot/streamroot/pkg/atomicfile"
	"github.com/streamroot/streamroot/pkg/imgfmt"
	"github.com/streamroot/streamroot/pkg/isoread"
	"github.com/streamroot/streamroot/pkg/textesc"
)

const extractUsage = `Usage: streamroot extract ISO [-path LiveOS/squashfs.img] [-o DIR]

Copies one file out of an ISO 9660 image without mounting it (pure Go,
no root needed): by default the live image LiveOS/squashfs.img, which is
what root=live:<URL> should point at when the ISO itself is not served.
The file is written atomically to DIR/<its name> and its size and SHA-256
are printed. Names are matched through Rock Ridge or Joliet when the ISO
has them, and case-insensitively otherwise.
`

func runExtract(ctx context.Context, e *env, args []string) error {
	fs := newFlags("extract", extractUsage)
	inner := fs.String("path", imgfmt.DefaultLayout().ISOImage(), "`path` of the file inside the ISO")
	outDir := fs.String("o", ".", "`DIR` to write the file into")
	pos, err := fs.parse(e, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one ISO, got %d arguments", len(pos))
	}
	isoPath := pos[0]
	if st, err := os.Stat(*outDir); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("-o %s: not a directory", *outDir)
	}
	f, err := os.Open(isoPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	im, err := isoread.Open(f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", isoPath, err)
	}
	src, err := im.Lookup(*inner)
	if err != nil {
		return fmt.Errorf("%s: %w", isoPath, err)
	}
	if src.IsDir {
		return fmt.Errorf("%s: %s is a directory", isoPath, src.Path)
	}
	// Named as asked (an ISO without Rock Ridge or Joliet has upper-case
	// names: LiveOS/squashfs.img finds SQUASHFS.IMG, written squashfs.img).
	name := path.Base(path.Clean("/" + *inner))
	dst := filepath.Join(*outDir, name)
	h := sha256.New()
	err = atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		n, err := io.Copy(io.MultiWriter(w, h), &ctxReader{ctx, src.SectionReader()})
		if err != nil {
			return fmt.Errorf("%s: copy %s: %w", isoPath, src.Path, err)
		}
		if n != src.Size {
			return fmt.Errorf("%s: %s: copied %d of %d bytes", isoPath, src.Path, n, src.Size)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %d bytes (%s), sha256 %x\n", textesc.Escape(dst), src.Size, humanBytes(src.Size), h.Sum(nil))
	return nil
}

// ctxReader stops a long copy when the context is cancelled (Ctrl-C).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
