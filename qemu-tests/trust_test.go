package qemutests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/trust"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// Signed images (docs/trust.md): with keys baked into the initramfs and no
// pin on the kernel line, an image whose manifest a baked key signed boots
// in any mode; anything else is refused in the fetch stage, before the
// image itself is read, naming the key and what failed. Seven busybox
// boots share one initramfs (two keys for rotation, minimum version 2).
func TestTrust(t *testing.T) {
	t.Parallel()
	env.Require(t)
	oldPub, oldKey := trustKey(t)
	newPub, newKey := trustKey(t)
	_, strayKey := trustKey(t)
	initrd := buildInitramfs(t, "-trust-key", oldPub.String()+","+newPub.String(), "-min-version", "2")
	oldID, newID, strayID := trust.KeyID(oldPub.ID()), trust.KeyID(newPub.ID()), trust.KeyID(strayKey.ID())
	now := time.Now()
	valid := func(v uint64) trust.Statement {
		return trust.Statement{Version: v, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	}
	expired := trust.Statement{Version: 3, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}

	for _, tc := range []struct {
		name   string
		key    minisign.PrivateKey
		st     trust.Statement
		tamper bool   // serve another (valid) manifest of the same image than the one signed
		args   string // more kernel arguments
		want   []string
	}{
		{"signed-lazy", oldKey, valid(3), false, "streamroot.fetch=lazy", nil},
		{"rotation", newKey, valid(4), false, "", nil},
		{"tampered", oldKey, valid(3), true, "rd.live.ram=1", []string{"signature by key " + oldID + " refused", "does not match the manifest"}},
		{"wrong-key", strayKey, valid(3), false, "streamroot.fetch=stream", []string{"signature by key " + strayID + " refused", "not a trusted key", oldID, newID}},
		{"expired", newKey, expired, false, "streamroot.fetch=lazy", []string{"signature by key " + newID + " refused", "expired at"}},
		{"rollback", newKey, valid(1), false, "", []string{"signature by key " + newID + " refused", "version 1 is below the minimum 2 set by the initramfs (rollback)"}},
		// The kernel line narrows: only the old key, and at least version 4.
		{"narrowed", oldKey, valid(3), false, "streamroot.trust=" + strings.ToLower(oldID) + " streamroot.min_version=4",
			[]string{"signature by key " + oldID + " refused", "version 3 is below the minimum 4 set by streamroot.min_version="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := setup(t, netOptions{})
			url := n.serve(t, "plain.squashfs", n.fx.Plain)
			signed, served := signedManifest(t, n.fx.Plain, tc.key, tc.st, tc.tamper)
			n.serve(t, "plain.squashfs.manifest", served)
			n.serve(t, "plain.squashfs.manifest"+trust.SigSuffix, signed+trust.SigSuffix)
			if tc.want == nil {
				vm := n.boot(t, harness.BootOptions{Initramfs: initrd, Append: "ip=dhcp root=live:" + url + " " + tc.args})
				r := vm.ExpectReport(t)
				checkRoot(t, r, "plain")
				con := vm.Console()
				if !strings.Contains(con, "manifest signature verified") || !strings.Contains(con, trust.KeyID(tc.key.ID())) {
					t.Error("the console does not say which key the signature was verified with")
				}
				if !strings.Contains(con, "every chunk is verified against the manifest") && !strings.Contains(con, "manifest verified") {
					t.Error("the signed manifest did not become the image's chunk manifest")
				}
				return
			}
			vm := n.boot(t, harness.BootOptions{Initramfs: initrd, Append: harness.FailureCmdline("live:"+url, tc.args)})
			vm.ExpectFailure(t, "fetch", tc.want...)
			if reqs := n.web.Requests("/plain.squashfs"); len(reqs) != 0 {
				t.Errorf("the guest read the image %d times before refusing its signature", len(reqs))
			}
			checkConsoleLacks(t, vm, "the image was used before its signature was refused", "root assembled", "block daemon started")
		})
	}
}

func trustKey(t *testing.T) (minisign.PublicKey, minisign.PrivateKey) {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// signedManifest writes img's manifest and its signature by key (st with
// the image's size) and returns the signed manifest's path (the signature
// is that + trust.SigSuffix) and the manifest to serve: the signed one, or
// with tamper another valid manifest of the same image (another chunk
// size), as a server that swapped it would serve.
func signedManifest(t *testing.T, img string, key minisign.PrivateKey, st trust.Statement, tamper bool) (string, string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	build := func(chunk int64) []byte {
		m, err := manifest.Build(f, fileSize(t, img), chunk)
		if err != nil {
			t.Fatal(err)
		}
		st.Size = m.Size
		return m.Marshal()
	}
	dir := t.TempDir()
	data := build(1 << 20)
	sig, err := trust.Sign(key, data, st)
	if err != nil {
		t.Fatal(err)
	}
	signed := filepath.Join(dir, "signed.manifest")
	for p, b := range map[string][]byte{signed: data, signed + trust.SigSuffix: sig} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !tamper {
		return signed, signed
	}
	other := filepath.Join(dir, "other.manifest")
	if err := os.WriteFile(other, build(manifest.MinChunk), 0o644); err != nil {
		t.Fatal(err)
	}
	return signed, other
}
