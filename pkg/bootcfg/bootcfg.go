package bootcfg

import (
	"math"
	"net"
	"net/url"
	"time"
)

// Defaults, as in dracut (rd.retry, rd.live.dir, rd.live.squashimg) or in
// the design's failure policy (reboot after 30 s so a PXE node tries again).
const (
	DefaultLiveDir     = "LiveOS"
	DefaultSquashImg   = "squashfs.img"
	DefaultRetry       = 180 * time.Second
	DefaultRebootDelay = 30 * time.Second
	DefaultIOTimeout   = 60 * time.Second
	// DefaultNBDPort is the IANA NBD port, used when root=nbd: names an
	// export instead of a port.
	DefaultNBDPort = 10809
)

// Config is everything /init needs from the kernel command line.
// Parse always fills the defaults, so the zero value is never seen by callers.
type Config struct {
	// Root is the image source, from root= or netroot=. Root.Kind is
	// RootNone when neither was given.
	Root Root
	// LiveDir is rd.live.dir=: the directory inside an ISO holding the
	// image. Default "LiveOS"; "." means the ISO's top directory.
	LiveDir string
	// SquashImg is rd.live.squashimg=: the image's file name inside
	// LiveDir. Default "squashfs.img".
	SquashImg string
	// OverlaySize is rd.live.overlay.size= in MiB; 0 means not given (the
	// tmpfs default applies).
	OverlaySize int
	// Fetch is streamroot.fetch=; rd.live.ram=1 means FetchRAM. When both
	// are given streamroot.fetch wins, being the more specific. The zero
	// value FetchDefault means neither was given.
	Fetch FetchMode
	// SHA256 is streamroot.sha256=: the digest of the whole image (32 bytes),
	// or nil.
	SHA256 []byte
	// Manifest is streamroot.manifest=sha256:<hex>: the digest of the chunk
	// manifest file (32 bytes), or nil.
	Manifest []byte
	// ManifestURL is streamroot.manifest.url=: where to fetch the manifest
	// from (http or https), or "" for the caller's default.
	ManifestURL string
	// Trust is streamroot.trust=<keyid>[,…]: the signing keys (16 hex
	// digits, uppercase, as minisign prints them) this boot accepts among
	// those baked into the initramfs; nil means all of them. Several
	// arguments narrow each other (the keys every one names).
	Trust []string
	// MinVersion is streamroot.min_version=: the lowest signed statement
	// version this boot accepts, on top of the initramfs's own; 0 means
	// not given. Several arguments: the highest.
	MinVersion uint64
	// OnFail is streamroot.onfail=; default OnFailReboot.
	OnFail OnFail
	// TPM is streamroot.tpm=: whether the booted image is measured into
	// the TPM; default TPMAuto.
	TPM TPMPolicy
	// RebootDelay is streamroot.reboot.delay= (whole seconds); default 30s.
	// Zero is allowed and means reboot at once.
	RebootDelay time.Duration
	// IOTimeout is streamroot.io.timeout= (whole seconds, default 60s):
	// how long a read of the root may wait for the server before the
	// kernel gets an I/O error (stream and lazy modes).
	IOTimeout time.Duration
	// CacheMiB is streamroot.cache= (whole MiB, ≥ 1): lazy mode's memory
	// bound, kept chunks and fetches in flight together. 0 means not
	// given: the block daemon picks a fraction of the RAM.
	CacheMiB int64
	// Shell is rd.shell: on failure, start a shell before OnFail applies.
	Shell bool
	// Break lists the stages to stop at (rd.break / rd.break=<stage>[,…]),
	// in order, without duplicates. A bare rd.break means "switch" (just
	// before switch_root, as dracut's bare rd.break does). Stage names are
	// passed through as written; the caller decides which it knows.
	Break []string
	// Debug is rd.debug.
	Debug bool
	// Retry is rd.retry= (whole seconds): how long network and source
	// stages keep retrying. Default 180s.
	Retry time.Duration
	// NoVerifySSL is rd.noverifyssl: do not verify HTTPS certificates.
	NoVerifySSL bool
	// Init is init=: the real root's init. "" means the caller's default.
	Init string
	// Net is the network configuration.
	Net Net
	// Ignored lists the unknown rd.* tokens as written, without duplicates,
	// so /init can log once that it ignores them.
	Ignored []string
	// Warnings are accepted arguments whose value was replaced by the
	// default (as dracut does with an unparsable timeout) or that have no
	// effect here; /init logs each, so none is dropped without a word.
	Warnings []Warning
}

// Warning is an accepted argument that does not do what it says.
type Warning struct {
	Arg    string // the whole token as written
	Reason string // what streamroot does instead
}

// Forever is rd.net.timeout.dhcp=infinity: keep trying DHCP until a lease
// comes.
const Forever time.Duration = math.MaxInt64

// MaxCacheMiB is the largest streamroot.cache= accepted (1 TiB).
const MaxCacheMiB = 1 << 20

// FetchMode is how the image reaches the kernel (streamroot.fetch=).
type FetchMode string

// Fetch modes.
const (
	FetchDefault FetchMode = ""       // not given; the caller picks
	FetchStream  FetchMode = "stream" // serve reads on demand, fill in the background
	FetchRAM     FetchMode = "ram"    // download it all, then mount from RAM
	FetchLazy    FetchMode = "lazy"   // serve reads on demand only
)

// OnFail is what happens when boot fails and no shell was asked for
// (streamroot.onfail=).
type OnFail string

// Failure policies.
const (
	OnFailReboot OnFail = "reboot"
	OnFailHalt   OnFail = "halt"
	OnFailShell  OnFail = "shell"
)

// TPMPolicy is streamroot.tpm=: what measured boot does.
type TPMPolicy string

// TPM policies.
const (
	TPMAuto     TPMPolicy = "auto"     // measure when there is a TPM, else say so and go on
	TPMRequired TPMPolicy = "required" // refuse to boot without a TPM to measure into
	TPMOff      TPMPolicy = "off"      // do not measure
)

// RootKind tells which kind of root the command line names.
type RootKind int

// Root kinds.
const (
	RootNone RootKind = iota // no root= or netroot=
	RootLive                 // an HTTP(S) URL (root=live:…, root=http(s)://…)
	RootNBD                  // a remote NBD export (root=nbd:…, netroot=nbd:…)
)

// String returns the kind's name, for logs.
func (k RootKind) String() string {
	switch k {
	case RootNone:
		return "none"
	case RootLive:
		return "live"
	case RootNBD:
		return "nbd"
	}
	return "RootKind(?)"
}

// Root is the image source.
type Root struct {
	// Kind says which of the fields below are set.
	Kind RootKind
	// Arg is the token the root came from, e.g. "root=live:http://…",
	// for messages.
	Arg string

	// URL is the image (RootLive): scheme http or https, non-empty host.
	URL *url.URL
	// Path is the path root=live:<path> named (Foreman's root=live:/fdi.iso),
	// or "" when the kernel line named a URL. With a Path, URL is the image
	// URL built into the initramfs (Defaults.ImageURL).
	Path string

	// NBDServer is the NBD server's host name or IP address (RootNBD),
	// without the [] an IPv6 address is written in; use net.JoinHostPort.
	NBDServer string
	// NBDPort is the server's TCP port; DefaultNBDPort unless the second
	// field of root=nbd: was a number.
	NBDPort int
	// NBDExport is the export name; "" when a port was given instead
	// (old-style servers with one export per port).
	NBDExport string
}

// Net is the network part of the command line.
type Net struct {
	// IP holds every ip= in command-line order.
	IP []IPConf
	// BootIF is the boot NIC's MAC from BOOTIF= (PXELinux IPAPPEND 2), or
	// nil. It is kept with rd.bootif=0 too (the real OS reads BOOTIF= from
	// /proc/cmdline itself); UseBootIF says whether to pick the NIC by it.
	BootIF net.HardwareAddr
	// UseBootIF is false after rd.bootif=0: do not pick the NIC by BOOTIF.
	// Default true.
	UseBootIF bool
	// IfNames holds every ifname=<name>:<mac>, in order.
	IfNames []IfName
	// BootDev is bootdev=: the interface to boot from, or "".
	BootDev string
	// Nameservers holds every nameserver=, in order.
	Nameservers []net.IP
	// DHCPTimeout is rd.net.timeout.dhcp= (whole seconds, or Forever for
	// "infinity"); 0 = not given.
	DHCPTimeout time.Duration
	// CarrierTimeout is rd.net.timeout.carrier= (whole seconds); 0 = not given.
	CarrierTimeout time.Duration
	// ClientIDs holds every rd.net.dhcp.client-id=, in order.
	ClientIDs []ClientID
	// DUIDs holds every rd.net.dhcp.duid=, in order.
	DUIDs []DUID
	// PeerDNS is false after rd.peerdns=0: ignore DNS servers from DHCP.
	// Default true.
	PeerDNS bool
	// RapidCommit is false after rd.net.dhcp.rapid-commit=0: DHCPv4 asks
	// for no two-message exchange (RFC 4039). Default true.
	RapidCommit bool
	// Predictable is false with net.ifnames=0: keep the kernel's ethN names
	// instead of udev's predictable ones (ens3, enp0s3).
	Predictable bool
	// Links holds every vlan=, bond=, team=, bridge= and ib.pkey=, in
	// order: virtual links the network stage does not build yet.
	Links []Link
	// Ethtool holds every rd.ethtool=, in order.
	Ethtool []Ethtool
	// Routes holds every rd.route=, in order.
	Routes []RouteConf
}

// LinkKind is the kind of a virtual link argument.
type LinkKind string

// Link kinds, spelled as the argument's name.
const (
	LinkVLAN   LinkKind = "vlan"
	LinkBond   LinkKind = "bond"
	LinkTeam   LinkKind = "team"
	LinkBridge LinkKind = "bridge"
	LinkPKey   LinkKind = "ib.pkey"
)

// Link is one virtual link: vlan=<name>:<parent>,
// bond=<name>[:<ports>[:<options>[:<mtu>]]], team=<name>:<ports>[:<runner>],
// bridge=<name>:<ports> or ib.pkey=<parent>.<pkey>. A bare bond, team or
// bridge gets dracut's defaults (bond0:eth0,eth1:mode=balance-rr,
// team0:eth0,eth1:activebackup, br0:eth0).
type Link struct {
	Arg     string   // the token, for messages
	Kind    LinkKind // which argument
	Name    string   // the link to create
	Parents []string // the links it is built on, in order
	Options string   // bond options (comma separated) or team runner, as written
	MTU     int      // bond MTU; 0 = not given
}

// Ethtool is one rd.ethtool=<iface>:[<autoneg>][:<speed>] (NetworkManager).
type Ethtool struct {
	Arg     string
	Iface   string
	Autoneg string // "" (not given), "on" or "off"
	Speed   int    // Mbit/s; 0 = not given
}

// RouteConf is one rd.route=<net>/<prefix>:[<gateway>][:<iface>].
type RouteConf struct {
	Arg     string
	Dest    net.IPNet
	Gateway net.IP // nil: on-link
	Iface   string // "" = the boot interface
}

// IPMethod is the autoconfiguration method of an ip= argument.
type IPMethod string

// IP methods, spelled as on the command line. dracut's single-dhcp (DHCP on
// the first interface that gets a lease) is read as IPDHCP, since streamroot
// only ever takes one lease anyway.
const (
	IPDHCP  IPMethod = "dhcp"
	IPOn    IPMethod = "on"  // dracut: same as dhcp
	IPAny   IPMethod = "any" // dracut: same as dhcp
	IPDHCP6 IPMethod = "dhcp6"
	IPAuto6 IPMethod = "auto6"
	// IPEither6 is auto6, then dhcp6 if that fails; IPLink6 only a
	// link-local IPv6 address.
	IPEither6 IPMethod = "either6"
	IPLink6   IPMethod = "link6"
	// IPAuto is NetworkManager's (and the kernel's) "auto": DHCPv4 and
	// IPv6 autoconfiguration.
	IPAuto IPMethod = "auto"
	// IPNone and IPOff are synonyms: no autoconfiguration. With an
	// address this is a static configuration (see IPConf.Static);
	// without one the interface is not configured at all.
	IPNone IPMethod = "none"
	IPOff  IPMethod = "off"
)

// IPv4 reports whether m configures IPv4 (by DHCP).
func (m IPMethod) IPv4() bool {
	switch m {
	case IPDHCP, IPOn, IPAny, IPAuto:
		return true
	}
	return false
}

// IPv6 reports whether m configures IPv6 (alone, or for auto, beside DHCPv4).
func (m IPMethod) IPv6() bool {
	switch m {
	case IPDHCP6, IPAuto6, IPEither6, IPLink6, IPAuto:
		return true
	}
	return false
}

// IPConf is one ip= argument. The accepted forms are dracut's:
//
//	ip=<method>[,<method>…]
//	ip=<interface>:<method>[,<method>…][:[<mtu>][:<macaddr>]]
//	ip=<client-IP>[/<prefix>]:[<peer>]:<gateway-IP>:<netmask>:<client_hostname>:<interface>[:<method>[:[<mtu>][:<macaddr>]]]
//	ip=<client-IP>[/<prefix>]:[<peer>]:<gateway-IP>:<netmask>:<client_hostname>:<interface>:<method>[:<dns1>[:<dns2>]]
//
// IPv6 addresses are written in [brackets] in the long forms; <netmask> is a
// dotted IPv4 netmask or a prefix length. The package's reference table
// (Forms) lists every form with its origin.
type IPConf struct {
	Arg   string // the token, for messages
	Iface string // "" = the boot interface / any
	// IfaceMAC is set when the interface field names the NIC by its MAC
	// (aa-bb-cc-dd-ee-ff), as dracut's ifup allows; Iface is then "".
	IfaceMAC net.HardwareAddr
	// Method is never empty. Of a comma list it is the first method that
	// configures IPv4, if any (ip=dhcp6,dhcp: dhcp), else the first.
	Method IPMethod
	// Also holds the rest of a comma list, in order (ip=dhcp,dhcp6: [dhcp6]).
	Also     []IPMethod
	Addr     net.IP           // client address, or nil
	Peer     net.IP           // point-to-point peer, or nil
	Gateway  net.IP           // default gateway, or nil
	Mask     net.IPMask       // set whenever Addr is set for a static config
	Hostname string           // client host name, or ""
	MTU      int              // 0 = not given
	MAC      net.HardwareAddr // MAC to set on the interface, or nil
	DNS      []net.IP         // dns1, dns2
	// Firmware marks PXELinux's IPAPPEND 1 form,
	// ip=<client-IP>:<boot-server-IP>:<gateway-IP>:<netmask>: Method is
	// IPDHCP and Addr (with Gateway and Mask) the address the firmware has
	// just leased, which DHCP asks for first.
	Firmware bool
}

// Static reports whether c is a static configuration: method none/off with
// a client address.
func (c IPConf) Static() bool {
	return (c.Method == IPNone || c.Method == IPOff) && c.Addr != nil
}

// Off reports whether c says to leave its interface unconfigured: method
// none/off without a client address.
func (c IPConf) Off() bool {
	return (c.Method == IPNone || c.Method == IPOff) && c.Addr == nil
}

// IPv6Methods returns the methods of c that configure IPv6, in order.
func (c IPConf) IPv6Methods() []IPMethod {
	var out []IPMethod
	for _, m := range append([]IPMethod{c.Method}, c.Also...) {
		if m.IPv6() {
			out = append(out, m)
		}
	}
	return out
}

// IfName is one ifname=<name>:<mac>: give the NIC with that MAC that name.
type IfName struct {
	Name string
	MAC  net.HardwareAddr
}

// ClientIDKind says how a DHCP client identifier is built.
type ClientIDKind int

// Client identifier kinds.
const (
	ClientIDMAC   ClientIDKind = iota + 1 // "mac": type 1 + the interface's MAC (dracut's default)
	ClientIDBytes                         // hex bytes "01:52:54:…", used as is
	ClientIDText                          // "@text": type 0 + the text
)

// String returns the kind's name, for logs.
func (k ClientIDKind) String() string {
	switch k {
	case ClientIDMAC:
		return "mac"
	case ClientIDBytes:
		return "bytes"
	case ClientIDText:
		return "text"
	}
	return "ClientIDKind(?)"
}

// ClientID is one rd.net.dhcp.client-id=[<iface>:]<id>.
type ClientID struct {
	Iface string       // "" = all interfaces
	Kind  ClientIDKind // how to build the option
	// Bytes is the option's value: the bytes as given for ClientIDBytes,
	// 0x00 followed by the text for ClientIDText, nil for ClientIDMAC.
	Bytes []byte
}

// defaults returns a Config with every default filled in.
func defaults() *Config {
	return &Config{
		LiveDir:     DefaultLiveDir,
		SquashImg:   DefaultSquashImg,
		OnFail:      OnFailReboot,
		TPM:         TPMAuto,
		RebootDelay: DefaultRebootDelay,
		IOTimeout:   DefaultIOTimeout,
		Retry:       DefaultRetry,
		Net:         Net{PeerDNS: true, RapidCommit: true, Predictable: true, UseBootIF: true},
	}
}

// ImageURLFile is where the initramfs keeps the image URL it was built
// with (the builder's -image-url): one line, read into Defaults.ImageURL.
const ImageURLFile = "/etc/streamroot/image-url"

// Defaults are what the initramfs was built with, for the arguments that
// may leave a value to it.
type Defaults struct {
	// ImageURL is the image a path root (root=live:/fdi.iso, as Foreman's
	// template and the stock Foreman Discovery Image write it) stands for;
	// "" when none was built in. A URL on the kernel line wins over it.
	ImageURL string
}

// ParseImageURL checks an image URL given outside the kernel line (the
// builder's -image-url, ImageURLFile): an absolute http(s) URL with a host.
func ParseImageURL(s string) (*url.URL, error) {
	u, reason, hint := parseHTTPURL(s)
	if reason != "" {
		return nil, &ArgError{Arg: s, Reason: reason, hint: hint}
	}
	return u, nil
}

// Parse parses a kernel command line (the contents of /proc/cmdline) for
// an initramfs built without defaults: ParseWith(cmdline, Defaults{}).
func Parse(cmdline string) (*Config, error) { return ParseWith(cmdline, Defaults{}) }

// ParseWith parses a kernel command line (the contents of /proc/cmdline),
// resolving what the line leaves open with d.
//
// It returns a non-nil Config even when the error is not nil, holding
// everything that did parse, so the caller can still apply rd.shell and
// streamroot.onfail. The error is a join of *ArgError, one per bad token.
func ParseWith(cmdline string, d Defaults) (*Config, error) {
	p := &parser{cfg: defaults(), defaults: d, cluster: map[string]*token{}, clusterIP: -1}
	toks := tokenize(cmdline)

	// Last one wins, like dracut's getarg: only the last occurrence of a
	// scalar key is looked at, so an overridden value cannot fail the boot.
	last := make(map[string]int, len(toks))
	for i, t := range toks {
		last[t.key] = i
	}
	for i, t := range toks {
		if !isListKey(t.key) && last[t.key] != i {
			continue
		}
		p.arg(t)
	}
	p.finish()
	return p.cfg, joinErrs(p.errs)
}

// isListKey reports whether key accumulates instead of the last one winning.
func isListKey(key string) bool {
	switch key {
	case "ip", "ifname", "nameserver", "rd.net.dhcp.client-id", "rd.net.dhcp.duid", "rd.break",
		"vlan", "bond", "team", "bridge", "ib.pkey", "rd.ethtool", "rd.route",
		// They narrow: every one counts, so a later one cannot widen an earlier.
		"streamroot.trust", "streamroot.min_version":
		return true
	}
	return false
}
