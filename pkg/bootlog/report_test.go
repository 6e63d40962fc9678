package bootlog

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The report's JSON names are what the booted system (and the demo) read:
// written and read back through the one type, and spelled as documented.
func TestReportRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rep    Report
		keys   []string // must appear
		absent []string // must not
	}{
		{"daemon", Report{
			Stages: []StageTime{{Stage: "early", Took: 52 * time.Millisecond}},
			Lease:  &ReportLease{Iface: "ens3", MAC: "52:54:00:12:34:56", Address: "10.0.2.15/24", ServerID: "10.0.2.2", LeaseSeconds: 86400, ClientID: "01525400123456", DHCP: true},
			Image:  &ReportImage{Root: "http://10.0.2.2/img", Mode: "stream", Size: 4096, ETag: `"v1"`, Device: "/dev/nbd0", ManifestChunks: 2},
		}, []string{`"took_ns": 52000000`, `"lease_seconds": 86400`, `"root": "http://10.0.2.2/img"`, `"device": "/dev/nbd0"`, `"manifest_chunks": 2`},
			[]string{`"file"`, `"received"`, `"layers"`, `"ipv6"`}},
		{"ipv6", Report{
			Stages: []StageTime{},
			Lease: &ReportLease{Iface: "ens3", MAC: "52:54:00:12:34:56", DHCP: false, IPv6: &ReportLease6{Method: "dhcp6",
				Addresses: []ReportAddr6{{Address: "fd00:77::1a2", Prefix: 128, From: "dhcp6", Valid: 3600, Preferred: 3000}},
				DUID:      "00:03:00:01:52:54:00:12:34:56", IAID: 0x00123456, ServerID: "00:01:00:01:aa:bb", T1: 1800, T2: 2880}},
		}, []string{`"ipv6": {`, `"duid": "00:03:00:01:52:54:00:12:34:56"`, `"iaid": 1193046`, `"server_duid": "00:01:00:01:aa:bb"`,
			`"t1_seconds": 1800`, `"t2_seconds": 2880`, `"address": "fd00:77::1a2"`, `"prefix": 128`, `"valid_seconds": 3600`},
			[]string{`"ra_managed"`, `"image"`}},
		{"ram", Report{
			Stages: []StageTime{},
			Image:  &ReportImage{Root: "root=nbd:x:1", Mode: "ram", Size: 4096, Received: 4096, File: "/run/initramfs/image/img"},
			Layers: []map[string]string{{"kind": "squashfs"}},
		}, []string{`"received": 4096`, `"file": "/run/initramfs/image/img"`, `"layers"`},
			[]string{`"device"`, `"lease"`, `"manifest_chunks"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "streamroot.json")
			if err := tc.rep.WriteFile(p); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.keys {
				if !strings.Contains(string(b), k) {
					t.Errorf("no %s in\n%s", k, b)
				}
			}
			for _, k := range tc.absent {
				if strings.Contains(string(b), k) {
					t.Errorf("%s in\n%s", k, b)
				}
			}
			var back Report
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Stages, tc.rep.Stages) || !reflect.DeepEqual(back.Lease, tc.rep.Lease) || !reflect.DeepEqual(back.Image, tc.rep.Image) {
				t.Errorf("read back %+v, wrote %+v", back, tc.rep)
			}
		})
	}
}
