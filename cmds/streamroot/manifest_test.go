package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/manifest"
)

func TestManifestCommand(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "root.img")
	data := pattern(3*65536 + 1000)
	os.WriteFile(img, data, 0o644)

	code, out, errs := runCmd(t, "manifest", img, "-chunk", "64KiB")
	if code != 0 {
		t.Fatal(errs)
	}
	file, err := os.ReadFile(img + ".manifest")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(file)
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != int64(len(data)) || m.Chunk != 65536 || m.NumChunks() != 4 {
		t.Errorf("manifest %d bytes, chunk %d, %d chunks", m.Size, m.Chunk, m.NumChunks())
	}
	// The pins alone on stdout, the report on stderr: $(streamroot manifest IMAGE) is the pin.
	wantErr := fmt.Sprintf("wrote %s.manifest: %d bytes in 4 chunks of 64 KiB (manifest format 1)\n", img, len(data))
	want := fmt.Sprintf("streamroot.manifest=sha256:%x\nstreamroot.sha256=%x\n", sha256.Sum256(file), sha256.Sum256(data))
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if errs != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", errs, wantErr)
	}

	// -o elsewhere, default chunk size.
	other := filepath.Join(dir, "other.manifest")
	if code, _, errs := runCmd(t, "manifest", "-o", other, img); code != 0 {
		t.Fatal(errs)
	}
	if o, _ := os.ReadFile(other); !strings.Contains(string(o), "\nchunk 4194304\n") {
		t.Errorf("default chunk size not 4 MiB:\n%s", o)
	}

	// -verify: good, then a corrupt chunk named with its offset.
	if code, out, errs := runCmd(t, "manifest", "-verify", img); code != 0 || !strings.Contains(errs, "matches") || out != want {
		t.Fatalf("verify good image: %d %s %s", code, out, errs)
	}
	data[2*65536+5] ^= 1
	os.WriteFile(img, data, 0o644)
	code, _, errs = runCmd(t, "manifest", "-verify", img)
	if code != 1 || !strings.Contains(errs, "chunk 2 (bytes 131072-196607 of the image): SHA-256 mismatch") {
		t.Errorf("verify corrupt image: %d %q", code, errs)
	}
	os.WriteFile(img, data[:100], 0o644)
	if code, _, errs := runCmd(t, "manifest", "-verify", img); code != 1 || !strings.Contains(errs, "100 bytes, but") {
		t.Errorf("verify short image: %d %q", code, errs)
	}
}

func TestManifestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	os.WriteFile(img, []byte("x"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{img, "-chunk", "100000"}, 2, "-chunk 97.7 KiB: must be a power of two from 64KiB to 64MiB"},
		{[]string{img, "-chunk", "128MiB"}, 2, "must be a power of two"},
		{[]string{img, "-chunk", "lots"}, 2, `invalid value "lots" for flag -chunk`},
		{[]string{}, 2, "want exactly one IMAGE"},
		{[]string{empty}, 1, empty + ": empty file"},
		{[]string{dir}, 1, dir + ": not a regular file"},
		{[]string{img, "-o", filepath.Join(dir, "no", "such", "dir", "m")}, 1, "write manifest:"},
		{[]string{"-verify", img}, 1, "img.manifest: no such file"},
	}
	for _, tt := range tests {
		code, _, errs := runCmd(t, append([]string{"manifest"}, tt.args...)...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}
