package netup

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
)

// byKernelNames maps the names ip= and bootdev= give (the kernel's, as
// dracut lines are written: ip=eth0:dhcp) onto the links' names after the
// boot renamed them. said keeps each mapping to one console line.
func byKernelNames(cfg Config, links []netlink.Link, kn kernelNames, said map[string]bool, log *slog.Logger) Config {
	rename := func(name string) string {
		l := kn.find(links, name)
		if l == nil || l.Attrs().Name == name {
			return name
		}
		if !said[name] {
			said[name] = true
			log.Info(fmt.Sprintf("%s is %s (%s), by the kernel's name for it", name, l.Attrs().Name, l.Attrs().HardwareAddr))
		}
		return l.Attrs().Name
	}
	if cfg.Iface != "" {
		cfg.Iface = rename(cfg.Iface)
	}
	if len(cfg.Skip) > 0 {
		skip := make([]string, len(cfg.Skip))
		for i, s := range cfg.Skip {
			skip[i] = rename(s)
		}
		cfg.Skip = skip
	}
	return cfg
}

// carrierGrace is how long, once one of several NICs has carrier, the
// boot waits for the others before it races DHCP on those that have it:
// links brought up together report carrier a few milliseconds apart.
const carrierGrace = time.Second

// race chooses among several NICs when nothing names the boot link
// (dracut's ip=dhcp on a node with many ports): DHCP discovery runs on
// every NIC with carrier at once, and the first that is offered a usable
// address wins. Only that one then requests a lease, so the servers on
// the other links hold none.
type race struct {
	firstCarrier time.Time
}

// pick returns the winner; wait true: look again shortly; (nil, false,
// nil): not a race (one candidate, a link named, a static address, an
// IPv6-only boot: the race is DHCPv4's), the first link with carrier is the
// boot link.
func (r *race) pick(ctx context.Context, cfg Config, want []netlink.Link, deadline time.Time, log *slog.Logger) (netlink.Link, bool, error) {
	if cfg.Static != nil || cfg.BootIF != nil || cfg.Iface != "" || len(want) < 2 || (cfg.V6 != nil && cfg.V6.Only) {
		return nil, false, nil
	}
	var up []netlink.Link
	for _, l := range want {
		if hasCarrier(l.Attrs().Name) {
			up = append(up, l)
		}
	}
	if len(up) == 0 {
		return nil, false, nil
	}
	if r.firstCarrier.IsZero() {
		r.firstCarrier = time.Now()
	}
	if len(up) < len(want) && time.Since(r.firstCarrier) < carrierGrace && time.Now().Before(deadline) {
		return nil, true, nil
	}
	if len(up) == 1 {
		return nil, false, nil
	}
	win, why, err := raceOffers(ctx, cfg, up, log)
	if err != nil {
		return nil, false, err
	}
	for _, o := range want {
		if o.Attrs().Index != win.Attrs().Index {
			_ = netlink.LinkSetDown(o)
		}
	}
	log.Info(fmt.Sprintf("boot link %s (%s): %s", win.Attrs().Name, win.Attrs().HardwareAddr, why))
	return win, false, nil
}

type offerResult struct {
	link  netlink.Link
	offer *dhcpv4.DHCPv4
	err   error
}

// raceOffers runs DHCP discovery on every link at once and returns the
// first link offered a usable address, and why it won.
func raceOffers(ctx context.Context, cfg Config, up []netlink.Link, log *slog.Logger) (netlink.Link, string, error) {
	if cfg.DHCPTimeout != Forever {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.DHCPTimeout)
		defer cancel()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	log.Info("several links have carrier and none is named: DHCP discovery on all of them, the first offer wins", "links", describe(up))
	ch := make(chan offerResult, len(up))
	for _, l := range up {
		go func() {
			res := offerResult{link: l}
			defer func() {
				if p := recover(); p != nil {
					res.err = fmt.Errorf("DHCP discovery on %s panicked: %v", l.Attrs().Name, p)
				}
				ch <- res
			}()
			res.offer, res.err = discover(ctx, l, cfg.ClientID)
		}()
	}
	var win *offerResult
	var errs []string
	for range up {
		res := <-ch
		switch {
		case res.err != nil:
			errs = append(errs, res.link.Attrs().Name+": "+res.err.Error())
		case win == nil:
			win = &res
			stop() // the others stop discovering; wait for their sockets to close
		}
	}
	if win == nil {
		return nil, "", fail("check that a DHCP server answers on one of the links, or name the boot link with BOOTIF= or ip=<iface>:dhcp",
			"no DHCP offer on any of %s (%s)", describe(up), strings.Join(errs, "; "))
	}
	var others []string
	for _, l := range up {
		if l.Attrs().Index != win.link.Attrs().Index {
			others = append(others, l.Attrs().Name)
		}
	}
	slices.Sort(others)
	why := fmt.Sprintf("the first DHCP offer (%s from %s) among the links with carrier; no lease requested on %s",
		win.offer.YourIPAddr, ipOrNone(win.offer.ServerIdentifier()), strings.Join(others, ", "))
	return win.link, why, nil
}

// discover sends DISCOVER on l until a server offers a usable address or
// ctx ends. It never sends REQUEST, nor asks for rapid commit (whose ACK
// would bind a lease on every link): an offer binds nothing.
func discover(ctx context.Context, l netlink.Link, clientID []byte) (*dhcpv4.DHCPv4, error) {
	a := l.Attrs()
	if clientID == nil {
		clientID = append([]byte{1}, a.HardwareAddr...)
	}
	c, err := nclient4.New(a.Name, nclient4.WithHWAddr(a.HardwareAddr), nclient4.WithTimeout(time.Second), nclient4.WithRetry(2))
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", a.Name, err)
	}
	defer c.Close()
	mods := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(clientID)),
		dhcpv4.WithRequestedOptions(requested...),
	}
	for {
		offer, err := c.DiscoverOffer(ctx, mods...)
		if err == nil {
			ip := offer.YourIPAddr.To4()
			if ip != nil && ip.IsGlobalUnicast() {
				return offer, nil
			}
			err = fmt.Errorf("offer of %s from %s is not usable", offer.YourIPAddr, ipOrNone(offer.ServerIdentifier()))
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no usable offer: %w", err)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return nil, fmt.Errorf("no usable offer: %w", err)
		}
	}
}
