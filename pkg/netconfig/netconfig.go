// Package netconfig translates the parsed kernel command line into what
// the network stage brings up. It is its own room so that the init only
// wires (cmds/init calls FromBoot, then netup.Up) and every new network
// form (IPv6, VLANs, bonds) is decided here, in one pure, tested function,
// before any link is touched.
package netconfig

import (
	"fmt"
	"net"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/netup"
)

// FromBoot translates the parsed kernel line into what netup brings up:
// the link (BOOTIF=, bootdev=, ip=<iface>:…), the links to leave alone
// (ip=<iface>:off), the method (DHCP or a static ip=), MTU and MAC, names,
// waits and the DHCP client id. Arguments the network stage cannot honour
// yet (virtual links, rd.ethtool=, rd.route=, IPv6-only methods, a
// point-to-point peer) are refused by name; a part of one it honours only
// in part (ip=dhcp,dhcp6) comes back as a note to log. It is pure: the
// network stage only runs netup.Up on its result.
func FromBoot(cfg *bootcfg.Config) (netup.Config, []string, error) {
	n := cfg.Net
	nc := netup.Config{
		Iface:          n.BootDev,
		CarrierTimeout: n.CarrierTimeout,
		DHCPTimeout:    n.DHCPTimeout, // bootcfg.Forever is netup.Forever
		Nameservers:    n.Nameservers,
		PeerDNS:        n.PeerDNS,
		RapidCommit:    n.RapidCommit,
		Predictable:    n.Predictable,
		Names:          map[string]string{},
	}
	var notes []string
	refuse := func(arg, what, advice string) (netup.Config, []string, error) {
		return netup.Config{}, nil, hint.New(fmt.Errorf("%s: %s", arg, what), advice)
	}
	// The first of each is named: one line to fix at a time, as for ip=.
	links, linkNotes, err := virtualLinks(n.Links)
	if err != nil {
		return netup.Config{}, nil, err
	}
	nc.Links, notes = links, append(notes, linkNotes...)
	if len(n.Ethtool) > 0 {
		return refuse(n.Ethtool[0].Arg, "link settings (autonegotiation, speed) are not supported yet", "drop rd.ethtool=: the NIC negotiates its link itself")
	}
	if len(n.Routes) > 0 {
		return refuse(n.Routes[0].Arg, "static routes are not supported yet", "drop rd.route=, or have the DHCP server send the route (option 121)")
	}
	switch {
	case n.UseBootIF:
		nc.BootIF = n.BootIF
	case n.BootIF != nil:
		notes = append(notes, fmt.Sprintf("rd.bootif=0: not picking the NIC by BOOTIF=%s (it stays on the command line for the real OS)", n.BootIF))
	}
	for _, in := range n.IfNames {
		nc.Names[in.MAC.String()] = in.Name
	}
	if nc.DHCPTimeout == 0 {
		nc.DHCPTimeout = cfg.Retry
	}
	anyV4 := true // no ip= at all: DHCPv4
	for i, ip := range n.IP {
		if i == 0 {
			anyV4 = false
		}
		if ip.Off() {
			switch {
			case ip.Iface != "":
				nc.Skip = append(nc.Skip, ip.Iface)
				continue
			case ip.IfaceMAC != nil:
				return refuse(ip.Arg, "switching a link off by its MAC is not supported", "name the link: ip=<iface>:off")
			}
			return refuse(ip.Arg, "the network is switched off, but "+cfg.Root.Arg+" needs it",
				"use ip=dhcp or a static ip=<ip>::<gw>:<mask>:<host>:<iface>:none")
		}
		v4, err := addV6(&nc, ip, &notes)
		if err != nil {
			return netup.Config{}, nil, err
		}
		anyV4 = anyV4 || v4
		if ip.Firmware {
			// IPAPPEND 1: DHCP on the boot link, asking for this first.
			nc.Requested = ip.Addr
			continue
		}
		if ip.Peer != nil {
			return refuse(ip.Arg, "a point-to-point peer is not supported yet", "leave the peer field empty")
		}
		if ip.Iface != "" {
			nc.Iface = ip.Iface
		}
		if ip.IfaceMAC != nil {
			nc.BootIF = ip.IfaceMAC
		}
		if ip.MAC != nil {
			if ip.Iface == "" || nc.BootIF != nil {
				return refuse(ip.Arg, "a MAC to set needs the link named by its interface, not by a MAC (BOOTIF= picks the NIC by the MAC it has)",
					"name the interface in ip= and add rd.bootif=0, or drop the MAC")
			}
			nc.MAC = ip.MAC
		}
		if v4 || ip.MTU != 0 {
			nc.MTU = ip.MTU
		}
		if ip.Addr != nil && v4 {
			ones, bits := ip.Mask.Size()
			if bits == 0 {
				return refuse(ip.Arg, "no netmask", "give the netmask field, e.g. 255.255.255.0")
			}
			nc.Static = &netup.Static{
				Addr:     net.IPNet{IP: ip.Addr, Mask: net.CIDRMask(ones, bits)},
				Gateway:  ip.Gateway,
				Hostname: ip.Hostname,
				DNS:      ip.DNS,
				MTU:      ip.MTU,
			}
		}
	}
	for _, id := range n.ClientIDs {
		if id.Iface != "" && id.Iface != nc.Iface {
			continue
		}
		if id.Kind != bootcfg.ClientIDMAC {
			nc.ClientID = id.Bytes
		}
	}
	finishV6(&nc, anyV4, n)
	return nc, notes, nil
}
