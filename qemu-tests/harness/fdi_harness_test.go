package harness

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The stand-in FDI's scripts parse under dash, the shell the Debian root
// runs them with.
func TestFDIScriptsSyntax(t *testing.T) {
	if _, err := exec.LookPath("dash"); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	for name, s := range map[string]string{"fdi-report": FDIReportScript, "nm-prepare": FDIPrepareScript} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("dash", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: dash -n: %v\n%s", name, err, out)
		}
	}
}

// nm-prepare writes the primary profile keyed by BOOTIF's MAC, as the
// FDI's nm-configure does, lowercase with colons whatever the case and
// the hardware type BOOTIF was written with.
func TestFDIPrepareProfile(t *testing.T) {
	if _, err := exec.LookPath("dash"); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	// Run against a copy whose paths point into dir, never at the host's.
	s := strings.NewReplacer("/proc/cmdline", filepath.Join(dir, "cmdline"),
		"/etc/NetworkManager/system-connections/primary", filepath.Join(dir, "primary")).Replace(FDIPrepareScript)
	if !strings.Contains(s, dir) {
		t.Fatal("the script's paths were not redirected")
	}
	p := filepath.Join(dir, "nm-prepare")
	os.WriteFile(p, []byte(s), 0o755)
	os.WriteFile(filepath.Join(dir, "cmdline"), []byte("ro BOOTIF=01-52-54-00-AB-cd-EF proxy.type=foreman\n"), 0o644)
	if out, err := exec.Command("dash", p).CombinedOutput(); err != nil {
		t.Fatalf("nm-prepare: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "primary"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"id=primary\n", "mac-address=52:54:00:ab:cd:ef\n", "autoconnect-priority=1\n", "method=auto\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("primary profile lacks %q:\n%s", want, b)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "primary")); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("primary profile mode %v, want 0600 (NetworkManager ignores others)", st.Mode())
	}
	if strings.Contains(string(b), "dhcp-client-id") {
		t.Error("the FDI's primary profile sets no client id")
	}
}

func TestFDIPXELinuxEntry(t *testing.T) {
	e := FDIPXELinuxEntry("", "console=ttyS0")
	for _, want := range []string{"\nKERNEL boot/fdi-image/vmlinuz0\n", "\nAPPEND " + ForemanTemplateAppend + " console=ttyS0\n", "\nIPAPPEND 2\n"} {
		if !strings.Contains(e, want) {
			t.Errorf("entry lacks %q:\n%s", want, e)
		}
	}
	u := FDIPXELinuxEntry("root=live:http://s/d.iso", "")
	if strings.Contains(u, "root=live:/fdi.iso") || !strings.Contains(u, " root=live:http://s/d.iso ") || !strings.HasSuffix(strings.Split(u, "\n")[3], "proxy.type=foreman") {
		t.Errorf("URL entry:\n%s", u)
	}
}

func TestFindFDIReport(t *testing.T) {
	b := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	con := "noise\nFDI-REPORT {\"kernel\":\"6.1.0-47-amd64\",\"primary\":true,\"waited\":7,\"data_sha256\":\"ab\",\"modprobe\":true,\"dev_root\":\"\"," +
		"\"modules_b64\":\"" + b("kernel\nmodules.dep\n") + "\",\"lib_b64\":\"" + b("lrwxrwxrwx /lib -> usr/lib") + "\",\"live_b64\":\"\",\"nm_log_b64\":\"" + b("dhcp4 (ens3): state changed") + "\"}\nmore\n"
	r, ok, err := FindFDIReport(con)
	if err != nil || !ok {
		t.Fatalf("FindFDIReport: %v %v", ok, err)
	}
	if r.Kernel != "6.1.0-47-amd64" || !r.Primary || r.Waited != 7 || !r.Modprobe || !strings.Contains(r.Modules, "modules.dep") ||
		!strings.Contains(r.Lib, "-> usr/lib") || !strings.Contains(r.NMLog, "dhcp4") {
		t.Errorf("report %+v", r)
	}
	if _, ok, _ := FindFDIReport("STREAMROOT-REPORT {}\n"); ok {
		t.Error("a report line of another kind parsed")
	}
	if _, ok, err := FindFDIReport("FDI-REPORT {\"kernel\":\"x\",\"modules_b64\":\"!!\"}\n"); !ok || err == nil {
		t.Error("bad base64 accepted")
	}
}
