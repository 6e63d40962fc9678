package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/atomicfile"
	"github.com/streamroot/streamroot/pkg/httpsrc"
	"github.com/streamroot/streamroot/pkg/isoread"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/textesc"
)

const publishUsage = `Usage: streamroot publish ISO --tftp-root DIR --http-root DIR --server URL
                         [--name fdi.iso] [--foreman --foreman-url URL] [--append "extra args"]
                         [--init PATH] [--ca FILE|none] [--nic LIST] [--add-modules LIST]
                         [--compress zstd[:LEVEL]|lz4|xz|gzip|none]
                         [--no-pin] [--no-check] [--json]

Publishes a live ISO (the Foreman Discovery Image) for streamroot in one
step:

  HTTP root  <http-root>/<name> (a copy of ISO) and <name>.manifest, its
             chunk manifest (what 'streamroot manifest' writes)
  TFTP root  boot/fdi-image/vmlinuz0 (the ISO's own kernel) and
             boot/fdi-image/initrd0.img (the streamroot initramfs built from
             the ISO, as 'streamroot initramfs --from-iso' does, with
             <server>/<name> built in as the image URL and, unless
             --no-pin, the manifest's digest built in as the pin)

These are the paths Foreman's "PXELinux/PXEGrub2 global default" templates
load, so their discovery lines (root=live:/fdi.iso ...) boot the ISO over
HTTP unchanged. Stdout then carries the PXELinux, GRUB2 and iPXE entries
('streamroot pxe' with those paths; --foreman: Foreman's discovery
arguments with proxy.url=<--foreman-url>), each after a # comment line.

Last, the URL is checked as a node will see it: the server answers a
Range request for <server>/<name> with the published size, sends a strong
validator (ETag or Last-Modified), serves the published manifest at
<server>/<name>.manifest, and its first and last chunks match it. What is
wrong is said with a hint and the exit code is 1; the files stay
published. --no-check skips this (the server is not up yet: check later
with 'streamroot inspect <server>/<name>').

--init, --ca, --nic, --add-modules and --compress are the initramfs subcommand's flags.
--json prints {"image", "manifest", "image_url", "kernel", "initrd", "kver",
"pin", "entries", "checked"} instead.
`

// fdiTFTPDir is where Foreman's templates load the discovery kernel and
// initrd from, relative to the TFTP root.
const fdiTFTPDir = "boot/fdi-image"

// publishResult is what publish --json prints.
type publishResult struct {
	Image    string `json:"image"`
	Manifest string `json:"manifest"`
	ImageURL string `json:"image_url"`
	Kernel   string `json:"kernel"`
	Initrd   string `json:"initrd"`
	KVer     string `json:"kver"`
	// Pin is the streamroot.manifest= argument built into the initramfs,
	// or "" with --no-pin.
	Pin     string            `json:"pin,omitempty"`
	Entries map[string]string `json:"entries"`
	Checked bool              `json:"checked"`
}

// publishFormats are the entries publish prints, in order, with the
// comment naming each.
var publishFormats = []struct{ format, title string }{
	{"pxelinux", "PXELinux (pxelinux.cfg/default)"},
	{"grub", "GRUB2 (grub.cfg)"},
	{"ipxe", "iPXE script"},
}

func runPublish(ctx context.Context, e *env, args []string) error {
	fs := newFlags("publish", publishUsage)
	var (
		tftpRoot = fs.String("tftp-root", "", "TFTP server's root `DIR` (boot/fdi-image/ goes there), required")
		httpRoot = fs.String("http-root", "", "HTTP server's document root `DIR` (the ISO and its manifest go there), required")
		server   = fs.String("server", "", "`URL` under which the HTTP server serves --http-root, as a node reaches it, required")
		name     = fs.String("name", "fdi.iso", "file `name` of the ISO under --http-root")
		foreman  = fs.Bool("foreman", false, "print Foreman Discovery Image entries (needs --foreman-url)")
		fmURL    = fs.String("foreman-url", "", "Foreman or Smart Proxy `URL` for proxy.url= (with --foreman)")
		extra    = fs.String("append", "", "extra kernel `arguments` for the printed entries")
		initPath = fs.String("init", "", "static /init binary (default: "+initName+" next to this binary)")
		ca       = fs.String("ca", "", "CA bundle for HTTPS, or \"none\" (default: the host's)")
		nic      = fs.String("nic", "", "comma-separated NIC driver modules (default: the initramfs subcommand's)")
		addMods  = fs.String("add-modules", "", "comma-separated modules always included (default: the initramfs subcommand's)")
		compress = fs.String("compress", "", "initramfs compression: zstd[:fastest|default|better|best], lz4, xz, gzip or none (default zstd, = zstd:best; streamroot initramfs -h)")
		noPin    = fs.Bool("no-pin", false, "do not build the manifest's digest into the initramfs")
		noCheck  = fs.Bool("no-check", false, "do not check the URL as a node sees it")
		asJSON   = fs.Bool("json", false, "print the result as a JSON object")
	)
	iso, err := fs.parseOne(e, args, "ISO", asJSON)
	if err != nil {
		return err
	}
	if *tftpRoot == "" || *httpRoot == "" {
		return usagef("--tftp-root DIR and --http-root DIR are required")
	}
	if !filepath.IsLocal(*name) || strings.ContainsRune(*name, '/') {
		return usagef("--name %q: want a file name inside --http-root", *name)
	}
	// The entries are made first: they check --server, --name,
	// --foreman-url and --append before anything is written.
	o := pxeOptions{server: *server, image: *name, kernel: fdiTFTPDir + "/vmlinuz0", initrd: fdiTFTPDir + "/initrd0.img",
		extra: *extra, foreman: *foreman, foremanURL: *fmURL, ipxeNIC: "net0"}
	entries := map[string]string{}
	for _, f := range publishFormats {
		o.format = f.format
		ent, err := pxeEntry(o)
		if err != nil {
			return err
		}
		entries[f.format] = ent.Entry
	}
	// As pxeEntry wrote it on the kernel lines, password and all.
	imageURL := strings.TrimRight(*server, "/") + "/" + *name

	res := publishResult{Image: filepath.Join(*httpRoot, *name), ImageURL: redactRaw(imageURL), Entries: entries}
	res.Manifest = res.Image + ".manifest"
	if err := publishImage(iso, res.Image); err != nil {
		return err
	}
	m, mdata, err := publishManifest(e, res.Image, res.Manifest)
	if err != nil {
		return err
	}

	bargs := []string{"--from-iso", res.Image, "-o", filepath.Join(*tftpRoot, fdiTFTPDir),
		"--kernel-name", "vmlinuz0", "--initramfs-name", "initrd0.img", "--image-url", imageURL, "--json"}
	if !*noPin {
		res.Pin = manifest.KernelArg(mdata)
		bargs = append(bargs, "--manifest-digest", fmt.Sprintf("%x", manifest.Digest(mdata)))
	}
	bargs = appendSet(bargs, flagValue{"--init", *initPath}, flagValue{"--ca", *ca}, flagValue{"--nic", *nic},
		flagValue{"--add-modules", *addMods}, flagValue{"--compress", *compress})
	var out bytes.Buffer
	if err := runInitramfs(ctx, &env{stdout: &out, stderr: e.stderr, stall: e.stall, tty: e.tty}, bargs); err != nil {
		return err
	}
	var ir initramfsResult
	if err := json.Unmarshal(out.Bytes(), &ir); err != nil {
		return fmt.Errorf("initramfs result %q: %w", out.String(), err)
	}
	res.Kernel, res.Initrd, res.KVer = ir.Kernel, ir.Initramfs, ir.KVer
	fmt.Fprintf(e.stderr, "published %s (%s) and %s; %s and %s (kernel %s)\n", textesc.Escape(res.Image), humanBytes(m.Size),
		textesc.Escape(path.Base(res.Manifest)), textesc.Escape(res.Kernel), textesc.Escape(res.Initrd), textesc.Escape(res.KVer))

	if !*asJSON {
		for i, f := range publishFormats {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			fmt.Fprintf(e.stdout, "# %s\n%s", f.title, entries[f.format])
		}
	}
	var checkErr error
	if *noCheck {
		fmt.Fprintf(e.stderr, "not checked (--no-check): once the server is up, 'streamroot inspect %s' shows what a node sees\n", res.ImageURL)
	} else if checkErr = checkPublished(ctx, e, imageURL, mdata, m); checkErr == nil {
		res.Checked = true
		fmt.Fprintf(e.stderr, "checked %s as a node sees it: Range requests, a strong validator, the manifest and its chunks match\n", res.ImageURL)
	}
	if *asJSON && checkErr == nil {
		return writeJSON(e.stdout, res)
	}
	return checkErr
}

// publishImage copies iso to dst atomically, unless they are one file
// already (a re-run on the published copy). A file that is no live ISO
// (no kernel, or no root a boot would find) is refused first, so it never
// replaces the published one; the module tree is looked for later, by the
// initramfs build.
func publishImage(iso, dst string) error {
	src, st, err := openStat(iso)
	if err != nil {
		return err
	}
	defer src.Close()
	if !st.Mode().IsRegular() {
		return withHint(fmt.Errorf("%s: not a regular file", iso), "give the ISO file (the Foreman Discovery Image's fdi-*.iso)")
	}
	im, err := isoread.Open(src, st.Size())
	if err != nil {
		return withHint(fmt.Errorf("%s: %w", iso, err), "give the live ISO itself (the Foreman Discovery Image's fdi-*.iso)")
	}
	if _, err := findISOKernel(im); err != nil {
		return fmt.Errorf("%s: %w", iso, err)
	}
	if _, _, err := isoRoot(im); err != nil {
		return fmt.Errorf("%s: %w", iso, err)
	}
	if dst, err := os.Stat(dst); err == nil && os.SameFile(st, dst) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, io.NewSectionReader(src, 0, st.Size()))
		return err
	})
}

// publishManifest writes the published image's manifest (the default
// chunk size), as 'streamroot manifest' does.
func publishManifest(e *env, img, out string) (*manifest.Manifest, []byte, error) {
	f, st, err := openStat(img)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return writeManifest(e, f, st, out, manifest.DefaultChunk, false)
}

// publishStall is how long the self-check waits on a server making no
// progress.
const publishStall = 30 * time.Second

// checkPublished reads the image URL as a node does (httpsrc pins it by a
// Range request) and checks what a boot relies on: Range support, the
// published size, a strong validator, the published manifest at
// <URL>.manifest, and the first and last chunks' bytes against it.
func checkPublished(ctx context.Context, e *env, imageURL string, mdata []byte, m *manifest.Manifest) error {
	shown := redactRaw(imageURL)
	ho := e.httpOptions(publishStall)
	const served = "the files are published; make the HTTP server serve --http-root at --server, then run publish again or 'streamroot inspect URL'"
	hs, err := httpsrc.Open(ctx, imageURL, ho)
	var se *httpsrc.StatusError
	switch {
	case errors.Is(err, httpsrc.ErrNoRanges):
		return withHint(fmt.Errorf("check %s: the server ignores Range requests (answered 200 with the whole file)", shown),
			"a node reads the image by ranges: serve it with nginx, Apache or 'streamroot serve DIR', and no filter that drops Range (gzip, a CGI)")
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		return withHint(fmt.Errorf("check %s: not found on the server", shown), "%s", served)
	case err != nil:
		return withHint(fmt.Errorf("check %s: %w", shown, err), "%s", served)
	}
	if hs.Size != m.Size {
		return withHint(fmt.Errorf("check %s: the server has %d bytes, the published image %d", shown, hs.Size, m.Size),
			"the server serves another file under that name: is --http-root its document root for --server?")
	}
	if !hs.HasValidator() || (strings.HasPrefix(hs.ETag, "W/") && hs.LastModified == "") {
		return withHint(fmt.Errorf("check %s: no strong validator (ETag %q, Last-Modified %q)", shown, hs.ETag, hs.LastModified),
			"a node could not tell the image from one replaced mid-boot: serve a strong ETag or Last-Modified (nginx and Apache do for static files; a proxy may strip them)")
	}
	got, err := httpsrc.GetSmall(ctx, imageURL+".manifest", int64(len(mdata))+1, ho)
	if err != nil {
		return withHint(fmt.Errorf("check %s.manifest: %w", shown, err), "the node fetches the manifest there; %s", served)
	}
	if !bytes.Equal(got, mdata) {
		return withHint(fmt.Errorf("check %s.manifest: not the published manifest (%d bytes, published %d)", shown, len(got), len(mdata)),
			"a node pinned to the published one refuses it: the server serves another copy (a cache?); serve --http-root itself")
	}
	for _, i := range []int{0, m.NumChunks() - 1} {
		off, n := m.ChunkRange(i)
		buf := make([]byte, n)
		if err := hs.ReadRange(ctx, buf, off); err != nil {
			return withHint(fmt.Errorf("check %s: chunk %d: %w", shown, i, err), "%s", served)
		}
		if err := m.VerifyChunk(i, buf); err != nil {
			return withHint(fmt.Errorf("check %s: %w", shown, err),
				"the server sends other bytes than the published image (a cache holding an old copy?): serve --http-root itself")
		}
	}
	return nil
}
