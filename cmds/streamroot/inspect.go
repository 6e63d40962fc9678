package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/streamroot/streamroot/pkg/httpsrc"
	"github.com/streamroot/streamroot/pkg/imgfmt"
	"github.com/streamroot/streamroot/pkg/isoread"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/squashfs"
	"github.com/streamroot/streamroot/pkg/textesc"
)

const inspectUsage = `Usage: streamroot inspect [-json] [-live-dir LiveOS] [-squashimg squashfs.img] [-path P]
                         [-cacert FILE] [-insecure] [-manifest FILE] IMAGE|ISO|URL...

Tells what an image is and how streamroot would boot it, layer by layer,
by the rules a boot follows (pkg/imgfmt):

  iso9660   volume label, where LiveOS/squashfs.img is (byte offset, size)
  squashfs  version, compression, block size, bytes used, inodes, and
            whether it holds LiveOS/rootfs.img or LiveOS/ext3fs.img
            (dracut's live layout) or is a plain root filesystem, and then
            the init a boot would start
  erofs     block size, size, inodes, volume name, compression
  ext4      block count and size, label, UUID (also for a rootfs.img
            inside a squashfs)

A URL (http:// or https://) is read with Range requests: the first 64 KiB,
then only the directory and metadata blocks needed, never the whole file
(at most 32 MiB in all); the report says how much was fetched.
An https:// server is checked against the system's CAs, or -cacert's;
-insecure skips the check.

squashfs contents are read in pure Go for gzip, xz, lzma and zstd images;
for lzo and lz4 (or xz with a BCJ filter) inspect runs 'unsquashfs -lls'
when it is installed and the image is a local file, and says so.

-live-dir and -squashimg are the kernel line's rd.live.dir= and
rd.live.squashimg=: where the boot looks for the images (LiveOS and
squashfs.img by default; -live-dir . is the top directory). -path names
the live image inside an ISO outright.

The image's manifest (IMAGE.manifest beside a local image, or -manifest
FILE; <URL>.manifest for a URL, where a pinned boot fetches it) is read
and checked against the image's size, and its kernel argument shown;
'streamroot manifest -verify' checks the content.

Several targets are inspected in turn (a report each, -json an array);
the exit code is then 1 if any of them failed.

The exit code is 1 when the image cannot boot (not an image, truncated, an
ISO without the live image).
`

// report is what inspect prints; -json prints it as is.
type report struct {
	Source  string `json:"source"`
	Size    int64  `json:"size"`
	Layout  string `json:"layout"`
	Boot    string `json:"boot"`
	Problem string `json:"problem,omitempty"`
	// Error and Hint are set when the image cannot boot, as in every
	// failed --json result.
	Error  string     `json:"error,omitempty"`
	Hint   string     `json:"hint,omitempty"`
	Layers []layer    `json:"layers"`
	Notes  []string   `json:"notes,omitempty"`
	HTTP   *httpStats `json:"http,omitempty"`
	// Manifest is the check of the image's chunk manifest, when there is
	// one (IMAGE.manifest beside a local image, or -manifest).
	Manifest *manifestCheck `json:"manifest,omitempty"`
	bootable bool
	hint     string        // advice for the problem, if any
	layout   imgfmt.Layout // the live layout the walk follows
}

type httpStats struct {
	Requests int   `json:"requests"`
	Bytes    int64 `json:"bytes"`
}

type layer struct {
	Kind string `json:"kind"`
	// Path is the layer's path inside the previous layer ("" for the source).
	Path string `json:"path,omitempty"`
	// Offset is where the layer starts in the source file, when it is stored
	// there as is (absent inside a compressed squashfs).
	Offset   *int64            `json:"offset,omitempty"`
	Size     int64             `json:"size"`
	ISO      *isoInfo          `json:"iso,omitempty"`
	Squashfs *squashInfo       `json:"squashfs,omitempty"`
	EROFS    *imgfmt.EROFSInfo `json:"erofs,omitempty"`
	Ext4     *imgfmt.Ext4Info  `json:"ext4,omitempty"`
}

type isoInfo struct {
	VolumeID  string   `json:"volume_id"`
	Names     string   `json:"names"` // rock-ridge, joliet or iso9660
	Image     string   `json:"image,omitempty"`
	BootFiles []string `json:"boot_files,omitempty"`
}

type squashInfo struct {
	Version       string   `json:"version"`
	Compression   string   `json:"compression"`
	CompressionID uint16   `json:"compression_id"`
	BlockSize     uint32   `json:"block_size"`
	BytesUsed     uint64   `json:"bytes_used"`
	Inodes        uint32   `json:"inodes"`
	Fragments     uint32   `json:"fragments"`
	Created       string   `json:"created"`
	Contents      string   `json:"contents"`         // "read", "unsquashfs" or "unknown"
	LiveImage     string   `json:"live_image"`       // LiveOS/rootfs.img, LiveOS/ext3fs.img or ""
	Root          []string `json:"root,omitempty"`   // top-level names (a plain root)
	Init          string   `json:"init,omitempty"`   // the init the root would run
	Reason        string   `json:"reason,omitempty"` // why contents are unknown
}

// inspector walks the layers of one source.
type inspector struct {
	ctx     context.Context
	rep     *report
	local   string // the source's path when it is a local file
	isoPath string // the live image inside an ISO
}

func runInspect(ctx context.Context, e *env, args []string) error {
	fs := newFlags("inspect", inspectUsage)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	liveDir := fs.String("live-dir", imgfmt.DefaultLiveDir, "`dir` of the live images, as rd.live.dir= (. is the top)")
	squashImg := fs.String("squashimg", imgfmt.DefaultSquashImg, "`name` of the live image inside an ISO, as rd.live.squashimg=")
	isoPath := fs.String("path", "", "`path` of the live image inside an ISO (default: <live-dir>/<squashimg>)")
	cacert := fs.String("cacert", "", "PEM `file` of CA certificates to trust for an https:// URL (instead of the system's)")
	insecure := fs.Bool("insecure", false, "do not verify an https:// server's certificate (as rd.noverifyssl)")
	manifestFile := fs.String("manifest", "", "chunk manifest `file` to check the image against (default: IMAGE.manifest beside a local image, if there is one)")
	pos, err := fs.parseJSON(e, args, asJSON)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want an IMAGE, ISO or URL")
	}
	if len(pos) > 1 && *manifestFile != "" {
		return usagef("-manifest names the manifest of one image; give one target with it")
	}
	if (*cacert != "" || *insecure) && !slices.ContainsFunc(pos, isHTTP) {
		return usagef("-cacert and -insecure apply to an https:// URL only")
	}
	o := inspectOptions{
		layout:   imgfmt.Layout{LiveDir: *liveDir, SquashImg: *squashImg},
		isoPath:  *isoPath,
		cacert:   *cacert,
		insecure: *insecure,
		manifest: *manifestFile,
	}
	if o.isoPath == "" {
		o.isoPath = o.layout.ISOImage()
	}
	if len(pos) == 1 {
		rep, err := inspectOne(ctx, e, o, pos[0])
		return inspectPrint(e, rep, err)
	}
	// Several targets: every report, the failures each on its own line,
	// and exit 1 if any failed. -json prints one array.
	e.json = false
	var reps []*report
	failed := 0
	for i, src := range pos {
		rep, err := inspectOne(ctx, e, o, src)
		if err != nil {
			failed++
			printErr(e, "inspect", err)
			if rep == nil {
				rep = &report{Source: redactRaw(src), Error: err.Error(), Hint: hintOf(err)}
			}
		}
		switch {
		case *asJSON:
			reps = append(reps, rep)
		case rep.Layers != nil:
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			printReport(e.stdout, rep)
		}
	}
	if *asJSON {
		if err := writeJSON(e.stdout, reps); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d targets cannot boot or could not be read", failed, len(pos))
	}
	return nil
}

// inspectOptions are inspect's flags, the same for every target.
type inspectOptions struct {
	layout           imgfmt.Layout
	isoPath          string
	cacert, manifest string
	insecure         bool
}

func isHTTP(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// inspectPrint prints one target's report (as JSON with -json) and
// returns its error.
func inspectPrint(e *env, rep *report, err error) error {
	if rep == nil {
		return err
	}
	if e.json {
		e.json = false // the report is the JSON result, failure or not
		if werr := writeJSON(e.stdout, rep); werr != nil {
			return werr
		}
	} else {
		printReport(e.stdout, rep)
	}
	return err
}

// inspectOne inspects one target. The report is nil when there is none
// to show (the file cannot be opened, the server does not answer).
func inspectOne(ctx context.Context, e *env, o inspectOptions, src string) (*report, error) {
	var err error
	src0 := src // as given, password and all: for requests only
	var ho httpsrc.Options
	in := &inspector{ctx: ctx, rep: &report{Source: src, layout: o.layout}, isoPath: o.isoPath}
	var ra io.ReaderAt
	var hs *httpsrc.Source
	var br *httpsrc.BlockReader
	if isHTTP(src) {
		if ho, err = e.httpsOptions(inspectStall, o.cacert, o.insecure); err != nil {
			return nil, err
		}
		if hs, err = openURL(ctx, src, ho); err != nil {
			return nil, err
		}
		br = hs.BlockReader(ctx, inspectBlock, inspectBudget)
		ra, in.rep.Size = br, hs.Size
		src = hs.URL // no password in the report
		if hs.FinalURL != hs.URL {
			src += " (redirected to " + hs.FinalURL + ")"
		}
		in.rep.Source = src
		if strings.HasPrefix(hs.ETag, "W/") && hs.LastModified == "" {
			in.rep.Notes = append(in.rep.Notes, fmt.Sprintf("WARNING: the server's only validator is a weak ETag (%s): it does not promise the same bytes, "+
				"so a boot may not notice an image replaced mid-boot; serve a strong ETag or Last-Modified, or pin it with a manifest (streamroot.manifest=)", textesc.Escape(hs.ETag)))
		}
		if !hs.HasValidator() {
			in.rep.Notes = append(in.rep.Notes, "WARNING: the server sends neither ETag nor Last-Modified: a boot cannot tell "+
				"the image from one replaced on the server mid-boot (only a size change is seen); pin it with a manifest (streamroot.manifest=)")
		}
	} else if strings.Contains(src, "://") {
		return nil, usagef("%s: only http:// and https:// URLs can be inspected", src)
	} else {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if st, err := f.Stat(); err != nil {
			return nil, err
		} else if k := fileKind(st.Mode()); k != "" {
			return nil, withHint(fmt.Errorf("%s: %s, not an image file or block device", src, k),
				"give an image file, a block device such as /dev/sdb, or an http(s):// URL")
		}
		size, err := f.Seek(0, io.SeekEnd) // works for block devices too
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		ra, in.rep.Size, in.local = f, size, src
	}
	if in.rep.Size == 0 {
		return nil, withHint(fmt.Errorf("%s: empty file", src), "an interrupted copy? copy the image again")
	}
	zero := int64(0)
	err = in.layer(ra, in.rep.Size, &zero, "")
	if hs != nil {
		// Open's one-byte request, then the block reader's ranges.
		in.rep.HTTP = &httpStats{Requests: 1 + br.Ranges(), Bytes: hs.Received()}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if err := in.checkManifest(o.manifest); err != nil {
		return nil, err
	}
	if hs != nil && o.manifest == "" {
		in.checkManifestURL(ctx, src0, ho)
	}
	in.summarize()
	var bootErr error
	if !in.rep.bootable {
		bootErr = withHint(fmt.Errorf("%s: cannot boot: %s", src, in.rep.Problem), "%s", in.rep.hint)
		in.rep.Error, in.rep.Hint = bootErr.Error(), in.rep.hint
	}
	return in.rep, bootErr
}

// truncatedHint is the advice for an image shorter than it declares.
const truncatedHint = "the copy is incomplete: copy or download it again, then 'streamroot manifest -verify' it against its manifest"

// What inspect URL reads: 64 KiB blocks (the first holds every
// superblock and the ISO volume descriptors), at most 32 MiB in all, each
// range given up after 30 s without progress.
const (
	inspectBlock  = 64 << 10
	inspectBudget = 32 << 20
	inspectStall  = 30 * time.Second
)

// openURL pins the image at rawURL for inspect, saying in inspect's words
// why a server cannot be inspected.
func openURL(ctx context.Context, rawURL string, o httpsrc.Options) (*httpsrc.Source, error) {
	s, err := httpsrc.Open(ctx, rawURL, o)
	if err == nil {
		return s, nil
	}
	var se *httpsrc.StatusError
	switch {
	case errors.Is(err, httpsrc.ErrNoRanges):
		u, _ := url.Parse(rawURL) // Open parsed it
		return nil, fmt.Errorf("GET %s: the server ignored the Range request (answered 200 OK); refusing to download the whole file (streamroot needs Range support too)", u.Redacted())
	case errors.As(err, &se) && se.Code == http.StatusRequestedRangeNotSatisfiable:
		return nil, fmt.Errorf("%w (an empty file?)", err)
	case errors.As(err, &se):
		return nil, err
	}
	return nil, withHint(err, "%s", netHint(err))
}

// manifestCheck is what inspect found of the image's manifest.
type manifestCheck struct {
	File      string `json:"file"`
	KernelArg string `json:"kernel_arg"`
	Chunks    int    `json:"chunks"`
	Chunk     int64  `json:"chunk"`
	SizeOK    bool   `json:"size_ok"`
}

// checkManifest reads the image's manifest (file, or IMAGE.manifest
// beside a local image) and checks it fits the image: a manifest for
// another size makes every boot that fetches it stop. The content is not
// hashed here (that reads the whole image: 'manifest -verify' does it).
func (in *inspector) checkManifest(file string) error {
	if file == "" {
		if in.local == "" {
			return nil
		}
		file = in.local + ".manifest"
		if _, err := os.Stat(file); err != nil {
			return nil
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(data)
	if err != nil {
		in.problemHint("write it again with 'streamroot manifest IMAGE'", "%s: %v (a node fetching it stops)", file, err)
		in.rep.Manifest = &manifestCheck{File: file}
		return nil
	}
	c := &manifestCheck{File: file, KernelArg: manifest.KernelArg(data), Chunks: m.NumChunks(), Chunk: m.Chunk, SizeOK: m.Size == in.rep.Size}
	in.rep.Manifest = c
	if !c.SizeOK {
		in.problemHint("the image or the manifest is stale: 'streamroot manifest IMAGE' writes the manifest for this image (and new kernel arguments)",
			"%s is for a %d-byte image, this one has %d bytes (a node pinned to it refuses the image)", file, m.Size, in.rep.Size)
	}
	return nil
}

// maxManifestFetch bounds what inspect downloads of a manifest URL: the
// manifest of a 16 TiB image in 4 MiB chunks is 266 MB, of any image
// served in practice well under this.
const maxManifestFetch = 8 << 20

// checkManifestURL fetches <image URL>.manifest, where a boot pinned with
// streamroot.manifest= looks for it, and checks it fits the image. That
// it is missing or unreadable is a note (the image may be pinned another
// way, or not at all); a manifest for another size makes the image
// unbootable for a pinned node, so that is a problem.
func (in *inspector) checkManifestURL(ctx context.Context, imageURL string, ho httpsrc.Options) {
	u, err := url.Parse(imageURL)
	if err != nil || u.RawQuery != "" {
		return // the boot appends to the URL as given; a query would hide where
	}
	ho.Stall = min(ho.Stall, 10*time.Second)
	ms, err := httpsrc.Open(ctx, imageURL+".manifest", ho)
	var se *httpsrc.StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		in.rep.Notes = append(in.rep.Notes, fmt.Sprintf("no manifest at %s.manifest: the image is pinned only if the kernel line or the initramfs names another one ('streamroot manifest IMAGE' writes it)", u.Redacted()))
		return
	case err != nil:
		in.rep.Notes = append(in.rep.Notes, fmt.Sprintf("WARNING: the manifest URL does not answer as it should: %v", err))
		return
	case ms.Size > maxManifestFetch:
		in.rep.Notes = append(in.rep.Notes, fmt.Sprintf("WARNING: %s is %d bytes, too big for a manifest: not read", ms.URL, ms.Size))
		return
	}
	data := make([]byte, ms.Size)
	if n, err := ms.BlockReader(ctx, 64<<10, maxManifestFetch+64<<10).ReadAt(data, 0); int64(n) != ms.Size {
		in.rep.Notes = append(in.rep.Notes, fmt.Sprintf("WARNING: %s: read %d of %d bytes: %v", ms.URL, n, ms.Size, err))
		return
	}
	m, err := manifest.Parse(data)
	if err != nil {
		in.rep.Notes = append(in.rep.Notes, fmt.Sprintf("WARNING: %s: %v (a node pinned with streamroot.manifest= stops on it)", ms.URL, err))
		return
	}
	c := &manifestCheck{File: ms.URL, KernelArg: manifest.KernelArg(data), Chunks: m.NumChunks(), Chunk: m.Chunk, SizeOK: m.Size == in.rep.Size}
	in.rep.Manifest = c
	if !c.SizeOK {
		in.problemHint("the image or the manifest on the server is stale: 'streamroot manifest IMAGE' writes the manifest for this image (and new kernel arguments); publish both",
			"%s is for a %d-byte image, the image has %d bytes (a node pinned to it refuses the image)", ms.URL, m.Size, in.rep.Size)
	}
}

// netHint is the advice for a failure to reach or trust a server.
func netHint(err error) string {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &ua):
		return "the server's certificate is signed by a CA this host does not trust: -cacert FILE names the CA, -insecure skips the check (a node needs rd.noverifyssl or the CA in its initramfs too)"
	case errors.As(err, &hn), errors.As(err, &ci):
		return "the server's certificate does not fit (wrong name or expired): fix the certificate or use the name it carries; -insecure skips the check"
	case errors.As(err, &dns):
		return "the host name does not resolve here: check its spelling and this host's DNS, or give the server's IP address"
	case errors.As(err, &op) && op.Op == "dial":
		return "nothing answers at that address: is the server running, is the port right, does a firewall drop it? (streamroot serve DIR starts one)"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "the server stopped answering: check the network and the server's load, then try again"
	}
	return "check the URL and that the server answers it (curl -I URL)"
}

// fileKind names a file type inspect cannot read as an image ("" for a
// regular file or a block device).
func fileKind(m os.FileMode) string {
	switch {
	case m.IsRegular(), m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0:
		return ""
	case m.IsDir():
		return "a directory"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

func (in *inspector) problem(format string, args ...any) {
	if in.rep.Problem == "" {
		in.rep.Problem = fmt.Sprintf(format, args...)
	}
}

// problemHint records a problem with its advice, unless an earlier
// problem (and its advice) stands.
func (in *inspector) problemHint(hint, format string, args ...any) {
	if in.rep.Problem == "" {
		in.rep.Problem, in.rep.hint = fmt.Sprintf(format, args...), hint
	}
}

// layer identifies the layer in ra (size bytes, at offset in the source
// when known) and descends into the next one.
func (in *inspector) layer(ra io.ReaderAt, size int64, offset *int64, inPath string) error {
	if len(in.rep.Layers) >= 4 {
		return errors.New("too many nested layers")
	}
	if size < 0 {
		return fmt.Errorf("%s: negative size %d", nameOr(inPath, "the image"), size)
	}
	head, err := imgfmt.ReadHead(ra, size, imgfmt.HeadSize)
	if err != nil {
		return err
	}
	facts, err := imgfmt.Probe(head)
	if err != nil && !errors.Is(err, imgfmt.ErrUnknown) {
		return err
	}
	truncated := func(kind string) {
		if !facts.Fits(size) {
			in.problemHint(truncatedHint, "truncated: %s declares %d bytes, %s has %d", kind, facts.Declared, nameOr(inPath, "the image"), size)
		}
	}
	switch facts.Kind {
	case imgfmt.Squashfs:
		return in.squashfs(ra, size, offset, inPath, facts)
	case imgfmt.ISO9660:
		return in.iso(ra, size, offset, inPath)
	case imgfmt.EROFS:
		in.rep.Layers = append(in.rep.Layers, layer{Kind: "erofs", Path: inPath, Offset: offset, Size: size, EROFS: facts.EROFS})
		truncated("erofs")
		return nil
	case imgfmt.Ext4:
		in.rep.Layers = append(in.rep.Layers, layer{Kind: facts.Ext4.Type, Path: inPath, Offset: offset, Size: size, Ext4: facts.Ext4})
		truncated(facts.Ext4.Type)
		return nil
	}
	what := "the image"
	if inPath != "" {
		what = inPath
	}
	if len(in.rep.Layers) == 0 {
		return fmt.Errorf("not a squashfs, erofs, ext4 or ISO 9660 image (first bytes %q)", printable(head[:min(len(head), 16)]))
	}
	in.rep.Layers = append(in.rep.Layers, layer{Kind: "unknown", Path: inPath, Offset: offset, Size: size})
	in.problem("%s is not a squashfs, erofs or ext4 image", what)
	return nil
}

func nameOr(p, def string) string {
	if p != "" {
		return p
	}
	return def
}

func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 32 || r > 126 {
			return '.'
		}
		return r
	}, string(b))
}

func (in *inspector) iso(ra io.ReaderAt, size int64, offset *int64, inPath string) error {
	im, err := isoread.Open(ra, size)
	if err != nil {
		return err
	}
	info := &isoInfo{VolumeID: im.VolumeID, Names: "iso9660"}
	switch {
	case im.RockRidge:
		info.Names = "rock-ridge"
	case im.Joliet:
		info.Names = "joliet"
	}
	// Kernels and initrds an operator may want for PXE (Fedora/CentOS and
	// the Foreman Discovery Image keep them in isolinux/ or images/pxeboot/).
	for _, dir := range []string{"isolinux", "images/pxeboot"} {
		files, err := im.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, f := range files {
			n := strings.ToLower(f.Name)
			if strings.HasPrefix(n, "vmlinuz") || strings.HasPrefix(n, "initrd") {
				info.BootFiles = append(info.BootFiles, f.Path)
			}
		}
	}
	l := layer{Kind: "iso9660", Path: inPath, Offset: offset, Size: size, ISO: info}
	in.rep.Layers = append(in.rep.Layers, l)
	f, err := im.Lookup(in.isoPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			in.problem("%s (-live-dir/-squashimg, as rd.live.dir=/rd.live.squashimg= on the kernel line, or -path name another one)", err)
			return nil
		}
		return err
	}
	if f.IsDir {
		in.problem("%s in the ISO is a directory", f.Path)
		return nil
	}
	info.Image = f.Path
	var off *int64
	if offset != nil && f.Contiguous {
		o := *offset + f.Offset
		off = &o
	}
	return in.layer(f.ReaderAt(), f.Size, off, f.Path)
}

func (in *inspector) squashfs(ra io.ReaderAt, size int64, offset *int64, inPath string, facts imgfmt.Facts) error {
	sb := *facts.Squashfs
	info := &squashInfo{
		Version:       fmt.Sprintf("%d.%d", sb.Major, sb.Minor),
		Compression:   squashfs.CompressionName(sb.Compression),
		CompressionID: sb.Compression,
		BlockSize:     sb.BlockSize,
		BytesUsed:     sb.BytesUsed,
		Inodes:        sb.Inodes,
		Fragments:     sb.Fragments,
		Created:       time.Unix(int64(sb.ModTime), 0).UTC().Format(time.RFC3339),
		Contents:      "unknown",
	}
	if info.Compression == "" {
		info.Compression = "unknown"
	}
	in.rep.Layers = append(in.rep.Layers, layer{Kind: "squashfs", Path: inPath, Offset: offset, Size: size, Squashfs: info})
	if !facts.Fits(size) {
		in.problemHint(truncatedHint, "truncated: squashfs declares %d bytes, %s has %d", facts.Declared, nameOr(inPath, "the image"), size)
		info.Reason = fmt.Sprintf("not read: the squashfs is truncated (%d of %d bytes)", size, facts.Declared)
		return nil
	}
	inner, innerHead, innerSize, goErr := in.squashGo(ra, sb, info)
	if goErr == nil {
		info.Contents = "read"
		if inner == "" {
			return nil
		}
		// Only the file's first block is at hand: enough for a superblock.
		return in.layer(bytes.NewReader(innerHead), innerSize, nil, inner)
	}
	info.Reason = goErr.Error()
	if in.local != "" && offset != nil {
		if err := in.squashUnsquashfs(*offset, info); err == nil {
			info.Contents = "unsquashfs"
			in.rep.Notes = append(in.rep.Notes, fmt.Sprintf("squashfs contents listed by unsquashfs (%s)", goErr))
			return nil
		} else {
			info.Reason += "; " + err.Error()
		}
	}
	in.rep.Notes = append(in.rep.Notes, "squashfs contents unknown: "+info.Reason)
	return nil
}

// squashGo reads the squashfs tree in Go. It returns the live image path,
// its first data block and its size, or "" for a plain root filesystem.
func (in *inspector) squashGo(ra io.ReaderAt, sb squashfs.Super, info *squashInfo) (string, []byte, int64, error) {
	s, err := squashfs.New(ra, sb)
	if err != nil {
		return "", nil, 0, err
	}
	// The boot's rule (imgfmt.Layout.Inner), on the squashfs's tree.
	var lookErr error
	isFile := func(p string) bool {
		ino, err := s.Lookup(p)
		if err != nil && !errors.Is(err, squashfs.ErrNotFound) && lookErr == nil {
			lookErr = err
		}
		return err == nil && ino.IsRegular()
	}
	if p := in.rep.layout.Inner(imgfmt.Squashfs, isFile); lookErr != nil {
		return "", nil, 0, lookErr
	} else if p != "" {
		ino, err := s.Lookup(p)
		if err != nil {
			return "", nil, 0, err
		}
		info.LiveImage = p
		head, err := s.Head(ino)
		if err != nil {
			return "", nil, 0, fmt.Errorf("%s: first block: %w", p, err)
		}
		return p, head, int64(ino.Size()), nil
	}
	root, err := s.Root()
	if err != nil {
		return "", nil, 0, err
	}
	ents, err := s.ReadDir(root)
	if err != nil {
		return "", nil, 0, err
	}
	for _, e := range ents {
		info.Root = append(info.Root, e.Name)
	}
	slices.Sort(info.Root)
	// The boot's rule (liveroot.FindInit): the first candidate that is,
	// symlinks followed inside the image, an executable regular file.
	for _, p := range imgfmt.InitCandidates() {
		if ino, err := s.Lookup(p); err == nil && ino.IsRegular() && ino.Perm()&0o111 != 0 {
			info.Init = p
			break
		}
	}
	return "", nil, 0, nil
}

// squashUnsquashfs lists the live image with squashfs-tools.
func (in *inspector) squashUnsquashfs(offset int64, info *squashInfo) error {
	bin, err := exec.LookPath("unsquashfs")
	if err != nil {
		return errors.New("unsquashfs is not installed (apt-get install squashfs-tools) to list it instead")
	}
	args := []string{"-o", strconv.FormatInt(offset, 10), "-lls", in.local}
	live := in.rep.layout.LiveImages()
	cmd := exec.CommandContext(in.ctx, bin, append(args, live...)...)
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("unsquashfs %s: %v", strings.Join(args, " "), err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasPrefix(f[0], "-") {
			continue
		}
		for _, p := range live {
			if strings.HasSuffix(f[len(f)-1], "/"+p) && info.LiveImage == "" {
				info.LiveImage = p
			}
		}
	}
	return nil
}

// satMul is a*b, or math.MaxInt64 when that does not fit: a block count
// from a superblock times its block size, compared with the image's size.
func satMul(a, b uint64) int64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo)
}

// jsonEscapeNonPrint rewrites DEL and the non-printing runes json.Encoder leaves
// as they are (C1 controls such as U+009B, which some terminals take for
// CSI, bidi overrides, zero-width marks) as \uXXXX escapes: the same JSON
// value, harmless on a terminal. Outside strings JSON is ASCII, so every
// such rune is inside a string.
func jsonEscapeNonPrint(b []byte) []byte {
	// encoding/json escapes control characters below 0x20 but not DEL,
	// which a terminal also acts on; outside strings JSON has neither.
	unsafe := func(r rune) bool { return r == 0x7f || r >= utf8.RuneSelf && !strconv.IsPrint(r) }
	if !slices.ContainsFunc([]rune(string(b)), unsafe) {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	for _, r := range string(b) {
		if !unsafe(r) {
			out = utf8.AppendRune(out, r)
			continue
		}
		for _, u := range utf16.Encode([]rune{r}) {
			out = fmt.Appendf(out, `\u%04x`, u)
		}
	}
	return out
}

// summarize names the layout and how to boot it.
func (in *inspector) summarize() {
	r := in.rep
	var kinds []string
	for _, l := range r.Layers {
		k := l.Kind
		if l.Path != "" {
			k += " (" + l.Path + ")"
		}
		kinds = append(kinds, k)
	}
	r.Layout = strings.Join(kinds, " → ")
	if r.Problem != "" {
		r.Boot = "not bootable: " + r.Problem
		return
	}
	r.bootable = true
	top := r.Layers[0]
	var sq *squashInfo
	for _, l := range r.Layers {
		if l.Squashfs != nil {
			sq = l.Squashfs
		}
	}
	switch {
	case top.Kind == "iso9660":
		with := ""
		if a := liveArgs(in.isoPath); a != "" {
			with = " with " + a + " on the kernel line"
		}
		r.Boot = fmt.Sprintf("a live ISO: root=live:<URL of the .iso>%s boots it (streamroot opens %s inside), "+
			"or 'streamroot extract -path %s' that file and boot root=live:<its URL>", with, top.ISO.Image, in.isoPath)
	case sq != nil && sq.LiveImage != "":
		r.Boot = "dracut's live layout: root=live:<URL> boots it; streamroot mounts " + sq.LiveImage + " from inside"
	default:
		r.Boot = "a root filesystem image: root=live:<URL> boots it"
	}
	if sq != nil && sq.Contents == "read" && sq.LiveImage == "" && sq.Init == "" {
		r.Notes = append(r.Notes, fmt.Sprintf("the squashfs holds neither %s nor an init (%s): is it a root filesystem?",
			in.rep.layout.LiveImages()[0], strings.Join(imgfmt.InitCandidates(), ", ")))
	}
}

// liveArgs are the kernel arguments that make a boot open isoPath inside
// an ISO instead of the default LiveOS/squashfs.img ("" for that).
func liveArgs(isoPath string) string {
	p := path.Clean(strings.TrimPrefix(isoPath, "/"))
	dir, name := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	def := imgfmt.DefaultLayout()
	var args []string
	if !strings.EqualFold(dir, def.LiveDir) {
		args = append(args, "rd.live.dir="+dir)
	}
	if !strings.EqualFold(name, def.SquashImg) {
		args = append(args, "rd.live.squashimg="+name)
	}
	return strings.Join(args, " ")
}

// printReport prints the human report. Every string that came from the
// image (paths, names, and the problem and notes quoting them) goes
// through textesc.Escape; labels and volume ids are printed with %q.
func printReport(w io.Writer, r *report) {
	esc := textesc.Escape
	fmt.Fprintf(w, "%s: %d bytes (%s)\n", esc(r.Source), r.Size, humanBytes(r.Size))
	for i, l := range r.Layers {
		ind := strings.Repeat("  ", i+1)
		where := ""
		if l.Path != "" {
			where = " " + esc(l.Path)
		}
		at := ""
		if l.Offset != nil && i > 0 {
			at = fmt.Sprintf(" at byte %d", *l.Offset)
		}
		fmt.Fprintf(w, "%s%s%s%s, %d bytes (%s)\n", ind, l.Kind, where, at, l.Size, humanBytes(l.Size))
		ind += "  "
		switch {
		case l.ISO != nil:
			fmt.Fprintf(w, "%svolume %q, %s names\n", ind, l.ISO.VolumeID, l.ISO.Names)
			if len(l.ISO.BootFiles) > 0 {
				fmt.Fprintf(w, "%sboot files: %s\n", ind, esc(strings.Join(l.ISO.BootFiles, ", ")))
			}
		case l.Squashfs != nil:
			s := l.Squashfs
			fmt.Fprintf(w, "%sversion %s, %s compression (id %d), block size %s, %d bytes used, %d inodes, created %s\n",
				ind, s.Version, s.Compression, s.CompressionID, humanBytes(int64(s.BlockSize)), s.BytesUsed, s.Inodes, s.Created)
			switch {
			case s.LiveImage != "":
				fmt.Fprintf(w, "%sholds %s (dracut live layout)\n", ind, esc(s.LiveImage))
			case s.Contents == "unknown" && s.Reason != "":
				fmt.Fprintf(w, "%scontents unknown: %s\n", ind, esc(s.Reason))
			case s.Contents == "unknown":
				fmt.Fprintf(w, "%scontents unknown\n", ind)
			case len(s.Root) > 0:
				names := s.Root
				if len(names) > 16 {
					names = append(names[:16:16], "...")
				}
				fmt.Fprintf(w, "%sa root filesystem: /%s\n", ind, esc(strings.Join(names, " /")))
				if s.Init != "" {
					fmt.Fprintf(w, "%sinit: %s\n", ind, esc(s.Init))
				}
			default:
				fmt.Fprintf(w, "%sno %s\n", ind, esc(strings.Join(r.layout.LiveImages(), " or ")))
			}
		case l.EROFS != nil:
			e := l.EROFS
			comp := "none"
			if len(e.Compression) > 0 {
				comp = strings.Join(e.Compression, ", ")
			}
			fmt.Fprintf(w, "%s%d blocks of %d bytes (%s), %d inodes, volume %q, UUID %s, compression %s\n",
				ind, e.Blocks, e.BlockSize, humanBytes(satMul(uint64(e.Blocks), uint64(e.BlockSize))), e.Inodes, e.VolumeName, e.UUID, comp)
		case l.Ext4 != nil:
			x := l.Ext4
			fmt.Fprintf(w, "%s%d blocks of %d bytes (%s), %d inodes, label %q, UUID %s\n",
				ind, x.Blocks, x.BlockSize, humanBytes(satMul(x.Blocks, uint64(x.BlockSize))), x.Inodes, x.Label, x.UUID)
		}
	}
	fmt.Fprintf(w, "layout: %s\n", esc(r.Layout))
	fmt.Fprintf(w, "boot: %s\n", esc(r.Boot))
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", esc(n))
	}
	if m := r.Manifest; m != nil && m.SizeOK {
		fmt.Fprintf(w, "manifest: %s, %s of %s, the image's size (%s; 'streamroot manifest -verify' checks the content)\n",
			esc(m.File), chunks(m.Chunks), humanBytes(m.Chunk), m.KernelArg)
	}
	if r.HTTP != nil {
		fmt.Fprintf(w, "fetched: %d bytes in %d range requests\n", r.HTTP.Bytes, r.HTTP.Requests)
	}
}
