package handover

import (
	"net"
	"os"
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
