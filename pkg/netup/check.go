package netup

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Bounds on what a DHCP server can make the initramfs apply or write. Every
// value past them is dropped with a warning naming the option, never used.
const (
	// MaxHostname is the kernel's HOST_NAME_MAX: sethostname(2) refuses
	// longer names.
	MaxHostname = 64
	// MaxNameservers is glibc's and musl's MAXNS: resolv.conf lines past it
	// are ignored, so they are not written.
	MaxNameservers = 3
	// MaxSearch is the search domains resolv.conf gets (glibc before 2.26
	// read no more than six).
	MaxSearch = 6
	// MaxRoutes bounds option 121: no boot network needs more, and each one
	// is a netlink call and a line in the handover files.
	MaxRoutes = 32
	maxDomain = 253 // RFC 1035: a name in text form
	minMTU    = 576 // RFC 791: every IPv4 host must take datagrams this big
	quoteMax  = 80  // bytes of a refused value shown in a warning
)

var (
	errEmpty = errors.New("empty")
	errLong  = errors.New("too long")
)

// checkName reports why s is not a dot-separated list of RFC 1123 labels
// (letters, digits, inner hyphens; 1-63 bytes each) of at most max bytes.
// underscore admits '_' too, which DNS names (not host names) may carry.
func checkName(s string, max int, underscore bool) error {
	switch {
	case s == "":
		return errEmpty
	case len(s) > max:
		return fmt.Errorf("%w: %d bytes, at most %d", errLong, len(s), max)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("label of %d bytes, at most 63", len(label))
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("label starts or ends with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' && underscore {
				continue
			}
			return fmt.Errorf("character %q", c)
		}
	}
	return nil
}

// CheckHostname reports why s cannot be the node's host name.
func CheckHostname(s string) error { return checkName(s, MaxHostname, false) }

// CheckDomain reports why s (without a trailing dot) cannot be a DNS
// domain in resolv.conf.
func CheckDomain(s string) error { return checkName(s, maxDomain, true) }

// trimName drops what servers commonly append to a name: NUL terminators
// (ISC dhcpd, Windows) and the root's dot.
func trimName(s string) string {
	return strings.TrimSuffix(strings.TrimRight(s, "\x00"), ".")
}

// quote renders an untrusted value for a log line: escaped to ASCII (the
// console may not speak UTF-8, and must never see a control sequence), and
// cut short.
func quote(s string) string {
	if len(s) > quoteMax {
		return strconv.QuoteToASCII(s[:quoteMax]) + "…"
	}
	return strconv.QuoteToASCII(s)
}

func ignore(log *slog.Logger, opt string, value string, why any) {
	log.Warn(fmt.Sprintf("ignoring DHCP option %s %s: %v", opt, value, why))
}

// checkedName returns v trimmed when check accepts it, and "" (with a
// warning naming option opt) when it does not; an empty v stays empty
// without a warning, as the server simply did not send the option.
func checkedName(v string, check func(string) error, log *slog.Logger, opt, what string) string {
	if v == "" {
		return ""
	}
	t := trimName(v)
	if err := check(t); err != nil {
		ignore(log, opt, quote(v), fmt.Sprintf("not a valid %s (%v)", what, err))
		return ""
	}
	return t
}

// checkLease drops every part of a DHCP lease that cannot be used safely,
// each with a warning naming the option: names that are not RFC 1123
// names (they reach resolv.conf, sethostname(2) and the handover files),
// unusable DNS servers and MTUs, and more entries than the bounds above.
func checkLease(l *Lease, log *slog.Logger) {
	l.Hostname = checkedName(l.Hostname, CheckHostname, log, "12 (host name)", "host name")
	l.Domain = checkedName(l.Domain, CheckDomain, log, "15 (domain name)", "domain name")
	var search []string
	for _, s := range l.Search {
		d := trimName(s)
		if err := CheckDomain(d); err != nil {
			ignore(log, "119 (domain search)", quote(s), fmt.Sprintf("not a valid domain name (%v)", err))
			continue
		}
		if !slices.Contains(search, d) {
			search = append(search, d)
		}
	}
	if len(search) > MaxSearch {
		ignore(log, "119 (domain search)", strings.Join(search[MaxSearch:], " "), fmt.Sprintf("more than %d domains", MaxSearch))
		search = search[:MaxSearch]
	}
	l.Search = search
	var dns []net.IP
	for _, ip := range l.DNS {
		switch {
		case ip.To4() == nil || ip.IsUnspecified() || ip.Equal(net.IPv4bcast) || ip.IsMulticast():
			ignore(log, "6 (DNS servers)", ip.String(), "not a usable server address")
		case slices.ContainsFunc(dns, ip.Equal):
		case len(dns) == MaxNameservers:
			ignore(log, "6 (DNS servers)", ip.String(), fmt.Sprintf("more than %d servers", MaxNameservers))
		default:
			dns = append(dns, ip)
		}
	}
	l.DNS = dns
	if l.MTU != 0 && l.MTU < minMTU {
		ignore(log, "26 (interface MTU)", strconv.Itoa(l.MTU), fmt.Sprintf("below %d", minMTU))
		l.MTU = 0
	}
	if len(l.Routes) > MaxRoutes {
		ignore(log, "121 (classless static routes)", fmt.Sprintf("%d routes", len(l.Routes)), fmt.Sprintf("more than %d; using the first %d", MaxRoutes, MaxRoutes))
		l.Routes = l.Routes[:MaxRoutes]
	}
}
