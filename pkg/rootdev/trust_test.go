package rootdev

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/streamroot/streamroot/internal/testimg"
	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/trust"
)

// With a trust policy, the manifest's signature is fetched next to it and
// checked before the Spec exists; a pin on top must agree with it; the
// Spec records what vouched for the image.
func TestNewSpecSigned(t *testing.T) {
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	img := testimg.Random(3*manifest.MinChunk, 7)
	m, err := manifest.Build(bytes.NewReader(img), int64(len(img)), manifest.MinChunk)
	if err != nil {
		t.Fatal(err)
	}
	data := m.Marshal()
	now := time.Now()
	sign := func(size int64, version uint64) []byte {
		sig, err := trust.Sign(priv, data, trust.Statement{Size: size, Version: version, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	pol := &trust.Policy{Keys: []minisign.PublicKey{pub}, MinVersion: 2, MinFrom: "the initramfs"}
	other := bytes.Repeat([]byte{0x11}, 32)
	for _, tc := range []struct {
		name     string
		manifest []byte
		sig      []byte // nil: 404
		pin      []byte
		want     string // "" : accepted
	}{
		{"signed", data, sign(m.Size, 2), nil, ""},
		{"signed and pinned", data, sign(m.Size, 2), func() []byte { d := manifest.Digest(data); return d[:] }(), ""},
		{"no signature", data, nil, nil, "boots only signed images"},
		{"tampered manifest", append(append([]byte{}, data...), '\n'), sign(m.Size, 2), nil, "does not match the manifest"},
		{"pin disagrees", data, sign(m.Size, 2), other, "not the one the pin"},
		{"size disagrees", data, sign(m.Size+1, 2), nil, "the statement says the image is"},
		{"rollback", data, sign(m.Size, 1), nil, "below the minimum 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/img.manifest":
					w.Write(tc.manifest)
				case "/img.manifest" + trust.SigSuffix:
					if tc.sig == nil {
						http.NotFound(w, r)
						return
					}
					w.Write(tc.sig)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			u, _ := url.Parse(srv.URL + "/img")
			cfg := &bootcfg.Config{Root: bootcfg.Root{Kind: bootcfg.RootLive, URL: u}, Manifest: tc.pin, Retry: 2 * time.Second}
			s, err := NewSpec(context.Background(), cfg, bootcfg.FetchLazy, pol, quiet())
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				var r *trust.Refusal
				if strings.Contains(tc.name, "tampered") && (!errors.As(err, &r) || r.KeyID != trust.KeyID(pub.ID())) {
					t.Errorf("the refusal does not name the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v := s.Verified
			if v.KeyID != trust.KeyID(pub.ID()) || v.Version != 2 || v.URL != srv.URL+"/img" || v.Size != m.Size || s.ParsedManifest() == nil {
				t.Errorf("verified %+v", v)
			}
		})
	}
}

// With a trust policy the plan counts on a manifest: streaming stays allowed
// beside streamroot.sha256=, as with a pinned one.
func TestPlanSigned(t *testing.T) {
	u, _ := url.Parse("http://s/img")
	cfg := &bootcfg.Config{Root: bootcfg.Root{Kind: bootcfg.RootLive, URL: u}, Fetch: bootcfg.FetchLazy, SHA256: bytes.Repeat([]byte{1}, 32)}
	if _, err := Plan(cfg, "/nonexistent", nil, quiet()); err == nil {
		t.Fatal("lazy with streamroot.sha256= alone was planned")
	}
	mode, err := Plan(cfg, "/nonexistent", &trust.Policy{}, quiet())
	if err != nil || mode != bootcfg.FetchLazy {
		t.Fatalf("signed lazy: %v, %v", mode, err)
	}
}

// The boot report says what vouched for the image, as the fetch stage
// verified it, and a device without a spec reports none.
func TestRecordNamesTheVerifiedIdentity(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec *Spec
		want trust.Verified
	}{
		{"signed", &Spec{Name: "http://s/img", Verified: trust.Verified{ManifestSHA256: "ab12", KeyID: "K1", Version: 7, URL: "http://s/img"}},
			trust.Verified{ManifestSHA256: "ab12", KeyID: "K1", Version: 7}},
		{"pinned", &Spec{Name: "http://s/img", Verified: trust.Verified{ManifestSHA256: "cd34"}}, trust.Verified{ManifestSHA256: "cd34"}},
		{"no spec", nil, trust.Verified{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := (&Device{Mode: bootcfg.FetchLazy, spec: tc.spec}).Record()
			got := trust.Verified{ManifestSHA256: r.ManifestSHA256, KeyID: r.KeyID, Version: r.Version}
			if got != tc.want {
				t.Errorf("report %+v, want %+v", got, tc.want)
			}
		})
	}
}
