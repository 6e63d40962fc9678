package harness

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseLeases6(t *testing.T) {
	b := []byte("1796187043 52:54:00:12:34:56 10.77.0.94 node 01:52:54:00:12:34:56\n" +
		"duid 00:01:00:01:32:a2:50:c5:f6:42:1f:36:95:d1\n" +
		"1796187043 1193046 fd00:77::190 debian-networkd 00:03:00:01:52:54:00:12:34:56\n" +
		"1796187044 7 fd00:77::191 * 00:03:00:01:52:54:00:AA:00:01\n")
	ls, err := ParseLeases6(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].IAID != 1193046 || ls[0].IP != "fd00:77::190" || ls[0].Hostname != "debian-networkd" ||
		ls[1].Hostname != "" || ls[1].DUID != "00:03:00:01:52:54:00:aa:00:01" {
		t.Errorf("leases %+v", ls)
	}
	v4, err := ParseLeases(b)
	if err != nil || len(v4) != 1 || v4[0].IP != "10.77.0.94" {
		t.Errorf("v4 leases %+v %v", v4, err)
	}
	if _, err := ParseLeases6([]byte("1 x fd00::1 * 00:03\n")); err == nil {
		t.Error("a bad IAID parsed")
	}
}

func TestReplies6(t *testing.T) {
	dir := t.TempDir()
	d := &Dnsmasq6{PeerFiles{LogFile: filepath.Join(dir, "log")}}
	log := "Dec  2 03:49:33 dnsmasq-dhcp[29125]: 7336336 DHCPSOLICIT(br0) 00:03:00:01:52:54:00:12:34:56 \n" +
		"Dec  2 03:49:33 dnsmasq-dhcp[29125]: 7336336 DHCPREPLY(br0) fd00:77::190 00:03:00:01:52:54:00:12:34:56 \n" +
		"Dec  2 03:50:43 dnsmasq-dhcp[29125]: 6777239 DHCPREPLY(br0) fd00:77::190 00:03:00:01:52:54:00:12:34:56 debian-networkd\n" +
		"Dec  2 03:50:44 dnsmasq-dhcp[29125]: 99 DHCPREPLY(br0) fd00:77::191 00:03:00:01:52:54:00:aa:00:01\n"
	if err := os.WriteFile(d.LogFile, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := d.Replies6("00:03:00:01:52:54:00:12:34:56"); !slices.Equal(got, []string{"7336336", "6777239"}) {
		t.Errorf("replies %v", got)
	}
}

func TestParseKea6Leases(t *testing.T) {
	b := []byte("address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context\n" +
		"fd00:77::100,00:03:00:01:52:54:00:12:34:56,3600,1796187043,1,1800,0,1193046,128,0,0,,52:54:00:12:34:56,0,\n" +
		"fd00:77::100,00:03:00:01:52:54:00:12:34:56,0,1796187050,1,0,0,1193046,128,0,0,,52:54:00:12:34:56,0,\n")
	ls, err := ParseKea6Leases(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].IAID != 1193046 || ls[0].DUID != "00:03:00:01:52:54:00:12:34:56" || ls[0].ValidLifetime != 3600 || ls[1].ValidLifetime != 0 {
		t.Errorf("rows %+v", ls)
	}
	if _, err := ParseKea6Leases([]byte("address,duid\nfd00::1,00:03\n")); err == nil {
		t.Error("a header without iaid parsed")
	}
}

func TestKea6Exchanges(t *testing.T) {
	dir := t.TempDir()
	k := &Kea6{PeerFiles: PeerFiles{LeaseFile: filepath.Join(dir, "leases6.csv")}}
	// A rapid commit (two rows, one expiry), then the root's renewal.
	csv := "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source\n" +
		"fd00:77::100,00:03:00:01:52:54:00:12:34:56,3600,1796188844,1,1800,0,1193046,128,0,0,,52:54:00:12:34:56,0,,1,2\n" +
		"fd00:77::100,00:03:00:01:52:54:00:12:34:56,3600,1796188844,1,1800,0,1193046,128,0,0,,52:54:00:12:34:56,0,,1,2\n"
	if err := os.WriteFile(k.LeaseFile, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := k.Exchanges("00:03:00:01:52:54:00:12:34:56"); n != 1 {
		t.Errorf("one rapid commit counted as %d exchanges", n)
	}
	csv += "fd00:77::100,00:03:00:01:52:54:00:12:34:56,3600,1796188921,1,1800,0,1193046,128,0,0,debian-networkd.,52:54:00:12:34:56,0,,1,2\n"
	if err := os.WriteFile(k.LeaseFile, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := k.Exchanges("00:03:00:01:52:54:00:12:34:56"); n != 2 {
		t.Errorf("%d exchanges, want 2", n)
	}
}
