package handover

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/pkg/netup"
)

func lease(id []byte) *netup.Lease {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	return &netup.Lease{
		Iface: "ens3", MAC: mac, DHCP: true, ClientID: id,
		Addr:   net.IPNet{IP: net.IPv4(10, 77, 0, 9).To4(), Mask: net.CIDRMask(24, 32)},
		Router: net.IPv4(10, 77, 0, 1), DNS: []net.IP{net.IPv4(10, 77, 0, 1)}, Domain: "lab",
		ServerID: net.IPv4(10, 77, 0, 1), LeaseTime: time.Hour, Acquired: time.Unix(1700000000, 0),
	}
}

func find(fs []File, prefix string) *File {
	for i := range fs {
		if strings.HasPrefix(fs[i].Path, prefix) {
			return &fs[i]
		}
	}
	return nil
}

func TestFiles(t *testing.T) {
	macID := []byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56}
	for _, tc := range []struct {
		name     string
		l        *netup.Lease
		nm       string // expected NM client id value, "" = no NM files
		networkd bool
		env      []string
	}{
		{"mac id", lease(macID), "mac", true, []string{"CLIENT_ID='01:52:54:00:12:34:56'", "ADDRESS='10.77.0.9'", "PREFIX='24'", "LEASE_SECONDS='3600'", "IFACE='ens3'"}},
		{"text id", lease([]byte("\x00fdi")), "00:66:64:69", false, []string{"CLIENT_ID_HEX='00666469'"}},
		{"static", func() *netup.Lease { l := lease(nil); l.DHCP = false; return l }(), "", false, []string{"METHOD='static'"}},
	} {
		run, root := Files(tc.l)
		conf := find(run, "NetworkManager/conf.d/")
		if (conf != nil) != (tc.nm != "") {
			t.Fatalf("%s: NM conf present=%v", tc.name, conf != nil)
		}
		if conf != nil && !strings.Contains(string(conf.Data), "ipv4.dhcp-client-id="+tc.nm+"\n") {
			t.Errorf("%s: NM conf:\n%s", tc.name, conf.Data)
		}
		if prof := find(run, "NetworkManager/system-connections/"); prof != nil {
			if prof.Mode != 0o600 || !strings.Contains(string(prof.Data), "mac-address=52:54:00:12:34:56") {
				t.Errorf("%s: profile %o:\n%s", tc.name, prof.Mode, prof.Data)
			}
		}
		nd := find(run, "systemd/network/")
		if (nd != nil) != tc.networkd {
			t.Fatalf("%s: networkd file present=%v", tc.name, nd != nil)
		}
		if nd != nil && (!strings.Contains(string(nd.Data), "MACAddress=52:54:00:12:34:56") || !strings.Contains(string(nd.Data), "ClientIdentifier=mac")) {
			t.Errorf("%s: networkd:\n%s", tc.name, nd.Data)
		}
		env := find(run, "initramfs/net.ens3.env")
		for _, want := range tc.env {
			if env == nil || !strings.Contains(string(env.Data), want+"\n") {
				t.Errorf("%s: env lacks %s", tc.name, want)
			}
		}
		if find(run, "initramfs/net.ens3.json") == nil || find(root, "etc/resolv.conf") == nil {
			t.Errorf("%s: json or resolv.conf missing", tc.name)
		}
	}
}

func TestWriteLeavesSymlinks(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	err := Write(root, []File{{"etc/resolv.conf", 0o644, []byte("x")}, {"a/b/c", 0o600, []byte("y")}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Lstat(filepath.Join(root, "etc/resolv.conf")); st.Mode()&os.ModeSymlink == 0 {
		t.Error("symlinked resolv.conf was replaced")
	}
	if st, err := os.Stat(filepath.Join(root, "a/b/c")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("a/b/c: %v %v", st, err)
	}
}

// A lease whose names no check has seen (netup drops them, but handover
// must not rely on it): resolv.conf gets no injected line, the JSON and the
// env file no invalid name, and the env file stays safe to source whatever
// the values.
func TestFilesHostileLease(t *testing.T) {
	l := lease([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56})
	l.Domain = "lab\nnameserver 6.6.6.6"
	l.Search = []string{"ok.lab", "x'; reboot; '"}
	l.Hostname = strings.Repeat("h", 70)
	run, root := Files(l)
	rc := find(root, "etc/resolv.conf")
	if rc == nil || strings.Contains(string(rc.Data), "6.6.6.6") || !strings.Contains(string(rc.Data), "search ok.lab\nnameserver 10.77.0.1\n") {
		t.Fatalf("resolv.conf: %v", rc)
	}
	js := find(run, "initramfs/net.ens3.json")
	var doc map[string]any
	if err := json.Unmarshal(js.Data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["domain"] != nil || doc["hostname"] != nil || fmt.Sprint(doc["search"]) != "[ok.lab]" {
		t.Errorf("json keeps invalid names: %s", js.Data)
	}
	env := string(find(run, "initramfs/net.ens3.env").Data)
	for _, want := range []string{"DOMAIN=''\n", "HOSTNAME=''\n", "SEARCH='ok.lab'\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
}

// net.<iface>.env is sourced by the root's scripts: every value, however
// hostile, must come back byte for byte and run nothing.
func TestEnvFileQuoting(t *testing.T) {
	dir := t.TempDir()
	canary := filepath.Join(dir, "ran")
	for _, v := range []string{
		"plain",
		"it's",
		"'; touch " + canary + "; '",
		"$(touch " + canary + ")",
		"`touch " + canary + "`",
		"a\nb\n",
		`back\slash "dq" $HOME ${X:-y} !1 *`,
		"'''",
		"\x1b[2J\t\r",
	} {
		l := lease([]byte{1})
		l.Iface = v // the one free-form string in the file
		p := filepath.Join(dir, "net.env")
		if err := os.WriteFile(p, envFile(l), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("/bin/sh", "-c", `. "$1" && printf '%s' "$IFACE"`, "sh", p).Output()
		if err != nil {
			t.Errorf("%q: sourcing failed: %v", v, err)
			continue
		}
		if string(out) != v {
			t.Errorf("IFACE %q came back as %q", v, out)
		}
		if _, err := os.Stat(canary); err == nil {
			t.Fatalf("sourcing the env file with IFACE %q ran a command", v)
		}
	}
}
