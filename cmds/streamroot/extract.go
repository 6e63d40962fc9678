package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/streamroot/streamroot/pkg/atomicfile"
	"github.com/streamroot/streamroot/pkg/imgfmt"
	"github.com/streamroot/streamroot/pkg/isoread"
	"github.com/streamroot/streamroot/pkg/textesc"
)

const extractUsage = `Usage: streamroot extract ISO [-path LiveOS/squashfs.img] [-o DIR|-] [-f|--force] [-no-progress]

Copies one file out of an ISO 9660 image without mounting it (pure Go,
no root needed): by default the live image LiveOS/squashfs.img, which is
what root=live:<URL> should point at when the ISO itself is not served.
The file is written atomically to DIR/<its name> and its size and SHA-256
are printed; an existing file is replaced only with -f. With -o - the
file goes to stdout and the size and SHA-256 to stderr. On a terminal,
stderr shows the progress (bytes, rate, ETA) unless -no-progress. Names are matched
through Rock Ridge or Joliet when the ISO has them, and case-insensitively
otherwise.

ISO is a local file or block device: to take the live image from an ISO
on an HTTP server, download it first (curl -O URL), or boot
root=live:<ISO URL> directly, which reads only what it needs.
`

func runExtract(ctx context.Context, e *env, args []string) error {
	fs := newFlags("extract", extractUsage)
	inner := fs.String("path", imgfmt.DefaultLayout().ISOImage(), "`path` of the file inside the ISO")
	outDir := fs.String("o", ".", "`DIR` to write the file into, or - for stdout")
	force := fs.Bool("f", false, "replace the file in DIR if it exists")
	fs.BoolVar(force, "force", false, "the same as -f")
	noProgress := fs.Bool("no-progress", false, "draw no progress line (there is none anyway when stderr is not a terminal)")
	isoPath, err := fs.parseOne(e, args, "ISO", nil)
	if err != nil {
		return err
	}
	if strings.Contains(isoPath, "://") {
		return withHint(usagef("%s: extract reads a local ISO file, not a URL", redactRaw(isoPath)),
			"download it first (curl -O URL), or boot root=live:<the ISO's URL> directly: the boot reads only what it needs")
	}
	toStdout := *outDir == "-"
	if !toStdout {
		if st, err := os.Stat(*outDir); err != nil {
			return err
		} else if !st.IsDir() {
			return withHint(fmt.Errorf("-o %s: not a directory", *outDir), "-o names the directory to write into (the file keeps its name), or - for stdout")
		}
	}
	f, st, err := openStat(isoPath)
	if err != nil {
		return err
	}
	defer f.Close()
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
	h := sha256.New()
	fill := func(w io.Writer) error {
		p := startProgress(e, *noProgress, "extracting "+textesc.Escape(src.Path), src.Size)
		n, err := io.Copy(progressWriter{io.MultiWriter(w, h), p}, &ctxReader{ctx, src.SectionReader()})
		p.finish()
		if err != nil {
			return fmt.Errorf("%s: copy %s: %w", isoPath, src.Path, err)
		}
		if n != src.Size {
			return fmt.Errorf("%s: %s: copied %d of %d bytes", isoPath, src.Path, n, src.Size)
		}
		return nil
	}
	if toStdout {
		if err := fill(e.stdout); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%s: %d bytes (%s), sha256 %x\n", textesc.Escape(src.Path), src.Size, humanBytes(src.Size), h.Sum(nil))
		return nil
	}
	dst := filepath.Join(*outDir, name)
	if _, err := os.Lstat(dst); err == nil && !*force {
		return withHint(fmt.Errorf("%s exists", dst), "-f replaces it (atomically: readers see the old file or the new one)")
	}
	if err := atomicfile.Write(dst, 0o644, fill); err != nil {
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
