package netup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// requested are the options we act on or hand over to the real OS.
var requested = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
	dhcpv4.OptionDomainName, dhcpv4.OptionHostName, dhcpv4.OptionInterfaceMTU,
	dhcpv4.OptionClasslessStaticRoute, dhcpv4.OptionIPAddressLeaseTime,
	dhcpv4.OptionBroadcastAddress, dhcpv4.OptionNTPServers, dhcpv4.OptionDNSDomainSearchList,
}

// ask is what one DHCPv4 client run asks for.
type ask struct {
	clientID []byte // option 61
	rapid    bool   // rapid commit on the first DISCOVER
	// requested is the address the firmware has just leased (PXELinux
	// IPAPPEND 1), asked for first; nil: none.
	requested net.IP
	timeout   time.Duration
}

// dhcp runs DISCOVER/OFFER/REQUEST/ACK on iface until it has a lease or the
// timeout passes. With a.requested it first asks for that address alone
// (initReboot). With rapid, the first DISCOVER asks for rapid commit
// (RFC 4039) and a server that allows it answers with the ACK at once; the
// later ones do not (as Android's client falls back), so a server that
// mishandles option 80 costs one attempt, not the boot. A NAK restarts
// discovery; silence backs off with jitter so a rack of nodes booting
// together does not pulse the server.
func dhcp(ctx context.Context, iface string, mac net.HardwareAddr, a ask, log *slog.Logger) (*Lease, error) {
	clientID, rapid, timeout := a.clientID, a.rapid, a.timeout
	if timeout != Forever {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := nclient4.New(iface, nclient4.WithHWAddr(mac), nclient4.WithTimeout(time.Second), nclient4.WithRetry(3))
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", iface, err)
	}
	// Close only stops listening: the lease is deliberately not released.
	defer c.Close()

	mods := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(clientID)),
		dhcpv4.WithRequestedOptions(requested...),
	}
	var lastErr error
	var naks int
	var nakFrom net.IP
	var nakMsg string
	for attempt := 0; ; attempt++ {
		start := time.Now()
		if attempt == 0 && a.requested != nil {
			if l := initReboot(ctx, c, a.requested, mods, log); l != nil {
				return leaseFrom(iface, mac, clientID, l, log), nil
			}
		}
		if attempt == 1 && rapid {
			log.Info("no lease from a rapid-commit DISCOVER; asking without rapid commit from now on", "iface", iface)
		}
		l, err := exchange(ctx, c, rapid && attempt == 0, mods, log)
		if err == nil {
			err = usableAck(l.ACK)
		}
		if err == nil {
			return leaseFrom(iface, mac, clientID, l, log), nil
		}
		var nak *nclient4.ErrNak
		if errors.As(err, &nak) {
			// The NAK's message (option 56) is the server's text: it reaches
			// the console escaped, never as nclient4's error string.
			naks, nakFrom, nakMsg = naks+1, nak.Nak.ServerIdentifier(), nak.Nak.Message()
			said := ""
			if nakMsg != "" {
				said = " (server says " + quote(nakMsg) + ")"
			}
			log.Warn("DHCP server refused the offer (NAK); discovering again"+said, "iface", iface, "server", ipOrNone(nakFrom))
			lastErr = nil
		} else {
			lastErr = err
			log.Info("no DHCP answer yet", "iface", iface, "attempt", attempt+1, "after", time.Since(start).Round(time.Millisecond))
		}
		wait := time.Duration(min(attempt+1, 5))*500*time.Millisecond + time.Duration(rand.Int64N(int64(500*time.Millisecond)))
		select {
		case <-ctx.Done():
			if naks > 0 {
				// A server is there and says no: "no DHCP answer" would send
				// the operator to the cabling.
				said := ""
				if nakMsg != "" {
					said = ", the last saying " + quote(nakMsg)
				}
				if lastErr != nil {
					said += "; then: " + lastErr.Error()
				}
				return nil, fail("the server offers an address but then refuses to lease it: check its pool and reservations for this MAC and client id (rd.net.dhcp.client-id=), and that no second DHCP server on the segment refuses the first one's offers",
					"no DHCP lease on %s (MAC %s, client id %x) within %s: DHCP server %s refused %d requests (NAK)%s",
					iface, mac, clientID, timeout, ipOrNone(nakFrom), naks, said)
			}
			return nil, fail("check that a DHCP server answers on this segment (and its range is not exhausted); rd.net.timeout.dhcp=<s> waits longer, ip=<ip>::<gw>:<mask>::<iface>:none sets a static address",
				"no DHCP lease on %s (MAC %s, client id %x) within %s: %v", iface, mac, clientID, timeout, lastErr)
		case <-time.After(wait):
		}
	}
}

// exchange is one lease attempt. With rapid, the DISCOVER carries option
// 80: a server that allows rapid commit answers with an ACK that carries it
// too (RFC 4039 §4: an ACK without it is ignored), any other with an OFFER,
// which gets the usual REQUEST, without option 80. nclient4 has no
// rapid-commit call, so the DISCOVER is built here the way its
// DiscoverOffer builds one.
func exchange(ctx context.Context, c *nclient4.Client, rapid bool, mods []dhcpv4.Modifier, log *slog.Logger) (*nclient4.Lease, error) {
	if !rapid {
		return c.Request(ctx, mods...)
	}
	discover, err := dhcpv4.NewDiscovery(c.InterfaceAddr(), dhcpv4.PrependModifiers(mods,
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionRapidCommit, nil)))...)
	if err != nil {
		return nil, fmt.Errorf("build a DHCPDISCOVER: %w", err)
	}
	reply, err := c.SendAndRead(ctx, c.RemoteAddr(), discover, func(m *dhcpv4.DHCPv4) bool {
		return m.MessageType() == dhcpv4.MessageTypeOffer || rapidAck(m, log)
	})
	if err != nil {
		return nil, fmt.Errorf("no offer: %w", err)
	}
	if reply.MessageType() == dhcpv4.MessageTypeAck {
		log.Info("leased by rapid commit (DISCOVER, ACK)", "server", ipOrNone(reply.ServerIdentifier()))
		return &nclient4.Lease{Offer: reply, ACK: reply, CreationTime: time.Now()}, nil
	}
	return c.RequestFromOffer(ctx, reply, mods...)
}

// initReboot asks for the address the firmware has just leased with a
// REQUEST in RFC 2131's INIT-REBOOT state (§4.3.2: option 50, no server
// identifier, no ciaddr): the server that leased it ACKs in one round trip,
// and with the firmware's client id (01+MAC, as iPXE sends) the lease stays
// the node's one lease. Any other answer, or none within 3 s, is logged and
// the caller discovers as usual.
func initReboot(ctx context.Context, c *nclient4.Client, want net.IP, mods []dhcpv4.Modifier, log *slog.Logger) *nclient4.Lease {
	req, err := dhcpv4.New(dhcpv4.PrependModifiers(mods,
		dhcpv4.WithHwAddr(c.InterfaceAddr()),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want)),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)))...)
	if err != nil {
		log.Warn("cannot build the REQUEST for the firmware's address; discovering", "err", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	reply, err := c.SendAndRead(ctx, c.RemoteAddr(), req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	var bad error
	if err == nil {
		bad = usableAck(reply)
	}
	switch {
	case err != nil:
		log.Info("no answer to the REQUEST for the firmware's address; discovering", "addr", want, "err", err)
	case reply.MessageType() == dhcpv4.MessageTypeNak:
		said := ""
		if m := reply.Message(); m != "" {
			said = " (server says " + quote(m) + ")"
		}
		log.Info("the DHCP server refused the firmware's address (NAK); discovering"+said, "addr", want, "server", ipOrNone(reply.ServerIdentifier()))
	case !reply.YourIPAddr.Equal(want):
		log.Warn(fmt.Sprintf("the DHCP server acknowledged %s, not the firmware's %s; discovering", reply.YourIPAddr, want), "server", ipOrNone(reply.ServerIdentifier()))
	case bad != nil:
		log.Warn("ignoring the DHCPACK for the firmware's address: "+bad.Error()+"; discovering", "server", ipOrNone(reply.ServerIdentifier()))
	default:
		log.Info("leased the firmware's address again (INIT-REBOOT: REQUEST, ACK)", "addr", want, "server", ipOrNone(reply.ServerIdentifier()))
		return &nclient4.Lease{Offer: reply, ACK: reply, CreationTime: time.Now()}
	}
	return nil
}

// rapidAck says whether m, an answer to a rapid-commit DISCOVER, is a lease
// to take: an ACK that carries option 80 and a usable address. Anything else
// is logged and ignored, so another server's OFFER (or a good ACK) can still
// be taken in the same wait.
func rapidAck(m *dhcpv4.DHCPv4, log *slog.Logger) bool {
	if m.MessageType() != dhcpv4.MessageTypeAck {
		return false
	}
	if !m.Options.Has(dhcpv4.OptionRapidCommit) {
		log.Warn("ignoring a DHCPACK to a DISCOVER without rapid commit (option 80), as RFC 4039 asks", "server", ipOrNone(m.ServerIdentifier()))
		return false
	}
	if err := usableAck(m); err != nil {
		log.Warn("ignoring a rapid-commit DHCPACK: "+err.Error(), "server", ipOrNone(m.ServerIdentifier()))
		return false
	}
	return true
}

// usableAck checks what an ACK must hold to be put on the link: a unicast
// IPv4 address and, if given, a contiguous subnet mask (a /32, as some
// clouds lease with classless routes, is one).
func usableAck(m *dhcpv4.DHCPv4) error {
	ip := m.YourIPAddr.To4()
	if ip == nil || !ip.IsGlobalUnicast() || ip.Equal(net.IPv4bcast) {
		return fmt.Errorf("DHCP server %s leased the unusable address %s", ipOrNone(m.ServerIdentifier()), m.YourIPAddr)
	}
	if mask := m.SubnetMask(); mask != nil {
		if ones, bits := mask.Size(); bits != 32 || ones == 0 {
			return fmt.Errorf("DHCP server %s leased %s with the unusable subnet mask %s", ipOrNone(m.ServerIdentifier()), ip, net.IP(mask))
		}
	}
	return nil
}

func ipOrNone(ip net.IP) string {
	if ip == nil {
		return "(no server id)"
	}
	return ip.String()
}

// leaseFrom reads the ACK into a Lease and drops what cannot be used
// safely (checkLease), warning for each.
func leaseFrom(iface string, mac net.HardwareAddr, clientID []byte, l *nclient4.Lease, log *slog.Logger) *Lease {
	ack := l.ACK
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	out := &Lease{
		Iface:     iface,
		MAC:       mac,
		Addr:      net.IPNet{IP: ack.YourIPAddr.To4(), Mask: mask},
		DNS:       ack.DNS(),
		Domain:    ack.DomainName(),
		Hostname:  ack.HostName(),
		ServerID:  ack.ServerIdentifier(),
		LeaseTime: ack.IPAddressLeaseTime(0),
		Acquired:  l.CreationTime,
		ClientID:  clientID,
		DHCP:      true,
	}
	if rs := ack.Router(); len(rs) > 0 {
		out.Router = rs[0]
	}
	for _, r := range ack.ClasslessStaticRoute() {
		if r != nil && r.Dest != nil {
			out.Routes = append(out.Routes, Route{Dest: *r.Dest, Gateway: r.Router})
		}
	}
	if b := ack.GetOneOption(dhcpv4.OptionInterfaceMTU); len(b) == 2 {
		out.MTU = int(b[0])<<8 | int(b[1])
	} else if b != nil {
		ignore(log, "26 (interface MTU)", fmt.Sprintf("%x", b), "not 2 bytes")
	}
	if raw := ack.GetOneOption(dhcpv4.OptionDNSDomainSearchList); raw != nil {
		if labels := ack.DomainSearch(); labels != nil {
			out.Search = labels.Labels
		} else {
			ignore(log, "119 (domain search)", fmt.Sprintf("%d bytes", len(raw)), "not a valid RFC 1035 name list")
		}
	}
	checkLease(out, log)
	return out
}
