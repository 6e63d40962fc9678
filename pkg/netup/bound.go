package netup

import (
	"fmt"
	"strings"
)

// Bound says in one line what the boot link got, for the console, in the
// form the demo and operators read ("bound ADDR on IFACE (MAC) via HOW"):
// the IPv4 address and how (DHCP from whom, or static), then each IPv6
// address and its source. An IPv6-only lease has no IPv4 part, so the line
// never shows an empty IPv4 address "via static".
func (l *Lease) Bound() string {
	var addrs, hows []string
	// On an IPv6-only boot Addr is the first IPv6 address, listed below.
	if l.Addr.IP != nil && l.Addr.IP.To4() != nil {
		how := "static"
		if l.DHCP {
			how = fmt.Sprintf("DHCP from %s, lease %s, client id %x", l.ServerID, l.LeaseTime, l.ClientID)
		}
		addrs, hows = append(addrs, l.Addr.String()), append(hows, how)
	}
	if l.V6 != nil {
		for _, a := range l.V6.Addrs {
			addrs, hows = append(addrs, a.Net.String()), append(hows, a.From)
		}
		if len(l.V6.Addrs) == 0 {
			addrs, hows = append(addrs, "IPv6 link-local only"), append(hows, string(l.V6.Method))
		}
	}
	if len(addrs) == 0 {
		addrs, hows = []string{"no address"}, []string{"nothing"}
	}
	return fmt.Sprintf("bound %s on %s (%s) via %s", strings.Join(addrs, ", "), l.Iface, l.MAC, strings.Join(hows, "; "))
}
