package rootdev

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/testimg"
	"github.com/streamroot/streamroot/internal/wanterr"
	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/nbd"
	"golang.org/x/sys/unix"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// imageServer serves /img.squashfs (with Range and an ETag, as nginx does)
// and, if man is not nil, /img.squashfs.manifest. A non-nil corrupt
// flips a byte of every answer that covers offset *corrupt.
func imageServer(t *testing.T, img, man []byte, corrupt *int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/img.squashfs":
			data := img
			if corrupt != nil {
				data = bytes.Clone(img)
				data[*corrupt] ^= 0xff
			}
			w.Header().Set("ETag", `"v1"`)
			http.ServeContent(w, r, "img.squashfs", time.Time{}, bytes.NewReader(data))
		case "/img.squashfs.manifest":
			if man == nil {
				http.NotFound(w, r)
				return
			}
			w.Write(man)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func liveConfig(t *testing.T, rawURL string) *bootcfg.Config {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return &bootcfg.Config{Root: bootcfg.Root{Kind: bootcfg.RootLive, URL: u, Arg: "root=live:" + rawURL}, Retry: 5 * time.Second}
}

// ram mode end to end against a real HTTP server: the image lands in
// RunDir/image, checked against each pin; a copy that fails a check is
// never left where the layers stage could mount it.
func TestOpenRAM(t *testing.T) {
	img := testimg.Random(3<<20+4321, 3)
	sum := sha256.Sum256(img)
	m, err := manifest.Build(bytes.NewReader(img), int64(len(img)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	man := m.Marshal()
	other := sha256.Sum256([]byte("another image"))
	bad := int64(2<<20 + 7)
	for _, tc := range []struct {
		name      string
		sha       []byte
		manifest  bool
		corrupt   *int64
		err, hint string
	}{
		{name: "no pin"},
		{name: "sha256", sha: sum[:]},
		{name: "manifest", manifest: true},
		{name: "both", sha: sum[:], manifest: true},
		{name: "sha256 mismatch", sha: other[:], err: "streamroot.sha256 wants", hint: sha256Hint},
		{name: "corrupt chunk", manifest: true, corrupt: &bad, err: "chunk 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := imageServer(t, img, man, tc.corrupt)
			cfg := liveConfig(t, srv.URL+"/img.squashfs")
			cfg.SHA256 = tc.sha
			if tc.manifest {
				d := manifest.Digest(man)
				cfg.Manifest = d[:]
			}
			mode, _, err := PlanMode(cfg)
			if err != nil || mode != bootcfg.FetchStream && mode != bootcfg.FetchRAM {
				t.Fatalf("PlanMode: %s %v", mode, err)
			}
			spec, err := NewSpec(context.Background(), cfg, bootcfg.FetchRAM, nil, quiet())
			if err != nil {
				t.Fatal(err)
			}
			run := t.TempDir()
			dev, err := Open(context.Background(), spec, Options{Log: quiet(), RunDir: run, Exe: "/nonexistent"})
			dst := filepath.Join(run, "image", "img.squashfs")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(hint.Of(err), tc.hint) {
					t.Fatalf("Open: %v (hint %q), want %q", err, hint.Of(err), tc.err)
				}
				if _, serr := os.Stat(dst); !errors.Is(serr, os.ErrNotExist) {
					t.Errorf("a copy that failed its check is left at %s", dst)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dev.Path())
			if err != nil || !bytes.Equal(got, img) || dev.File != dst || dev.Block != "" {
				t.Fatalf("device %+v: %v, same bytes %v", dev, err, bytes.Equal(got, img))
			}
			if dev.Mode != bootcfg.FetchRAM || dev.Size != int64(len(img)) || dev.ETag != `"v1"` || dev.Received < dev.Size {
				t.Errorf("device %+v", dev)
			}
			if dev.Fault(context.Background(), unix.EIO) != nil {
				t.Error("a RAM image reports a daemon fault")
			}
		})
	}
}

// The manifest is fetched and checked once, in NewSpec; the Spec PID 1
// sends the daemon decodes to the same manifest without its pin.
func TestNewSpec(t *testing.T) {
	img := testimg.Random(2<<20, 3)
	m, err := manifest.Build(bytes.NewReader(img), int64(len(img)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	man := m.Marshal()
	pin := manifest.Digest(man)
	other := sha256.Sum256([]byte("x"))
	srv := imageServer(t, img, man, nil)

	t.Run("round trip", func(t *testing.T) {
		cfg := liveConfig(t, srv.URL+"/img.squashfs")
		cfg.Manifest, cfg.SHA256, cfg.IOTimeout, cfg.CacheMiB = pin[:], m.SHA256[:], 7*time.Second, 32
		s, err := NewSpec(context.Background(), cfg, bootcfg.FetchStream, nil, quiet())
		if err != nil {
			t.Fatal(err)
		}
		if s.ParsedManifest() == nil || s.ParsedManifest().NumChunks() != 2 || s.Name != srv.URL+"/img.squashfs" {
			t.Fatalf("spec %+v", s)
		}
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(s); err != nil {
			t.Fatal(err)
		}
		d, err := decodeSpec(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if d.ParsedManifest().SHA256 != m.SHA256 || d.Mode != bootcfg.FetchStream || d.URL != s.URL ||
			d.IOTimeout != 7*time.Second || d.CacheMiB != 32 || !bytes.Equal(d.SHA256, m.SHA256[:]) {
			t.Errorf("decoded %+v, sent %+v", d, s)
		}
	})
	for _, tc := range []struct {
		name      string
		cfg       func() *bootcfg.Config
		err, hint string
	}{
		{"nbd root needs a manifest URL", func() *bootcfg.Config {
			return &bootcfg.Config{Root: bootcfg.Root{Kind: bootcfg.RootNBD, NBDServer: "10.0.0.1", NBDPort: 10809, Arg: "root=nbd:10.0.0.1:10809"}, Manifest: pin[:]}
		}, "needs streamroot.manifest.url=", "streamroot.manifest.url="},
		{"pins of two images", func() *bootcfg.Config {
			c := liveConfig(t, srv.URL+"/img.squashfs")
			c.Manifest, c.SHA256 = pin[:], other[:]
			return c
		}, "they pin different images", "streamroot manifest IMAGE"},
		{"manifest missing", func() *bootcfg.Config {
			c := liveConfig(t, srv.URL+"/none.squashfs")
			c.Manifest = pin[:]
			return c
		}, "manifest: ", "publish the manifest"},
		{"manifest of another image", func() *bootcfg.Config {
			c := liveConfig(t, srv.URL+"/img.squashfs")
			c.Manifest = other[:]
			return c
		}, "manifest " + srv.URL, "regenerate it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSpec(context.Background(), tc.cfg(), bootcfg.FetchStream, nil, quiet())
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(hint.Of(err), tc.hint) {
				t.Fatalf("NewSpec: %v (hint %q), want %q / %q", err, hint.Of(err), tc.err, tc.hint)
			}
		})
	}
}

// The size check both ways of opening share: a shortage falls back to lazy
// (or refuses an unverifiable sha256 pin), and a manifest must describe
// an image of the size the server has.
func TestFit(t *testing.T) {
	m := &manifest.Manifest{Size: 1 << 20, Chunk: 1 << 20}
	for _, tc := range []struct {
		name      string
		spec      Spec
		size      int64
		free      int64
		mode      bootcfg.FetchMode
		err, hint string
	}{
		{name: "fits", spec: Spec{Mode: bootcfg.FetchRAM}, size: 1 << 20, free: 1 << 30, mode: bootcfg.FetchRAM},
		{name: "no room on /run", spec: Spec{Mode: bootcfg.FetchRAM}, size: 1 << 20, free: 1 << 10, mode: bootcfg.FetchLazy},
		{name: "larger than RAM", spec: Spec{Mode: bootcfg.FetchStream}, size: 1 << 50, free: 1 << 62, mode: bootcfg.FetchLazy},
		{name: "lazy holds anything", spec: Spec{Mode: bootcfg.FetchLazy}, size: 1 << 50, free: 0, mode: bootcfg.FetchLazy},
		{name: "sha256 only cannot fall back", spec: Spec{Mode: bootcfg.FetchRAM, SHA256: make([]byte, 32), Name: "http://x/i"}, size: 1 << 50, free: 1 << 62,
			err: "http://x/i: the image (1073741824.0 MiB) does not fit in RAM", hint: "streamroot.manifest=sha256:"},
		{name: "manifest of another size", spec: Spec{Mode: bootcfg.FetchLazy, manifest: m, Name: "http://x/i"}, size: 2 << 20, free: 1 << 30,
			err: "http://x/i: the manifest is for an image of 1048576 bytes, the server has 2097152", hint: "regenerate the manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := tc.spec
			err := s.fit(tc.size, tc.free, slog.New(slog.NewTextHandler(&logs, nil)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(hint.Of(err), tc.hint) {
					t.Fatalf("fit: %v (hint %q), want %q", err, hint.Of(err), tc.err)
				}
				return
			}
			if err != nil || s.Mode != tc.mode {
				t.Fatalf("fit: mode %s, %v; want %s", s.Mode, err, tc.mode)
			}
			if fell := tc.spec.Mode != tc.mode; fell != strings.Contains(logs.String(), "falling back to streamroot.fetch=lazy") {
				t.Errorf("fell back %v, log:\n%s", fell, logs.String())
			}
		})
	}
}

// fakeNBD is an NBD server that answers every option with reply (type,
// payload) and counts its connections.
func fakeNBD(t *testing.T, reply uint32, payload []byte) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				be := binary.BigEndian
				var greet [18]byte
				be.PutUint64(greet[0:], 0x4e42444d41474943) // NBDMAGIC
				be.PutUint64(greet[8:], 0x49484156454F5054) // IHAVEOPT
				be.PutUint16(greet[16:], 1|2)               // fixed newstyle, no zeroes
				var hdr [16]byte
				if _, err := c.Write(greet[:]); err != nil {
					return
				}
				if _, err := io.ReadFull(c, hdr[:4]); err != nil { // client flags
					return
				}
				if _, err := io.ReadFull(c, hdr[:]); err != nil { // option header
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(be.Uint32(hdr[12:]))); err != nil {
					return
				}
				var rep [20]byte
				be.PutUint64(rep[0:], 0x3e889045565a9)
				be.PutUint32(rep[8:], be.Uint32(hdr[8:]))
				be.PutUint32(rep[12:], reply)
				be.PutUint32(rep[16:], uint32(len(payload)))
				c.Write(append(rep[:], payload...))
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String(), &conns
}

// The redial loop gives up at once on an export the server refuses (a
// typed error, not a message match), and keeps trying a server that is
// not ready until rd.retry.
func TestRedial(t *testing.T) {
	t.Run("refused export", func(t *testing.T) {
		addr, conns := fakeNBD(t, 1<<31|6, []byte("no such export"))
		start := time.Now()
		_, err := redial(context.Background(), addr, "disk", 20*time.Second, quiet())
		if !errors.Is(err, nbd.ErrRefused) || !strings.Contains(err.Error(), `server refused export "disk"`) {
			t.Fatalf("redial: %v", err)
		}
		if n := conns.Load(); n != 1 || time.Since(start) > 10*time.Second {
			t.Errorf("%d connections in %s: a refused export was asked again", n, time.Since(start))
		}
	})
	t.Run("server error is retried", func(t *testing.T) {
		addr, conns := fakeNBD(t, 1<<31|3, []byte("busy")) // NBD_REP_ERR_INVALID: not a refusal
		start := time.Now()
		_, err := redial(context.Background(), addr, "disk", 2500*time.Millisecond, quiet())
		if err == nil || errors.Is(err, nbd.ErrRefused) {
			t.Fatalf("redial: %v", err)
		}
		if n := conns.Load(); n < 2 || time.Since(start) < 2*time.Second {
			t.Errorf("%d connections in %s: a failing server was not asked again until rd.retry", n, time.Since(start))
		}
	})
}

// openSource pins an HTTP image (size, validator) and names it without
// its password.
func TestOpenSourceHTTP(t *testing.T) {
	img := testimg.Random(1<<20, 3)
	srv := imageServer(t, img, nil, nil)
	u, _ := url.Parse(srv.URL + "/img.squashfs")
	u.User = url.UserPassword("op", "s3cret")
	src, err := openSource(context.Background(), &Spec{URL: u.String(), Retry: 5 * time.Second}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if src.Size() != int64(len(img)) || src.etag != `"v1"` || src.http == nil || strings.Contains(src.server, "s3cret") {
		t.Fatalf("source size %d etag %s server %s", src.Size(), src.etag, src.server)
	}
	p := make([]byte, 4096)
	if err := src.ReadAt(context.Background(), p, 8192); err != nil || !bytes.Equal(p, img[8192:8192+4096]) {
		t.Fatalf("ReadAt: %v", err)
	}
	if _, err := openSource(context.Background(), &Spec{}, quiet()); err == nil {
		t.Error("a Spec without a source was opened")
	}
}

// sized is a source of any claimed size.
type sized int64

func (s sized) Size() int64                                 { return int64(s) }
func (s sized) ReadAt(context.Context, []byte, int64) error { return io.ErrUnexpectedEOF }

// newCache refuses what no image is, and a manifest of another image,
// before the kernel sees a byte; faults are recorded in the run directory.
func TestNewCache(t *testing.T) {
	m := &manifest.Manifest{Size: 1 << 20, Chunk: 1 << 20, Chunks: make([][32]byte, 1)}
	for _, tc := range []struct {
		name      string
		spec      Spec
		src       source
		err, hint string
	}{
		{"zero size", Spec{Mode: bootcfg.FetchLazy}, source{Source: sized(0), server: "NBD server x:1, export \"d\""}, `NBD server x:1, export "d": blockd: the source reports an image of 0 bytes`, "no image has"},
		{"manifest of another size", Spec{Mode: bootcfg.FetchLazy, manifest: m, Name: "root=nbd:x:1"}, source{Source: sized(2 << 20)}, "the manifest is for an image of 1048576 bytes, the server has 2097152", "regenerate the manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := newCache(&tc.spec, &tc.src, nil, nil, quiet())
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(hint.Of(err), tc.hint) {
				t.Fatalf("newCache: %v (hint %q), want %q", err, hint.Of(err), tc.err)
			}
		})
	}
}

// The CA bundle is loaded for an https server only, and a bad one fails
// the options rather than a later handshake.
func TestSpecHTTPOptions(t *testing.T) {
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	dir := t.TempDir()
	bundle := caBundle(t, dir, srv)
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificates here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := x509.NewCertPool()
	want.AddCert(srv.Certificate())
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name     string
		https    bool
		bundle   string
		insecure bool
		wantCAs  bool
		err      string
	}{
		{"http needs no bundle", false, filepath.Join(dir, "missing.pem"), false, false, ""},
		{"https loads it", true, bundle, false, true, ""},
		{"insecure still loads it", true, bundle, true, true, ""},
		{"https without a bundle", true, filepath.Join(dir, "missing.pem"), false, false, "no CA bundle"},
		{"a bundle without certificates", true, empty, false, false, "holds no certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Spec{Retry: 7 * time.Second, Insecure: tc.insecure, CABundle: tc.bundle}
			opts, err := s.httpOptions(tc.https, log)
			if wanterr.Check(t, err, tc.err) {
				return
			}
			if opts.Stall != s.Retry || opts.Log != log || opts.InsecureSkipVerify != tc.insecure || opts.Pin != nil {
				t.Errorf("options %+v, want the Spec's retry, the log and insecure %v", opts, tc.insecure)
			}
			switch {
			case !tc.wantCAs && opts.RootCAs != nil:
				t.Error("a CA pool for a plain http server")
			case tc.wantCAs && !opts.RootCAs.Equal(want):
				t.Error("RootCAs are not the bundle's certificate")
			}
		})
	}
}

// The manifest's URL is tested for https as net/url reads it: written
// HTTPS://, it is still checked against the initramfs's CA bundle (not
// the system roots, which do not hold a lab's CA).
func TestGetSmallSchemeCase(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "manifest") }))
	defer srv.Close()
	bundle := caBundle(t, t.TempDir(), srv)
	s := &Spec{Retry: 5 * time.Second, CABundle: bundle}
	for _, u := range []string{srv.URL, "HTTPS" + strings.TrimPrefix(srv.URL, "https")} {
		got, err := s.getSmall(t.Context(), u+"/m", 1<<10, slog.New(slog.DiscardHandler))
		if err != nil || string(got) != "manifest" {
			t.Errorf("%s: %q, %v", u, got, err)
		}
	}
}

// caBundle writes srv's certificate as dir/ca.pem, the CA bundle that
// trusts it, and returns its path.
func caBundle(t *testing.T, dir string, srv *httptest.Server) string {
	t.Helper()
	bundle := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}
