package bootcfg

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Messages shared by several root forms.
const (
	rootHint     = "use root=live:http(s)://<server>/<path> or root=nbd:<server>:<port|export>"
	localReason  = "local roots are not supported by streamroot; use root=live:http(s)://… or root=nbd:…"
	schemeHint   = "serve the image over HTTP(S) (e.g. `streamroot serve`) and use root=live:http(s)://<server>/<path>"
	nbdFormHint  = "use root=nbd:<server>:<port|export>[:<fstype>[:<rootflags>]]; IPv6 servers in [brackets]"
	netrootHint  = "streamroot supports only netroot=nbd:<server>:<port|export>; for HTTP use root=live:http(s)://…"
	conflictHint = "give the network root once: either root=… or netroot=nbd:…"
)

// resolveRoot turns the last root= and netroot= into Config.Root.
//
// dracut's NBD docs write "root=??? netroot=nbd:…": with netroot= present,
// root= is a placeholder such as root=/dev/nbd0 and is not examined — unless
// it too names a network root, which would leave it unclear which one to boot.
func (p *parser) resolveRoot() {
	if p.netroot != nil {
		t := *p.netroot
		if p.root != nil && isNetworkRoot(p.root.val) && p.root.val != t.val {
			p.fail(*p.root, "conflicts with "+t.raw, conflictHint)
		}
		if !strings.HasPrefix(t.val, "nbd:") {
			reason := "unsupported netroot"
			if t.val == "" {
				reason = "empty netroot"
			}
			p.fail(t, reason, netrootHint)
			return
		}
		p.nbdRoot(t, t.val)
		return
	}
	if p.root == nil {
		return
	}
	t := *p.root
	v := t.val
	switch {
	case v == "":
		p.fail(t, "empty root", rootHint)
	case strings.HasPrefix(v, "live:"):
		p.liveRoot(t, strings.TrimPrefix(v, "live:"))
	case strings.HasPrefix(v, "nbd:"):
		p.nbdRoot(t, v)
	case hasHTTPScheme(v):
		p.liveRoot(t, v)
	case isLocalRoot(v):
		p.fail(t, localReason, rootHint)
	case strings.Contains(v, "://"):
		p.fail(t, "unsupported URL scheme "+strconv.Quote(schemeOf(v)), schemeHint)
	default:
		p.fail(t, "unsupported root", rootHint)
	}
}

// isNetworkRoot reports whether a root= value names one of our network roots.
func isNetworkRoot(v string) bool {
	return strings.HasPrefix(v, "live:") || strings.HasPrefix(v, "nbd:") || hasHTTPScheme(v)
}

func schemeOf(v string) string {
	s, _, _ := strings.Cut(v, "://")
	return s
}

// hasHTTPScheme reports whether v starts with http:// or https://, in any
// case (URL schemes are case-insensitive).
func hasHTTPScheme(v string) bool {
	s, _, ok := strings.Cut(v, "://")
	return ok && (strings.EqualFold(s, "http") || strings.EqualFold(s, "https"))
}

// isLocalRoot recognises dracut's local block-device specs, to give them a
// specific message: they are the commonest mistake when converting a
// CD/USB live config to network boot.
func isLocalRoot(v string) bool {
	if strings.HasPrefix(v, "/") {
		return true
	}
	for _, p := range []string{"LABEL=", "CDLABEL=", "UUID=", "PARTUUID=", "PARTLABEL=", "block:", "ZFS="} {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// liveRoot handles root=live:<url> and root=http(s)://<url>.
func (p *parser) liveRoot(t token, v string) {
	// A file path is dracut's image file in the initramfs; a /dev/ path is
	// a local block device, refused below.
	if strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "/dev/") {
		p.bakedRoot(t, v)
		return
	}
	if !strings.Contains(v, "://") && (v == "" || isLocalRoot(v)) {
		if v == "" {
			p.fail(t, "empty URL after live:", rootHint)
		} else {
			p.fail(t, localReason, rootHint)
		}
		return
	}
	u, reason, hint := parseHTTPURL(v)
	if reason != "" {
		p.fail(t, reason, hint)
		return
	}
	p.cfg.Root = Root{
		Kind: RootLive,
		Arg:  t.raw,
		URL:  u,
	}
}

// bakedRoot handles root=live:<path>: under dracut the ISO is a file in the
// initramfs (the stock Foreman Discovery Image packs it there, and
// Foreman's template says root=live:/fdi.iso); here it is the image at the
// URL the initramfs was built with, so that line boots unchanged.
func (p *parser) bakedRoot(t token, path string) {
	if p.defaults.ImageURL == "" {
		p.fail(t, "a path, and this initramfs has no image URL built in ("+ImageURLFile+")",
			"name the image on the kernel line (root=live:http(s)://<server>/<path>), or build the initramfs with an image URL (-image-url http(s)://<server>/<image>)")
		return
	}
	u, reason, _ := parseHTTPURL(p.defaults.ImageURL)
	if reason != "" {
		p.fail(t, "the image URL built into the initramfs ("+ImageURLFile+") is unusable: "+reason,
			"rebuild the initramfs with -image-url http(s)://<server>/<image>, or name the image on the kernel line (root=live:http(s)://…)")
		return
	}
	p.cfg.Root = Root{Kind: RootLive, Arg: t.raw, URL: u, Path: path}
}

// parseHTTPURL accepts an absolute http or https URL with a host. On
// failure it returns a reason and a hint instead.
func parseHTTPURL(v string) (u *url.URL, reason, hint string) {
	if v == "" {
		return nil, "empty URL", rootHint
	}
	u, err := url.Parse(v)
	if err != nil {
		return nil, "cannot parse URL: " + unwrapURLError(err), "check the URL's spelling; quote it if it contains spaces"
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return nil, "not a URL (no http:// or https://)", rootHint
	default:
		return nil, "unsupported URL scheme " + strconv.Quote(u.Scheme) + "; only http and https", schemeHint
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, "URL has no host", "write it as " + u.Scheme + "://<server>/<path>"
	}
	return u, "", ""
}

// unwrapURLError drops url.Error's repetition of the URL, which the
// ArgError already shows.
func unwrapURLError(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}

// nbdRoot parses nbd:<server>:<port|exportname>[:<fstype>[:<rootflags>[:<nbdopts>]]],
// splitting like dracut's nbdroot.sh, with IPv6 servers in [brackets].
func (p *parser) nbdRoot(t token, v string) {
	rest := strings.TrimPrefix(v, "nbd:")
	var server string
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			p.fail(t, "unterminated [ in NBD server", nbdFormHint)
			return
		}
		server, rest = rest[1:end], rest[end+1:]
		// netip, unlike net.ParseIP, takes a zone: fe80::1%eth0 is a fine server.
		if a, err := netip.ParseAddr(server); err != nil || !a.Is6() {
			p.fail(t, "NBD server "+strconv.Quote(server)+" in [] is not an IPv6 address", nbdFormHint)
			return
		}
		if rest != "" && rest[0] != ':' {
			p.fail(t, "expected ':' after the ] of the NBD server", nbdFormHint)
			return
		}
		rest = strings.TrimPrefix(rest, ":")
	} else {
		server, rest, _ = strings.Cut(rest, ":")
		if server == "" {
			p.fail(t, "missing NBD server", nbdFormHint)
			return
		}
		if !validHost(server) {
			p.fail(t, "NBD server "+strconv.Quote(server)+" is not a host name or IPv4 address", nbdFormHint)
			return
		}
	}
	// The fields after the port or export (<fstype>, <rootflags>,
	// nbd-client options) are accepted and have no effect: the layers are
	// found by their magic and mounted read-only, and the block daemon is
	// its own NBD client (see Forms).
	f := strings.SplitN(rest, ":", 2)
	r := Root{Kind: RootNBD, Arg: t.raw, NBDServer: server, NBDPort: DefaultNBDPort}
	switch pe := f[0]; {
	case pe == "":
		p.fail(t, "missing NBD port or export name", nbdFormHint)
		return
	case allDigits(pe):
		n, err := strconv.Atoi(pe)
		if err != nil || n < 1 || n > 65535 {
			p.fail(t, "NBD port "+pe+" is out of range 1-65535", nbdFormHint)
			return
		}
		r.NBDPort = n
	default:
		r.NBDExport = pe
	}
	p.cfg.Root = r
}

// validHost accepts DNS names (underscores too: they occur in the wild,
// e.g. TFTP_SERVER placeholders and Windows-named hosts) and IPv4 addresses.
func validHost(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
