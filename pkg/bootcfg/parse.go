package bootcfg

import (
	"encoding/hex"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// parser carries the state of one Parse call.
type parser struct {
	cfg      *Config
	defaults Defaults
	errs     []*ArgError

	root, netroot *token // last root= and netroot=, resolved in finish
	fetch         *token // streamroot.fetch=, which beats rd.live.ram
	liveRAM       bool   // rd.live.ram was true
	trusted       bool   // a streamroot.trust= was read (Config.Trust narrows)
	// cluster holds the last gateway=, netmask=, hostname=, ksdevice= and
	// mtu=, for anaconda's ip=<address>; clusterIP is the index of that
	// ip= in Config.Net.IP (-1: none).
	cluster   map[string]*token
	clusterIP int
}

func (p *parser) fail(t token, reason, hint string) {
	p.errs = append(p.errs, &ArgError{Arg: t.raw, Reason: reason, hint: hint})
}

// warn records an accepted argument that does not do what it says.
func (p *parser) warn(t token, reason string) {
	p.cfg.Warnings = append(p.cfg.Warnings, Warning{Arg: t.raw, Reason: reason})
}

func (p *parser) ignore(t token) {
	for _, s := range p.cfg.Ignored {
		if s == t.raw {
			return
		}
	}
	p.cfg.Ignored = append(p.cfg.Ignored, t.raw)
}

// arg handles one token. Keys are case-sensitive, as in dracut.
func (p *parser) arg(t token) {
	c := p.cfg
	switch t.key {
	// Root.
	case "root":
		t := t
		p.root = &t
	case "netroot":
		t := t
		p.netroot = &t
	case "rootfstype", "rootflags", "ro", "rw":
		// No effect (see Forms): every layer's filesystem is found by its
		// magic and mounted read-only under an always-writable overlay.
		// Foreman's template passes rootflags=loop rootfstype=auto ro.
	case "nokaslr", "nomodeset", "acpi", "proxy.url", "proxy.type":
		// The kernel's and the real OS's (Foreman's template passes them;
		// the discovery services read proxy.* from /proc/cmdline): nothing
		// for the initramfs to do.
	case "init":
		if !strings.HasPrefix(t.val, "/") {
			p.fail(t, "init= must be an absolute path", "e.g. init=/sbin/init, or drop it for the default")
			return
		}
		c.Init = t.val

	// Live image.
	case "rd.live.dir":
		if d, ok := p.relPath(t); ok {
			c.LiveDir = d
		}
	case "rd.live.squashimg":
		if f, ok := p.relPath(t); ok {
			if f == "." {
				p.fail(t, "must name a file", "e.g. rd.live.squashimg=squashfs.img")
				return
			}
			c.SquashImg = f
		}
	case "rd.live.overlay.size":
		n, err := strconv.Atoi(t.val)
		if err != nil || n <= 0 || !allDigits(t.val) {
			p.fail(t, "overlay size must be a whole number of MiB greater than 0", "e.g. rd.live.overlay.size=4096")
			return
		}
		c.OverlaySize = n
	case "rd.live.ram":
		p.liveRAM = boolArg(t)
	case "rd.live.image", "rd.live.overlay.overlayfs":
		// Always true here: the root is always a live image under overlayfs.
	case "rd.writable.fsimg":
		if boolArg(t) {
			p.fail(t, "not supported by streamroot: the root is always a read-only image under a tmpfs overlay",
				"drop rd.writable.fsimg; use rd.live.overlay.size= to size the writable layer")
		}
	case "rd.luks", "rd.md", "rd.dm", "rd.lvm":
		// streamroot never assembles local storage, so turning these off
		// is a no-op. Turning them on cannot be honoured: say so in the log.
		if boolArg(t) {
			p.ignore(t)
		}

	// Ours.
	case "streamroot.fetch":
		switch m := FetchMode(t.val); m {
		case FetchStream, FetchRAM, FetchLazy:
			c.Fetch = m
			t := t
			p.fetch = &t
		default:
			p.fail(t, "unknown fetch mode", "use streamroot.fetch=stream, ram or lazy")
		}
	case "streamroot.sha256":
		if b, ok := p.digest(t, t.val, "streamroot.sha256=<64 hex digits>"); ok {
			c.SHA256 = b
		}
	case "streamroot.manifest":
		v, ok := strings.CutPrefix(t.val, "sha256:")
		if !ok {
			p.fail(t, "manifest digest must start with \"sha256:\"", "use streamroot.manifest=sha256:<64 hex digits>")
			return
		}
		if b, ok := p.digest(t, v, "streamroot.manifest=sha256:<64 hex digits>"); ok {
			c.Manifest = b
		}
	case "streamroot.manifest.url":
		if _, reason, hint := parseHTTPURL(t.val); reason != "" {
			p.fail(t, reason, hint)
			return
		}
		c.ManifestURL = t.val // as written: re-serialising could change escaping
	case "streamroot.trust":
		p.trust(t)
	case "streamroot.min_version":
		n, err := strconv.ParseUint(t.val, 10, 64)
		if !allDigits(t.val) || err != nil || n == 0 {
			p.fail(t, "minimum version must be a whole number from 1 to 18446744073709551615", "e.g. streamroot.min_version=42")
			return
		}
		c.MinVersion = max(c.MinVersion, n)
	case "streamroot.onfail":
		oneOf(p, t, &c.OnFail, "unknown failure policy", "use streamroot.onfail=reboot, halt or shell", OnFailReboot, OnFailHalt, OnFailShell)
	case "streamroot.tpm":
		oneOf(p, t, &c.TPM, "unknown TPM policy", "use streamroot.tpm=auto, required or off", TPMAuto, TPMRequired, TPMOff)
	case "streamroot.reboot.delay":
		if d, ok := p.seconds(t); ok {
			c.RebootDelay = d
		}
	case "streamroot.io.timeout":
		if d, ok := p.seconds(t); ok {
			if d == 0 {
				p.fail(t, "must be at least 1 second", "e.g. streamroot.io.timeout=60")
				return
			}
			c.IOTimeout = d
		}
	case "streamroot.cache":
		// A bound up to 1 TiB: more is not a memory bound, and MiB << 20
		// must not overflow.
		n, err := strconv.ParseInt(t.val, 10, 64)
		switch {
		case !allDigits(t.val):
			p.fail(t, "cache size must be a whole number of MiB greater than 0", "e.g. streamroot.cache=64")
		case n == 0:
			p.fail(t, "cache size must be at least 1 MiB", "e.g. streamroot.cache=64")
		case err != nil || n > MaxCacheMiB: // all digits: err is a range error
			p.fail(t, "cache size is too large (at most "+strconv.Itoa(MaxCacheMiB)+" MiB)", "e.g. streamroot.cache=64")
		default:
			c.CacheMiB = n
		}

	// Debugging and failure policy.
	case "rd.shell":
		c.Shell = boolArg(t)
	case "rd.debug":
		c.Debug = boolArg(t)
	case "rd.break":
		p.breakArg(t)
	case "rd.retry":
		if d, ok := p.seconds(t); ok {
			c.Retry = d
		}
	case "rd.noverifyssl":
		c.NoVerifySSL = boolArg(t)

	// Network.
	case "ip":
		p.ipArg(t)
	case "BOOTIF":
		p.bootIFArg(t)
	case "ifname":
		p.ifnameArg(t)
	case "bootdev":
		if r := ifNameProblem(t.val); r != "" {
			p.fail(t, "interface name "+r, "e.g. bootdev=eth0")
			return
		}
		c.Net.BootDev = t.val
	case "nameserver":
		p.nameserverArg(t)
	case "rd.peerdns":
		c.Net.PeerDNS = boolArg(t)
	case "rd.bootif":
		c.Net.UseBootIF = boolArg(t)
	case "rd.neednet":
		// The root is always remote, so the network always comes up:
		// rd.neednet=1 is what happens anyway; Foreman passes
		// rd.neednet=0 all the same.
		if !boolArg(t) {
			p.warn(t, "no effect: the root is remote, so the network comes up all the same")
		}
	case "biosdevname":
		p.warn(t, "no effect: there is no biosdevname in the initramfs; link names follow net.ifnames")
	case "net.ifnames":
		// systemd-udevd reads it too; we follow it so the initramfs names
		// links as the real OS will.
		c.Net.Predictable = boolArg(t)
	case "rd.net.timeout.dhcp":
		if t.val == "infinity" {
			c.Net.DHCPTimeout = Forever
			return
		}
		c.Net.DHCPTimeout = p.timeout(t, "rd.retry")
	case "rd.net.timeout.carrier":
		c.Net.CarrierTimeout = p.timeout(t, "15 s")
	case "rd.net.timeout.iflink", "rd.net.timeout.ifup":
		p.warn(t, "no effect of its own: rd.net.timeout.carrier bounds the wait for the link and its carrier")
	case "rd.net.timeout.route":
		p.warn(t, "no effect: routes are set at once, never waited for")
	case "rd.net.timeout.ipv6dad", "rd.net.timeout.ipv6auto", "rd.net.timeout.ip-required":
		p.warn(t, "no effect of its own: rd.net.timeout.dhcp (default rd.retry) bounds the IPv6 waits (router advertisement, DAD, DHCPv6)")
	case "rd.net.dhcp.client-id":
		p.clientIDArg(t)
	case "rd.net.dhcp.duid":
		p.duidArg(t)
	case "rd.net.dhcp.rapid-commit":
		c.Net.RapidCommit = boolArg(t)
	case "rd.net.dhcp.retry":
		if !allDigits(t.val) {
			p.warn(t, "not a number of tries; no effect either way: DHCP is retried until rd.net.timeout.dhcp (default rd.retry)")
			return
		}
		p.warn(t, "no effect: DHCP is retried until rd.net.timeout.dhcp (default rd.retry), not a number of times")
	case "rd.net.dhcp.vendor-class", "rd.net.dhcp.dscp":
		p.warn(t, "no effect: streamroot does not send this DHCP option yet")
	case "rd.net.dns", "rd.net.dns-backend", "rd.net.dns-resolve-mode":
		p.warn(t, "no effect: NetworkManager's global DNS settings are not read; give servers with nameserver=")
	case "rd.znet", "rd.znet_ifname":
		p.warn(t, "no effect: s390 channel-attached network devices are not supported")
	case "vlan", "bond", "team", "bridge", "ib.pkey":
		p.linkArg(t)
	case "rd.ethtool":
		p.ethtoolArg(t)
	case "rd.route":
		p.routeArg(t)
	case "gateway", "netmask", "hostname", "ksdevice", "mtu":
		// anaconda's cluster for ip=<address>; read in finish, and only
		// then, since these names also belong to the installer.
		t := t
		p.cluster[t.key] = &t

	default:
		switch {
		case strings.HasPrefix(t.key, "streamroot."):
			p.fail(t, "unknown streamroot argument",
				"known: streamroot.fetch, streamroot.sha256, streamroot.manifest, streamroot.manifest.url, streamroot.onfail, streamroot.reboot.delay, streamroot.io.timeout, streamroot.cache, streamroot.tpm")
		case strings.HasPrefix(t.key, "rd."):
			p.ignore(t)
		}
		// Anything else belongs to the kernel or the real OS.
	}
}

// finish resolves the arguments that depend on each other.
func (p *parser) finish() {
	if p.fetch == nil && p.liveRAM {
		p.cfg.Fetch = FetchRAM
	}
	p.resolveRoot()
	p.resolveCluster()
}

// boolArg is dracut's getargbool: a bare flag, or any value but 0/no/off,
// is true.
func boolArg(t token) bool {
	switch t.val {
	case "0", "no", "off":
		return false
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// timeout reads a network timeout as dracut's consumers do: a value that
// is not a whole number of seconds means the default, with a warning.
func (p *parser) timeout(t token, def string) time.Duration {
	if !allDigits(t.val) {
		p.warn(t, "not a whole number of seconds: the default ("+def+") applies")
		return 0
	}
	n, err := strconv.ParseInt(t.val, 10, 64)
	if err != nil || n > math.MaxInt64/int64(time.Second) {
		p.warn(t, "number of seconds is too large: the default ("+def+") applies")
		return 0
	}
	return time.Duration(n) * time.Second
}

// seconds parses a whole, non-negative number of seconds.
func (p *parser) seconds(t token) (time.Duration, bool) {
	if !allDigits(t.val) {
		p.fail(t, "must be a whole number of seconds (0 or more)", "e.g. "+t.key+"=60")
		return 0, false
	}
	n, err := strconv.ParseInt(t.val, 10, 64)
	if err != nil || n > math.MaxInt64/int64(time.Second) {
		p.fail(t, "number of seconds is too large", "e.g. "+t.key+"=60")
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// oneOf sets *dst to t's value when it is one of allowed, else fails t
// with reason and hint.
func oneOf[T ~string](p *parser, t token, dst *T, reason, hint string, allowed ...T) {
	if v := T(t.val); slices.Contains(allowed, v) {
		*dst = v
		return
	}
	p.fail(t, reason, hint)
}

// digest parses exactly 64 hex digits (either case) into 32 bytes.
func (p *parser) digest(t token, v, form string) ([]byte, bool) {
	if len(v) != 64 {
		p.fail(t, "SHA-256 digest must be exactly 64 hex digits, got "+strconv.Itoa(len(v)), "use "+form)
		return nil, false
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		p.fail(t, "SHA-256 digest is not hex", "use "+form)
		return nil, false
	}
	return b, true
}

// relPath checks a path inside the ISO (rd.live.dir, rd.live.squashimg) and
// returns it cleaned and relative. ".." is refused: these are paths inside
// an image and must not climb out of it.
func (p *parser) relPath(t token) (string, bool) {
	if t.val == "" {
		p.fail(t, "empty path", "give a path inside the ISO, or drop the argument for the default")
		return "", false
	}
	for _, el := range strings.Split(t.val, "/") {
		if el == ".." {
			p.fail(t, "path must not contain \"..\"", "give a path inside the ISO")
			return "", false
		}
	}
	c := strings.TrimPrefix(path.Clean("/"+t.val), "/")
	if c == "" {
		c = "."
	}
	return c, true
}

// breakArg records rd.break[=<stage>[,<stage>…]].
func (p *parser) breakArg(t token) {
	stages := []string{"switch"} // dracut's bare rd.break stops just before switch_root
	if t.val != "" {
		stages = nil
		for _, s := range strings.Split(t.val, ",") {
			if s != "" {
				stages = append(stages, s)
			}
		}
		if len(stages) == 0 {
			p.fail(t, "no stage named", "use rd.break or rd.break=<stage>[,<stage>…]")
			return
		}
	}
next:
	for _, s := range stages {
		for _, b := range p.cfg.Break {
			if b == s {
				continue next
			}
		}
		p.cfg.Break = append(p.cfg.Break, s)
	}
}

// trust reads streamroot.trust=<keyid>[,…]: each id is up to 16 hex digits
// (minisign's key id, case and leading zeros free), kept as 16 uppercase
// digits. A second argument keeps only the ids both name: the kernel line
// can only narrow the keys a boot trusts, so an empty intersection is an
// error rather than "all keys".
func (p *parser) trust(t token) {
	var ids []string
	for _, f := range strings.Split(t.val, ",") {
		id, err := strconv.ParseUint(f, 16, 64)
		if f == "" || len(f) > 16 || err != nil || strings.HasPrefix(f, "+") {
			p.fail(t, "key id "+strconv.Quote(f)+" is not up to 16 hex digits", "name the minisign key ids to trust, e.g. streamroot.trust=8F1A2B3C4D5E6F70[,…]")
			return
		}
		if s := fmt.Sprintf("%016X", id); !slices.Contains(ids, s) {
			ids = append(ids, s)
		}
	}
	if p.trusted {
		ids = slices.DeleteFunc(ids, func(s string) bool { return !slices.Contains(p.cfg.Trust, s) })
		if len(ids) == 0 {
			p.fail(t, "names no key the streamroot.trust= before it names: no key would be trusted", "give one streamroot.trust= with the key ids to accept")
			return
		}
	}
	p.trusted = true
	p.cfg.Trust = ids
}
