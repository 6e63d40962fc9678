package netconfig

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/netup"
)

// addV6 takes the IPv6 part of one ip= into nc.V6 and reports whether the
// argument also configures IPv4. dhcp6 is stateful DHCPv6; auto6 (and
// either6, which dracut tries as auto6 first) SLAAC with DHCPv6 when the
// RA's M flag says so; a static [v6] address is static IPv6. NM's `auto`
// stays DHCPv4 only, as before: on an IPv4-only network its IPv6 half
// would wait for an RA that never comes. link6 (a link-local address only)
// cannot carry a root and is refused.
func addV6(nc *netup.Config, ip bootcfg.IPConf, notes *[]string) (v4 bool, err error) {
	if ip.Static() {
		if ip.Addr.To4() != nil {
			return true, nil
		}
		ones, bits := ip.Mask.Size()
		if bits != 8*net.IPv6len {
			return false, hint.New(fmt.Errorf("%s: no prefix length for the IPv6 address", ip.Arg), "give the prefix length, e.g. ip=[fd00::7]::[fd00::1]:64::ens3:none")
		}
		nc.V6 = &netup.V6{Method: netup.V6Static, Static: &netup.Static{
			Addr: net.IPNet{IP: ip.Addr, Mask: net.CIDRMask(ones, bits)}, Gateway: ip.Gateway,
			Hostname: ip.Hostname, DNS: ip.DNS, MTU: ip.MTU}}
		return false, nil
	}
	var method netup.V6Method
	var skipped, extra []string
	for _, m := range append([]bootcfg.IPMethod{ip.Method}, ip.Also...) {
		switch {
		case m.IPv4():
			v4 = true
			if m.IPv6() {
				skipped = append(skipped, string(m))
			}
		case m == bootcfg.IPDHCP6 && method == "":
			method = netup.V6DHCP
		case (m == bootcfg.IPAuto6 || m == bootcfg.IPEither6) && method == "":
			method = netup.V6Auto
		case m == bootcfg.IPLink6:
			return false, hint.New(fmt.Errorf("%s: a link-local IPv6 address alone cannot reach the root's server", ip.Arg),
				"use ip=auto6 (SLAAC) or ip=dhcp6")
		case m.IPv6():
			extra = append(extra, string(m))
		}
	}
	if len(extra) > 0 {
		*notes = append(*notes, fmt.Sprintf("%s: IPv6 by %s; the later IPv6 method (%s) is not used", ip.Arg, method, strings.Join(extra, ",")))
	}
	if len(skipped) > 0 {
		*notes = append(*notes, fmt.Sprintf("%s: DHCPv4 only; the IPv6 part (%s) is not supported yet", ip.Arg, strings.Join(skipped, ",")))
	}
	if method != "" {
		nc.V6 = &netup.V6{Method: method}
	}
	return v4, nil
}

// DualStackV6Wait bounds the IPv6 half of a dual-stack line (an RA, then
// DHCPv6 or SLAAC) once IPv4 is bound: long enough for a router and a
// DHCPv6 server that answer at all (they do within a second or two), short
// enough that an IPv4-only network boots without stalling.
const DualStackV6Wait = 20 * time.Second

// finishV6 settles what the whole line says about IPv6: whether any IPv4
// is configured beside it (none: an IPv6-only boot), the wait, and the
// DUID (rd.net.dhcp.duid=, else netup's DUID-LL from the MAC).
func finishV6(nc *netup.Config, anyV4 bool, n bootcfg.Net) {
	if nc.V6 == nil {
		return
	}
	nc.V6.Only = !anyV4
	nc.V6.Timeout = nc.DHCPTimeout
	if anyV4 && nc.V6.Method != netup.V6Static {
		// Beside IPv4 the IPv6 half is best effort, as NetworkManager's
		// may-fail: Fedora CoreOS's default ip=dhcp,dhcp6 must boot an
		// IPv4-only network without waiting rd.retry for a router.
		nc.V6.Timeout = min(nc.V6.Timeout, DualStackV6Wait)
		nc.V6.MayFail = true
	}
	for _, d := range n.DUIDs {
		if d.Iface == "" || d.Iface == nc.Iface {
			nc.V6.DUID = d.Bytes
		}
	}
}
