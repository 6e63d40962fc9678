package harness

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseKeaLeases(t *testing.T) {
	csv := "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n" +
		"10.77.0.50,52:54:00:12:34:56,01:52:54:00:12:34:56,3600,2000003600,1,0,0,,0,\n" +
		"10.77.0.51,52:54:00:12:34:56,ff:00:11,3600,2000003600,1,0,0,debian,0,\n" +
		"10.77.0.50,52:54:00:12:34:56,01:52:54:00:12:34:56,3600,2000003700,1,0,0,,0,\n" +
		"10.77.0.51,52:54:00:12:34:56,ff:00:11,0,2000003600,1,0,0,debian,0,\n"
	rows, err := ParseKeaLeases([]byte(csv))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	if got := rows[2].CLTT().Unix(); got != 2000000100 {
		t.Errorf("cltt %d", got)
	}
	live := LatestKeaLeases(rows, time.Unix(2000000200, 0))
	if len(live) != 1 || live[0].Address != "10.77.0.50" || live[0].ClientID != "01:52:54:00:12:34:56" || live[0].Expire.Unix() != 2000003700 {
		t.Errorf("live leases %+v", live)
	}
	if _, err := ParseKeaLeases([]byte("address,hwaddr\n1,2\n")); err == nil {
		t.Error("a header without client_id/valid_lifetime/expire parsed")
	}
}

func TestParseLeaseReport(t *testing.T) {
	b := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	env := "# streamroot\nADDRESS='10.77.0.94'\nCLIENT_ID='01:52:54:00:12:34:56'\nHOSTNAME='it'\\''s'\n"
	js := fmt.Sprintf(`{"pid":412,"init":"systemd","fixture":"debian-networkd","writable":true,"root_fstype":"overlay","premounted":" /proc /sys /dev /run","uptime":"61.20","mounts_b64":"","cmdline_b64":"","addrs_b64":"%s","links_b64":"%s","run_initramfs_b64":"","os_dhcp":"networkd","os_bound":true,"os_link":"ens3","os_wait":7,"env_b64":"%s","handover_b64":"%s","os_state_b64":"","os_log_b64":""}`,
		b("2: ens3    inet 10.77.0.94/24 brd 10.77.0.255 scope global dynamic ens3\\       valid_lft 3590sec preferred_lft 3590sec\n"),
		b("2: ens3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\\    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff\n"),
		b(env), b("== ls\n"))
	lr, err := ParseLeaseReport(js)
	if err != nil {
		t.Fatal(err)
	}
	if lr.PID != 412 || lr.Init != "systemd" || lr.OSDHCP != "networkd" || !lr.OSBound || lr.OSLink != "ens3" || lr.OSWait != 7 {
		t.Errorf("report %+v", lr)
	}
	if lr.EnvVar("ADDRESS") != "10.77.0.94" || lr.EnvVar("HOSTNAME") != "it's" || lr.EnvVar("NOPE") != "" {
		t.Errorf("env vars: %q %q", lr.EnvVar("ADDRESS"), lr.EnvVar("HOSTNAME"))
	}
	if got := lr.IPv4On("52:54:00:12:34:56"); len(got) != 1 || got[0] != "10.77.0.94" {
		t.Errorf("IPv4On: %v", got)
	}
	if _, err := ParseLeaseReport(`{"pid":1,"fixture":"plain"}`); err == nil {
		t.Error("a REPORT INIT line parsed as a lease report")
	}
}

func TestLeaseScriptsSyntax(t *testing.T) {
	if _, err := os.Stat(HostBusybox); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	for name, s := range map[string]string{"lease-report": LeaseReportScript, "udhcpc-init": UdhcpcInit, "udhcpc-script": UdhcpcScript} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		// -n: parse only. Both shells that run it: busybox ash and dash.
		for _, sh := range [][]string{{HostBusybox, "sh"}, {"dash"}} {
			if _, err := exec.LookPath(sh[0]); err != nil {
				continue
			}
			if out, err := exec.Command(sh[0], append(sh[1:], "-n", p)...).CombinedOutput(); err != nil {
				t.Errorf("%s: %s -n: %v\n%s", name, sh[0], err, out)
			}
		}
	}
}

func TestDebianMirror(t *testing.T) {
	list := "# comment\ndeb-src http://x/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n"
	if got := mirrorFrom(list, false); got != "http://mirror.example/debian" {
		t.Errorf("one-line: %q", got)
	}
	sources := "Types: deb\n# http://old.example/archive/debian/20250520T000000Z\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n" +
		"Types: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\n"
	if got := mirrorFrom(sources, true); got != "http://deb.example/debian" {
		t.Errorf("deb822: %q", got)
	}
	if got := mirrorFrom("Types: deb\nURIs: https://node.example/node_20.x\nSuites: nodistro\n", true); got != "" {
		t.Errorf("non-Debian source: %q", got)
	}
	m, err := DebianMirror()
	t.Logf("this host's mirror: %q (%v)", m, err)
}

// TestKea starts Kea in a namespace and leases an address to busybox udhcpc
// in a second namespace (veth on br0), twice with the same client id (one
// lease, two CSV rows), then once with another client id.
func TestKea(t *testing.T) {
	requireHost(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("kea-dhcp4"); err != nil {
		t.Skip("kea-dhcp4 not installed (make test-deps installs kea-dhcp4-server)")
	}
	dir := t.TempDir()
	ns := NewNetns(t, dir)
	kea := StartKea(t, ns, KeaOptions{})
	mac := "52:54:00:77:00:02"
	client := vethClient(t, ns, mac)
	udhcpc := func(id string) {
		t.Helper()
		out, err := runCmd(30*time.Second, "ip", "netns", "exec", client.Name, HostBusybox, "udhcpc",
			"-i", "vc0", "-C", "-x", "0x3d:"+id, "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", "/bin/true")
		if err != nil {
			t.Fatalf("udhcpc: %v\n%s\nkea log:\n%s", err, out, kea.Log())
		}
	}
	id := "01" + strings.ReplaceAll(mac, ":", "")
	udhcpc(id)
	time.Sleep(1100 * time.Millisecond) // a later cltt for the renewal row
	udhcpc(id)
	rows, err := kea.Rows()
	if err != nil {
		t.Fatal(err)
	}
	leases, err := kea.Leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 1 || leases[0].HWAddr != mac || leases[0].ClientID != "01:"+mac || !strings.HasPrefix(leases[0].Address, "10.77.0.") {
		t.Fatalf("leases %+v (rows %+v)", leases, rows)
	}
	if len(rows) < 2 {
		t.Errorf("%d CSV rows after two exchanges, want ≥ 2: %+v", len(rows), rows)
	}
	if n := strings.Count(kea.Log(), "DHCP4_LEASE_ALLOC"); n != 2 {
		t.Errorf("%d DHCP4_LEASE_ALLOC in the log, want 2:\n%s", n, kea.Log())
	}
	// Another client id on the same MAC: Kea (match-client-id) leases a
	// second address — the two-lease case the one-lease tests rule out.
	udhcpc("ff0011223344")
	if leases, _ = kea.Leases(); len(leases) != 2 {
		t.Errorf("after a second client id: %d leases, want 2: %+v", len(leases), leases)
	}
	t.Logf("kea leases: %+v", leases)
}

// vethClient is a second namespace for a DHCP client: its vc0 is a veth
// linked to ns's br0, up, with mac.
func vethClient(t *testing.T, ns *Netns, mac string) *Netns {
	t.Helper()
	client := NewNetns(t, t.TempDir())
	for _, args := range [][]string{
		{"link", "add", "vc0", "type", "veth", "peer", "name", "vs0"},
		{"link", "set", "vc0", "netns", client.Name},
		{"link", "set", "vs0", "master", Bridge0},
		{"link", "set", "vs0", "up"},
	} {
		if err := ns.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.IP("link", "set", "vc0", "address", mac, "up"); err != nil {
		t.Fatal(err)
	}
	return client
}
