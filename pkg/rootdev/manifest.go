package rootdev

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/httpsrc"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/trust"
)

// getSmall fetches a small file (the manifest, its signature) from u with
// the root's TLS settings, at most max bytes.
func (s *Spec) getSmall(ctx context.Context, u string, max int64, log *slog.Logger) ([]byte, error) {
	// The scheme as net/url reads it (case-insensitive, RFC 3986 §3.1), as
	// the image's own fetches test it: a manifest URL written HTTPS://
	// must get the initramfs's CA bundle too.
	pu, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", redact(u), err)
	}
	opts, err := s.httpOptions(pu.Scheme == "https", log)
	if err != nil {
		return nil, err
	}
	return httpsrc.GetSmall(ctx, u, max, opts)
}

// loadManifest fetches the chunk manifest from u and checks it: against
// its signature (u + trust.SigSuffix) when pol is not nil, and against the
// pinned digest when pin is not nil; at least one of them is given. It
// records what vouched for it in s.Verified.
func (s *Spec) loadManifest(ctx context.Context, u string, pin []byte, pol *trust.Policy, log *slog.Logger) error {
	data, err := s.getSmall(ctx, u, 64<<20, log)
	if err != nil {
		return hint.New(fmt.Errorf("manifest: %w", err), "publish the manifest next to the image (streamroot manifest IMAGE writes IMAGE.manifest) or name it with streamroot.manifest.url=")
	}
	shown := redact(u) // for the console: never the URL's password
	got := manifest.Digest(data)
	v := trust.Verified{ManifestSHA256: hex.EncodeToString(got[:])}
	if pol != nil {
		sigURL := u + trust.SigSuffix
		sig, err := s.getSmall(ctx, sigURL, trust.MaxSignature, log)
		if err != nil {
			return hint.New(fmt.Errorf("signature (this initramfs trusts keys %s and boots only signed images): %w", strings.Join(pol.IDs(), ", "), err),
				"sign the image (streamroot sign IMAGE writes IMAGE.manifest and IMAGE.manifest"+trust.SigSuffix+") and publish both next to it")
		}
		if v, err = pol.Verify(data, sig, time.Now()); err != nil {
			return fmt.Errorf("%s: %w", redact(sigURL), err)
		}
		log.Info("manifest signature verified", "key", v.KeyID, "version", v.Version, "min_version", pol.MinVersion)
	}
	want := got // signed alone: the signature vouched for these bytes
	if pin != nil {
		want = [32]byte(pin)
	}
	if pol != nil && want != got {
		return hint.New(fmt.Errorf("manifest %s is signed by key %s, but it is not the one the pin (streamroot.manifest= or the initramfs's) names", shown, v.KeyID),
			"with a pin and a key both in force the image must satisfy both: update or drop streamroot.manifest=sha256:…")
	}
	m, err := manifest.ParsePinned(data, want)
	if err != nil {
		return hint.New(fmt.Errorf("manifest %s: %w", shown, err),
			"the manifest on the server is not the one the kernel line pins: regenerate it with streamroot manifest and update streamroot.manifest=sha256:…")
	}
	if v.Size != 0 && v.Size != m.Size {
		return fmt.Errorf("%s: %w", shown, &trust.Refusal{KeyID: v.KeyID,
			Reason: fmt.Sprintf("the statement says the image is %d bytes, the manifest %d", v.Size, m.Size)})
	}
	v.URL = s.Name
	s.manifest, s.Manifest, s.Verified = m, data, v
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
