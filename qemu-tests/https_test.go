package qemutests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// siteCA makes a CA and a server certificate signed by it for the given
// IPs/names, written as PEM files into dir.
func siteCA(t *testing.T, dir string, ips []string, names []string) (caPEM, certPEM, keyPEM string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "streamroot test site CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "boot server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: names}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", der), write("server.key", "EC PRIVATE KEY", kder)
}

// initramfsWithCA builds the initramfs again with the site CA appended to
// its bundle (make initramfs EXTRA_CA=…), from the same init and modules.
func initramfsWithCA(t *testing.T, ca string) string {
	t.Helper()
	return buildInitramfs(t, "-extra-ca", ca)
}

// buildInitramfs runs the builder as make initramfs does, with extra flags.
func buildInitramfs(t *testing.T, flags ...string) string {
	t.Helper()
	mods, _ := filepath.Glob("../build/kernel/lib/modules/*")
	if len(mods) == 0 {
		t.Fatal("no ../build/kernel/lib/modules: run make kernel")
	}
	out := filepath.Join(t.TempDir(), "initramfs.img")
	args := append([]string{"run", "../builder/cmd/builder", "-init", "../build/init", "-moddir", mods[0], "-o", out}, flags...)
	cmd := exec.Command("go", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("builder: %v\n%s", err, b)
	}
	return out
}

// HTTPS with a site CA in the initramfs boots; a certificate the initramfs
// does not trust stops the boot naming the host and the reason; rd.noverifyssl
// boots with a loud warning.
func TestHTTPS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, cert, key := siteCA(t, dir, []string{"10.77.0.1"}, nil)
	initrd := initramfsWithCA(t, ca)
	_, otherCert, otherKey := siteCA(t, t.TempDir(), nil, []string{"elsewhere.example"})

	for _, tc := range []struct {
		name, cert, key, extra string
		ok                     bool
		want                   []string
	}{
		{"trusted", cert, key, "", true, nil},
		{"wrong-host", otherCert, otherKey, "", false, []string{"https://10.77.0.1/plain.squashfs", "certificate"}},
		{"noverifyssl", otherCert, otherKey, "rd.noverifyssl", true, []string{"certificates are NOT checked"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := setup(t, netOptions{nginx: harness.NginxOptions{
				Extra: "listen 10.77.0.1:443 ssl; ssl_certificate " + tc.cert + "; ssl_certificate_key " + tc.key + ";",
			}})
			n.serve(t, "plain.squashfs", n.fx.Plain)
			url := "https://10.77.0.1/plain.squashfs"
			if tc.ok {
				vm := n.boot(t, harness.BootOptions{Initramfs: initrd, Append: "ip=dhcp root=live:" + url + " " + tc.extra})
				r := vm.ExpectReport(t)
				checkRoot(t, r, "plain")
				for _, w := range tc.want {
					if !strings.Contains(vm.Console(), w) {
						t.Errorf("console lacks %q", w)
					}
				}
				return
			}
			vm := n.boot(t, harness.BootOptions{Initramfs: initrd, Append: harness.FailureCmdline("live:"+url, "rd.retry=10")})
			vm.ExpectFailure(t, "fetch", tc.want...)
		})
	}
}
