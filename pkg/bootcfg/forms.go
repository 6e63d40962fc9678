package bootcfg

import "strings"

// Form is one accepted spelling of a kernel argument: a row of the
// reference in docs/kernel-args.md, which is generated from Forms (go test
// ./pkg/bootcfg -run TestReference -update) and checked against it.
type Form struct {
	Section string // the reference's table: "root", "streamroot", "failure", "network", "passed"
	Key     string // the argument's name, as Parse dispatches on it
	Syntax  string // the spelling shown, e.g. "ip=<iface>:<method>[:<mtu>[:<mac>]]"
	Origin  string // who writes this form: dracut.cmdline(7), nm-initrd-generator, PXELinux, …
	Effect  string // what streamroot does with it
	// Example is a command line using the form; the tests parse it. It
	// must parse without error, unless Refused.
	Example string
	// Refused: the form is recognised and refused at parse time.
	Refused bool
	// NM says how NetworkManager's nm-initrd-generator reads the form
	// differently from dracut's own parser, which streamroot follows.
	NM string
}

// Sections of the reference, in order, with their headings.
var sections = []struct{ key, title string }{
	{"root", "Root and image"},
	{"streamroot", "streamroot's own"},
	{"failure", "Failure policy and debugging"},
	{"network", "Network"},
	{"passed", "Passed on to the kernel or the real OS"},
}

// forms is the reference table. Origins: "dracut" is dracut.cmdline(7)
// and dracut's network-legacy parser (net-lib.sh ip_to_var,
// parse-ip-opts.sh, ifup.sh); "NM" is nm-initrd-generator
// (nmi-cmdline-reader.c), which Fedora CoreOS and RHCOS initramfses run.
var forms = []Form{
	// Root and image.
	{Section: "root", Key: "root", Syntax: "root=live:<URL>", Origin: "dracut (livenet); Foreman", Example: "root=live:http://s/squashfs.img",
		Effect: "the image over HTTP(S): squashfs, erofs or ext4, or an ISO holding `<rd.live.dir>/<rd.live.squashimg>`. A squashfs holding `LiveOS/rootfs.img` (or `ext3fs.img`) is dracut's layout and is unpacked one more level."},
	{Section: "root", Key: "root", Syntax: "root=live:<path>", Origin: "dracut (dmsquash-live: a file in the initramfs); Foreman (`root=live:/fdi.iso`)", Example: "root=live:/fdi.iso rootflags=loop rootfstype=auto ro rd.live.image",
		Effect: "the image at the URL built into the initramfs (the builder's `-image-url`, kept in `/etc/streamroot/image-url`), whatever the path: Foreman's template and the stock Foreman Discovery Image's lines boot unchanged. A URL on the kernel line (`root=live:<URL>`) wins. Without a built-in URL it is refused, with a hint; `/dev/…` paths are local devices (refused)"},
	{Section: "root", Key: "root", Syntax: "root=<http(s) URL>", Origin: "dracut (livenet)", Example: "root=https://s/squashfs.img",
		Effect: "the same as `root=live:<URL>`"},
	{Section: "root", Key: "root", Syntax: "root=nbd:<server>:<port\\|export>[:<fstype>[:<rootflags>[:<nbdopts>]]]", Origin: "dracut (nbd); Foreman", Example: "root=nbd:srv:discovery:squashfs:ro:timeout=30",
		Effect: "a remote NBD export (e.g. Debian's `nbd-server`), served through the block daemon, with the writable overlay on top; the daemon reconnects when the server restarts; an export size of 0 or over 16 TiB is refused at the handshake. IPv6 servers in [brackets]. `<fstype>`, `<rootflags>` and `<nbdopts>` are accepted and have no effect: layers are detected by magic and mounted read-only, and the daemon is its own NBD client."},
	{Section: "root", Key: "netroot", Syntax: "netroot=nbd:…", Origin: "dracut (nbd)", Example: "root=/dev/nbd0 netroot=nbd:srv:exp",
		Effect: "the same as `root=nbd:…`; a `root=` beside it is dracut's placeholder and not examined, unless it names another network root (refused)"},
	{Section: "root", Key: "root", Syntax: "root=/dev/…, LABEL=, UUID=, nfs:, ftp://, …", Origin: "dracut", Example: "root=/dev/sda1", Refused: true,
		Effect: "refused: local and other network roots are not supported"},
	{Section: "root", Key: "rd.live.dir", Syntax: "rd.live.dir=<dir>", Origin: "dracut (dmsquash-live)", Example: "rd.live.dir=LiveOS",
		Effect: "directory of the image inside an ISO (default `LiveOS`)"},
	{Section: "root", Key: "rd.live.squashimg", Syntax: "rd.live.squashimg=<file>", Origin: "dracut (dmsquash-live)", Example: "rd.live.squashimg=squashfs.img",
		Effect: "file name of the image inside an ISO (default `squashfs.img`)"},
	{Section: "root", Key: "rd.live.overlay.size", Syntax: "rd.live.overlay.size=<MiB>", Origin: "dracut (dmsquash-live)", Example: "rd.live.overlay.size=4096",
		Effect: "size of the tmpfs holding the writable overlay (default: half the RAM)"},
	{Section: "root", Key: "rd.live.ram", Syntax: "rd.live.ram=1", Origin: "dracut (dmsquash-live)", Example: "rd.live.ram=1",
		Effect: "dracut's spelling of `streamroot.fetch=ram`"},
	{Section: "root", Key: "rd.live.image", Syntax: "rd.live.image", Origin: "dracut (dmsquash-live); Foreman", Example: "rd.live.image",
		Effect: "accepted; no effect: the root is always a live image"},
	{Section: "root", Key: "rd.live.overlay.overlayfs", Syntax: "rd.live.overlay.overlayfs", Origin: "dracut (dmsquash-live)", Example: "rd.live.overlay.overlayfs",
		Effect: "accepted; no effect: the overlay is always overlayfs"},
	{Section: "root", Key: "rd.writable.fsimg", Syntax: "rd.writable.fsimg", Origin: "dracut (dmsquash-live)", Example: "rd.writable.fsimg", Refused: true,
		Effect: "refused: not supported (the root is always a read-only image under a tmpfs overlay)"},
	{Section: "root", Key: "rd.luks", Syntax: "rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0", Origin: "dracut; Foreman", Example: "rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0",
		Effect: "accepted; no effect (streamroot never assembles local storage); `=1` is logged as ignored"},
	{Section: "root", Key: "rd.md", Syntax: "rd.md=", Origin: "dracut", Example: "rd.md=0", Effect: "as `rd.luks=`"},
	{Section: "root", Key: "rd.dm", Syntax: "rd.dm=", Origin: "dracut", Example: "rd.dm=0", Effect: "as `rd.luks=`"},
	{Section: "root", Key: "rd.lvm", Syntax: "rd.lvm=", Origin: "dracut", Example: "rd.lvm=0", Effect: "as `rd.luks=`"},
	{Section: "root", Key: "rootfstype", Syntax: "rootfstype=<fs>", Origin: "kernel, dracut; Foreman (`rootfstype=auto`)", Example: "rootfstype=auto",
		Effect: "accepted; no effect: every layer's filesystem is detected by its magic number"},
	{Section: "root", Key: "rootflags", Syntax: "rootflags=<options>", Origin: "kernel, dracut; Foreman (`rootflags=loop`)", Example: "rootflags=loop",
		Effect: "accepted; no effect: every layer is mounted read-only under the overlay with fixed options"},
	{Section: "root", Key: "ro", Syntax: "ro", Origin: "kernel, dracut; Foreman", Example: "ro",
		Effect: "accepted; no effect: the overlay is always writable (the real OS reads `ro`/`rw` from /proc/cmdline itself)"},
	{Section: "root", Key: "rw", Syntax: "rw", Origin: "kernel, dracut", Example: "rw", Effect: "as `ro`"},
	{Section: "root", Key: "init", Syntax: "init=<path>", Origin: "kernel", Example: "init=/usr/lib/systemd/systemd",
		Effect: "the real init (default `/sbin/init`, then `/usr/sbin/init`, `/lib/systemd/systemd`)"},

	// Ours.
	{Section: "streamroot", Key: "streamroot.fetch", Syntax: "streamroot.fetch=stream\\|ram\\|lazy", Origin: "streamroot", Example: "streamroot.fetch=lazy",
		Effect: "`stream` (default): boot from a block device at once, serve the kernel's reads first, fill the rest into RAM in the background once the real init runs, after which the server is no longer needed. `lazy`: fetch only what is read (bounded cache), for low-RAM nodes; stays server-bound. `ram`: download everything (parallel, resumable), verify, then mount. If the image does not fit in RAM with room for the OS, `stream`/`ram` fall back to `lazy` with a warning instead of an OOM (not with `streamroot.sha256=` alone: see [what each pin protects](#integrity-what-each-pin-protects))."},
	{Section: "streamroot", Key: "streamroot.cache", Syntax: "streamroot.cache=<MiB>", Origin: "streamroot", Example: "streamroot.cache=64",
		Effect: "`lazy` mode's memory bound: the chunks kept plus the fetches in flight (readahead included) never exceed it (default: a sixteenth of the RAM, at most 256 MiB). A bound below one chunk holds one chunk, and reads take turns."},
	{Section: "streamroot", Key: "streamroot.io.timeout", Syntax: "streamroot.io.timeout=<s>", Origin: "streamroot", Example: "streamroot.io.timeout=60",
		Effect: "how long a read of the root may wait for the server before the kernel gets an I/O error (`stream`/`lazy`; default 60)"},
	{Section: "streamroot", Key: "streamroot.manifest", Syntax: "streamroot.manifest=sha256:<hex>", Origin: "streamroot", Example: "streamroot.manifest=sha256:" + hex64,
		Effect: "pin the chunk manifest (`streamroot manifest IMAGE`): it is fetched from `<image URL>.manifest` and checked before any mount; every chunk is verified before the kernel or the RAM copy sees it, in every mode ([what each pin protects](#integrity-what-each-pin-protects))"},
	{Section: "streamroot", Key: "streamroot.manifest.url", Syntax: "streamroot.manifest.url=<URL>", Origin: "streamroot", Example: "streamroot.manifest.url=http://s/m",
		Effect: "where the manifest is, if not next to the image (required for NBD roots)"},
	{Section: "streamroot", Key: "streamroot.sha256", Syntax: "streamroot.sha256=<hex>", Origin: "streamroot", Example: "streamroot.sha256=" + hex64,
		Effect: "whole-image SHA-256. Alone, it can only be checked on a whole copy: the default mode then boots as `ram` (download, verify, mount); `streamroot.fetch=stream\\|lazy` without a manifest is refused. With a manifest it must equal the manifest's own whole-image line and is checked again when the fill completes in `stream` mode ([what each pin protects](#integrity-what-each-pin-protects))"},
	{Section: "streamroot", Key: "streamroot.trust", Syntax: "streamroot.trust=<keyid>[,<keyid>…]", Origin: "streamroot", Example: "streamroot.trust=8F1A2B3C4D5E6F70,1",
		Effect: "accept only signatures by these of the keys baked into the initramfs (minisign key ids, 16 hex digits); it can only narrow: a key the initramfs does not carry, or any `streamroot.trust=` on an initramfs without keys, is refused. A second one keeps the ids both name ([trust.md](trust.md))"},
	{Section: "streamroot", Key: "streamroot.min_version", Syntax: "streamroot.min_version=<N>", Origin: "streamroot", Example: "streamroot.min_version=42",
		Effect: "refuse signed statements with a version below N (rollback), on top of the initramfs's `--min-version`: the higher of the two (and of several arguments) applies; refused on an initramfs without keys ([trust.md](trust.md))"},
	{Section: "streamroot", Key: "streamroot.onfail", Syntax: "streamroot.onfail=reboot\\|halt\\|shell", Origin: "streamroot", Example: "streamroot.onfail=halt",
		Effect: "what a failed boot does (default `reboot`, so a PXE node tries again)"},
	{Section: "streamroot", Key: "streamroot.tpm", Syntax: "streamroot.tpm=auto\\|required\\|off", Origin: "streamroot", Example: "streamroot.tpm=required",
		Effect: "measured boot ([docs/measure.md](measure.md)): before switch_root the image's identity (manifest digest, whole-image pin, signing key id, version, URL) is extended into PCR 15 of every TPM 2.0 bank and logged in `/run/log/systemd/tpm2-measure.log`. `auto` (default): measure when there is a TPM, else say so once and go on; `required`: refuse to boot without a TPM, before the network is touched; `off`: do not measure"},
	{Section: "streamroot", Key: "streamroot.reboot.delay", Syntax: "streamroot.reboot.delay=<s>", Origin: "streamroot", Example: "streamroot.reboot.delay=5",
		Effect: "countdown before that reboot (default 30)"},

	// Failure policy and debugging.
	{Section: "failure", Key: "rd.retry", Syntax: "rd.retry=<s>", Origin: "dracut", Example: "rd.retry=60",
		Effect: "how long the network and download keep retrying without progress (default 180)"},
	{Section: "failure", Key: "rd.noverifyssl", Syntax: "rd.noverifyssl", Origin: "dracut (livenet)", Example: "rd.noverifyssl",
		Effect: "do not check HTTPS certificates (loud warning)"},
	{Section: "failure", Key: "rd.shell", Syntax: "rd.shell", Origin: "dracut; Foreman", Example: "rd.shell",
		Effect: "on failure, start a shell on the console; the failure policy applies when it exits"},
	{Section: "failure", Key: "rd.break", Syntax: "rd.break[=<stage>[,…]]", Origin: "dracut (its own stage names differ)", Example: "rd.break=network",
		Effect: "shell before a stage (`modules tpm network fetch layers handover measure switch`); plain `rd.break` = before `switch`"},
	{Section: "failure", Key: "rd.debug", Syntax: "rd.debug", Origin: "dracut; Foreman", Example: "rd.debug=1",
		Effect: "more detail on the console and in the log"},

	// Network: ip=.
	{Section: "network", Key: "ip", Syntax: "ip=dhcp\\|on\\|any\\|single-dhcp", Origin: "dracut; Foreman", Example: "ip=dhcp",
		Effect: "DHCPv4 on the boot link (the default without `ip=`)",
		NM:     "`on` and `any` mean DHCPv4 and IPv6 autoconfiguration (NM's `auto`); dracut and streamroot: DHCPv4"},
	{Section: "network", Key: "ip", Syntax: "ip=<method>,<method>[,…]", Origin: "dracut (ifup.sh runs each); Fedora CoreOS, RHCOS (`ip=dhcp,dhcp6`)", Example: "ip=dhcp,dhcp6",
		Effect: "each method on the one boot link: `dhcp,dhcp6` is dual stack (DHCPv4 and DHCPv6), `dhcp,auto6` DHCPv4 and SLAAC; beside IPv4 the IPv6 half is best effort (as NetworkManager's may-fail): it waits at most 20 s once IPv4 is bound, and if it fails the boot goes on over IPv4 with a warning; a list of IPv6 methods only is an IPv6-only boot (no IPv4 on the link). `link6` is refused (a link-local address cannot reach the root's server)",
		NM:     "accepts only some combinations (`dhcp,dhcp6`, `dhcp,link6`, lists with `auto`)"},
	{Section: "network", Key: "ip", Syntax: "ip=auto", Origin: "NM, kernel", Example: "ip=auto",
		Effect: "DHCPv4; the IPv6 autoconfiguration part is logged as not supported yet (on an IPv4-only network it would wait for a router advertisement that never comes): `ip=dhcp ip=auto6` configures both",
		NM:     "dracut's network-legacy refuses `auto` (\"unknown value\"); streamroot takes NM's meaning, since only NM's reading exists"},
	{Section: "network", Key: "ip", Syntax: "ip=dhcp6\\|auto6\\|either6\\|link6", Origin: "dracut", Example: "ip=dhcp6",
		Effect: "IPv6 on the boot link: `dhcp6` leases an address by DHCPv6 (IA_NA, DNS, domain list, rapid commit when the server allows it) and takes routes from the router advertisement; `auto6` waits for a router advertisement, lets the kernel form the SLAAC address (DAD waited for) and adds DHCPv6 when the RA's M flag is set; `either6` is read as `auto6`; `link6` is refused. DHCPv6's DUID is DUID-LL from the MAC (or `rd.net.dhcp.duid=`), the IAID the MAC's last four bytes; both are handed to NetworkManager and networkd so the real OS keeps the same lease. Alone (no IPv4 method anywhere) the boot is IPv6-only"},
	{Section: "network", Key: "ip", Syntax: "ip=off\\|none", Origin: "dracut", Example: "ip=off",
		Effect: "parsed; the network stage stops: the root is remote, so the network is needed"},
	{Section: "network", Key: "ip", Syntax: "ip=ibft, ip=bootp\\|rarp\\|both", Origin: "dracut", Example: "ip=ibft", Refused: true,
		Effect: "refused: not supported"},
	{Section: "network", Key: "ip", Syntax: "ip=<iface>:<method>[,…][:[<mtu>][:<mac>]]", Origin: "dracut; FCOS/RHCOS (`ip=<iface>:dhcp,dhcp6`), anaconda", Example: "ip=eth0:dhcp,dhcp6:1666:52:54:00:12:34:56",
		Effect: "the method(s) on a named link (as above); `<mtu>` is set on the link (it beats DHCP's option 26); `<mac>` (colon or dash form) is set on the link before DHCP, so the client id follows it",
		NM:     "dracut's ip_to_var reads a method list in the second field as the static form and then fails; streamroot reads it as NM does"},
	{Section: "network", Key: "ip", Syntax: "ip=<iface>:off\\|none", Origin: "NM; FCOS/RHCOS", Example: "ip=ens3:off ip=ens4:dhcp",
		Effect: "that link is not configured and never picked as the boot link",
		NM:     "dracut's ip_to_var reads it as the static form with client IP `<iface>` and fails; NM leaves the link unconfigured, and so does streamroot"},
	{Section: "network", Key: "ip", Syntax: "ip=<ip>[/<prefix>]:[<peer>]:<gw>:<netmask>:<host>:<iface>:none\\|off[:[<mtu>][:<mac>]]", Origin: "dracut; Foreman, anaconda, RHCOS", Example: "ip=192.0.2.10::192.0.2.1:255.255.255.0:node1:eth0:none:1500",
		Effect: "static address. `<netmask>` is dotted or a prefix length; a `/<prefix>` after the address does the same (both must agree); IPv6 addresses in [brackets] (a static IPv6 address with a prefix length is static IPv6, waited for until DAD passes; with no IPv4 `ip=` beside it the boot is IPv6-only). `<iface>` may be the NIC's MAC in BOOTIF's dash form. A `<peer>` stops the network stage (point-to-point links are not supported yet). A static address without a netmask or prefix is refused, as dracut does",
		NM:     "without a netmask NM guesses a classful prefix (/8 for 10.0.0.8); dracut and streamroot refuse. A `/<prefix>` after the address: NM splits it off, and so does streamroot; dracut's network-legacy passes it on unsplit and still demands the netmask field"},
	{Section: "network", Key: "ip", Syntax: "ip=<ip>::<gw>:<netmask>:<host>:<iface>:none:<dns1>[:<dns2>]", Origin: "dracut; Foreman, RHCOS", Example: "ip=192.0.2.10::192.0.2.1:24:node1:eth0:none:192.0.2.53:192.0.2.54",
		Effect: "static address with DNS servers"},
	{Section: "network", Key: "ip", Syntax: "ip=<ip>[/<prefix>]:[<peer>]:<gw>:<netmask>:<host>:<iface>", Origin: "kernel, NM; anaconda, RHCOS docs", Example: "ip=203.0.113.2::203.0.113.1:26:hostname1.example.com:eth4",
		Effect: "static address: the method field left out (or empty) with a client IP means `none`",
		NM:     "dracut's network-legacy reads an empty method as `dhcp` and then refuses the client IP; NM and the kernel read it as static, and so does streamroot (the only reading that boots)"},
	{Section: "network", Key: "ip", Syntax: "ip=<client-IP>:<boot-server-IP>:<gateway-IP>:<netmask>", Origin: "PXELinux `IPAPPEND 1` (`IPAPPEND 3` with BOOTIF=); iPXE scripts copying it; both in `streamroot pxe --firmware-addr`'s entries", Example: "ip=10.77.0.94:10.77.0.1:10.77.0.1:255.255.255.0",
		Effect: "the address the firmware has just leased: DHCPv4 on the boot link asks for it first with a REQUEST (RFC 2131's INIT-REBOOT: one round trip, the same lease, no second one); a NAK, an ACK of another address or no answer within 3 s falls back to DISCOVER. Beside `ip=dhcp` (an `APPEND ip=dhcp` line with `IPAPPEND 3`) it is the same DHCP; beside a static `ip=` the static one wins",
		NM:     "dracut refuses it (a client IP with its default method `dhcp`); in the kernel's own `ip=` the second field is the boot server too, as here, not a peer"},
	{Section: "network", Key: "ip", Syntax: "ip=:::::<iface>:", Origin: "dracut", Example: "ip=:::::eth0:",
		Effect: "an empty method without a client IP is DHCP, as dracut reads it (with a warning)",
		NM:     "NM reads it as `auto` (DHCPv4 and IPv6)"},
	{Section: "network", Key: "ip", Syntax: "ip=<ipv4> netmask=<mask> [gateway=<gw>] [hostname=<host>] [ksdevice=<iface\\|MAC\\|bootif\\|link>] [mtu=<mtu>]", Origin: "dracut (anaconda's old style)", Example: "ip=192.0.2.10 netmask=255.255.255.0 gateway=192.0.2.1 ksdevice=eth0",
		Effect: "static address, as dracut's ip_to_var reads anaconda's cluster (`netmask=` is required); the cluster's arguments are read only beside such an `ip=`",
		NM:     "not supported by NM"},
	{Section: "network", Key: "netmask", Syntax: "netmask=", Origin: "anaconda", Example: "ip=192.0.2.10 netmask=24", Effect: "see `ip=<ipv4>`"},
	{Section: "network", Key: "gateway", Syntax: "gateway=", Origin: "anaconda", Example: "ip=192.0.2.10 netmask=24 gateway=192.0.2.1", Effect: "see `ip=<ipv4>`"},
	{Section: "network", Key: "hostname", Syntax: "hostname=", Origin: "anaconda", Example: "ip=192.0.2.10 netmask=24 hostname=n1", Effect: "see `ip=<ipv4>`"},
	{Section: "network", Key: "ksdevice", Syntax: "ksdevice=", Origin: "anaconda", Example: "ip=192.0.2.10 netmask=24 ksdevice=bootif", Effect: "see `ip=<ipv4>`"},
	{Section: "network", Key: "mtu", Syntax: "mtu=", Origin: "anaconda", Example: "ip=192.0.2.10 netmask=24 mtu=9000", Effect: "see `ip=<ipv4>`"},

	// Network: the link.
	{Section: "network", Key: "BOOTIF", Syntax: "BOOTIF=<type>-aa-bb-cc-dd-ee-ff", Origin: "PXELinux `IPAPPEND 2`, iPXE, GRUB; Foreman", Example: "BOOTIF=01-52-54-00-12-34-56",
		Effect: "the boot NIC by MAC, with any hardware type (`01` Ethernet, `00`, …) or none, dashes or colons; otherwise the first link with carrier, or with several (and DHCP), the first offered an address: discovery runs on all of them at once and only the winner requests a lease. An empty `BOOTIF=` is ignored",
		NM:     "NM strips only the types `01` and `00`; dracut's fix_bootif any, and so does streamroot"},
	{Section: "network", Key: "rd.bootif", Syntax: "rd.bootif=0", Origin: "dracut", Example: "BOOTIF=01-52-54-00-12-34-56 rd.bootif=0",
		Effect: "do not pick the NIC by `BOOTIF=` (it stays on /proc/cmdline for the real OS)"},
	{Section: "network", Key: "bootdev", Syntax: "bootdev=<iface>", Origin: "dracut", Example: "bootdev=eth0",
		Effect: "the boot NIC by name"},
	{Section: "network", Key: "ifname", Syntax: "ifname=<name>:<mac>", Origin: "dracut", Example: "ifname=net0:52:54:00:12:34:56",
		Effect: "give the link with that MAC this name"},
	{Section: "network", Key: "net.ifnames", Syntax: "net.ifnames=0", Origin: "systemd-udevd", Example: "net.ifnames=0",
		Effect: "keep the kernel's `ethN` names; by default links get udev's predictable names (`ens3`, `enp0s3`, `eno1`) before they go up, so the real OS's own network config (which matches `en*`) applies — udev cannot rename a link that is already up"},
	{Section: "network", Key: "biosdevname", Syntax: "biosdevname=0", Origin: "dracut", Example: "biosdevname=0",
		Effect: "accepted with a warning; no effect: names follow `net.ifnames`"},
	{Section: "network", Key: "nameserver", Syntax: "nameserver=<ip>", Origin: "dracut; Foreman, RHCOS", Example: "nameserver=192.0.2.53 nameserver=[2001:db8::53]",
		Effect: "DNS server (several allowed), before the ones DHCP gives"},
	{Section: "network", Key: "rd.peerdns", Syntax: "rd.peerdns=0", Origin: "dracut", Example: "rd.peerdns=0",
		Effect: "ignore DHCP's DNS servers, domain (option 15) and search list (option 119)"},
	{Section: "network", Key: "rd.neednet", Syntax: "rd.neednet[=0\\|1]", Origin: "dracut; Foreman (`rd.neednet=0`), FCOS/RHCOS (`rd.neednet=1`)", Example: "rd.neednet=0",
		Effect: "accepted; no effect: the root is remote, so the network always comes up (`rd.neednet=0` is logged as having no effect)"},
	{Section: "network", Key: "rd.route", Syntax: "rd.route=<net>/<prefix>:[<gw>][:<iface>]", Origin: "dracut", Example: "rd.route=192.168.200.0/24:192.168.100.222:ens10",
		Effect: "parsed; the network stage stops: static routes are not supported yet"},

	// Network: timeouts and DHCP.
	{Section: "network", Key: "rd.net.timeout.carrier", Syntax: "rd.net.timeout.carrier=<s>", Origin: "dracut", Example: "rd.net.timeout.carrier=30",
		Effect: "wait for a link with carrier (default 15); a value that is not a whole number of seconds means the default, with a warning"},
	{Section: "network", Key: "rd.net.timeout.dhcp", Syntax: "rd.net.timeout.dhcp=<s>\\|infinity", Origin: "dracut; `infinity`: NM", Example: "rd.net.timeout.dhcp=infinity",
		Effect: "keep trying DHCP this long (default: `rd.retry`); `infinity`: until a lease comes; a value that is not a whole number of seconds means the default, with a warning",
		NM:     "dracut passes the value to dhclient's `--timeout` as it is; NM knows `infinity` and takes the default for anything unparsable, and so does streamroot"},
	{Section: "network", Key: "rd.net.timeout.iflink", Syntax: "rd.net.timeout.iflink=<s>, rd.net.timeout.ifup=<s>", Origin: "dracut", Example: "rd.net.timeout.iflink=60",
		Effect: "accepted with a warning; no effect of their own: `rd.net.timeout.carrier` bounds the wait for the link and its carrier"},
	{Section: "network", Key: "rd.net.timeout.ifup", Syntax: "rd.net.timeout.ifup=<s>", Origin: "dracut", Example: "rd.net.timeout.ifup=20", Effect: "as `rd.net.timeout.iflink`"},
	{Section: "network", Key: "rd.net.timeout.route", Syntax: "rd.net.timeout.route=<s>", Origin: "dracut", Example: "rd.net.timeout.route=20",
		Effect: "accepted with a warning; no effect: routes are set at once"},
	{Section: "network", Key: "rd.net.timeout.ipv6dad", Syntax: "rd.net.timeout.ipv6dad=<s>, rd.net.timeout.ipv6auto=<s>, rd.net.timeout.ip-required=<s>", Origin: "dracut; `ip-required`: NM", Example: "rd.net.timeout.ipv6dad=50",
		Effect: "accepted with a warning; no effect of its own: `rd.net.timeout.dhcp` (default `rd.retry`) bounds the IPv6 waits (router advertisement, DAD, DHCPv6)"},
	{Section: "network", Key: "rd.net.timeout.ipv6auto", Syntax: "rd.net.timeout.ipv6auto=<s>", Origin: "dracut", Example: "rd.net.timeout.ipv6auto=40", Effect: "as `rd.net.timeout.ipv6dad`"},
	{Section: "network", Key: "rd.net.timeout.ip-required", Syntax: "rd.net.timeout.ip-required=<s>", Origin: "NM", Example: "rd.net.timeout.ip-required=20", Effect: "as `rd.net.timeout.ipv6dad`"},
	{Section: "network", Key: "rd.net.dhcp.client-id", Syntax: "rd.net.dhcp.client-id=[<iface>:]<id>", Origin: "NM (dracut's NM module)", Example: "rd.net.dhcp.client-id=eth0:01-aa-bb-cc-dd-ee-ff rd.net.dhcp.client-id=01:52:54:00:12:34:56",
		Effect: "DHCP client id: `mac` (default, `01`+MAC), hex bytes with colons (`01:52:54:…`) or dashes (`01-52-54-…`), or `@text`",
		NM:     "NM requires `<iface>:` and documents dashes; streamroot also takes the id alone (for every link) and colons"},
	{Section: "network", Key: "rd.net.dhcp.duid", Syntax: "rd.net.dhcp.duid=[<iface>:]<duid>", Origin: "streamroot (NM's `ipv6.dhcp-duid`)", Example: "rd.net.dhcp.duid=00:03:00:01:52:54:00:12:34:56",
		Effect: "DHCPv6 client DUID: `ll` (default: DUID-LL, `00:03:00:01`+MAC) or hex bytes, type first, with colons or dashes (3 to 130 bytes); handed to NetworkManager (`ipv6.dhcp-duid`) and networkd (`DUIDType=`/`DUIDRawData=`)"},
	{Section: "network", Key: "rd.net.dhcp.rapid-commit", Syntax: "rd.net.dhcp.rapid-commit=0\\|1", Origin: "streamroot (systemd-networkd's `[DHCPv4] RapidCommit=`)", Example: "rd.net.dhcp.rapid-commit=0",
		Effect: "DHCPv4 rapid commit (RFC 4039), on by default: the DISCOVER carries option 80, and a server that allows it (dnsmasq `--dhcp-rapid-commit`) answers with the lease at once, saving a round trip; the ACK must carry option 80 and pass the same checks as any lease, else it is ignored. Other servers OFFER as usual and get a REQUEST; if the first DISCOVER gets no answer at all, the later ones go without option 80 (a server that drops them costs one attempt, about 7 s). Discovery on several links at once never asks for it (a lease is taken on the winner only). `0` always runs DISCOVER, OFFER, REQUEST, ACK. DHCPv6 asks for rapid commit regardless"},
	{Section: "network", Key: "rd.net.dhcp.retry", Syntax: "rd.net.dhcp.retry=<n>", Origin: "dracut", Example: "rd.net.dhcp.retry=3",
		Effect: "accepted with a warning; no effect: DHCP is retried until `rd.net.timeout.dhcp`"},
	{Section: "network", Key: "rd.net.dhcp.vendor-class", Syntax: "rd.net.dhcp.vendor-class=<text>, rd.net.dhcp.dscp=<dscp>", Origin: "NM", Example: "rd.net.dhcp.vendor-class=fdi",
		Effect: "accepted with a warning; no effect yet: the option is not sent"},
	{Section: "network", Key: "rd.net.dhcp.dscp", Syntax: "rd.net.dhcp.dscp=<dscp>", Origin: "NM", Example: "rd.net.dhcp.dscp=CS4", Effect: "as `rd.net.dhcp.vendor-class`"},

	{Section: "network", Key: "rd.net.dns", Syntax: "rd.net.dns=<server>, rd.net.dns-backend=, rd.net.dns-resolve-mode=", Origin: "NM", Example: "rd.net.dns=dns+tls://192.0.2.53",
		Effect: "accepted with a warning; no effect: use `nameserver=`"},
	{Section: "network", Key: "rd.net.dns-backend", Syntax: "rd.net.dns-backend=", Origin: "NM", Example: "rd.net.dns-backend=dnsmasq", Effect: "as `rd.net.dns=`"},
	{Section: "network", Key: "rd.net.dns-resolve-mode", Syntax: "rd.net.dns-resolve-mode=", Origin: "NM", Example: "rd.net.dns-resolve-mode=exclusive", Effect: "as `rd.net.dns=`"},
	{Section: "network", Key: "rd.znet", Syntax: "rd.znet=<nettype>,<subchannels>,…, rd.znet_ifname=", Origin: "dracut (znet), NM; RHCOS on s390x", Example: "rd.znet=qeth,0.0.0600,0.0.0601,0.0.0602",
		Effect: "accepted with a warning; no effect: s390 channel-attached NICs are not supported"},
	{Section: "network", Key: "rd.znet_ifname", Syntax: "rd.znet_ifname=<iface>:<subchannels>", Origin: "NM", Example: "rd.znet_ifname=enc600:0.0.0600", Effect: "as `rd.znet=`"},

	// Network: virtual links.
	{Section: "network", Key: "vlan", Syntax: "vlan=<name>:<parent>", Origin: "dracut; Foreman, RHCOS", Example: "vlan=vlan100:eth0 ip=vlan100:dhcp",
		Effect: "an 802.1Q VLAN, its id from the name (`vlan100`, `vlan0100`, `eth0.100`); the parent by its kernel name or the name the boot gives it; `ip=<name>:…` addresses it, and with `BOOTIF=` alone the VLAN over that NIC is the boot link"},
	{Section: "network", Key: "bond", Syntax: "bond[=<name>[:<ports>[:<options>[:<mtu>]]]]", Origin: "dracut; Foreman, RHCOS", Example: "bond=bond0:eth0,eth1:mode=balance-rr:9000",
		Effect: "a bond (bare `bond`: dracut's `bond0:eth0,eth1:mode=balance-rr`); options as the bonding driver names them (`mode`, `miimon`, `updelay`, `downdelay`, `lacp_rate`, `xmit_hash_policy`, `fail_over_mac`, `primary`, `primary_reselect`, `ad_select`, `arp_interval`, `arp_ip_target` (`;`-separated), `arp_validate`, `min_links`, `use_carrier`, `all_slaves_active`), `miimon=100` unless monitoring is set; the ports' carrier and an 802.3ad partner with every port that has carrier in its aggregator are waited for within `rd.net.timeout.carrier`; an unknown option stops the boot naming it"},
	{Section: "network", Key: "team", Syntax: "team[=<name>:<ports>[:<runner>]]", Origin: "dracut", Example: "team=team0:eth0,eth1",
		Effect: "built as a bond (no teamd here), with a console note: runner activebackup, roundrobin, loadbalance, broadcast, lacp → bonding mode active-backup, balance-rr, balance-xor, broadcast, 802.3ad (bare `team`: `team0:eth0,eth1:activebackup`)"},
	{Section: "network", Key: "bridge", Syntax: "bridge[=<name>:<ports>]", Origin: "dracut", Example: "bridge=bridge0:eth0,eth1",
		Effect: "a bridge (STP off) over the ports (bare `bridge`: `br0:eth0`)"},
	{Section: "network", Key: "ib.pkey", Syntax: "ib.pkey=<parent>.<pkey>", Origin: "NM", Example: "ib.pkey=ib0.8004",
		Effect: "parsed; the network stage stops: InfiniBand partitions are not supported yet"},
	{Section: "network", Key: "rd.ethtool", Syntax: "rd.ethtool=<iface>:[on\\|off][:<speed>]", Origin: "NM", Example: "rd.ethtool=eth0:off:1000",
		Effect: "parsed; the network stage stops: link settings are not supported yet"},

	// Passed on: the kernel's or the real OS's, named here because Foreman's template writes them.
	{Section: "passed", Key: "proxy.url", Syntax: "proxy.url=<URL>", Origin: "Foreman (discovery)", Example: "proxy.url=https://foreman.example.com",
		Effect: "not read by the initramfs: the Foreman Discovery Image's services read it from /proc/cmdline, where it stays"},
	{Section: "passed", Key: "proxy.type", Syntax: "proxy.type=foreman\\|proxy", Origin: "Foreman (discovery)", Example: "proxy.type=foreman", Effect: "as `proxy.url=`"},
	{Section: "passed", Key: "nokaslr", Syntax: "nokaslr", Origin: "kernel; Foreman", Example: "nokaslr", Effect: "the kernel's; ignored by the initramfs"},
	{Section: "passed", Key: "nomodeset", Syntax: "nomodeset", Origin: "kernel; Foreman", Example: "nomodeset", Effect: "as `nokaslr`"},
	{Section: "passed", Key: "acpi", Syntax: "acpi=force", Origin: "kernel; Foreman", Example: "acpi=force", Effect: "as `nokaslr`"},
}

// hex64 is a valid digest for the examples.
const hex64 = "abababababababababababababababababababababababababababababababab"

// Forms returns the reference table: every accepted form of every kernel
// argument streamroot reads, with its origin and effect.
func Forms() []Form { return append([]Form(nil), forms...) }

// Reference renders Forms as the Markdown tables of docs/kernel-args.md's
// "Kernel arguments" section, and the list of forms where dracut and
// NetworkManager differ.
func Reference() string {
	var b strings.Builder
	for _, s := range sections {
		b.WriteString("**" + s.title + "**\n\n| argument | origin | meaning |\n|---|---|---|\n")
		for _, f := range forms {
			if f.Section == s.key {
				b.WriteString("| `" + f.Syntax + "` | " + f.Origin + " | " + f.Effect + " |\n")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("**Where dracut and NetworkManager differ.** streamroot follows dracut's own parser, except where its reading cannot boot or does not exist (said so below).\n\n")
	b.WriteString("| form | nm-initrd-generator, and what streamroot does |\n|---|---|\n")
	for _, f := range forms {
		if f.NM != "" {
			b.WriteString("| `" + f.Syntax + "` | " + f.NM + " |\n")
		}
	}
	return b.String()
}
