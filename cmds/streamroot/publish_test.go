package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/syncbuf"
	"github.com/streamroot/streamroot/internal/testfile"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/squashfs/squashtest"
)

// publishISO is a small live ISO in the FDI's layout (squashfs root, EL's
// /lib -> usr/lib and .ko.xz modules) and the directory it is in.
func publishISO(t *testing.T) (dir, iso string) {
	t.Helper()
	dir = t.TempDir()
	root := usrMergedRoot(t, squashtest.File{Path: "sbin/init", Data: []byte("#!/bin/sh\n")})
	return dir, liveISO(t, dir, root, testKVer)
}

// publishRun runs publish with the test kernel's flags; a short stall
// keeps a check of a dead server brief.
func publishRun(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb syncbuf.Buffer
	all := append(append([]string{"publish"}, args...), baseArgs(t, dir)...)
	code := run(context.Background(), all, &env{stdout: &out, stderr: &errb, stall: 2 * time.Second})
	return code, out.String(), errb.String()
}

// TestPublish: one run lays out both roots, builds the initramfs from the
// ISO with the URL and the pin built in, prints the three entries, and
// checks the URL on a server of the HTTP root.
func TestPublish(t *testing.T) {
	dir, iso := publishISO(t)
	tftp, web := filepath.Join(dir, "tftp"), filepath.Join(dir, "http")
	srv := httptest.NewServer(http.FileServer(http.Dir(web)))
	defer srv.Close()

	code, out, errs := publishRun(t, dir, iso, "--tftp-root", tftp, "--http-root", web, "--server", srv.URL+"/", "--json",
		"--foreman", "--foreman-url", "https://FOREMAN")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res publishResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	if !res.Checked || res.ImageURL != srv.URL+"/fdi.iso" || res.KVer != testKVer {
		t.Errorf("result %+v: want checked, image URL %s/fdi.iso, kernel %s", res, srv.URL, testKVer)
	}
	if !strings.Contains(errs, "checked "+srv.URL+"/fdi.iso") {
		t.Errorf("stderr does not say the URL was checked:\n%s", errs)
	}

	// HTTP root: the ISO byte for byte and its manifest.
	if !bytes.Equal(testfile.Read(t, iso), testfile.Read(t, filepath.Join(web, "fdi.iso"))) {
		t.Error("http-root/fdi.iso is not the ISO")
	}
	mdata := testfile.Read(t, filepath.Join(web, "fdi.iso.manifest"))
	m, err := manifest.Parse(mdata)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(bytes.NewReader(testfile.Read(t, iso))); err != nil {
		t.Errorf("the manifest does not match the ISO: %v", err)
	}
	if res.Pin != manifest.KernelArg(mdata) {
		t.Errorf("pin %q, want the manifest's %q", res.Pin, manifest.KernelArg(mdata))
	}

	// TFTP root, Foreman's paths: the ISO's kernel and our initramfs with
	// the URL and the manifest's digest built in.
	if res.Kernel != filepath.Join(tftp, "boot/fdi-image/vmlinuz0") || res.Initrd != filepath.Join(tftp, "boot/fdi-image/initrd0.img") {
		t.Errorf("kernel %s, initrd %s: not Foreman's boot/fdi-image/ paths", res.Kernel, res.Initrd)
	}
	if !bytes.Equal(testfile.Read(t, res.Kernel), fakeBzImage(testKVer)) {
		t.Error("vmlinuz0 is not the ISO's kernel")
	}
	files := cpioFiles(t, res.Initrd)
	if got := string(files["etc/streamroot/image-url"]); strings.TrimSpace(got) != srv.URL+"/fdi.iso" {
		t.Errorf("built-in image URL %q", got)
	}
	if got := string(files["etc/streamroot/manifest.sha256"]); strings.TrimSpace(got) != fmt.Sprintf("%x", manifest.Digest(mdata)) {
		t.Errorf("built-in manifest digest %q", got)
	}
	if _, ok := files["lib/modules/"+testKVer+"/kernel/net/core/failover.ko"]; !ok {
		t.Error("the initramfs lacks the ISO kernel's modules")
	}

	// The entries: streamroot pxe's, with Foreman's paths.
	want, err := pxeEntry(pxeOptions{format: "pxelinux", server: srv.URL + "/", image: "fdi.iso", kernel: "boot/fdi-image/vmlinuz0",
		initrd: "boot/fdi-image/initrd0.img", foreman: true, foremanURL: "https://FOREMAN", ipxeNIC: "net0"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries["pxelinux"] != want.Entry {
		t.Errorf("pxelinux entry\n%s\nwant\n%s", res.Entries["pxelinux"], want.Entry)
	}
	for _, f := range []string{"grub", "ipxe"} {
		if !strings.Contains(res.Entries[f], "boot/fdi-image/vmlinuz0") || !strings.Contains(res.Entries[f], "proxy.url=https://FOREMAN") {
			t.Errorf("%s entry lacks the kernel path or proxy.url:\n%s", f, res.Entries[f])
		}
	}

	// Again without --json: the entries on stdout, each after its comment;
	// publishing over the published copy keeps it.
	code, out, errs = publishRun(t, dir, filepath.Join(web, "fdi.iso"), "--tftp-root", tftp, "--http-root", web, "--server", srv.URL, "--no-pin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, s := range []string{"# PXELinux (pxelinux.cfg/default)\nLABEL streamroot\n", "KERNEL boot/fdi-image/vmlinuz0\n", "# GRUB2 (grub.cfg)\nmenuentry ", "# iPXE script\n#!ipxe\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, out)
		}
	}
	if _, ok := cpioFiles(t, res.Initrd)["etc/streamroot/manifest.sha256"]; ok {
		t.Error("--no-pin built a manifest digest in")
	}
	if !bytes.Equal(testfile.Read(t, iso), testfile.Read(t, filepath.Join(web, "fdi.iso"))) {
		t.Error("publishing the published copy changed it")
	}
}

// TestPublishCheck: each way a server can fail a node is named, with a
// hint, and the exit code is 1.
func TestPublishCheck(t *testing.T) {
	dir, iso := publishISO(t)
	isoData := testfile.Read(t, iso)
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// serveAs serves the ISO (data in its place) and, under .manifest,
	// whatever manifest is in the HTTP root.
	serveAs := func(web string, data []byte, modTime time.Time) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, ".manifest") {
				http.ServeFile(w, r, filepath.Join(web, "fdi.iso.manifest"))
				return
			}
			http.ServeContent(w, r, "fdi.iso", modTime, bytes.NewReader(data))
		}
	}
	corrupt := bytes.Clone(isoData)
	corrupt[len(corrupt)-1] ^= 0xff
	tests := []struct {
		name    string
		handler func(web string) http.Handler
		errs    []string
	}{
		{"not found", func(string) http.Handler { return http.NotFoundHandler() },
			[]string{"not found on the server", "hint: the files are published"}},
		{"no ranges", func(string) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Last-Modified", mod.Format(http.TimeFormat))
				_, _ = io.Copy(w, bytes.NewReader(isoData))
			})
		}, []string{"ignores Range requests", "hint: a node reads the image by ranges"}},
		{"no validator", func(web string) http.Handler { return serveAs(web, isoData, time.Time{}) },
			[]string{"no strong validator", "hint: a node could not tell"}},
		{"weak etag only", func(web string) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("ETag", `W/"1"`)
				serveAs(web, isoData, time.Time{})(w, r)
			})
		}, []string{"no strong validator", `ETag "W/\"1\""`}},
		{"other size", func(web string) http.Handler { return serveAs(web, isoData[:len(isoData)-2048], mod) },
			[]string{"the server has", "hint: the server serves another file"}},
		{"other bytes", func(web string) http.Handler { return serveAs(web, corrupt, mod) },
			[]string{"chunk 0", "hint: the server sends other bytes"}},
		{"stale manifest", func(web string) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, ".manifest") {
					m, _ := manifest.Build(bytes.NewReader(corrupt), int64(len(corrupt)), manifest.DefaultChunk)
					_, _ = w.Write(m.Marshal())
					return
				}
				serveAs(web, isoData, mod)(w, r)
			})
		}, []string{"fdi.iso.manifest: not the published manifest", "hint: a node pinned to the published one refuses it"}},
		{"no manifest", func(web string) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, ".manifest") {
					http.NotFound(w, r)
					return
				}
				serveAs(web, isoData, mod)(w, r)
			})
		}, []string{"fdi.iso.manifest", "404", "hint: the node fetches the manifest there"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			web := filepath.Join(t.TempDir(), "http")
			srv := httptest.NewServer(tc.handler(web))
			defer srv.Close()
			code, _, errs := publishRun(t, dir, iso, "--tftp-root", filepath.Join(t.TempDir(), "tftp"), "--http-root", web, "--server", srv.URL)
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s", code, errs)
			}
			last := strings.TrimSpace(errs[strings.LastIndex(strings.TrimRight(errs, "\n"), "\n")+1:])
			for _, s := range tc.errs {
				if !strings.Contains(last, s) {
					t.Errorf("the error line lacks %q:\n%s", s, last)
				}
			}
			if _, err := os.Stat(filepath.Join(web, "fdi.iso.manifest")); err != nil {
				t.Errorf("a failed check should leave the files published: %v", err)
			}
		})
	}
}

// TestPublishErrors: bad command lines are usage errors (2) and bad
// inputs failures (1), before anything is written where possible.
func TestPublishErrors(t *testing.T) {
	dir, iso := publishISO(t)
	roots := []string{"--tftp-root", filepath.Join(dir, "t"), "--http-root", filepath.Join(dir, "h")}
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no ISO", append([]string{"--server", "http://s"}, roots...), 2, "want exactly one ISO"},
		{"two ISOs", append([]string{iso, iso, "--server", "http://s"}, roots...), 2, "want exactly one ISO"},
		{"no roots", []string{iso, "--server", "http://s"}, 2, "--tftp-root DIR and --http-root DIR are required"},
		{"no server", append([]string{iso}, roots...), 2, "--server is required"},
		{"ftp server", append([]string{iso, "--server", "ftp://s"}, roots...), 2, "want an http:// or https:// URL"},
		{"name with a slash", append([]string{iso, "--server", "http://s", "--name", "a/fdi.iso"}, roots...), 2, "want a file name inside --http-root"},
		{"name with a space", append([]string{iso, "--server", "http://s", "--name", "fdi 1.iso"}, roots...), 2, "split or interpret"},
		{"foreman without URL", append([]string{iso, "--server", "http://s", "--foreman"}, roots...), 2, "--foreman-url is required"},
		{"missing ISO", append([]string{filepath.Join(dir, "nope.iso"), "--server", "http://s"}, roots...), 1, "no such file"},
		{"a directory", append([]string{dir, "--server", "http://s"}, roots...), 1, "not a regular file"},
		{"not an ISO", append([]string{filepath.Join(dir, "init"), "--server", "http://s", "--no-check"}, roots...), 1, "not an ISO 9660 image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := publishRun(t, dir, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.err) {
				t.Errorf("exit %d, want %d with %q:\n%s", code, tc.code, tc.err, errs)
			}
		})
	}
	// Nothing published is replaced by what is no live ISO.
	for _, p := range []string{filepath.Join(dir, "t", fdiTFTPDir, "initrd0.img"), filepath.Join(dir, "h", "fdi.iso")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a failed publish wrote %s", p)
		}
	}
}
