package main

import (
	"fmt"
	"net"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/netup"
)

// netConfig translates the parsed kernel line into what netup brings up:
// the link (BOOTIF=, bootdev=, ip=<iface>:…), the method (DHCP or a static
// ip=), names, waits and the DHCP client id. It is pure: the network stage
// only runs netup.Up on its result.
func netConfig(cfg *bootcfg.Config) (netup.Config, error) {
	n := cfg.Net
	nc := netup.Config{
		BootIF:         n.BootIF,
		Iface:          n.BootDev,
		CarrierTimeout: n.CarrierTimeout,
		DHCPTimeout:    n.DHCPTimeout,
		Nameservers:    n.Nameservers,
		PeerDNS:        n.PeerDNS,
		Predictable:    n.Predictable,
		Names:          map[string]string{},
	}
	for _, in := range n.IfNames {
		nc.Names[in.MAC.String()] = in.Name
	}
	if nc.DHCPTimeout == 0 {
		nc.DHCPTimeout = cfg.Retry
	}
	for _, ip := range n.IP {
		if ip.Iface != "" {
			nc.Iface = ip.Iface
		}
		switch ip.Method {
		case bootcfg.IPOff:
			return netup.Config{}, hint.New(fmt.Errorf("%s: the network is switched off, but root=%s needs it", ip.Arg, cfg.Root.Arg),
				"use ip=dhcp or a static ip=<ip>::<gw>:<mask>:<host>:<iface>:none")
		case bootcfg.IPDHCP6, bootcfg.IPAuto6:
			return netup.Config{}, hint.New(fmt.Errorf("%s: IPv6 boot networking is not supported by this build", ip.Arg), "use ip=dhcp")
		}
		if ip.Addr != nil {
			ones, bits := ip.Mask.Size()
			if bits == 0 {
				return netup.Config{}, hint.New(fmt.Errorf("%s: no netmask", ip.Arg), "give the netmask field, e.g. 255.255.255.0")
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
	return nc, nil
}
