package rootdev

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
)

// A manifest URL's password reaches neither the failure block nor the log.
func TestLoadManifestRedactsURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("not the pinned manifest\n"))
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL + "/img.squashfs")
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("op", "s3cret")
	var logs bytes.Buffer
	cfg := &bootcfg.Config{Root: bootcfg.Root{Kind: bootcfg.RootLive, URL: u}, Manifest: make([]byte, 32), Retry: 5 * time.Second}
	_, err = NewSpec(context.Background(), cfg, bootcfg.FetchStream, slog.New(slog.NewTextHandler(&logs, nil)))
	if err == nil {
		t.Fatal("a manifest that does not match the pin was accepted")
	}
	if out := err.Error() + logs.String(); strings.Contains(out, "s3cret") {
		t.Errorf("the password is shown:\n%s", out)
	}
	if !strings.Contains(err.Error(), "img.squashfs.manifest") {
		t.Errorf("the error does not name the manifest: %v", err)
	}
}

func TestReadBakedManifest(t *testing.T) {
	dir := t.TempDir()
	sum := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, content string
		want          string // hex; "" none
		err           bool
	}{
		{"prefixed", "sha256:" + sum + "\n", sum, false},
		{"bare", sum, sum, false},
		{"short", "sha256:abcd\n", "", true},
		{"not hex", "sha256:" + strings.Repeat("zz", 32), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadBakedManifest(p)
			if (err != nil) != tc.err || hex.EncodeToString(got) != tc.want {
				t.Errorf("ReadBakedManifest = %x, %v", got, err)
			}
		})
	}
	if got, err := ReadBakedManifest(filepath.Join(dir, "absent")); got != nil || err != nil {
		t.Errorf("no baked manifest: %x, %v", got, err)
	}
}
