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
	_, err = NewSpec(context.Background(), cfg, bootcfg.FetchStream, nil, slog.New(slog.NewTextHandler(&logs, nil)))
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

// The config stage's part: no root is refused with a hint, a baked pin
// applies only when the line pins nothing, and the root and the mode are
// logged without a password.
func TestPlan(t *testing.T) {
	dir := t.TempDir()
	baked := filepath.Join(dir, "manifest.sha256")
	sum := strings.Repeat("cd", 32)
	if err := os.WriteFile(baked, []byte("sha256:"+sum+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lineSum := strings.Repeat("ef", 32)
	for _, tc := range []struct {
		name, cmdline, baked string
		mode                 bootcfg.FetchMode
		manifest             string // hex
		logs, notLogs        []string
		err                  string
	}{
		{"no root", "ip=dhcp", baked, "", "", nil, nil, "no root= on the kernel command line"},
		{"baked pin", "root=live:http://u:secret@10.0.0.1/i.img", baked, bootcfg.FetchStream, sum,
			[]string{"image manifest pinned by the initramfs", "url=http://u:xxxxx@10.0.0.1/i.img", "mode=stream"}, []string{"secret"}, ""},
		{"line pin wins", "root=live:http://10.0.0.1/i.img streamroot.manifest=sha256:" + lineSum, baked, bootcfg.FetchStream, lineSum,
			nil, []string{"pinned by the initramfs"}, ""},
		{"no baked pin", "root=nbd:10.0.0.1:disc rd.noverifyssl", filepath.Join(dir, "absent"), bootcfg.FetchStream, "",
			[]string{"rd.noverifyssl: HTTPS certificates are NOT checked", "nbd=10.0.0.1:10809", "export=disc"}, nil, ""},
		{"bad baked pin", "root=live:http://10.0.0.1/i.img", filepath.Join(dir, "bad"), "", "", nil, nil, "not a SHA-256 digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "bad"), []byte("sha256:12\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := bootcfg.Parse(tc.cmdline)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			mode, err := Plan(cfg, tc.baked, nil, slog.New(slog.NewTextHandler(&out, nil)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Plan = %s, %v; want %q", mode, err, tc.err)
				}
				return
			}
			if err != nil || mode != tc.mode || hex.EncodeToString(cfg.Manifest) != tc.manifest {
				t.Fatalf("Plan = %s, %v; manifest %x", mode, err, cfg.Manifest)
			}
			for _, l := range tc.logs {
				if !strings.Contains(out.String(), l) {
					t.Errorf("log lacks %q:\n%s", l, out.String())
				}
			}
			for _, l := range tc.notLogs {
				if strings.Contains(out.String(), l) {
					t.Errorf("log has %q:\n%s", l, out.String())
				}
			}
		})
	}
}
