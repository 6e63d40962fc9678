package qemutests

import (
	"regexp"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/internal/testfile"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// TestUEFIHTTPBootIPv6SignedUKI: UEFI HTTP Boot over IPv6 on a link with
// no IPv4 server at all (issue 14): radvd advertises fd00:77::/64 with the
// M flag, OVMF with Secure Boot on (snakeoil keys) solicits by DHCPv6 with
// the HTTPClient vendor class, Kea answers with an address, the vendor
// class and the boot file URL http://[fd00:77::1]/streamroot.efi (option
// 59), the firmware fetches the signed UKI over IPv6, checks its signature
// and starts it; the initramfs takes its own DHCPv6 lease (ip=dhcp6 on the
// UKI's command line) and streams the root from http://[fd00:77::1]/. The
// node never has an IPv4 address.
func TestUEFIHTTPBootIPv6SignedUKI(t *testing.T) {
	root, ns := uefiSetup(t)
	if err := harness.CheckUKIHost(); err != nil {
		t.Fatal(err)
	}
	harness.EnableIPv6(t, ns)
	web := harness.StartNginx(t, ns, harness.NginxOptions{Listen: "[" + harness.ServerIP6 + "]:80"})
	cmdline := strings.TrimSpace(harness.GuestConsoleArgs) + " ip=dhcp6 root=live:" + web.URL(uefiImage) +
		" streamroot.onfail=reboot streamroot.reboot.delay=0"
	ukiPath := harness.SignedUKI(t, env.ArtifactDir(t), env.Kernel, env.Initramfs, cmdline)
	for _, f := range [][2]string{{root, uefiImage}, {ukiPath, "streamroot.efi"}} {
		if err := web.AddFile(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	harness.StartRadvd(t, ns, harness.RadvdOptions{})
	kea := harness.StartKea6With(t, ns, harness.Kea6Options{ClientClasses: harness.HTTPBoot6KeaClasses(web.URL("streamroot.efi"))})

	vm := env.BootUEFI(t, harness.PXEBootOptions{Netns: ns}, harness.UEFI{SecureBoot: true, Snakeoil: true, HTTPOnly: true})
	vm.WaitMilestones(t, harness.DefaultUEFIBootTimeout, uefiMilestones(
		harness.Milestone{Name: "HTTP Boot v6", Re: regexp.MustCompile(`UEFI HTTPv6 \(MAC:525400123456\)`)},
		harness.Milestone{Name: "firmware DHCPv6", Re: regexp.MustCompile(`(?i)Station IPv6 address is FD00:77:`)})...)
	r, u := checkUEFIBoot(t, vm)
	if got := strings.Join(strings.Fields(r.Cmdline), " "); got != cmdline {
		t.Errorf("the root's /proc/cmdline is not the UKI's:\n got %q\nwant %q", got, cmdline)
	}
	checkSecureBoot(t, vm, u)
	if v4 := r.IPv4On(harness.BootMAC); len(v4) != 0 {
		t.Errorf("IPv4 %v on the boot link of an IPv6-only boot", v4)
	}

	// The firmware released its leases (its own DUID, random IAIDs) when
	// it started the UKI: the one live lease is the initramfs's, whose
	// address the root keeps.
	node := checkV6Lease(t, kea6Server(kea), r).IP
	rows := testfile.Read(t, kea.LeaseFile)
	all, err := harness.ParseKea6Leases(rows)
	if err != nil {
		t.Fatal(err)
	}
	firmware := map[string]bool{}
	for _, l := range all {
		if l.DUID != bootDUID {
			firmware[l.Address] = true
		}
	}

	// The UKI went whole to the firmware, at an address Kea leased it;
	// the root image to the initramfs, at the node's lease: both over IPv6.
	checkServedWhole(t, web, [][2]string{{ukiPath, "/streamroot.efi"}})
	for _, c := range []struct {
		path string
		ok   func(string) bool
		want string
	}{
		{"/streamroot.efi", func(a string) bool { return firmware[a] }, "an address Kea leased the firmware"},
		{"/" + uefiImage, func(a string) bool { return a == node }, "the initramfs's lease " + node},
	} {
		reqs := web.Requests(c.path)
		if len(reqs) == 0 {
			t.Errorf("nginx never served %s", c.path)
		}
		for _, e := range reqs {
			if !c.ok(e.Remote) {
				t.Errorf("nginx served %s to %q, want %s (Kea's lease rows: %+v)", c.path, e.Remote, c.want, all)
			}
		}
	}
	if strings.Contains(vm.Console(), "UEFI PXEv6") {
		t.Errorf("the firmware tried PXE over IPv6: HTTP Boot alone was asked for")
	}
}
