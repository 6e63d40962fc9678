package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/internal/testimg"
	"github.com/streamroot/streamroot/pkg/boottrace"
	"github.com/streamroot/streamroot/pkg/manifest"
)

func TestTraceCommand(t *testing.T) {
	dir := t.TempDir()
	img := testimg.Random(4*manifest.MinChunk, 3)
	m, err := manifest.Build(bytes.NewReader(img), int64(len(img)), manifest.MinChunk)
	if err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(dir, "root.img.manifest")
	if err := os.WriteFile(mp, m.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	tp := filepath.Join(dir, "blockd.trace")
	if err := os.WriteFile(tp, []byte(boottrace.Header(manifest.MinChunk)+"\n2 0\n0 4\n9 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb}
	if err := runTrace(context.Background(), e, []string{"-manifest", mp, tp}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(mp)
	got, err := manifest.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Prefetch, []int{2, 0}) {
		t.Fatalf("prefetch %v, want [2 0] (chunk 9 is past the image)", got.Prefetch)
	}
	if !strings.Contains(out.String(), manifest.KernelArg(data)) {
		t.Fatalf("the new pin is not printed: %q", out.String())
	}
	// Writing the manifest again from the same image (as sign does) keeps
	// the list.
	f, st, err := openImage(writeImg(t, dir, img))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	again, _, err := writeManifest(e, f, st, mp, manifest.MinChunk, true)
	if err != nil || !slices.Equal(again.Prefetch, []int{2, 0}) {
		t.Fatalf("rewritten manifest prefetch %v, %v", again.Prefetch, err)
	}
	// A trace in the daemon's default 1 MiB chunks (booted without the
	// manifest) is renumbered in the manifest's 64 KiB chunks: byte range
	// 0..1 MiB covers the whole 256 KiB image, chunks 0 to 3 in order.
	if err := os.WriteFile(tp, []byte(boottrace.Header(1<<20)+"\n0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runTrace(context.Background(), e, []string{"-manifest", mp, tp}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(mp)
	if got, err := manifest.Parse(data); err != nil || !slices.Equal(got.Prefetch, []int{0, 1, 2, 3}) {
		t.Fatalf("converted prefetch %v, %v, want [0 1 2 3]", got.Prefetch, err)
	}
	// A format-1 trace has no chunk size and is refused with the reason.
	if err := os.WriteFile(tp, []byte("streamroot-blockd-trace 1\n0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runTrace(context.Background(), e, []string{"-manifest", mp, tp}); err == nil || !strings.Contains(err.Error(), "no chunk size") {
		t.Fatalf("a format-1 trace: %v", err)
	}
	if err := os.WriteFile(tp, []byte("junk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runTrace(context.Background(), e, []string{"-manifest", mp, tp}); err == nil {
		t.Fatal("a malformed trace was accepted")
	}
}

func writeImg(t *testing.T, dir string, img []byte) string {
	t.Helper()
	p := filepath.Join(dir, "root.img")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
