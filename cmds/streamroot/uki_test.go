package main

import (
	"bytes"
	"debug/pe"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUKI packs a UKI on systemd's stub (where installed), unsigned and
// signed with a throwaway key, and checks the sections and the signature.
func TestUKI(t *testing.T) {
	if _, err := os.Stat(ukiStub); err != nil {
		t.Skip("systemd-boot-efi is not installed")
	}
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initramfs.img")
	for _, f := range [][2]string{{kernel, "kernel bytes"}, {initrd, "initramfs bytes"}} {
		if err := os.WriteFile(f[0], []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "streamroot.efi")
	code, stdout, errs := runCmd(t, "uki", "--kernel", kernel, "--initramfs", initrd, "--cmdline", "ip=dhcp root=live:http://10.0.0.1/x.img", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(stdout, "unsigned") {
		t.Errorf("stdout does not say the UKI is unsigned: %q", stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{".linux": "kernel bytes", ".initrd": "initramfs bytes", ".cmdline": "ip=dhcp root=live:http://10.0.0.1/x.img\x00"} {
		s := f.Section(name)
		if s == nil {
			t.Fatalf("no section %s", name)
		}
		data, _ := s.Data()
		if got := string(data[:s.VirtualSize]); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	if _, err := exec.LookPath("sbsign"); err != nil {
		t.Skip("sbsigntool is not installed")
	}
	key, cert := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem")
	if b, err := exec.Command("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=streamroot test",
		"-days", "1", "-keyout", key, "-out", cert).CombinedOutput(); err != nil {
		t.Skipf("openssl cannot make a test key: %v: %s", err, b)
	}
	code, stdout, errs = runCmd(t, "uki", "--kernel", kernel, "--initramfs", initrd, "--cmdline", "quiet", "--key", key, "--cert", cert, "-o", out)
	if code != 0 {
		t.Fatalf("signed: exit %d: %s", code, errs)
	}
	if !strings.Contains(stdout, "signed with "+cert) {
		t.Errorf("stdout does not say it signed: %q", stdout)
	}
	if b, err := exec.Command("sbverify", "--cert", cert, out).CombinedOutput(); err != nil {
		t.Errorf("sbverify: %v: %s", err, b)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestUKIUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--initramfs", "i", "--cmdline", "x", "-o", "o"}, "--kernel is required"},
		{[]string{"--kernel", "k", "--initramfs", "i", "--cmdline", "x", "-o", "o", "--key", "k"}, "--key and --cert go together"},
		{[]string{"--kernel", "k", "--initramfs", "i", "--cmdline", strings.Repeat("a", 2048), "-o", "o"}, "the kernel keeps only 2047"},
		{[]string{"--kernel", "k", "--initramfs", "i", "--cmdline", "a\nb", "-o", "o"}, "newline"},
		{[]string{"--kernel", "k", "--initramfs", "i", "--cmdline", "x", "-o", "o", "extra"}, "unexpected argument"},
	} {
		code, _, errs := runCmd(t, append([]string{"uki"}, c.args...)...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("uki %q: exit %d, %q; want 2 and %q", c.args, code, errs, c.want)
		}
	}
	code, _, errs := runCmd(t, "uki", "--kernel", "k", "--initramfs", "i", "--cmdline", "x", "-o", "o", "--stub", "/nonexistent")
	if code != 1 || !strings.Contains(errs, "systemd-boot-efi") {
		t.Errorf("a missing stub: exit %d, %q; want 1 and a hint naming systemd-boot-efi", code, errs)
	}
}
