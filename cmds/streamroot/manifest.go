package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/streamroot/streamroot/pkg/atomicfile"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/textesc"
)

const manifestUsage = `Usage: streamroot manifest IMAGE [-chunk 4MiB] [-o IMAGE.manifest] [-json] [-no-progress]
       streamroot manifest -verify IMAGE [-o IMAGE.manifest] [-json] [-no-progress]

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

Stdout carries only the two kernel arguments (what was written or
verified is said on stderr), so $(streamroot manifest IMAGE) is the pin;
--json prints {"manifest", "size", "chunk", "chunks", "sha256",
"kernel_args"} instead. On a terminal, stderr shows the progress (bytes,
rate, ETA) unless -no-progress.
`

func runManifest(_ context.Context, e *env, args []string) error {
	fs := newFlags("manifest", manifestUsage)
	chunk := sizeFlag(manifest.DefaultChunk)
	fs.Var(&chunk, "chunk", "chunk size: a power of two from 64KiB to 64MiB")
	out := fs.String("o", "", "manifest file to write (default IMAGE.manifest)")
	verify := fs.Bool("verify", false, "check IMAGE against its existing manifest instead of writing one")
	asJSON := fs.Bool("json", false, "print the result as a JSON object")
	noProgress := fs.Bool("no-progress", false, "draw no progress line (there is none anyway when stderr is not a terminal)")
	img, err := fs.parseOne(e, args, "IMAGE", asJSON)
	if err != nil {
		return err
	}
	if !manifest.ValidChunkSize(int64(chunk)) {
		return usagef("-chunk %s: must be a power of two from 64KiB to 64MiB", humanBytes(int64(chunk)))
	}
	if *out == "" {
		*out = img + ".manifest"
	}
	f, st, err := openImage(img)
	if err != nil {
		return err
	}
	defer f.Close()

	if *verify {
		data, err := os.ReadFile(*out)
		if errors.Is(err, os.ErrNotExist) {
			return withHint(err, "write one first with 'streamroot manifest %s', or name it with -o", img)
		} else if err != nil {
			return err
		}
		m, err := manifest.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *out, err)
		}
		if err := verifyImage(e, f, st.Size(), m, *out,
			"the image is corrupt or was replaced: copy it again, or rewrite the manifest (and the kernel arguments) if the new image is the right one", *noProgress); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%s: matches %s (%s of %s)\n", textesc.Escape(img), textesc.Escape(*out), chunks(m.NumChunks()), humanBytes(m.Chunk))
		return printPins(e, *out, data, m)
	}

	m, data, err := writeManifest(e, f, st, *out, int64(chunk), *noProgress)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "wrote %s: %d bytes in %s of %s (manifest format %d)\n",
		textesc.Escape(*out), m.Size, chunks(m.NumChunks()), humanBytes(m.Chunk), m.FormatVersion())
	return printPins(e, *out, data, m)
}

// openImage opens the image file a manifest is about: a regular file, not
// empty (manifest, sign, verify).
func openImage(img string) (*os.File, os.FileInfo, error) {
	f, st, err := openStat(img)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case !st.Mode().IsRegular():
		what := fileKind(st.Mode())
		if what == "" {
			what = "a block device"
		}
		err = withHint(fmt.Errorf("%s: not a regular file (%s)", img, what), "a manifest pins an image file: give the file the server publishes")
	case st.Size() == 0:
		err = withHint(fmt.Errorf("%s: empty file", img), "an interrupted copy? copy the image again")
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// verifyImage checks the image f (size bytes) against m, read from the
// file mname, naming the first chunk that differs; advice is the hint for
// an image that does not match.
func verifyImage(e *env, f *os.File, size int64, m *manifest.Manifest, mname, advice string, noProgress bool) error {
	img := f.Name()
	if m.Size != size {
		return fmt.Errorf("%s: %d bytes, but %s says %d", img, size, mname, m.Size)
	}
	p := startProgress(e, noProgress, "verifying "+textesc.Escape(img), size)
	err := m.Verify(progressReaderAt{f, p})
	p.finish()
	if err != nil {
		var ce *manifest.ChunkError
		if errors.As(err, &ce) {
			return withHint(fmt.Errorf("%s does not match %s: %w", img, mname, err), "%s", advice)
		}
		return fmt.Errorf("%s: %w", img, err)
	}
	return nil
}

// writeManifest hashes the image f (st its Stat) into a manifest of
// chunk-sized chunks and writes it atomically to out; publish writes the
// published ISO's manifest with it too.
func writeManifest(e *env, f *os.File, st os.FileInfo, out string, chunk int64, noProgress bool) (*manifest.Manifest, []byte, error) {
	img := f.Name()
	p := startProgress(e, noProgress, "hashing "+textesc.Escape(img), st.Size())
	m, err := manifest.Build(progressReaderAt{f, p}, st.Size(), chunk)
	p.finish()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", img, err)
	}
	// The image must not have changed while it was read.
	if st2, err := f.Stat(); err == nil && (st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime())) {
		return nil, nil, fmt.Errorf("%s: changed while it was being hashed; run again", img)
	}
	keepPrefetch(m, out)
	data := m.Marshal()
	if err := atomicfile.WriteFile(out, data, 0o644); err != nil {
		return nil, nil, fmt.Errorf("write manifest: %w", err)
	}
	return m, data, nil
}

// keepPrefetch carries over the prefetch list (streamroot trace) of the
// manifest already at path when it describes the same image: signing an
// image again after `streamroot trace` must not drop the list it signs.
func keepPrefetch(m *manifest.Manifest, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	old, err := manifest.Parse(data)
	if err != nil || old.Size != m.Size || old.Chunk != m.Chunk || old.SHA256 != m.SHA256 {
		return
	}
	m.Prefetch = old.Prefetch
}

// manifestResult is what manifest --json prints.
type manifestResult struct {
	Manifest   string   `json:"manifest"`
	Size       int64    `json:"size"`
	Chunk      int64    `json:"chunk"`
	Chunks     int      `json:"chunks"`
	SHA256     string   `json:"sha256"`
	KernelArgs []string `json:"kernel_args"`
}

// printPins prints the result: the kernel arguments that pin the image.
func printPins(e *env, file string, data []byte, m *manifest.Manifest) error {
	pins := []string{manifest.KernelArg(data), fmt.Sprintf("streamroot.sha256=%x", m.SHA256)}
	if e.json {
		return writeJSON(e.stdout, manifestResult{file, m.Size, m.Chunk, m.NumChunks(), fmt.Sprintf("%x", m.SHA256), pins})
	}
	_, err := fmt.Fprintf(e.stdout, "%s\n", strings.Join(pins, "\n"))
	return err
}

func chunks(n int) string {
	if n == 1 {
		return "1 chunk"
	}
	return fmt.Sprintf("%d chunks", n)
}
