// Package handover writes what the booted system needs to take over the boot
// network without a second DHCP lease: the client identifier the initramfs
// used, in the configuration languages of NetworkManager and
// systemd-networkd, and the lease itself as JSON and shell variables for any
// other client.
//
// Every file matches a NIC by MAC address, never by name: the real OS may
// name the link differently from the initramfs. Only the virtual links the
// boot built (topology.go), which have no MAC of their own, go by name.
package handover

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/netup"
)

// File is one file to write, relative to the root it goes into.
type File struct {
	Path string
	Mode os.FileMode
	Data []byte
}

// ClientIDValue renders a DHCP client id the way NetworkManager's
// ipv4.dhcp-client-id wants it: "mac" for 01+MAC, otherwise colon-separated hex.
func ClientIDValue(id []byte, mac net.HardwareAddr) string {
	if len(id) == len(mac)+1 && id[0] == 1 && string(id[1:]) == string(mac) {
		return "mac"
	}
	return colonHex(id)
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

// Files returns the handover files for a lease. runFiles go under /run (the
// initramfs's /run is moved into the root), rootFiles into the overlay.
func Files(l *netup.Lease) (runFiles, rootFiles []File) {
	id := ""
	if l.DHCP {
		id = ClientIDValue(l.ClientID, l.MAC)
	}
	mac := l.MAC.String()
	if l.DHCP {
		runFiles = append(runFiles,
			File{"NetworkManager/conf.d/15-streamroot.conf", 0o644, []byte(
				"# streamroot: the initramfs leased the boot address with this client id;\n" +
					"# profiles that set none use it too, so the DHCP server sees one client.\n" +
					"[connection]\nipv4.dhcp-client-id=" + id + "\n")})
	}
	if len(l.Links) > 0 {
		runFiles = append(runFiles, topologyFiles(l, id, networkdID(l), linkIndex)...)
	} else if l.DHCP {
		runFiles = append(runFiles,
			File{fmt.Sprintf("NetworkManager/system-connections/streamroot-%s.nmconnection", l.Iface), 0o600, []byte(fmt.Sprintf(
				"# streamroot: the boot link, for roots that have no profile of their own\n"+
					"[connection]\nid=streamroot-%s\nuuid=%s\ntype=ethernet\nautoconnect=true\nautoconnect-priority=-100\n\n"+
					"[ethernet]\nmac-address=%s\n\n[ipv4]\nmethod=auto\ndhcp-client-id=%s\n\n[ipv6]\nmethod=auto\n",
				l.Iface, uuidFor(l.MAC), mac, id))},
		)
		if nd := networkdID(l); nd != "" {
			runFiles = append(runFiles, File{fmt.Sprintf("systemd/network/10-streamroot-%s.network", l.Iface), 0o644, []byte(fmt.Sprintf(
				"# streamroot: renew the initramfs's lease with the same client id\n"+
					"[Match]\nMACAddress=%s\n\n[Network]\nDHCP=%s\n"+
					"# the root may live on this network: never drop the address\nKeepConfiguration=yes\n\n"+
					"[DHCPv4]\nClientIdentifier=%s\n%s", mac, networkdDHCP(l), nd, networkd6(l)))})
		}
	}
	runFiles = append(runFiles, files6(l)...)
	data, _ := json.MarshalIndent(leaseJSON(l), "", "  ")
	runFiles = append(runFiles,
		File{fmt.Sprintf("initramfs/net.%s.json", l.Iface), 0o644, append(data, '\n')},
		File{fmt.Sprintf("initramfs/net.%s.env", l.Iface), 0o644, envFile(l)},
	)
	if len(l.DNS) > 0 {
		rootFiles = append(rootFiles, File{"etc/resolv.conf", 0o644, netup.ResolvConf(l)})
	}
	return runFiles, rootFiles
}

// networkdID maps the client id onto systemd-networkd's ClientIdentifier=,
// which can only say "mac" (01+MAC); other ids have no networkd spelling,
// so no .network is written for them and the root's own config applies.
func networkdID(l *netup.Lease) string {
	if ClientIDValue(l.ClientID, l.MAC) == "mac" {
		return "mac"
	}
	return ""
}

// uuidFor derives a stable UUID from the MAC so the profile keeps its identity
// across boots (NetworkManager requires one).
func uuidFor(mac net.HardwareAddr) string {
	b := make([]byte, 16)
	copy(b, "streamroot")
	copy(b[10:], mac)
	return uuidString(b)
}

// uuidString formats 16 bytes as a version 8 (custom) UUID.
func uuidString(b []byte) string {
	b[6] = b[6]&0x0f | 0x80 // version 8: custom
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

type leaseDoc struct {
	Iface     string   `json:"iface"`
	MAC       string   `json:"mac"`
	Method    string   `json:"method"`
	Address   string   `json:"address"`
	Prefix    int      `json:"prefix"`
	Router    string   `json:"router,omitempty"`
	Routes    []string `json:"routes,omitempty"` // "dest via gateway", DHCP option 121
	DNS       []string `json:"dns,omitempty"`
	Domain    string   `json:"domain,omitempty"`
	Search    []string `json:"search,omitempty"` // DHCP option 119
	Hostname  string   `json:"hostname,omitempty"`
	MTU       int      `json:"mtu,omitempty"`
	ServerID  string   `json:"server_id,omitempty"`
	LeaseTime int64    `json:"lease_seconds,omitempty"`
	Acquired  string   `json:"acquired"`
	ClientID  string   `json:"client_id,omitempty"`
	// Links are the virtual links under iface (topology.go).
	Links []linkDoc             `json:"links,omitempty"`
	IPv6  *bootlog.ReportLease6 `json:"ipv6,omitempty"`
}

// leaseJSON is the lease as the handover files record it. Names go in only
// if they are valid (netup checked them already; the booted system's
// scripts may use them unquoted, so they are checked here too).
func leaseJSON(l *netup.Lease) leaseDoc {
	ones, _ := l.Addr.Mask.Size()
	d := leaseDoc{Iface: l.Iface, MAC: l.MAC.String(), Method: "static", Address: l.Addr.IP.String(), Prefix: ones,
		MTU: l.MTU, Acquired: l.Acquired.UTC().Format(time.RFC3339)}
	if netup.CheckDomain(l.Domain) == nil {
		d.Domain = l.Domain
	}
	if netup.CheckHostname(l.Hostname) == nil {
		d.Hostname = l.Hostname
	}
	for _, s := range l.Search {
		if netup.CheckDomain(s) == nil && len(d.Search) < netup.MaxSearch {
			d.Search = append(d.Search, s)
		}
	}
	if l.DHCP {
		d.Method = "dhcp"
		d.ServerID = l.ServerID.String()
		d.LeaseTime = int64(l.LeaseTime.Seconds())
		d.ClientID = colonHex(l.ClientID)
	}
	if l.Router != nil {
		d.Router = l.Router.String()
	}
	if d.IPv6 = Lease6JSON(l); onlyV6(l) {
		d.Method = d.IPv6.Method
	}
	for _, r := range l.Routes {
		d.Routes = append(d.Routes, r.Dest.String()+" via "+r.Gateway.String())
	}
	for _, s := range l.DNS {
		if s != nil {
			d.DNS = append(d.DNS, s.String())
		}
	}
	d.Links = linkDocs(l)
	return d
}

// envFile is the lease as shell variables (sourceable by sh, dash, busybox).
func envFile(l *netup.Lease) []byte {
	d := leaseJSON(l)
	vars := map[string]string{
		"IFACE": d.Iface, "MAC": d.MAC, "METHOD": d.Method, "ADDRESS": d.Address, "PREFIX": fmt.Sprint(d.Prefix),
		"NETMASK": net.IP(l.Addr.Mask).String(), "ROUTER": d.Router, "DNS": strings.Join(d.DNS, " "),
		"DOMAIN": d.Domain, "SEARCH": strings.Join(d.Search, " "), "HOSTNAME": d.Hostname, "SERVER_ID": d.ServerID, "LEASE_SECONDS": fmt.Sprint(d.LeaseTime),
		"ACQUIRED": d.Acquired, "ACQUIRED_EPOCH": fmt.Sprint(l.Acquired.Unix()),
		"CLIENT_ID": d.ClientID, "CLIENT_ID_HEX": hex.EncodeToString(l.ClientID),
	}
	if l.MTU > 0 {
		vars["MTU"] = fmt.Sprint(l.MTU)
	}
	linkVars(l, vars)
	maps.Copy(vars, env6(l))
	var b strings.Builder
	b.WriteString("# streamroot: the boot network's lease (source this file)\n")
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		fmt.Fprintf(&b, "%s='%s'\n", k, strings.ReplaceAll(vars[k], "'", `'\''`))
	}
	return []byte(b.String())
}

// linkIndex is the ifindex of the link named name, 0 if there is none.
func linkIndex(name string) int {
	i, err := net.InterfaceByName(name)
	if err != nil {
		return 0
	}
	return i.Index
}

// Write puts files under root, creating directories.
func Write(root string, files []File) error {
	for _, f := range files {
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		// A symlink here (resolv.conf → ../run/systemd/resolve/…) means the
		// root manages the file itself: leave it to the root.
		if st, err := os.Lstat(p); err == nil && st.Mode()&os.ModeSymlink != 0 {
			continue
		}
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.Chmod(p, f.Mode); err != nil {
			return err
		}
	}
	return nil
}
