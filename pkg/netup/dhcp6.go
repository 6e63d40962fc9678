package netup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/vishvananda/netlink"
)

// MaxDUID is RFC 8415 §11.1's bound: a DUID is at most 128 bytes after
// its 2-byte type.
const MaxDUID = 130

// dhcp6 leases an address (IA_NA) with the lease's DUID and IAID: a
// rapid-commit SOLICIT (a server that allows it answers with the REPLY at
// once; others ADVERTISE and get a REQUEST). The address goes on the link
// as /128, as an IA_NA address is (RFC 8415 §21.6 carries no prefix length;
// the RA's prefix gives the on-link route): systemd-networkd adds its lease
// as /128 and ignores it when the link holds the same address with another
// prefix length, so a /64 from the initramfs would leave the root's networkd
// never taking the address over. The boot waits for its DAD.
func dhcp6(ctx context.Context, link netlink.Link, timeout time.Duration, l6 *Lease6, log *slog.Logger) error {
	name := link.Attrs().Name
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := nclient6.New(name, nclient6.WithTimeout(time.Second), nclient6.WithRetry(3))
	if err != nil {
		return fmt.Errorf("dhcpv6 on %s: %w", name, err)
	}
	// Close only stops listening: the lease is deliberately not released.
	defer c.Close()
	duid, err := dhcpv6.DUIDFromBytes(l6.DUID)
	if err != nil {
		return fmt.Errorf("DHCPv6 DUID %x: %w", l6.DUID, err)
	}
	var iaid [4]byte
	iaid[0], iaid[1], iaid[2], iaid[3] = byte(l6.IAID>>24), byte(l6.IAID>>16), byte(l6.IAID>>8), byte(l6.IAID)
	mods := []dhcpv6.Modifier{
		dhcpv6.WithClientID(duid), dhcpv6.WithIAID(iaid),
		dhcpv6.WithRequestedOptions(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList),
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		reply, err := c.RapidSolicit(tctx, mods...)
		if err == nil {
			if err = leaseFrom6(reply, l6, func(s string) { log.Warn("ignoring part of the DHCPv6 reply: "+s, "iface", name) }); err == nil {
				break
			}
		}
		lastErr = err
		log.Info("no DHCPv6 lease yet", "iface", name, "attempt", attempt+1, "err", err)
		wait := time.Duration(min(attempt+1, 5))*500*time.Millisecond + time.Duration(rand.Int64N(int64(500*time.Millisecond)))
		select {
		case <-tctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fail("check that a DHCPv6 server (dnsmasq --dhcp-range=<v6 range>, Kea) answers on this segment, and its pool for this DUID; ip=auto6 uses SLAAC instead, rd.net.timeout.dhcp=<s> waits longer",
				"no DHCPv6 lease on %s (DUID %x, IAID %d) within %s: %v", name, l6.DUID, l6.IAID, timeout, lastErr)
		case <-time.After(wait):
		}
	}
	a := &l6.Addrs[0]
	addr := &netlink.Addr{IPNet: &a.Net, ValidLft: lftSecs(a.Valid), PreferedLft: lftSecs(a.Preferred)}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("add DHCPv6 address %s: %w", a.Net.String(), err)
	}
	if _, err := waitAddr(ctx, link, a.Net.IP.Equal, timeout, "DHCPv6"); err != nil {
		return err
	}
	return nil
}

// info6 asks DHCPv6 for DNS only (the RA's O flag: "other configuration");
// without an answer the boot goes on with what the RA gave.
func info6(ctx context.Context, link netlink.Link, l6 *Lease6, log *slog.Logger) {
	name := link.Attrs().Name
	c, err := nclient6.New(name, nclient6.WithTimeout(time.Second), nclient6.WithRetry(3))
	if err != nil {
		log.Warn("DHCPv6 information request", "iface", name, "err", err)
		return
	}
	defer c.Close()
	duid, err := dhcpv6.DUIDFromBytes(l6.DUID)
	if err != nil {
		return
	}
	m, err := dhcpv6.NewMessage(dhcpv6.WithClientID(duid),
		dhcpv6.WithRequestedOptions(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList))
	if err != nil {
		return
	}
	m.MessageType = dhcpv6.MessageTypeInformationRequest
	m.AddOption(dhcpv6.OptElapsedTime(0))
	reply, err := c.SendAndRead(ctx, nclient6.AllDHCPRelayAgentsAndServers, m, nclient6.IsMessageType(dhcpv6.MessageTypeReply))
	if err != nil {
		log.Info("no DHCPv6 answer to an information request; using the RA's DNS", "iface", name, "err", err)
		return
	}
	note := func(format string, args ...any) {
		log.Warn("ignoring part of the DHCPv6 reply: "+fmt.Sprintf(format, args...), "iface", name)
	}
	for _, d := range reply.Options.DNS() {
		l6.DNS = addDNS6(l6.DNS, d, "DHCPv6 DNS", note)
	}
	if sl := reply.Options.DomainSearchList(); sl != nil {
		l6.Search = addSearch(l6.Search, sl.Labels, "DHCPv6 domain search", note)
	}
}

func lftSecs(d time.Duration) int {
	if d == Forever || d > 0xfffffffe*time.Second {
		return 0xffffffff
	}
	return int(d / time.Second)
}

// leaseFrom6 reads a DHCPv6 REPLY into l6, first checking what the server
// may not do: a reply for another client or IA, a status other than
// success, an address that is not global unicast or has no valid
// lifetime. The address leads l6.Addrs; DNS and search entries that are
// unusable, duplicated or past the bounds are dropped, each noted.
func leaseFrom6(reply *dhcpv6.Message, l6 *Lease6, noteS func(string)) error {
	note := func(format string, args ...any) { noteS(fmt.Sprintf(format, args...)) }
	if reply.MessageType != dhcpv6.MessageTypeReply {
		return fmt.Errorf("DHCPv6 %s, not a reply", reply.MessageType)
	}
	if cid := reply.Options.ClientID(); cid == nil || string(cid.ToBytes()) != string(l6.DUID) {
		return errors.New("DHCPv6 reply for another client (client id differs)")
	}
	sid := reply.Options.ServerID()
	if sid == nil {
		return errors.New("DHCPv6 reply without a server id")
	}
	if st := reply.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		return fmt.Errorf("DHCPv6 server says %s (%s)", st.StatusCode, quote(st.StatusMessage))
	}
	var ia *dhcpv6.OptIANA
	for _, o := range reply.Options.IANA() {
		if uint32(o.IaId[0])<<24|uint32(o.IaId[1])<<16|uint32(o.IaId[2])<<8|uint32(o.IaId[3]) == l6.IAID {
			ia = o
			break
		}
	}
	if ia == nil {
		return fmt.Errorf("DHCPv6 reply has no address for IAID %d", l6.IAID)
	}
	if st := ia.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		return fmt.Errorf("DHCPv6 server says %s for the address (%s)", st.StatusCode, quote(st.StatusMessage))
	}
	var got *Addr6
	for _, a := range ia.Options.Addresses() {
		ip := a.IPv6Addr
		switch {
		case len(ip) != net.IPv6len || ip.To4() != nil || !ip.IsGlobalUnicast():
			note("address %v: %v", ip, errNoV6)
		case a.ValidLifetime <= 0:
			note("address %s: valid lifetime 0", ip)
		case got == nil:
			pref := min(a.PreferredLifetime, a.ValidLifetime)
			got = &Addr6{Net: net.IPNet{IP: append(net.IP(nil), ip...), Mask: net.CIDRMask(128, 128)},
				Valid: a.ValidLifetime, Preferred: pref, From: "dhcp6"}
		}
	}
	if got == nil {
		return errors.New("DHCPv6 reply has no usable address")
	}
	if n := len(sid.ToBytes()); n > MaxDUID {
		return fmt.Errorf("DHCPv6 server id of %d bytes, at most %d", n, MaxDUID)
	}
	l6.Addrs = append([]Addr6{*got}, l6.Addrs...)
	l6.ServerID = sid.ToBytes()
	l6.T1, l6.T2, l6.DHCP = ia.T1, ia.T2, true
	for _, d := range reply.Options.DNS() {
		l6.DNS = addDNS6(l6.DNS, d, "DHCPv6 DNS", note)
	}
	if sl := reply.Options.DomainSearchList(); sl != nil {
		l6.Search = addSearch(l6.Search, sl.Labels, "DHCPv6 domain search", note)
	}
	return nil
}
