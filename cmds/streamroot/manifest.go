package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/streamroot/streamroot/pkg/atomicfile"
	"github.com/streamroot/streamroot/pkg/manifest"
)

const manifestUsage = `Usage: streamroot manifest IMAGE [-chunk 4MiB] [-o IMAGE.manifest]
       streamroot manifest -verify IMAGE [-o IMAGE.manifest]

Writes the chunk manifest of IMAGE (its size, the chunk size and the SHA-256
of the image and of every chunk; format in docs/cli.md) atomically to
IMAGE.manifest, then prints the kernel arguments that pin the image:

  streamroot.manifest=sha256:<SHA-256 of the manifest file>
  streamroot.sha256=<SHA-256 of the whole image>

Put the manifest next to the image on the HTTP server (the initramfs fetches
<image URL>.manifest) and the arguments on the kernel line: every chunk is
then verified before the kernel sees it.

With -verify, reads the existing manifest and checks IMAGE against it,
naming the first chunk that differs and its byte offset.
`

func runManifest(_ context.Context, e *env, args []string) error {
	fs := newFlags("manifest", manifestUsage)
	chunk := sizeFlag(manifest.DefaultChunk)
	fs.Var(&chunk, "chunk", "chunk size: a power of two from 64KiB to 64MiB")
	out := fs.String("o", "", "manifest file to write (default IMAGE.manifest)")
	verify := fs.Bool("verify", false, "check IMAGE against its existing manifest instead of writing one")
	pos, err := fs.parse(e, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one IMAGE, got %d arguments", len(pos))
	}
	img := pos[0]
	if !manifest.ValidChunkSize(int64(chunk)) {
		return usagef("-chunk %s: must be a power of two from 64KiB to 64MiB", humanBytes(int64(chunk)))
	}
	if *out == "" {
		*out = img + ".manifest"
	}
	f, err := os.Open(img)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", img)
	}
	if st.Size() == 0 {
		return fmt.Errorf("%s: empty file", img)
	}

	if *verify {
		data, err := os.ReadFile(*out)
		if err != nil {
			return err
		}
		m, err := manifest.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *out, err)
		}
		if m.Size != st.Size() {
			return fmt.Errorf("%s: %d bytes, but %s says %d", img, st.Size(), *out, m.Size)
		}
		if err := m.Verify(f); err != nil {
			var ce *manifest.ChunkError
			if errors.As(err, &ce) {
				return fmt.Errorf("%s does not match %s: %w", img, *out, err)
			}
			return fmt.Errorf("%s: %w", img, err)
		}
		fmt.Fprintf(e.stdout, "%s: matches %s (%s of %s)\n", img, *out, chunks(m.NumChunks()), humanBytes(m.Chunk))
		printPins(e.stdout, data, m)
		return nil
	}

	m, err := manifest.Build(f, st.Size(), int64(chunk))
	if err != nil {
		return fmt.Errorf("%s: %w", img, err)
	}
	// The image must not have changed while it was read.
	if st2, err := f.Stat(); err == nil && (st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime())) {
		return fmt.Errorf("%s: changed while it was being hashed; run again", img)
	}
	data := m.Marshal()
	if err := atomicfile.Write(*out, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	}); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	fmt.Fprintf(e.stdout, "wrote %s: %d bytes in %s of %s (manifest format %d)\n",
		*out, m.Size, chunks(m.NumChunks()), humanBytes(m.Chunk), manifest.Version)
	printPins(e.stdout, data, m)
	return nil
}

func printPins(w io.Writer, data []byte, m *manifest.Manifest) {
	fmt.Fprintf(w, "%s\nstreamroot.sha256=%x\n", manifest.KernelArg(data), m.SHA256)
}

func chunks(n int) string {
	if n == 1 {
		return "1 chunk"
	}
	return fmt.Sprintf("%d chunks", n)
}
