package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/bootcfg"
)

// The seed's "PXELinux global default" entry ("Booting Discovery over
// HTTP"), exactly.
const seedForeman = `LABEL discovery_http
MENU LABEL Foreman Discovery via HTTP
KERNEL boot/discovery-http-vmlinuz
APPEND initrd=boot/discovery-http.img ip=dhcp root=live:http://SOME_HTTP_SERVER/squashfs.img rd.shell ro acpi=force rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0 rd.shell rd.debug=1 nomodeset proxy.url=https://FOREMAN_SERVER proxy.type=foreman
IPAPPEND 2
`

func TestPXEGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"foreman seed entry", []string{"--foreman", "--server", "http://SOME_HTTP_SERVER", "--image", "squashfs.img",
			"--foreman-url", "https://FOREMAN_SERVER", "--kernel", "boot/discovery-http-vmlinuz", "--initrd", "boot/discovery-http.img"}, seedForeman},
		// --firmware-addr: IPAPPEND 3, the firmware's lease as well as BOOTIF.
		{"foreman firmware-addr", []string{"--foreman", "--firmware-addr", "--server", "http://SOME_HTTP_SERVER", "--image", "squashfs.img",
			"--foreman-url", "https://FOREMAN_SERVER", "--kernel", "boot/discovery-http-vmlinuz", "--initrd", "boot/discovery-http.img"},
			strings.Replace(seedForeman, "IPAPPEND 2", "IPAPPEND 3", 1)},
		{"pxelinux default", []string{"--server", "http://10.0.0.1:8080/", "--image", "/LiveOS/squashfs.img"}, `LABEL streamroot
MENU LABEL streamroot: http://10.0.0.1:8080/LiveOS/squashfs.img
KERNEL vmlinuz
APPEND initrd=initramfs.img ip=dhcp root=live:http://10.0.0.1:8080/LiveOS/squashfs.img
IPAPPEND 2
`},
		{"pxelinux with extras", []string{"--server", "https://boot.example/images", "--image", "fdi.iso", "--label", "fdi",
			"--menu-label", "FDI 4.1", "--append", "  console=ttyS0   streamroot.fetch=lazy "}, `LABEL fdi
MENU LABEL FDI 4.1
KERNEL vmlinuz
APPEND initrd=initramfs.img ip=dhcp root=live:https://boot.example/images/fdi.iso console=ttyS0 streamroot.fetch=lazy
IPAPPEND 2
`},
		{"ipxe firmware-addr", []string{"--format", "ipxe", "--firmware-addr", "--server", "http://10.0.0.1", "--image", "squashfs.img", "--kernel", "http://10.0.0.1/vmlinuz",
			"--initrd", "http://10.0.0.1/boot/streamroot.img", "--append", "console=ttyS0"}, `#!ipxe
# streamroot: http://10.0.0.1/squashfs.img (streamroot)
# ip=: the lease iPXE holds on net0, which the initramfs asks for again (one DHCP round trip)
clear sr_ip
set sr_gw 0.0.0.0
isset ${net0/gateway} && set sr_gw ${net0/gateway} ||
set sr_ns 0.0.0.0
isset ${net0/next-server} && set sr_ns ${net0/next-server} ||
isset ${net0/ip} && isset ${net0/netmask} && set sr_ip ip=${net0/ip}:${sr_ns}:${sr_gw}:${net0/netmask} ||
kernel http://10.0.0.1/vmlinuz initrd=streamroot.img ip=dhcp root=live:http://10.0.0.1/squashfs.img BOOTIF=01-${net0/mac:hexhyp} ${sr_ip} console=ttyS0
initrd http://10.0.0.1/boot/streamroot.img
boot
`},
		{"ipxe", []string{"--format", "ipxe", "--server", "http://10.0.0.1", "--image", "squashfs.img",
			"--append", "console=ttyS0"}, `#!ipxe
# streamroot: http://10.0.0.1/squashfs.img (streamroot)
kernel vmlinuz initrd=initramfs.img ip=dhcp root=live:http://10.0.0.1/squashfs.img BOOTIF=01-${net0/mac:hexhyp} console=ttyS0
initrd initramfs.img
boot
`},
		{"ipxe foreman netX", []string{"--format", "ipxe", "--firmware-addr", "--foreman", "--foreman-url", "https://foreman.example", "--ipxe-nic", "netX",
			"--server", "http://10.0.0.1", "--image", "squashfs.img"}, `#!ipxe
# Foreman Discovery via HTTP (discovery_http)
# ip=: the lease iPXE holds on netX, which the initramfs asks for again (one DHCP round trip)
clear sr_ip
set sr_gw 0.0.0.0
isset ${netX/gateway} && set sr_gw ${netX/gateway} ||
set sr_ns 0.0.0.0
isset ${netX/next-server} && set sr_ns ${netX/next-server} ||
isset ${netX/ip} && isset ${netX/netmask} && set sr_ip ip=${netX/ip}:${sr_ns}:${sr_gw}:${netX/netmask} ||
kernel vmlinuz initrd=initramfs.img ip=dhcp root=live:http://10.0.0.1/squashfs.img rd.shell ro acpi=force rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0 rd.shell rd.debug=1 nomodeset proxy.url=https://foreman.example proxy.type=foreman BOOTIF=01-${netX/mac:hexhyp} ${sr_ip}
initrd initramfs.img
boot
`},
		{"grub", []string{"--format", "grub", "--server", "http://10.0.0.1:8080", "--image", "squashfs.img", "--kernel", "/boot/vmlinuz",
			"--initrd", "/boot/initramfs.img", "--append", "console=ttyS0"}, `menuentry 'streamroot: http://10.0.0.1:8080/squashfs.img' --id streamroot {
	set sr_bootif=""
	if [ -n "$net_default_mac" ]; then set sr_bootif="BOOTIF=01-$net_default_mac"; fi
	linux /boot/vmlinuz ip=dhcp root=live:http://10.0.0.1:8080/squashfs.img $sr_bootif console=ttyS0
	initrd /boot/initramfs.img
}
`},
		// The defaults made absolute: GRUB opens nothing relative on a
		// disk or over HTTP.
		{"grub defaults", []string{"--format", "grub", "--server", "http://10.0.0.1", "--image", "squashfs.img"}, `menuentry 'streamroot: http://10.0.0.1/squashfs.img' --id streamroot {
	set sr_bootif=""
	if [ -n "$net_default_mac" ]; then set sr_bootif="BOOTIF=01-$net_default_mac"; fi
	linux /vmlinuz ip=dhcp root=live:http://10.0.0.1/squashfs.img $sr_bootif
	initrd /initramfs.img
}
`},
		// Foreman's "PXEGrub2 global default": EL's linuxefi/initrdefi,
		// paths relative to the TFTP root as given.
		{"grub EL foreman", []string{"--format", "grub", "--grub-el", "--foreman", "--foreman-url", "https://foreman.example",
			"--server", "http://10.0.0.1", "--image", "fdi.iso", "--kernel", "boot/fdi-image/vmlinuz0", "--initrd", "boot/fdi-image/initrd0.img"},
			`menuentry 'Foreman Discovery via HTTP' --id discovery_http {
	set sr_bootif=""
	if [ -n "$net_default_mac" ]; then set sr_bootif="BOOTIF=01-$net_default_mac"; fi
	linuxefi boot/fdi-image/vmlinuz0 ip=dhcp root=live:http://10.0.0.1/fdi.iso rd.shell ro acpi=force rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0 rd.shell rd.debug=1 nomodeset proxy.url=https://foreman.example proxy.type=foreman $sr_bootif
	initrdefi boot/fdi-image/initrd0.img
}
`},
		// "Grub2 UEFI HTTP": kernel and initrd from GRUB's HTTP device,
		// absolute paths.
		{"grub EL http", []string{"--format", "grub", "--grub-el", "--grub-http", "10.0.0.1:8000", "--server", "http://10.0.0.1", "--image", "squashfs.img",
			"--kernel", "httpboot/vmlinuz", "--initrd", "/httpboot/initramfs.img"}, `menuentry 'streamroot: http://10.0.0.1/squashfs.img' --id streamroot {
	set sr_bootif=""
	if [ -n "$net_default_mac" ]; then set sr_bootif="BOOTIF=01-$net_default_mac"; fi
	linuxefi (http,10.0.0.1:8000)/httpboot/vmlinuz ip=dhcp root=live:http://10.0.0.1/squashfs.img $sr_bootif
	initrdefi (http,10.0.0.1:8000)/httpboot/initramfs.img
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, append([]string{"pxe"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if out != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", out, tt.want)
			}
		})
	}
}

func TestPXEManifestPins(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "root.img")
	if err := os.WriteFile(img, []byte("an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(t, "manifest", img); code != 0 {
		t.Fatal(errs)
	}
	data, _ := os.ReadFile(img + ".manifest")
	code, out, errs := runCmd(t, "pxe", "--server", "http://s", "--image", "root.img", "--manifest", img+".manifest", "--append", "quiet")
	if code != 0 {
		t.Fatal(errs)
	}
	want := fmt.Sprintf("APPEND initrd=initramfs.img ip=dhcp root=live:http://s/root.img streamroot.manifest=sha256:%x streamroot.sha256=%x quiet\n",
		sha256.Sum256(data), sha256.Sum256([]byte("an image")))
	if !strings.Contains(out, want) {
		t.Errorf("got:\n%s\nwant line:\n%s", out, want)
	}
}

func TestPXEErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no server", []string{"--image", "a"}, "--server is required"},
		{"ftp server", []string{"--server", "ftp://h/", "--image", "a"}, `--server "ftp://h/": want an http:// or https:// URL`},
		{"bare host", []string{"--server", "10.0.0.1", "--image", "a"}, `--server "10.0.0.1": want an http:// or https:// URL`},
		{"no host", []string{"--server", "http:///x", "--image", "a"}, "no host name"},
		{"space in server", []string{"--server", "http://h/a b", "--image", "a"}, "contains"},
		{"fragment", []string{"--server", "http://h/#x", "--image", "a"}, "fragment"},
		{"no image", []string{"--server", "http://h"}, "--image is required"},
		{"image URL", []string{"--server", "http://h", "--image", "http://h/a"}, "give the path on --server"},
		{"dollar in image", []string{"--server", "http://h", "--image", "a$b"}, `--image "a$b": contains '$'`},
		{"bad format", []string{"--server", "http://h", "--image", "a", "--format", "syslinux"}, `--format "syslinux": want pxelinux, ipxe or grub`},
		{"foreman without url", []string{"--server", "http://h", "--image", "a", "--foreman"}, "--foreman-url is required"},
		{"foreman bad url", []string{"--server", "http://h", "--image", "a", "--foreman", "--foreman-url", "foreman.example"}, "--foreman-url"},
		{"foreman url alone", []string{"--server", "http://h", "--image", "a", "--foreman-url", "https://f"}, "--foreman-url needs --foreman"},
		{"bad ipxe nic", []string{"--server", "http://h", "--image", "a", "--ipxe-nic", "eth0"}, "--ipxe-nic"},
		{"positional", []string{"--server", "http://h", "--image", "a", "extra"}, `unexpected argument "extra"`},
		{"newline in append", []string{"--server", "http://h", "--image", "a", "--append", "a\nb"}, "one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, append([]string{"pxe"}, tt.args...)...)
			if code != 2 || out != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out)
			}
			if !strings.Contains(errs, tt.want) {
				t.Errorf("stderr %q does not contain %q", errs, tt.want)
			}
		})
	}
}

// TestPXEGrubBootIF: the BOOTIF GRUB writes (01- and $net_default_mac's
// colon form, as Foreman's templates) is one the initramfs's parser takes
// for the boot NIC.
func TestPXEGrubBootIF(t *testing.T) {
	code, out, errs := runCmd(t, "pxe", "--format", "grub", "--server", "http://10.0.0.1", "--image", "squashfs.img", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var res pxeResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`sr_bootif="(BOOTIF=[^"]*)"`).FindStringSubmatch(res.Entry)
	if m == nil {
		t.Fatalf("no BOOTIF in the entry:\n%s", res.Entry)
	}
	// What GRUB makes of it on a node whose boot NIC is 52:54:00:12:34:56.
	line := res.KernelArgs + " " + strings.ReplaceAll(m[1], "$net_default_mac", "52:54:00:12:34:56")
	cfg, err := bootcfg.Parse(line)
	if err != nil {
		t.Fatalf("bootcfg.Parse(%q): %v", line, err)
	}
	if got := cfg.Net.BootIF.String(); got != "52:54:00:12:34:56" {
		t.Errorf("BOOTIF from %q is %q, want 52:54:00:12:34:56", m[1], got)
	}
}

// TestPXEIPXEFirmwareAddr: what the iPXE script's ${sr_ip} becomes for
// the leases iPXE can hold is what the initramfs's parser reads as the
// firmware's address (DHCP, asking for it first), never a static one; no
// lease (or no IPv4 one) leaves plain DHCP.
func TestPXEIPXEFirmwareAddr(t *testing.T) {
	code, out, errs := runCmd(t, "pxe", "--format", "ipxe", "--firmware-addr", "--server", "http://10.0.0.1", "--image", "squashfs.img", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var res pxeResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^isset \$\{net0/ip\} && isset \$\{net0/netmask\} && set sr_ip (\S+) \|\|$`).FindStringSubmatch(res.Entry)
	if m == nil || !strings.Contains(res.Entry, " ${sr_ip}") {
		t.Fatalf("the script neither sets nor uses ${sr_ip}:\n%s", res.Entry)
	}
	for _, tc := range []struct {
		name                  string
		ip, ns, gw, mask      string // iPXE's net0/ip, ${sr_ns}, ${sr_gw} and net0/netmask; ip "": the guard clears sr_ip
		wantAddr, wantGateway string
	}{
		{"lease with router and next-server", "10.0.0.5", "10.0.0.1", "10.0.0.254", "255.255.255.0", "10.0.0.5", "10.0.0.254"},
		{"no router, no next-server", "10.0.0.5", "0.0.0.0", "0.0.0.0", "255.255.0.0", "10.0.0.5", ""},
		{"no IPv4 lease", "", "", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srIP := ""
			if tc.ip != "" {
				srIP = strings.NewReplacer("${net0/ip}", tc.ip, "${sr_ns}", tc.ns, "${sr_gw}", tc.gw, "${net0/netmask}", tc.mask).Replace(m[1])
			}
			line := res.KernelArgs + " BOOTIF=01-52-54-00-12-34-56 " + srIP
			cfg, err := bootcfg.Parse(line)
			if err != nil {
				t.Fatalf("bootcfg.Parse(%q): %v", line, err)
			}
			var fw *bootcfg.IPConf
			for i, c := range cfg.Net.IP {
				if c.Method != bootcfg.IPDHCP {
					t.Errorf("%s reads as method %q, want DHCP", c.Arg, c.Method)
				}
				if c.Firmware {
					fw = &cfg.Net.IP[i]
				}
			}
			switch {
			case tc.wantAddr == "" && fw != nil:
				t.Errorf("%q: a firmware address %v without a lease", line, fw.Addr)
			case tc.wantAddr == "":
			case fw == nil:
				t.Errorf("%q: no firmware address read", line)
			case fw.Addr.String() != tc.wantAddr || (tc.wantGateway == "") != (fw.Gateway == nil) || (fw.Gateway != nil && fw.Gateway.String() != tc.wantGateway):
				t.Errorf("%q: firmware address %v gateway %v, want %s gateway %q", line, fw.Addr, fw.Gateway, tc.wantAddr, tc.wantGateway)
			}
		})
	}
}

func TestPXEGrubFlagsRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--grub-el"}, "go with --format grub"},
		{[]string{"--format", "grub", "--grub-http", "(http,x)"}, "want a host or host:port"},
		{[]string{"--format", "grub", "--grub-http", "10.0.0.1", "--kernel", "(tftp)/vmlinuz"}, "--grub-http adds the device"},
	} {
		code, _, errs := runCmd(t, append([]string{"pxe", "--server", "http://10.0.0.1", "--image", "a.img"}, c.args...)...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("pxe %q: exit %d, %q; want 2 and %q", c.args, code, errs, c.want)
		}
	}
}
