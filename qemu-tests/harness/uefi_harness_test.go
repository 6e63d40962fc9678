package harness

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/internal/wanterr"
	"github.com/streamroot/streamroot/pkg/uki"
)

// signedModule is body with a signature block appended the way
// scripts/sign-file does it: signer name, key id, signature, the 12-byte
// struct module_signature, the marker.
func signedModule(body, signer, keyID, sig []byte) []byte {
	info := make([]byte, 12)
	info[0], info[1], info[2] = 0, 0, 2 // PKCS#7
	info[3], info[4] = byte(len(signer)), byte(len(keyID))
	binary.BigEndian.PutUint32(info[8:], uint32(len(sig)))
	return slices.Concat(body, signer, keyID, sig, info, []byte(moduleSigMagic))
}

func TestStripModuleSignature(t *testing.T) {
	body := []byte("\x7fELF module body")
	for _, tc := range []struct {
		name    string
		in      []byte
		want    []byte
		wantErr string
	}{
		{"PKCS#7", signedModule(body, nil, nil, bytes.Repeat([]byte{0xaa}, 700)), body, ""},
		{"signer and key id", signedModule(body, []byte("signer"), []byte("kid"), []byte("sig")), body, ""},
		{"unsigned", body, nil, "no appended signature"},
		{"marker only", []byte(moduleSigMagic), nil, "at least 12"},
		{"sig_len too big", func() []byte {
			b := signedModule(body, nil, nil, []byte("sig"))
			binary.BigEndian.PutUint32(b[len(b)-len(moduleSigMagic)-4:], 1<<20)
			return b
		}(), nil, "does not fit"},
		{"sig_len zero", signedModule(body, nil, nil, nil), nil, "does not fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := StripModuleSignature(tc.in)
			if wanterr.Check(t, err, tc.wantErr) {
				return
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("StripModuleSignature = %q; want %q", got, tc.want)
			}
		})
	}
	// A module of the kernel the tests boot, when make kernel has run.
	kos, _ := filepath.Glob(resolvePath("build/kernel/lib/modules/*/kernel/drivers/net/virtio_net.ko"))
	if len(kos) == 0 {
		t.Log("no build/kernel modules: real-module case skipped")
		return
	}
	ko, err := os.ReadFile(kos[0])
	if err != nil {
		t.Fatal(err)
	}
	bare, err := StripModuleSignature(ko)
	if err != nil {
		t.Fatalf("%s: %v", kos[0], err)
	}
	if !bytes.HasPrefix(bare, []byte("\x7fELF")) || len(ko)-len(bare) < 200 || bytes.Contains(bare, []byte("~Module signature")) {
		t.Errorf("%s: stripped %d of %d bytes, want an ELF without the signature", kos[0], len(ko)-len(bare), len(ko))
	}
}

func TestParseUEFIReport(t *testing.T) {
	con := "noise\nSTREAMROOT-UEFI {\"efi\":true,\"secureboot\":-1,\"boot_params_secure_boot\":3,\"lockdown\":\"none [integrity] confidentiality\"," +
		"\"tainted\":\"0\",\"modules\":\"squashfs: virtio_net:E\",\"root_lib_modules\":false}\nmore\n"
	r, err := ParseUEFIReport(con)
	if err != nil {
		t.Fatal(err)
	}
	if !r.EFI || r.SecureBoot != -1 || r.BootParamsSecureBoot != 3 || r.LockdownMode() != "integrity" || r.RootLibModules {
		t.Errorf("ParseUEFIReport = %+v", *r)
	}
	if taint, ok := r.Modules["virtio_net"]; !ok || taint != "E" || len(r.Modules) != 2 {
		t.Errorf("modules = %v, want squashfs and virtio_net (taint E)", r.Modules)
	}
	if (&UEFIReport{Lockdown: "none integrity"}).LockdownMode() != "" {
		t.Errorf("a lockdown line without a selected mode gave a mode")
	}
	for _, bad := range []string{"no line\n", "STREAMROOT-UEFI {\"efi\":tru}\n"} {
		if _, err := ParseUEFIReport(bad); err == nil {
			t.Errorf("ParseUEFIReport(%q) succeeded", bad)
		}
	}
}

func TestUEFIQEMUArgs(t *testing.T) {
	if err := CheckUEFIHost(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		u          UEFI
		code, tmpl string
		want, not  []string
	}{
		{UEFI{}, OVMFCode, OVMFVars, []string{"name=opt/org.tianocore/IPv6PXESupport,string=no"}, []string{"q35,smm=on", "IPv4PXESupport"}},
		{UEFI{SecureBoot: true, HTTPOnly: true}, OVMFCodeSecure, OVMFVarsMS,
			[]string{"q35,smm=on", "driver=cfi.pflash01,property=secure,value=on", "name=opt/org.tianocore/IPv4PXESupport,string=no"}, nil},
	} {
		vars := filepath.Join(dir, "vars.fd")
		args, err := tc.u.qemuArgs(vars)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range append(tc.want, "if=pflash,format=raw,unit=0,readonly=on,file="+tc.code, "if=pflash,format=raw,unit=1,file="+vars) {
			if !slices.Contains(args, w) {
				t.Errorf("%+v: args %q lack %q", tc.u, args, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(strings.Join(args, " "), n) {
				t.Errorf("%+v: args %q have %q", tc.u, args, n)
			}
		}
		got, _ := os.ReadFile(vars)
		want, _ := os.ReadFile(tc.tmpl)
		if len(want) == 0 || !bytes.Equal(got, want) {
			t.Errorf("%+v: the variable store is not a fresh copy of %s", tc.u, tc.tmpl)
		}
	}
}

// TestTamperUKISection: exactly one byte changes, inside the named
// section's data (for .cmdline: its text, not the NUL after it).
func TestTamperUKISection(t *testing.T) {
	stub, err := os.ReadFile(UKIStub)
	if err != nil {
		t.Skip("systemd-boot-efi is not installed")
	}
	img, err := uki.Build(stub, uki.Sections([]byte("kernel"), []byte("initrd"), "console=ttyS0"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a.efi"), filepath.Join(dir, "b.efi")
	if err := os.WriteFile(src, img, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		section string
		want    []byte
	}{{".cmdline", []byte("console=ttyS1\x00")}, {".initrd", []byte("hnitrd")}} {
		if err := TamperUKISection(src, dst, c.section); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		var diff []int
		for i := range img {
			if img[i] != got[i] {
				diff = append(diff, i)
			}
		}
		if len(diff) != 1 || len(got) != len(img) || !bytes.Contains(got, c.want) {
			t.Errorf("%s: bytes %v changed, want one, making %q", c.section, diff, c.want)
		}
	}
	if err := TamperUKISection(src, dst, ".nosuch"); err == nil {
		t.Errorf("no error for a missing section")
	}
}

// TestHTTPBoot6KeaClasses: the class matches the vendor class EDK2's HTTP
// Boot sends (option 16 payload: enterprise 343, length, the class string)
// and not PXE's, and answers with option 16 laid out as EDK2 reads it
// (HTTPClient at bytes 6-15, the length field saying 10) and the URL.
func TestHTTPBoot6KeaClasses(t *testing.T) {
	const url = "http://[fd00:77::1]/streamroot.efi"
	classes := HTTPBoot6KeaClasses(url)
	if len(classes) != 1 {
		t.Fatalf("%d classes, want 1", len(classes))
	}
	c := classes[0]
	// Kea's substring(option[16].hex, start, length) on the client's payload.
	m := regexp.MustCompile(`^substring\(option\[16\]\.hex,(\d+),(\d+)\) == '([^']*)'$`).FindStringSubmatch(c["test"].(string))
	if m == nil {
		t.Fatalf("test %q is not the substring match this test reads", c["test"])
	}
	start, _ := strconv.Atoi(m[1])
	n, _ := strconv.Atoi(m[2])
	vendorClass := func(class string) []byte {
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint32(nil, 343), uint16(len(class))) // enterprise, length
	}
	for _, tc := range []struct {
		class string
		match bool
	}{
		{"HTTPClient:Arch:00016:UNDI:003001", true},
		{"PXEClient:Arch:00007:UNDI:003016", false},
	} {
		p := append(vendorClass(tc.class), tc.class...)
		if got := len(p) >= start+n && string(p[start:start+n]) == m[3]; got != tc.match {
			t.Errorf("class test on %q: %v, want %v", tc.class, got, tc.match)
		}
	}
	var gotURL string
	var vc []byte
	for _, o := range c["option-data"].([]map[string]any) {
		switch o["name"] {
		case "bootfile-url":
			gotURL = o["data"].(string)
		case "vendor-class":
			var err error
			if vc, err = hex.DecodeString(o["data"].(string)); err != nil || o["csv-format"] != false {
				t.Errorf("vendor-class data %q (csv-format %v) is not raw hex: %v", o["data"], o["csv-format"], err)
			}
		}
	}
	if gotURL != url {
		t.Errorf("bootfile-url %q, want %q", gotURL, url)
	}
	if want := append(vendorClass("HTTPClient"), "HTTPClient"...); !bytes.Equal(vc, want) {
		t.Errorf("vendor-class payload % x, want % x", vc, want)
	}
}
