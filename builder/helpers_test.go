package builder

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/streamroot/streamroot/builder/buildertest"
	"github.com/streamroot/streamroot/pkg/kmod"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"
)

// testCertPEM returns a freshly generated self-signed certificate, and
// its private key in PEM for the "key in a CA file" case.
func testCertPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "streamroot test CA"},
		NotBefore:             time.Unix(0, 0),
		NotAfter:              time.Unix(1<<32, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func moduleBody(name string) []byte { return []byte("\x7fELF fake module " + name) }

// signedModuleBody is moduleBody with a (fake) appended signature: the
// PKCS#7 blob, struct module_signature and the marker.
func signedModuleBody(name string) []byte {
	return append(moduleBody(name), "\x30\x82fake pkcs7 of "+name+"\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x14"+kmod.SignatureMarker...)
}

func xzBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf) // CRC64, as kernel builds use
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const testKver = "6.1.0-test"

// writeModTree creates a small depmod'ed tree: a NIC driver with deps,
// an xz-compressed squashfs, ext4 with a softdep on an alias, a builtin.
func writeModTree(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(root, "lib", "modules", testKver)
	mods := map[string][]byte{
		"kernel/drivers/net/virtio_net.ko":     signedModuleBody("virtio_net"),
		"kernel/drivers/virtio/virtio.ko":      moduleBody("virtio"),
		"kernel/drivers/virtio/virtio_pci.ko":  moduleBody("virtio_pci"),
		"kernel/fs/squashfs/squashfs.ko.xz":    xzBytes(t, signedModuleBody("squashfs")),
		"kernel/fs/ext4/ext4.ko":               moduleBody("ext4"),
		"kernel/fs/jbd2/jbd2.ko":               moduleBody("jbd2"),
		"kernel/crypto/crc32c_generic.ko":      moduleBody("crc32c_generic"),
		"kernel/drivers/net/ethernet/e1000.ko": moduleBody("e1000"),
	}
	for p, b := range mods {
		buildertest.WriteFile(t, filepath.Join(dir, p), b)
	}
	buildertest.WriteFile(t, filepath.Join(dir, "modules.dep"), []byte(`kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko
kernel/fs/squashfs/squashfs.ko.xz:
kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/net/ethernet/e1000.ko:
`))
	buildertest.WriteFile(t, filepath.Join(dir, "modules.alias"), []byte("alias crypto-crc32c crc32c_generic\nalias virtio:d00000001v* virtio_net\nalias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000\n"))
	buildertest.WriteFile(t, filepath.Join(dir, "modules.softdep"), []byte("softdep ext4 pre: crypto-crc32c\n"))
	buildertest.WriteFile(t, filepath.Join(dir, "modules.builtin"), []byte("kernel/net/packet/af_packet.ko\nkernel/drivers/block/loop.ko\n"))
	buildertest.WriteFile(t, filepath.Join(dir, "modules.builtin.modinfo"), []byte("loop.alias=block-major-7-*\x00"))
	return dir
}

// testOptions returns Options for a complete build from fakes in dir.
func testOptions(t *testing.T, dir string) Options {
	t.Helper()
	cert, _ := testCertPEM(t)
	return Options{
		Init:     buildertest.WriteFile(t, filepath.Join(dir, "in", "init"), buildertest.ELF("", "init")),
		KVer:     testKver,
		ModDir:   writeModTree(t, filepath.Join(dir, "in")),
		NIC:      []string{"virtio_net", "nosuchnic", "e1000"},
		Modules:  []string{"virtio-pci", "squashfs", "ext4", "af_packet", "loop"},
		Shell:    buildertest.WriteFile(t, filepath.Join(dir, "in", "busybox"), buildertest.ELF("", "busybox")),
		CA:       buildertest.WriteFile(t, filepath.Join(dir, "in", "ca.crt"), cert),
		Compress: "none",
		Out:      filepath.Join(dir, "out", "initramfs.img"),
	}
}

// testLogger returns a logger writing into buf.
func testLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// decompress undoes the builder's compression of b.
func decompress(t *testing.T, kind string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch {
	case kind == "none":
		return b
	case kind == "lz4":
		// pierrec's reader reads the legacy frame (chunks up to 8 MiB,
		// which a compressible test archive stays under).
		r = lz4.NewReader(bytes.NewReader(b))
	case strings.HasPrefix(kind, "zstd"):
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	case kind == "xz":
		xr, err := xz.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = xr
	case kind == "gzip":
		gr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = gr
	default:
		t.Fatalf("unknown compression %q", kind)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompress %s: %v", kind, err)
	}
	return out
}

// archive is a cpio archive read back with u-root's reader.
type archive struct {
	raw   []byte
	order []string
	recs  map[string]cpio.Record
}

func readArchive(t *testing.T, file, kind string) archive {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	a := archive{raw: decompress(t, kind, b), recs: make(map[string]cpio.Record)}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(a.raw)))
	if err != nil {
		t.Fatalf("reading cpio: %v", err)
	}
	for _, r := range recs {
		if _, dup := a.recs[r.Name]; dup {
			t.Errorf("duplicate record %s", r.Name)
		}
		a.order = append(a.order, r.Name)
		a.recs[r.Name] = r
	}
	return a
}

func (a archive) content(t *testing.T, name string) []byte {
	t.Helper()
	r, ok := a.recs[name]
	if !ok {
		t.Fatalf("%s not in archive", name)
	}
	b := make([]byte, r.FileSize)
	if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// checkModuleIndex checks that every file modules.dep names is in the
// archive, uncompressed.
func checkModuleIndex(t *testing.T, a archive, kver string) {
	t.Helper()
	base := path.Join("lib/modules", kver)
	dep := string(a.content(t, base+"/modules.dep"))
	if dep == "" {
		t.Fatal("empty modules.dep")
	}
	for _, line := range strings.Split(strings.TrimSpace(dep), "\n") {
		for _, f := range strings.Fields(strings.Replace(line, ":", " ", 1)) {
			if !strings.HasSuffix(f, ".ko") {
				t.Errorf("modules.dep names %s, not a .ko", f)
			}
			if _, ok := a.recs[path.Join(base, f)]; !ok {
				t.Errorf("modules.dep names %s, missing from the archive", f)
			}
		}
	}
	for _, n := range a.order {
		if strings.HasSuffix(n, ".ko.xz") || strings.HasSuffix(n, ".ko.zst") || strings.HasSuffix(n, ".ko.gz") {
			t.Errorf("compressed module %s in archive", n)
		}
	}
}
