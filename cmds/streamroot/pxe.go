package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/streamroot/streamroot/pkg/manifest"
)

const pxeUsage = `Usage: streamroot pxe --server URL --image PATH [--format pxelinux|ipxe|grub]
                      [--kernel vmlinuz] [--initrd initramfs.img] [--append "extra args"]
                      [--foreman --foreman-url URL] [--manifest IMAGE.manifest]

Prints a boot entry that boots the image at <server>/<image> with the
streamroot initramfs: kernel, initrd, and a kernel line with ip=dhcp and
root=live:<URL>, plus the boot NIC's MAC as BOOTIF so the initramfs uses
the NIC the machine network-booted from:

  pxelinux  LABEL/MENU LABEL/KERNEL/APPEND ... IPAPPEND 2 (PXELinux adds
            BOOTIF=01-<mac>); paste into pxelinux.cfg/default
  ipxe      an iPXE script: kernel ... BOOTIF=01-${net0/mac:hexhyp},
            initrd, boot
  grub      a GRUB menuentry; BOOTIF=$net_default_mac when GRUB itself was
            network-booted (GRUB cannot rewrite the MAC into PXELinux's
            01-aa-bb-... form; the colon form is accepted by streamroot and
            dracut), and no BOOTIF otherwise

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
for PXELinux, to the script's own URL for iPXE, to $root for GRUB.
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
	pins       []string // streamroot.manifest=..., streamroot.sha256=...
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
	manifestPath := fs.String("manifest", "", "`file` written by 'streamroot manifest': pin the image with its digests")
	pos, err := fs.parse(e, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q (all pxe arguments are flags)", pos[0])
	}
	if *manifestPath != "" {
		data, err := os.ReadFile(*manifestPath)
		if err != nil {
			return err
		}
		m, err := manifest.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *manifestPath, err)
		}
		o.pins = []string{manifest.KernelArg(data), fmt.Sprintf("streamroot.sha256=%x", m.SHA256)}
	}
	out, err := pxeEntry(o)
	if err != nil {
		return err
	}
	_, err = io.WriteString(e.stdout, out)
	return err
}

// checkURL validates an http(s) URL that will be written into a boot
// loader config, where whitespace, quotes and shell-like characters would
// break or change the line.
func checkURL(flagName, s string) (*url.URL, error) {
	if s == "" {
		return nil, usagef("--%s is required", flagName)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, usagef("--%s %q: not a URL: %v", flagName, s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, usagef("--%s %q: want an http:// or https:// URL (the initramfs fetches the image over HTTP)", flagName, s)
	}
	if u.Host == "" {
		return nil, usagef("--%s %q: no host name", flagName, s)
	}
	if u.Fragment != "" || strings.HasSuffix(s, "#") {
		return nil, usagef("--%s %q: a #fragment is never sent to the server", flagName, s)
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
		return usagef("--%s %q: contains %q, which a boot loader config would split or interpret", flagName, s, s[i])
	}
	return nil
}

func pxeEntry(o pxeOptions) (string, error) {
	srv, err := checkURL("server", o.server)
	if err != nil {
		return "", err
	}
	if o.image == "" {
		return "", usagef("--image is required (the image's path on --server, e.g. LiveOS/squashfs.img)")
	}
	if strings.Contains(o.image, "://") {
		return "", usagef("--image %q: give the path on --server, not a URL", o.image)
	}
	for _, w := range []struct{ name, v string }{{"image", o.image}, {"kernel", o.kernel}, {"initrd", o.initrd}, {"label", o.label}} {
		if err := checkWord(w.name, w.v); err != nil {
			return "", err
		}
	}
	if o.kernel == "" || o.initrd == "" {
		return "", usagef("--kernel and --initrd must not be empty")
	}
	if strings.ContainsAny(o.extra, "\r\n") || strings.ContainsAny(o.menuLabel, "\r\n'") {
		return "", usagef("--append and --menu-label must be one line (and --menu-label without ')")
	}
	if o.ipxeNIC != "netX" && !(strings.HasPrefix(o.ipxeNIC, "net") && len(o.ipxeNIC) > 3 && strings.Trim(o.ipxeNIC[3:], "0123456789") == "") {
		return "", usagef("--ipxe-nic %q: want net0, net1, ... or netX", o.ipxeNIC)
	}
	imageURL := strings.TrimRight(srv.String(), "/") + "/" + strings.TrimLeft(o.image, "/")

	args := []string{"ip=dhcp", "root=live:" + imageURL}
	label, menu := "streamroot", "streamroot: "+imageURL
	if o.foreman {
		if _, err := checkURL("foreman-url", o.foremanURL); err != nil {
			return "", err
		}
		args = append(args, foremanArgs, "proxy.url="+o.foremanURL, "proxy.type=foreman")
		label, menu = "discovery_http", "Foreman Discovery via HTTP"
	} else if o.foremanURL != "" {
		return "", usagef("--foreman-url needs --foreman")
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
		fmt.Fprintf(&b, "LABEL %s\nMENU LABEL %s\nKERNEL %s\nAPPEND initrd=%s %s\nIPAPPEND 2\n",
			label, menu, o.kernel, o.initrd, cmdline(""))
	case "ipxe":
		// initrd=<name> lets a UEFI kernel's EFI stub find the initrd iPXE
		// loaded; iPXE names an image after the last part of its path.
		fmt.Fprintf(&b, "#!ipxe\n# %s (%s)\nkernel %s initrd=%s %s\ninitrd %s\nboot\n",
			menu, label, o.kernel, path.Base(o.initrd), cmdline("BOOTIF=01-${"+o.ipxeNIC+"/mac:hexhyp}"), o.initrd)
	case "grub":
		fmt.Fprintf(&b, "menuentry '%s' --id %s {\n"+
			"\tset sr_bootif=\"\"\n"+
			"\tif [ -n \"$net_default_mac\" ]; then set sr_bootif=\"BOOTIF=$net_default_mac\"; fi\n"+
			"\tlinux %s %s\n"+
			"\tinitrd %s\n"+
			"}\n", menu, label, o.kernel, cmdline("$sr_bootif"), o.initrd)
	default:
		return "", usagef("--format %q: want pxelinux, ipxe or grub", o.format)
	}
	return b.String(), nil
}
