package rootdev

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/httpsrc"
	"golang.org/x/sys/unix"
)

// sha256Hint is the advice when the whole image fails streamroot.sha256=.
const sha256Hint = "the file on the server is not the image the kernel line pins: copy the right image or update streamroot.sha256="

// fetchRAM downloads the whole image into RAM (a file in RunDir/image on
// /run's tmpfs, which the booted system keeps: the loop device reads from
// it). An image that does not fit returns (nil, nil) with s.Mode lazy.
func fetchRAM(ctx context.Context, s *Spec, o Options) (*Device, error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, err
	}
	opts, err := s.httpOptions(u.Scheme == "https", o.Log)
	if err != nil {
		return nil, err
	}
	src, err := httpsrc.Open(ctx, s.URL, opts)
	if err != nil {
		return nil, err
	}
	o.Log.Info("image", "url", s.Name, "size", bootlog.MiB(src.Size), "etag", src.ETag)

	var st unix.Statfs_t
	if err := unix.Statfs(o.RunDir, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", o.RunDir, err)
	}
	if err := s.fit(src.Size, int64(st.Bavail)*st.Bsize, o.Log); err != nil {
		return nil, err
	}
	if s.Mode != bootcfg.FetchRAM {
		return nil, nil
	}
	m := s.manifest
	if !src.HasValidator() && m == nil && len(s.SHA256) == 0 {
		o.Log.Warn(noValidatorWarning(src.URL))
	}
	dir := filepath.Join(o.RunDir, "image")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		name = "root.img"
	}
	dst := filepath.Join(dir, name)
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o444)
	if err != nil {
		return nil, err
	}
	fo := httpsrc.FetchOptions{}
	if m != nil {
		fo.Chunk = m.Chunk
		fo.Verify = func(off int64, data []byte) error { return m.VerifyChunk(int(off/m.Chunk), data) }
	}
	fo.Progress = func(p httpsrc.Progress) {
		o.Log.Info(bootlog.Download{Done: p.Done, Total: p.Total, Rate: float64(p.Done) / max(p.Elapsed.Seconds(), 0.001)}.Message())
	}
	err = src.Fetch(ctx, f, fo)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", dst, cerr)
	}
	if err != nil {
		// Never leave a partial image where a later step could mount it.
		os.Remove(dst)
		return nil, err
	}
	if len(s.SHA256) > 0 {
		if err := checkSHA256(dst, s.SHA256); err != nil {
			os.Remove(dst)
			return nil, hint.New(fmt.Errorf("%s: %w", s.Name, err), sha256Hint)
		}
		o.Log.Info("whole-image sha256 verified")
	}
	if m != nil {
		o.Log.Info("every chunk verified against the manifest", "chunks", m.NumChunks())
	}
	o.Log.Info("image complete", "size", bootlog.MiB(src.Size), "received", bootlog.MiB(src.Received()), "file", dst)
	return &Device{Mode: s.Mode, File: dst, Size: src.Size, ETag: src.ETag, Received: src.Received(), spec: s}, nil
}

// checkSHA256 hashes the file at path and compares it with want.
func checkSHA256(path string, want []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash %s: %w", path, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("image sha256 is %x, streamroot.sha256 wants %x", got, want)
	}
	return nil
}
