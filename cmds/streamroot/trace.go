package main

import (
	"context"
	"fmt"
	"os"

	"github.com/streamroot/streamroot/pkg/atomicfile"
	"github.com/streamroot/streamroot/pkg/boottrace"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/textesc"
)

const traceUsage = `Usage: streamroot trace -manifest IMAGE.manifest [-json] TRACE...

Reads the block daemon's boot traces (/run/initramfs/blockd.trace, copied
off one or more booted nodes), renumbers each in the manifest's chunk size
(a trace records its own: the daemon's cache chunk, 1 MiB when it booted
without a manifest), merges them into one order (each chunk at its
earliest first read) and writes it into the manifest as its prefetch list
(manifest format 2): at boot the block daemon fetches those chunks first.
The list is part of the manifest's bytes, so its digest changes: the new
streamroot.manifest= pin is printed, and a signed image must be signed again
(streamroot sign). With no chunk in the traces the manifest is written back
as version 1.
`

func runTrace(_ context.Context, e *env, args []string) error {
	fs := newFlags("trace", traceUsage)
	mpath := fs.String("manifest", "", "the manifest to rewrite with the prefetch list (required)")
	asJSON := fs.Bool("json", false, "print the result as a JSON object")
	logs, err := fs.parseJSON(e, args, asJSON)
	if err != nil {
		return err
	}
	if *mpath == "" || len(logs) == 0 {
		return usagef("want -manifest IMAGE.manifest and at least one TRACE file")
	}
	data, err := os.ReadFile(*mpath)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *mpath, err)
	}
	var traces [][]boottrace.Entry
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			return err
		}
		tr, err := boottrace.Parse(b)
		if err != nil {
			return withHint(fmt.Errorf("%s: %w", l, err), "copy /run/initramfs/blockd.trace from a node booted with this image")
		}
		// The daemon numbers chunks in its cache's chunk size, which
		// need not be the manifest's (1 MiB without a manifest).
		entries, err := boottrace.Convert(tr, m.Chunk, m.Size)
		if err != nil {
			return fmt.Errorf("%s: %w", l, err)
		}
		traces = append(traces, entries)
	}
	m.Prefetch = boottrace.Merge(traces, m.NumChunks())
	out := m.Marshal()
	if err := atomicfile.WriteFile(*mpath, out, 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	fmt.Fprintf(e.stderr, "wrote %s: prefetch list of %d chunks (manifest format %d); sign it again (streamroot sign) if the image is signed\n",
		textesc.Escape(*mpath), len(m.Prefetch), m.FormatVersion())
	return printPins(e, *mpath, out, m)
}
