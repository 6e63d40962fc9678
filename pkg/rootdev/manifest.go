package rootdev

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/httpsrc"
	"github.com/streamroot/streamroot/pkg/manifest"
)

// loadManifest fetches the chunk manifest from u and checks it against the
// pinned digest.
func (s *Spec) loadManifest(ctx context.Context, u string, pin [32]byte, log *slog.Logger) error {
	opts := httpsrc.Options{Stall: s.Retry, Log: log, InsecureSkipVerify: s.Insecure}
	if strings.HasPrefix(u, "https:") {
		pool, err := caPool(s.CABundle)
		if err != nil {
			return err
		}
		opts.RootCAs = pool
	}
	data, err := httpsrc.GetSmall(ctx, u, 64<<20, opts)
	if err != nil {
		return hint.New(fmt.Errorf("manifest: %w", err), "publish the manifest next to the image (streamroot manifest IMAGE writes IMAGE.manifest) or name it with streamroot.manifest.url=")
	}
	shown := redact(u) // for the console: never the URL's password
	m, err := manifest.ParsePinned(data, pin)
	if err != nil {
		return hint.New(fmt.Errorf("manifest %s: %w", shown, err),
			"the manifest on the server is not the one the kernel line pins: regenerate it with streamroot manifest and update streamroot.manifest=sha256:…")
	}
	s.manifest, s.Manifest = m, data
	log.Info("manifest verified", "url", shown, "chunks", m.NumChunks(), "chunk", bootlog.MiB(m.Chunk))
	return nil
}

// BakedManifest is the build's manifest path: `make initramfs
// IMAGE_MANIFEST=…` pins the image with the digest there even when the
// kernel line does not.
const BakedManifest = "/etc/streamroot/manifest.sha256"

// ReadBakedManifest reads the manifest digest at path ("sha256:<hex>" or
// the hex alone), or nil when the initramfs has none.
func ReadBakedManifest(path string) ([]byte, error) {
	d, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	sum, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(string(d)), "sha256:"))
	if err != nil || len(sum) != 32 {
		return nil, fmt.Errorf("%s: not a SHA-256 digest", path)
	}
	return sum, nil
}
