package qemutests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/internal/testfile"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/measure"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// Measured boot (docs/measure.md): with a TPM (swtpm) and a pinned
// manifest, the booted root finds our event in systemd's userspace log,
// naming the manifest's digest and the URL, with digests that are the
// event text's; every bank of PCR 15 equals the log replayed on the host.
//
// What is asserted about the start value: the TPM is freshly manufactured
// and QEMU boots -kernel through SeaBIOS, which measures only PCRs 0-7;
// Linux measures nothing into PCR 15. So PCR 15 held its reset value (all
// zero, PC Client spec) before the first record of the log that names it,
// and the replay starts there: a measurement made by anyone but the logged
// records would break the equality.
func TestTPMMeasuredBoot(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url, man := serveTPMFixture(t, n)
	tpm := env.StartSWTPM(t)
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url + " " + manifest.KernelArg(man) + " streamroot.tpm=required", TPM: tpm})
	r := vm.ExpectTPMReport(t)
	if r.PID != 1 || r.Fixture != "tpm" {
		t.Fatalf("booted fixture %q as pid %d, want tpm as pid 1", r.Fixture, r.PID)
	}

	recs, err := measure.ParseLog(r.Log)
	if err != nil {
		t.Fatalf("the booted root's %s: %v\n%q", measure.LogPath, err, r.Log)
	}
	var ours []measure.Record
	for _, rec := range recs {
		if rec.IsOurs() {
			ours = append(ours, rec)
		}
	}
	if len(ours) != 1 {
		t.Fatalf("%d streamroot records in the log, want 1: %+v", len(ours), recs)
	}
	rec := ours[0]
	t.Logf("measured %q into PCR %d; PCR 15 in the booted root: %v", rec.Content.String, rec.PCR, r.PCR15)
	digest := sha256.Sum256(man)
	if want := (measure.Identity{ManifestDigest: digest[:], URL: url}).Event(); rec.Content.String != want {
		t.Errorf("measured %q\nwant     %q", rec.Content.String, want)
	}
	if !strings.Contains(rec.Content.String, "sha256:"+hex.EncodeToString(digest[:])) || !strings.Contains(rec.Content.String, url) {
		t.Errorf("the record does not name the manifest digest and the URL: %q", rec.Content.String)
	}
	if rec.PCR != measure.PCR || rec.ContentType != "systemd" || len(rec.Content.BootID) != 32 {
		t.Errorf("record pcr %d content_type %q bootId %q", rec.PCR, rec.ContentType, rec.Content.BootID)
	}
	if err := rec.Check(); err != nil {
		t.Error(err)
	}
	if r.LogMode != "600" {
		t.Errorf("log mode %s, want 600 (the sticky bit marks an incomplete log)", r.LogMode)
	}

	// Every bank the TPM has was extended, and each equals the replay.
	var banks, logged []string
	for b := range r.PCR15 {
		banks = append(banks, b)
	}
	for _, d := range rec.Digests {
		logged = append(logged, d.HashAlg)
	}
	slices.Sort(banks)
	slices.Sort(logged)
	if len(banks) == 0 || !slices.Equal(banks, logged) {
		t.Errorf("PCR 15 banks in sysfs %v, extended %v", banks, logged)
	}
	for _, name := range banks {
		b, ok := measure.BankNamed(name)
		if !ok {
			t.Errorf("sysfs has bank %s this test cannot replay", name)
			continue
		}
		got, err := hex.DecodeString(strings.TrimSpace(r.PCR15[name]))
		if err != nil {
			t.Fatalf("PCR 15 %s %q: %v", name, r.PCR15[name], err)
		}
		want, err := measure.Replay(recs, measure.PCR, name, make([]byte, b.Hash.Size()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("PCR 15 %s = %x, the log replays to %x", name, got, want)
		}
	}
	con := vm.Console()
	if !strings.Contains(con, "image measured") || strings.Contains(con, "not measured") {
		t.Error("the console does not say the image was measured")
	}
}

// serveTPMFixture serves the TPM fixture and its manifest, and returns the
// image URL and the manifest.
func serveTPMFixture(t *testing.T, n *testNet) (string, []byte) {
	t.Helper()
	img, err := harness.TPMFixture(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := testfile.Read(t, img)
	m, err := manifest.Build(bytes.NewReader(data), int64(len(data)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	man := m.Marshal()
	if err := os.WriteFile(img+".manifest", man, 0o644); err != nil {
		t.Fatal(err)
	}
	n.serve(t, "tpm.squashfs.manifest", img+".manifest")
	return n.serve(t, "tpm.squashfs", img), man
}

// The default policy on a node without a TPM: said once, and the boot goes
// on to the image's init, with no measurement log.
func TestTPMAbsentBootsOn(t *testing.T) {
	t.Parallel()
	n := setup(t, netOptions{})
	url, _ := serveTPMFixture(t, n)
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url})
	r := vm.ExpectTPMReport(t)
	if r.PID != 1 || r.Fixture != "tpm" {
		t.Fatalf("booted fixture %q as pid %d, want tpm as pid 1", r.Fixture, r.PID)
	}
	if len(r.Log) != 0 || len(r.PCR15) != 0 {
		t.Errorf("without a TPM: log %q, PCRs %v", r.Log, r.PCR15)
	}
	if c := strings.Count(vm.Console(), "no TPM 2.0 on this node: this boot is not measured"); c != 1 {
		t.Errorf("the console says %d times that there is no TPM, want once", c)
	}
}

// streamroot.tpm=required on a node without a TPM: refused in the tpm
// stage, before the network stage, naming the argument and the way out.
func TestTPMRequiredWithoutTPM(t *testing.T) {
	t.Parallel()
	env.Require(t)
	vm := env.Boot(t, harness.BootOptions{Append: harness.FailureCmdline("live:http://10.77.0.1/none.squashfs", "streamroot.tpm=required")})
	fb := vm.ExpectFailure(t, "tpm", "streamroot.tpm=required", "no TPM 2.0", "-device tpm-tis")
	for _, st := range fb.Stages {
		if st.Stage == "network" {
			t.Errorf("the boot went on to the network before refusing:\n%s", fb.Text)
		}
	}
}
