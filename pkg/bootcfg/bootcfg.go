package bootcfg

import (
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
	// OnFail is streamroot.onfail=; default OnFailReboot.
	OnFail OnFail
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
	// RootFSType is rootfstype=, passed on as a hint.
	RootFSType string
	// RootFlags is rootflags=, passed on as a hint.
	RootFlags string
	// RootRW is true after rw and false after ro (the last one wins).
	// The overlay is writable either way; this is for the real OS.
	RootRW bool
	// NoVerifySSL is rd.noverifyssl: do not verify HTTPS certificates.
	NoVerifySSL bool
	// Init is init=: the real root's init. "" means the caller's default.
	Init string
	// Net is the network configuration.
	Net Net
	// Ignored lists the unknown rd.* tokens as written, without duplicates,
	// so /init can log once that it ignores them.
	Ignored []string
}

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
	// ISO is true when URL's path ends in ".iso" (any case): the image is
	// then LiveDir/SquashImg inside the ISO.
	ISO bool

	// NBDServer is the NBD server's host name or IP address (RootNBD),
	// without the [] an IPv6 address is written in; use net.JoinHostPort.
	NBDServer string
	// NBDPort is the server's TCP port; DefaultNBDPort unless the second
	// field of root=nbd: was a number.
	NBDPort int
	// NBDExport is the export name; "" when a port was given instead
	// (old-style servers with one export per port).
	NBDExport string
	// NBDFSType is the optional third field: the file system in the export.
	NBDFSType string
	// NBDFlags is the optional fourth field: mount options.
	NBDFlags string
	// NBDOpts is dracut's optional fifth field: nbd-client options
	// (comma separated), kept for the NBD client to interpret.
	NBDOpts string
}

// Net is the network part of the command line.
type Net struct {
	// IP holds every ip= in command-line order.
	IP []IPConf
	// BootIF is the boot NIC's MAC from BOOTIF= (PXELinux IPAPPEND 2), or nil.
	BootIF net.HardwareAddr
	// IfNames holds every ifname=<name>:<mac>, in order.
	IfNames []IfName
	// BootDev is bootdev=: the interface to boot from, or "".
	BootDev string
	// Nameservers holds every nameserver=, in order.
	Nameservers []net.IP
	// NeedNet is rd.neednet.
	NeedNet bool
	// DHCPTimeout is rd.net.timeout.dhcp= (whole seconds); 0 = not given.
	DHCPTimeout time.Duration
	// CarrierTimeout is rd.net.timeout.carrier= (whole seconds); 0 = not given.
	CarrierTimeout time.Duration
	// ClientIDs holds every rd.net.dhcp.client-id=, in order.
	ClientIDs []ClientID
	// PeerDNS is false after rd.peerdns=0: ignore DNS servers from DHCP.
	// Default true.
	PeerDNS bool
	// Predictable is false with net.ifnames=0: keep the kernel's ethN names
	// instead of udev's predictable ones (ens3, enp0s3).
	Predictable bool
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
	// IPNone and IPOff are synonyms: no autoconfiguration. With an
	// address this is a static configuration (see IPConf.Static);
	// without one the interface is left alone.
	IPNone IPMethod = "none"
	IPOff  IPMethod = "off"
)

// IPConf is one ip= argument. The accepted forms are dracut's:
//
//	ip=<method>
//	ip=<interface>:<method>[:[<mtu>][:<macaddr>]]
//	ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<client_hostname>:<interface>:<method>[:[<mtu>][:<macaddr>]]
//	ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<client_hostname>:<interface>:<method>[:<dns1>[:<dns2>]]
//
// IPv6 addresses are written in [brackets] in the long forms; <netmask> is a
// dotted IPv4 netmask or a prefix length.
type IPConf struct {
	Arg      string           // the token, for messages
	Iface    string           // "" = the boot interface / any
	Method   IPMethod         // never empty
	Addr     net.IP           // client address, or nil
	Peer     net.IP           // point-to-point peer, or nil
	Gateway  net.IP           // default gateway, or nil
	Mask     net.IPMask       // set whenever Addr is set for a static config
	Hostname string           // client host name, or ""
	MTU      int              // 0 = not given
	MAC      net.HardwareAddr // MAC to set on the interface, or nil
	DNS      []net.IP         // dns1, dns2
}

// Static reports whether c is a static configuration: method none/off with
// a client address.
func (c IPConf) Static() bool {
	return (c.Method == IPNone || c.Method == IPOff) && c.Addr != nil
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
		RebootDelay: DefaultRebootDelay,
		IOTimeout:   DefaultIOTimeout,
		Retry:       DefaultRetry,
		Net:         Net{PeerDNS: true, Predictable: true},
	}
}

// Parse parses a kernel command line (the contents of /proc/cmdline).
//
// It returns a non-nil Config even when the error is not nil, holding
// everything that did parse, so the caller can still apply rd.shell and
// streamroot.onfail. The error is a join of *ArgError, one per bad token.
func Parse(cmdline string) (*Config, error) {
	p := &parser{cfg: defaults()}
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
	case "ip", "ifname", "nameserver", "rd.net.dhcp.client-id", "rd.break":
		return true
	}
	return false
}
