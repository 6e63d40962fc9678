package handover

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/netup"
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// bondVLANLease is a lease on VLAN 7 over an active-backup bond of two NICs.
func bondVLANLease() *netup.Lease {
	l := lease([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56})
	l.Iface = "bond0.7"
	bond := netup.BondOptions{"mode": "active-backup", "miimon": "100", "lacp_rate": "fast"}
	l.Links = []netup.Built{
		{Kind: netup.KindBond, Name: "bond0", MAC: l.MAC, Bond: bond, MTU: 9000, Ports: []netup.Port{
			{Name: "ens3", MAC: mustMAC("52:54:00:12:34:56")}, {Name: "ens4", MAC: mustMAC("52:54:00:aa:00:01")}}},
		{Kind: netup.KindVLAN, Name: "bond0.7", MAC: l.MAC, VLANID: 7, Ports: []netup.Port{{Name: "bond0", MAC: l.MAC, Virtual: true}}},
	}
	return l
}

func TestTopologyFiles(t *testing.T) {
	vlan := lease([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56})
	vlan.Iface = "vlan100"
	vlan.Links = []netup.Built{{Kind: netup.KindVLAN, Name: "vlan100", MAC: vlan.MAC, VLANID: 100, Ports: []netup.Port{{Name: "ens3", MAC: vlan.MAC}}}}
	bridgeStatic := lease(nil)
	bridgeStatic.DHCP, bridgeStatic.Iface = false, "br0"
	bridgeStatic.Links = []netup.Built{{Kind: netup.KindBridge, Name: "br0", MAC: vlan.MAC, Ports: []netup.Port{{Name: "ens3", MAC: vlan.MAC}}}}
	textID := bondVLANLease()
	textID.ClientID = []byte("\x00fdi")
	// ip=vlan100:dhcp6 (IPv6 only), ip=vlan100:dhcp,dhcp6 and a static
	// IPv6 address, each on VLAN 100 over ens3.
	ll := netup.DUIDLL(vlan.MAC)
	onVLAN := func(l *netup.Lease) *netup.Lease {
		l.Iface, l.Links = vlan.Iface, vlan.Links
		return l
	}
	vlan6 := onVLAN(v6Lease(netup.V6DHCP, ll))
	vlanDual := onVLAN(lease([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56}))
	vlanDual.V6 = v6Lease(netup.V6DHCP, ll).V6
	vlanStatic6 := onVLAN(v6Lease(netup.V6Static, ll))
	duid := "dhcp-duid=00:03:00:01:52:54:00:12:34:56"
	ndDUID := []string{"[DHCPv6]", "DUIDType=link-layer", "DUIDRawData=00:01:52:54:00:12:34:56", "IAID=1193046"}

	for _, tc := range []struct {
		name  string
		l     *netup.Lease
		files map[string][]string // path → lines it must have
		not   map[string][]string // path → lines it must not have
		none  []string            // path prefixes that must not be written
	}{
		{name: "vlan", l: vlan, files: map[string][]string{
			"NetworkManager/system-connections/streamroot-vlan100.nmconnection": {"type=vlan", "interface-name=vlan100", "id=100", "parent=ens3", "method=auto", "dhcp-client-id=mac"},
			"NetworkManager/system-connections/streamroot-ens3.nmconnection":    {"type=ethernet", "mac-address=52:54:00:12:34:56", "method=disabled"},
			"systemd/network/10-streamroot-vlan100.netdev":                      {"Name=vlan100", "Kind=vlan", "Id=100"},
			"systemd/network/10-streamroot-vlan100.network":                     {"Name=vlan100", "DHCP=ipv4", "ClientIdentifier=mac", "KeepConfiguration=yes"},
			"systemd/network/10-streamroot-ens3.network":                        {"PermanentMACAddress=52:54:00:12:34:56", "VLAN=vlan100", "LinkLocalAddressing=no"},
			"NetworkManager/conf.d/15-streamroot.conf":                          {"ipv4.dhcp-client-id=mac"},
		}, not: map[string][]string{
			"systemd/network/10-streamroot-ens3.network": {"DHCP=ipv4"},
		}, none: []string{"systemd/network/10-streamroot-vlan100.network.d", "NetworkManager/system-connections/streamroot-vlan100.nmconnection.d"}},
		{name: "vlan over bond", l: bondVLANLease(), files: map[string][]string{
			"NetworkManager/system-connections/streamroot-bond0.nmconnection":   {"type=bond", "interface-name=bond0", "mode=active-backup", "miimon=100", "lacp_rate=fast", "mtu=9000", "method=disabled"},
			"NetworkManager/system-connections/streamroot-bond0.7.nmconnection": {"type=vlan", "id=7", "parent=bond0", "dhcp-client-id=mac"},
			"NetworkManager/system-connections/streamroot-ens4.nmconnection":    {"master=bond0", "slave-type=bond", "mac-address=52:54:00:aa:00:01"},
			"systemd/network/10-streamroot-bond0.netdev":                        {"Kind=bond", "Mode=active-backup", "MIIMonitorSec=100ms", "LACPTransmitRate=fast", "MTUBytes=9000"},
			"systemd/network/10-streamroot-bond0.network":                       {"Name=bond0", "VLAN=bond0.7", "LinkLocalAddressing=no"},
			"systemd/network/10-streamroot-bond0.7.network":                     {"DHCP=ipv4", "ClientIdentifier=mac"},
			"systemd/network/10-streamroot-ens3.network":                        {"PermanentMACAddress=52:54:00:12:34:56", "Bond=bond0"},
			"systemd/network/10-streamroot-ens4.network":                        {"PermanentMACAddress=52:54:00:aa:00:01", "Bond=bond0"},
		}, not: map[string][]string{
			"NetworkManager/system-connections/streamroot-ens3.nmconnection": {"method=disabled"},
			"systemd/network/10-streamroot-bond0.network":                    {"DHCP=ipv4"},
		}},
		{name: "static bridge", l: bridgeStatic, files: map[string][]string{
			"NetworkManager/system-connections/streamroot-br0.nmconnection":  {"type=bridge", "stp=false", "method=manual", "address1=10.77.0.9/24,10.77.0.1", "dns=10.77.0.1;"},
			"NetworkManager/system-connections/streamroot-ens3.nmconnection": {"master=br0", "slave-type=bridge"},
			"systemd/network/10-streamroot-br0.network":                      {"Address=10.77.0.9/24", "Gateway=10.77.0.1", "DNS=10.77.0.1"},
			"systemd/network/10-streamroot-ens3.network":                     {"Bridge=br0"},
		}, none: []string{"NetworkManager/conf.d/"}},
		{name: "client id networkd cannot send", l: textID, files: map[string][]string{
			"NetworkManager/system-connections/streamroot-bond0.7.nmconnection": {"dhcp-client-id=00:66:64:69"},
			"systemd/network/10-streamroot-bond0.7.network":                     {"KeepConfiguration=yes"},
		}, not: map[string][]string{
			"systemd/network/10-streamroot-bond0.7.network": {"DHCP=ipv4"},
		}},
		{name: "vlan dhcp6", l: vlan6, files: map[string][]string{
			"NetworkManager/system-connections/streamroot-vlan100.nmconnection": {"type=vlan", "id=100", "parent=ens3", "method=disabled", "method=auto", "addr-gen-mode=eui64", duid, "dhcp-iaid=1193046"},
			"NetworkManager/system-connections/streamroot-ens3.nmconnection":    {"mac-address=52:54:00:12:34:56", "method=disabled", "method=ignore"},
			"NetworkManager/conf.d/16-streamroot-ipv6.conf":                     {"ipv6." + duid, "ipv6.dhcp-iaid=1193046"},
			"systemd/network/10-streamroot-vlan100.netdev":                      {"Kind=vlan", "Id=100"},
			"systemd/network/10-streamroot-vlan100.network":                     append([]string{"Name=vlan100", "DHCP=ipv6", "IPv6AcceptRA=yes", "KeepConfiguration=yes", "WithoutRA=solicit"}, ndDUID...),
			"systemd/network/10-streamroot-ens3.network":                        {"VLAN=vlan100", "LinkLocalAddressing=no"},
		}, not: map[string][]string{
			"NetworkManager/system-connections/streamroot-vlan100.nmconnection": {"type=ethernet", "method=manual"},
			"systemd/network/10-streamroot-vlan100.network":                     {"DHCP=ipv4", "DHCP=yes", "[DHCPv4]"},
		}, none: []string{"NetworkManager/conf.d/15-streamroot.conf"}},
		{name: "vlan dual stack", l: vlanDual, files: map[string][]string{
			"NetworkManager/system-connections/streamroot-vlan100.nmconnection": {"type=vlan", "method=auto", "dhcp-client-id=mac", "addr-gen-mode=eui64", duid, "dhcp-iaid=1193046"},
			"systemd/network/10-streamroot-vlan100.network":                     append([]string{"DHCP=yes", "[DHCPv4]", "ClientIdentifier=mac"}, ndDUID...),
		}, not: map[string][]string{
			"NetworkManager/system-connections/streamroot-vlan100.nmconnection": {"method=disabled"},
		}},
		{name: "vlan static6", l: vlanStatic6, files: map[string][]string{
			"NetworkManager/system-connections/streamroot-vlan100.nmconnection": {"type=vlan", "method=disabled", "method=manual", "address1=fd00:77::1a5/64,fe80::1", "dns=fd00:77::53;"},
			"systemd/network/10-streamroot-vlan100.network":                     {"Address=fd00:77::1a5/64", "Gateway=fe80::1", "DNS=fd00:77::53", "KeepConfiguration=yes"},
		}, not: map[string][]string{
			"NetworkManager/system-connections/streamroot-vlan100.nmconnection": {duid},
			"systemd/network/10-streamroot-vlan100.network":                     {"DHCP=ipv6", "DHCP=ipv4", "DHCP=yes", "[DHCPv6]"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, _ := Files(tc.l)
			// One file per path: a second one (the plain link's IPv6
			// profile) would take the link from the topology's.
			seen := map[string]bool{}
			for _, f := range run {
				if seen[f.Path] {
					t.Errorf("%s written twice", f.Path)
				}
				seen[f.Path] = true
			}
			for p, lines := range tc.files {
				f := find(run, p)
				if f == nil || f.Path != p {
					t.Fatalf("no %s in %v", p, paths(run))
				}
				if strings.HasPrefix(p, "NetworkManager/system-connections/") && f.Mode != 0o600 {
					t.Errorf("%s: mode %o, want 0600 (NetworkManager ignores others)", p, f.Mode)
				}
				have := strings.Split(string(f.Data), "\n")
				for _, want := range lines {
					if !contains(have, want) {
						t.Errorf("%s lacks %q:\n%s", p, want, f.Data)
					}
				}
				for _, bad := range tc.not[p] {
					if contains(have, bad) {
						t.Errorf("%s has %q:\n%s", p, bad, f.Data)
					}
				}
			}
			for _, p := range tc.none {
				if f := find(run, p); f != nil {
					t.Errorf("%s written", f.Path)
				}
			}
			// No plain-link profile matching the lease's MAC: on a bond it
			// would match the ports too.
			for _, f := range run {
				if strings.Contains(string(f.Data), "\nMACAddress=") {
					t.Errorf("%s matches by current MAC:\n%s", f.Path, f.Data)
				}
			}
		})
	}
}

func paths(fs []File) []string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Path)
	}
	return s
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

func TestTopologyJSONAndEnv(t *testing.T) {
	l := bondVLANLease()
	run, _ := Files(l)
	js := find(run, "initramfs/net.bond0.7.json")
	if js == nil {
		t.Fatalf("no net.bond0.7.json in %v", paths(run))
	}
	var doc struct {
		Iface string `json:"iface"`
		Links []struct {
			Kind   string            `json:"kind"`
			Name   string            `json:"name"`
			VLANID int               `json:"vlan_id"`
			Bond   map[string]string `json:"bond_options"`
			Ports  []struct{ Name, MAC string }
		} `json:"links"`
	}
	if err := json.Unmarshal(js.Data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Iface != "bond0.7" || len(doc.Links) != 2 || doc.Links[0].Kind != "bond" || doc.Links[0].Bond["mode"] != "active-backup" ||
		len(doc.Links[0].Ports) != 2 || doc.Links[0].Ports[1].MAC != "52:54:00:aa:00:01" || doc.Links[1].VLANID != 7 || doc.Links[1].Ports[0].Name != "bond0" {
		t.Errorf("topology in JSON:\n%s", js.Data)
	}

	env := find(run, "initramfs/net.bond0.7.env")
	dir := t.TempDir()
	p := filepath.Join(dir, "net.env")
	if err := os.WriteFile(p, env.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/bin/sh", "-c", `. "$1" && printf '%s|%s|%s|%s|%s' "$LINKS" "$LINK0_KIND" "$LINK0_PORTS" "$LINK0_BOND_OPTIONS" "$LINK1_VLAN_ID"`, "sh", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "bond0 bond0.7|bond|ens3 ens4|lacp_rate=fast,miimon=100,mode=active-backup|7"; string(out) != want {
		t.Errorf("env gives %q, want %q", out, want)
	}
}

// NetworkManager takes the boot's links over with the boot's profiles only
// when each link's device state file names its profile; a link it cannot
// find by name leaves all of them to its own guess.
func TestTopologyNMAssume(t *testing.T) {
	l := lease([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56})
	l.Iface = "br0"
	l.Links = []netup.Built{
		{Kind: netup.KindBond, Name: "bond0", MAC: l.MAC, Bond: netup.BondOptions{"mode": "802.3ad"}, Ports: []netup.Port{
			{Name: "ens3", MAC: mustMAC("52:54:00:12:34:56")}, {Name: "ens4", MAC: mustMAC("52:54:00:aa:00:01")}}},
		{Kind: netup.KindBridge, Name: "br0", MAC: l.MAC, Ports: []netup.Port{{Name: "bond0", MAC: l.MAC, Virtual: true}}},
	}
	ifindex := map[string]int{"ens3": 2, "ens4": 3, "bond0": 4, "br0": 5}
	static := lease(nil)
	static.DHCP, static.Iface, static.Links = false, l.Iface, l.Links
	for _, tc := range []struct {
		name  string
		l     *netup.Lease
		index map[string]int
		want  bool
	}{
		{"bridge over bond", l, ifindex, true},
		{"a link not found", l, map[string]int{"ens3": 2, "ens4": 3, "bond0": 4}, false},
		{"static", static, ifindex, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := topologyFiles(tc.l, "mac", "mac", func(name string) int { return tc.index[name] })
			if !tc.want {
				for _, p := range []string{"NetworkManager/devices/", "NetworkManager/conf.d/15-streamroot-links.conf"} {
					if f := find(files, p); f != nil {
						t.Errorf("%s written:\n%s", f.Path, f.Data)
					}
				}
				return
			}
			profile := func(name string) string {
				f := find(files, "NetworkManager/system-connections/streamroot-"+name+".nmconnection")
				if f == nil {
					t.Fatalf("no profile for %s in %v", name, paths(files))
				}
				for _, line := range strings.Split(string(f.Data), "\n") {
					if u, ok := strings.CutPrefix(line, "uuid="); ok {
						return u
					}
				}
				t.Fatalf("profile for %s has no uuid:\n%s", name, f.Data)
				return ""
			}
			for name, i := range tc.index {
				f := find(files, "NetworkManager/devices/"+strconv.Itoa(i))
				if f == nil {
					t.Fatalf("no device state file for %s (%d) in %v", name, i, paths(files))
				}
				have := strings.Split(string(f.Data), "\n")
				for _, want := range []string{"[device]", "managed=true", "connection-uuid=" + profile(name)} {
					if !contains(have, want) {
						t.Errorf("%s lacks %q:\n%s", f.Path, want, f.Data)
					}
				}
			}
			f := find(files, "NetworkManager/conf.d/15-streamroot-links.conf")
			if f == nil {
				t.Fatalf("no keep-configuration=no in %v", paths(files))
			}
			have := strings.Split(string(f.Data), "\n")
			for _, want := range []string{"match-device=interface-name:bond0;interface-name:br0;mac:52:54:00:12:34:56;mac:52:54:00:aa:00:01", "keep-configuration=no"} {
				if !contains(have, want) {
					t.Errorf("%s lacks %q:\n%s", f.Path, want, f.Data)
				}
			}
		})
	}
}
