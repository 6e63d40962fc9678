package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/textesc"
)

const pxeUsage = `Usage: streamroot pxe --server URL --image PATH [--format pxelinux|ipxe|grub]
                      [--kernel vmlinuz] [--initrd initramfs.img] [--append "extra args"]
                      [--label L] [--menu-label TEXT] [--ipxe-nic net0]
                      [--firmware-addr]
                      [--grub-el] [--grub-http HOST]
                      [--foreman --foreman-url URL] [--manifest IMAGE.manifest] [--json]

Prints a boot entry that boots the image at <server>/<image> with the
streamroot initramfs: kernel, initrd, and a kernel line with ip=dhcp and
root=live:<URL>, plus the boot NIC's MAC as BOOTIF so the initramfs uses
the NIC the machine network-booted from:

  pxelinux  LABEL/MENU LABEL/KERNEL/APPEND ... IPAPPEND 2 (PXELinux adds
            BOOTIF=01-<mac>); paste into pxelinux.cfg/default
  ipxe      an iPXE script: kernel ... BOOTIF=01-${net0/mac:hexhyp},
            initrd, boot
  grub      a GRUB menuentry; BOOTIF=01-$net_default_mac when GRUB itself
            was network-booted, as Foreman's GRUB2 templates write it (GRUB
            cannot rewrite the MAC into PXELinux's 01-aa-bb-... form; the
            colon form is accepted by streamroot and dracut), and no BOOTIF
            otherwise. --grub-el writes linuxefi/initrdefi, the commands of
            EL's GRUB for UEFI (Debian's GRUB has linux/initrd only);
            --grub-http HOST loads kernel and initrd from (http,HOST)/...
            (UEFI HTTP Boot: GRUB's own HTTP client, no TFTP)

--firmware-addr also puts the lease the firmware holds on the kernel line,
in PXELinux's IPAPPEND 1 form ip=<client>:<boot server>:<gateway>:<netmask>
beside ip=dhcp (PXELinux: IPAPPEND 3; iPXE: from ${net0/ip} and the rest,
when it has an IPv4 lease there). The initramfs then asks the DHCP server
for that address with one REQUEST (RFC 2131's INIT-REBOOT) instead of
DISCOVER, OFFER, REQUEST, ACK: one round trip fewer, the same one lease. A
NAK or no answer in 3 s falls back to a DISCOVER, so a server that ignores
such a REQUEST costs 3 s. dracut refuses the form (a client IP beside its
DHCP). GRUB has no variable for the netmask: its entry never carries it.

--foreman prints the Foreman Discovery Image entry ("PXELinux global
default" template): label discovery_http and the arguments the Discovery
Image expects, with proxy.url=<--foreman-url> proxy.type=foreman.

--manifest adds streamroot.manifest=sha256:<digest> and streamroot.sha256=
from a manifest written by 'streamroot manifest', pinning the image (put
the manifest next to the image, as IMAGE.manifest). Every chunk is then
verified before the kernel sees it, in every fetch mode; the whole image
is hashed again before the mount in ram mode and when the background fill
completes in the default stream mode (a mismatch then stops the device
serving: every read fails); in lazy mode (streamroot.fetch=lazy, or an
image too big for RAM) the chunks alone vouch for it. streamroot.sha256=
without the manifest would only be checked on a whole copy in RAM.

Kernel and initrd paths are written as given: relative to the TFTP root
for PXELinux, to the script's own URL for iPXE, to $root for GRUB. For
GRUB the defaults are /vmlinuz and /initramfs.img: GRUB opens a path on
a disk or over HTTP only when it starts with / (a relative one works over
TFTP alone), so with --grub-http a path is always made absolute.
A password in --server is kept on the kernel line (the node needs it) but
never shown in a menu title or a message.

--json prints {"format", "entry", "image_url", "kernel_args"} instead of
the entry alone (image_url with any password redacted).
`

// pxeOptions is everything that shapes a boot entry.
type pxeOptions struct {
	format     string
	server     string
	image      string
	kernel     string
	initrd     string
	extra      string
	label      string
	menuLabel  string
	foreman    bool
	foremanURL string
	ipxeNIC    string
	// firmwareAddr passes the firmware's lease (ip= in PXELinux's
	// IPAPPEND 1 form) for the initramfs to ask for again.
	firmwareAddr bool
	grubEL       bool     // linuxefi/initrdefi
	grubHTTP     string   // (http,HOST) device for kernel and initrd
	pins         []string // streamroot.manifest=..., streamroot.sha256=...
}

// foremanArgs are the Foreman Discovery Image's kernel arguments from its
// "Booting Discovery over HTTP" procedure, before proxy.url/proxy.type.
const foremanArgs = "rd.shell ro acpi=force rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0 rd.shell rd.debug=1 nomodeset"

func runPXE(_ context.Context, e *env, args []string) error {
	fs := newFlags("pxe", pxeUsage)
	var o pxeOptions
	fs.StringVar(&o.server, "server", "", "base `URL` of the HTTP server holding the image (http:// or https://), required")
	fs.StringVar(&o.image, "image", "", "`PATH` of the image on that server (squashfs, erofs, ext4 or .iso), required")
	fs.StringVar(&o.format, "format", "pxelinux", "entry format: pxelinux, ipxe or grub")
	fs.StringVar(&o.kernel, "kernel", "vmlinuz", "kernel `path` as the boot loader fetches it")
	fs.StringVar(&o.initrd, "initrd", "initramfs.img", "streamroot initramfs `path` as the boot loader fetches it")
	fs.StringVar(&o.extra, "append", "", "extra kernel `arguments`, appended last (e.g. \"console=ttyS0 streamroot.fetch=lazy\")")
	fs.StringVar(&o.label, "label", "", "entry label (default streamroot, or discovery_http with --foreman)")
	fs.StringVar(&o.menuLabel, "menu-label", "", "menu title (default \"streamroot: <image URL>\", or \"Foreman Discovery via HTTP\")")
	fs.BoolVar(&o.foreman, "foreman", false, "Foreman Discovery Image entry (needs --foreman-url)")
	fs.StringVar(&o.foremanURL, "foreman-url", "", "Foreman or Smart Proxy `URL` for proxy.url= (with --foreman)")
	fs.StringVar(&o.ipxeNIC, "ipxe-nic", "net0", "iPXE device whose MAC becomes BOOTIF (net0, net1, ... or netX for the last one opened)")
	fs.BoolVar(&o.firmwareAddr, "firmware-addr", false, "PXELinux and iPXE: also pass the firmware's lease as ip=<client>:<server>:<gateway>:<netmask>, which the initramfs asks for again in one round trip (PXELinux: IPAPPEND 3)")
	fs.BoolVar(&o.grubEL, "grub-el", false, "with --format grub: linuxefi/initrdefi, for EL's GRUB on UEFI (Foreman's PXEGrub2 templates)")
	fs.StringVar(&o.grubHTTP, "grub-http", "", "with --format grub: load kernel and initrd from (http,`HOST`)/..., GRUB's HTTP client (UEFI HTTP Boot)")
	manifestPath := fs.String("manifest", "", "`file` written by 'streamroot manifest': pin the image with its digests")
	asJSON := fs.Bool("json", false, "print the entry and its parts as a JSON object")
	pos, err := fs.parseJSON(e, args, asJSON)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q (all pxe arguments are flags)", pos[0])
	}
	// GRUB opens only absolute paths on a disk or over HTTP.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if o.format == "grub" {
		if !given["kernel"] {
			o.kernel = "/" + o.kernel
		}
		if !given["initrd"] {
			o.initrd = "/" + o.initrd
		}
	}
	if *manifestPath != "" {
		data, err := os.ReadFile(*manifestPath)
		if err != nil {
			return err
		}
		m, err := manifest.Parse(data)
		if err != nil {
			return withHint(fmt.Errorf("%s: %w", *manifestPath, err), "give the file 'streamroot manifest IMAGE' wrote (IMAGE.manifest)")
		}
		if err := checkManifestFor(e, *manifestPath, o.image, m); err != nil {
			return err
		}
		o.pins = []string{manifest.KernelArg(data), fmt.Sprintf("streamroot.sha256=%x", m.SHA256)}
	}
	ent, err := pxeEntry(o)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, ent)
	}
	_, err = io.WriteString(e.stdout, ent.Entry)
	return err
}

// checkManifestFor checks a --manifest against the image it is to pin:
// the image file beside it (IMAGE.manifest's IMAGE), when there is one,
// must have the size the manifest says; and the node fetches
// <image URL>.manifest, so a manifest named for another image is worth a
// warning.
func checkManifestFor(e *env, manifestPath, image string, m *manifest.Manifest) error {
	local := strings.TrimSuffix(manifestPath, ".manifest")
	if local != manifestPath {
		if st, err := os.Stat(local); err == nil && st.Mode().IsRegular() && st.Size() != m.Size {
			return withHint(fmt.Errorf("--manifest %s is not %s's: it says %d bytes, the image has %d", manifestPath, local, m.Size, st.Size()),
				"the image changed since: run 'streamroot manifest %s' again and publish the new manifest", local)
		}
	}
	if image != "" && path.Base(manifestPath) != path.Base(image)+".manifest" {
		fmt.Fprintf(e.stderr, "streamroot pxe: warning: the node fetches <image URL>.manifest, i.e. %s.manifest, but --manifest is %s: publish it under that name or add streamroot.manifest.url= with --append\n",
			textesc.Escape(path.Base(image)), textesc.Escape(manifestPath))
	}
	return nil
}

// pxeResult is a boot entry and its parts, as --json prints it.
type pxeResult struct {
	Format     string `json:"format"`
	Entry      string `json:"entry"`
	ImageURL   string `json:"image_url"`
	KernelArgs string `json:"kernel_args"`
}

// redactRaw is s with any password replaced by "xxxxx", for messages.
func redactRaw(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	if i, j := strings.Index(s, "://"), strings.LastIndex(s, "@"); i >= 0 && j > i {
		return s[:i+3] + "xxxxx" + s[j:]
	}
	return s
}

// checkURL validates an http(s) URL that will be written into a boot
// loader config, where whitespace, quotes and shell-like characters would
// break or change the line.
// why says what the URL is for, in the message refusing another scheme.
func checkURL(flagName, s, why string) (*url.URL, error) {
	if s == "" {
		return nil, usagef("--%s is required", flagName)
	}
	shown := redactRaw(s)
	u, err := url.Parse(s)
	if err != nil {
		return nil, usagef("--%s %q: not a URL", flagName, shown)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, usagef("--%s %q: want an http:// or https:// URL (%s)", flagName, shown, why)
	}
	if u.Host == "" {
		return nil, usagef("--%s %q: no host name", flagName, shown)
	}
	if u.Fragment != "" || strings.HasSuffix(s, "#") {
		return nil, usagef("--%s %q: a #fragment is never sent to the server", flagName, shown)
	}
	if err := checkWord(flagName, s); err != nil {
		return nil, err
	}
	return u, nil
}

// checkWord refuses characters that a kernel line or a boot loader script
// would split on or interpret.
func checkWord(flagName, s string) error {
	if i := strings.IndexAny(s, " \t\r\n\"'\\$;{}&|<>`"); i >= 0 {
		return usagef("--%s %q: contains %q, which a boot loader config would split or interpret", flagName, redactRaw(s), s[i])
	}
	return nil
}

// grubHTTPPath is p on GRUB's HTTP device for host: (http,HOST)/p, the
// path absolute (GRUB sends it as the request's path).
func grubHTTPPath(host, p string) string {
	return "(http," + host + ")/" + strings.TrimLeft(p, "/")
}

func pxeEntry(o pxeOptions) (pxeResult, error) {
	var none pxeResult
	srv, err := checkURL("server", o.server, "the initramfs fetches the image over HTTP")
	if err != nil {
		return none, err
	}
	if srv.RawQuery != "" || srv.ForceQuery {
		return none, usagef("--server %q: a ?query would end up before the image's path; give the server's base URL", srv.Redacted())
	}
	if o.image == "" {
		return none, usagef("--image is required (the image's path on --server, e.g. LiveOS/squashfs.img)")
	}
	if strings.Contains(o.image, "://") {
		return none, usagef("--image %q: give the path on --server, not a URL", redactRaw(o.image))
	}
	if i := strings.IndexAny(o.image, "#?"); i >= 0 {
		return none, usagef("--image %q: %q would end the URL's path (the node would fetch only what comes before it); rename the file or write it as %%%02X",
			o.image, o.image[i], o.image[i])
	}
	if slices.Contains(strings.Split(o.image, "/"), "..") {
		return none, usagef("--image %q: a .. segment leaves the server's directory (servers, streamroot serve among them, refuse it); give the path from --server's root", o.image)
	}
	for _, w := range []struct{ name, v string }{{"image", o.image}, {"kernel", o.kernel}, {"initrd", o.initrd}, {"label", o.label}} {
		if err := checkWord(w.name, w.v); err != nil {
			return none, err
		}
	}
	if o.kernel == "" || o.initrd == "" {
		return none, usagef("--kernel and --initrd must not be empty")
	}
	if strings.ContainsAny(o.extra, "\r\n") || strings.ContainsAny(o.menuLabel, "\r\n'") {
		return none, usagef("--append and --menu-label must be one line (and --menu-label without ')")
	}
	if o.format != "grub" && (o.grubEL || o.grubHTTP != "") {
		return none, usagef("--grub-el and --grub-http go with --format grub")
	}
	if o.grubHTTP != "" {
		if err := checkWord("grub-http", o.grubHTTP); err != nil {
			return none, err
		}
		if strings.ContainsAny(o.grubHTTP, "(),/") {
			return none, usagef("--grub-http %q: want a host or host:port (GRUB writes the device as (http,HOST))", o.grubHTTP)
		}
		for _, p := range []string{o.kernel, o.initrd} {
			if strings.HasPrefix(p, "(") {
				return none, usagef("--grub-http with --kernel/--initrd %q: give the path alone, --grub-http adds the device", p)
			}
		}
	}
	if o.ipxeNIC != "netX" && !(strings.HasPrefix(o.ipxeNIC, "net") && len(o.ipxeNIC) > 3 && strings.Trim(o.ipxeNIC[3:], "0123456789") == "") {
		return none, usagef("--ipxe-nic %q: want net0, net1, ... or netX", o.ipxeNIC)
	}
	base := strings.TrimRight(srv.String(), "/")
	imageURL := base + "/" + strings.TrimLeft(o.image, "/")
	// The node needs the password; a menu title or a message shows none.
	shownURL := strings.TrimRight(srv.Redacted(), "/") + "/" + strings.TrimLeft(o.image, "/")

	args := []string{"ip=dhcp", "root=live:" + imageURL}
	label, menu := "streamroot", "streamroot: "+shownURL
	if o.foreman {
		if _, err := checkURL("foreman-url", o.foremanURL, "the Discovery Image reaches Foreman or its Smart Proxy over HTTP"); err != nil {
			return none, err
		}
		args = append(args, foremanArgs, "proxy.url="+o.foremanURL, "proxy.type=foreman")
		label, menu = "discovery_http", "Foreman Discovery via HTTP"
	} else if o.foremanURL != "" {
		return none, usagef("--foreman-url needs --foreman")
	}
	// After the image and the NIC: the pins, then the operator's own
	// arguments last, so they can override anything before them.
	var tail []string
	tail = append(tail, o.pins...)
	if x := strings.Join(strings.Fields(o.extra), " "); x != "" {
		tail = append(tail, x)
	}
	if o.label != "" {
		label = o.label
	}
	if o.menuLabel != "" {
		menu = o.menuLabel
	}
	cmdline := func(bootif string) string {
		all := append(args[:len(args):len(args)], bootif)
		return strings.Join(slices.DeleteFunc(append(all, tail...), func(s string) bool { return s == "" }), " ")
	}

	var b strings.Builder
	switch o.format {
	case "pxelinux":
		// IPAPPEND 1 adds ip=<client>:<server>:<gateway>:<netmask>, 2
		// BOOTIF=; 3 both.
		ipappend := 2
		if o.firmwareAddr {
			ipappend = 3
		}
		fmt.Fprintf(&b, "LABEL %s\nMENU LABEL %s\nKERNEL %s\nAPPEND initrd=%s %s\nIPAPPEND %d\n",
			label, menu, o.kernel, o.initrd, cmdline(""), ipappend)
	case "ipxe":
		bootif := "BOOTIF=01-${" + o.ipxeNIC + "/mac:hexhyp}"
		var fw string
		if o.firmwareAddr {
			fw, bootif = ipxeFirmwareAddr(o.ipxeNIC), bootif+" ${sr_ip}"
		}
		// initrd=<name> lets a UEFI kernel's EFI stub find the initrd iPXE
		// loaded; iPXE names an image after the last part of its path.
		fmt.Fprintf(&b, "#!ipxe\n# %s (%s)\n%skernel %s initrd=%s %s\ninitrd %s\nboot\n",
			menu, label, fw, o.kernel, path.Base(o.initrd), cmdline(bootif), o.initrd)
	case "grub":
		linux, initrd := "linux", "initrd"
		if o.grubEL {
			linux, initrd = "linuxefi", "initrdefi"
		}
		kernel, ird := o.kernel, o.initrd
		if o.grubHTTP != "" {
			kernel, ird = grubHTTPPath(o.grubHTTP, kernel), grubHTTPPath(o.grubHTTP, ird)
		}
		fmt.Fprintf(&b, "menuentry '%s' --id %s {\n"+
			"\tset sr_bootif=\"\"\n"+
			"\tif [ -n \"$net_default_mac\" ]; then set sr_bootif=\"BOOTIF=01-$net_default_mac\"; fi\n"+
			"\t%s %s %s\n"+
			"\t%s %s\n"+
			"}\n", menu, label, linux, kernel, cmdline("$sr_bootif"), initrd, ird)
	default:
		return none, usagef("--format %q: want pxelinux, ipxe or grub", o.format)
	}
	return pxeResult{Format: o.format, Entry: b.String(), ImageURL: shownURL, KernelArgs: cmdline("")}, nil
}

// ipxeFirmwareAddr is the iPXE script's lines that set ${sr_ip} to nic's
// lease in PXELinux's IPAPPEND 1 form, or clear it when iPXE holds no
// IPv4 lease there. An unset gateway or next-server is written 0.0.0.0, as
// PXELinux does: left empty, the argument would read as a static address.
func ipxeFirmwareAddr(nic string) string {
	return "# ip=: the lease iPXE holds on " + nic + ", which the initramfs asks for again (one DHCP round trip)\n" +
		"clear sr_ip\n" +
		"set sr_gw 0.0.0.0\n" +
		"isset ${" + nic + "/gateway} && set sr_gw ${" + nic + "/gateway} ||\n" +
		"set sr_ns 0.0.0.0\n" +
		"isset ${" + nic + "/next-server} && set sr_ns ${" + nic + "/next-server} ||\n" +
		"isset ${" + nic + "/ip} && isset ${" + nic + "/netmask} && set sr_ip ip=${" + nic + "/ip}:${sr_ns}:${sr_gw}:${" + nic + "/netmask} ||\n"
}
