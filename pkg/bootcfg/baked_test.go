package bootcfg

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// foremanTemplate is Foreman's "PXELinux global default" discovery entry's
// APPEND line as it ships (plus IPAPPEND 2's BOOTIF), for the stock FDI,
// whose dracut initrd carries the ISO at /fdi.iso.
const foremanTemplate = "initrd=boot/fdi-image/initrd0.img rootflags=loop root=live:/fdi.iso rootfstype=auto ro rd.live.image acpi=force rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0 rd.bootif=0 rd.neednet=0 nokaslr nomodeset proxy.url=https://FOREMAN proxy.type=foreman BOOTIF=01-52-54-00-12-34-56"

// A path root is the image URL built into the initramfs; a URL on the line
// wins; without a built-in URL the path is refused with a hint.
func TestParseWithImageURL(t *testing.T) {
	const baked = "http://10.77.0.1/fdi.iso"
	tests := []struct {
		name, in, baked string
		wantURL         string // "" when an error is wanted
		wantPath        string
		wantErr         string // in the error's reason
		wantHint        string // in its hint
	}{
		{name: "foreman template", in: foremanTemplate, baked: baked, wantURL: baked, wantPath: "/fdi.iso"},
		{name: "any path", in: "root=live:/srv/images/discovery.iso", baked: baked, wantURL: baked, wantPath: "/srv/images/discovery.iso"},
		{name: "a URL on the line wins", in: "root=live:https://s/other.iso", baked: baked, wantURL: "https://s/other.iso"},
		{name: "root=http wins", in: "root=http://s/sq.img", baked: baked, wantURL: "http://s/sq.img"},
		{name: "last root wins: URL after path", in: "root=live:/fdi.iso root=live:http://s/x.iso", baked: baked, wantURL: "http://s/x.iso"},
		{name: "https built in", in: "root=live:/fdi.iso", baked: "https://[fd00::1]:8443/fdi.iso", wantURL: "https://[fd00::1]:8443/fdi.iso", wantPath: "/fdi.iso"},
		{name: "no URL built in", in: foremanTemplate, wantErr: "no image URL built in", wantHint: "-image-url"},
		{name: "bad URL built in", in: "root=live:/fdi.iso", baked: "ftp://s/fdi.iso", wantErr: "built into the initramfs", wantHint: "rebuild"},
		{name: "built-in URL without host", in: "root=live:/fdi.iso", baked: "http:///fdi.iso", wantErr: "no host"},
		{name: "a device stays local", in: "root=live:/dev/sr0", baked: baked, wantErr: "local roots"},
		{name: "a label stays local", in: "root=live:CDLABEL=fdi", baked: baked, wantErr: "local roots"},
		{name: "the built-in URL does not make root= optional", in: "ip=dhcp", baked: baked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseWith(tc.in, Defaults{ImageURL: tc.baked})
			if tc.wantErr != "" {
				var ae *ArgError
				if !errors.As(err, &ae) {
					t.Fatalf("err = %v, want an ArgError about %q", err, tc.wantErr)
				}
				if !strings.HasPrefix(ae.Arg, "root=") || !strings.Contains(ae.Reason, tc.wantErr) || !strings.Contains(ae.Hint(), tc.wantHint) {
					t.Errorf("error %q (hint %q), want one naming root= with %q and a hint with %q", ae, ae.Hint(), tc.wantErr, tc.wantHint)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantURL == "" {
				if c.Root.Kind != RootNone {
					t.Errorf("root %+v, want none", c.Root)
				}
				return
			}
			if c.Root.Kind != RootLive || c.Root.URL.String() != tc.wantURL || c.Root.Path != tc.wantPath {
				t.Errorf("root %+v (URL %v), want live %s with path %q", c.Root, c.Root.URL, tc.wantURL, tc.wantPath)
			}
		})
	}
}

// Foreman's template lines: every argument is accepted without a warning
// other than rd.neednet=0's, BOOTIF is kept for the real OS but not used to
// pick the NIC (rd.bootif=0), and nothing is listed as ignored.
func TestForemanTemplateArgs(t *testing.T) {
	c, err := ParseWith(foremanTemplate, Defaults{ImageURL: "http://s/fdi.iso"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Ignored) != 0 {
		t.Errorf("ignored %q", c.Ignored)
	}
	var warned []string
	for _, w := range c.Warnings {
		warned = append(warned, w.Arg)
	}
	if !slices.Equal(warned, []string{"rd.neednet=0"}) {
		t.Errorf("warnings for %q, want only rd.neednet=0's", warned)
	}
	if c.Net.BootIF.String() != "52:54:00:12:34:56" || c.Net.UseBootIF {
		t.Errorf("BootIF %v UseBootIF %v, want the MAC kept and not used", c.Net.BootIF, c.Net.UseBootIF)
	}
}

func TestParseImageURL(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"http://10.77.0.1/fdi.iso", true},
		{"https://foreman.example.com:8443/pub/fdi.iso", true},
		{"", false},
		{"/fdi.iso", false},
		{"ftp://s/fdi.iso", false},
		{"http://", false},
	} {
		u, err := ParseImageURL(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseImageURL(%q) = %v, %v; want ok %v", tc.in, u, err, tc.ok)
		}
		if err != nil && hintOf(err) == "" {
			t.Errorf("ParseImageURL(%q): error %v without a hint", tc.in, err)
		}
	}
}

// hintOf is the hint of err's ArgError, or "".
func hintOf(err error) string {
	var ae *ArgError
	if errors.As(err, &ae) {
		return ae.Hint()
	}
	return ""
}
