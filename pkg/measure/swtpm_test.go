package measure

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// swtpm starts Debian's software TPM on a unix socket, started up and
// with fresh state, and returns a TPM talking to it. Without swtpm on the
// host (make test-deps installs it) the test is skipped.
func swtpm(t *testing.T) *TPM {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Skip("swtpm not installed (make test-deps)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "tpm.sock")
	cmd := exec.Command(bin, "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+sock, "--flags", "not-need-init,startup-clear")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var conn net.Conn
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if conn, err = net.Dial("unix", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm: no socket after 20s: %v", err)
		}
	}
	tp := &TPM{Path: sock, tpm: transport.FromReadWriteCloser(conn)}
	t.Cleanup(func() { tp.Close() })
	return tp
}

// Measure against a real TPM: every bank of PCR 15 moves from zero to the
// value the written log replays to, the log is one complete record (not
// sticky), and a second measurement appends.
func TestMeasureSWTPM(t *testing.T) {
	tp := swtpm(t)
	in, skipped, err := tp.Banks(PCR)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("banks %v, skipped %#x", in, skipped)
	for _, b := range in {
		v, err := tp.Read(PCR, b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v, make([]byte, b.Hash.Size())) {
			t.Fatalf("fresh PCR 15 %s = %x, want zero", b.Name, v)
		}
	}
	logPath := filepath.Join(t.TempDir(), "run/log/systemd", "tpm2-measure.log")
	ids := []Identity{{ManifestDigest: bytes.Repeat([]byte{1}, 32), URL: "http://s/a"}, {KeyID: "k", Version: 3, URL: "http://s/b"}}
	for _, id := range ids {
		r, err := tp.Measure(id, logPath)
		if err != nil {
			t.Fatal(err)
		}
		if r.Content.String != id.Event() || len(r.Digests) != len(in) {
			t.Errorf("record %+v for %d banks", r, len(in))
		}
	}
	st, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != 0o600 {
		t.Errorf("log mode %v, want -rw------- (sticky only while incomplete)", st.Mode())
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ParseLog(data)
	if err != nil || len(recs) != 2 {
		t.Fatalf("log: %d records, %v", len(recs), err)
	}
	for _, b := range in {
		got, err := tp.Read(PCR, b)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Replay(recs, PCR, b.Name, make([]byte, b.Hash.Size()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("PCR 15 %s = %x, log replays to %x", b.Name, got, want)
		}
	}
}

func TestOpenNoTPM(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "tpmrm0"), filepath.Join(dir, "tpm0"))
	if err == nil || !errors.Is(err, ErrNoTPM) {
		t.Errorf("Open of absent devices = %v, want ErrNoTPM", err)
	}
	f := filepath.Join(dir, "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := Open(f); err == nil || errors.Is(err, ErrNoTPM) {
		t.Errorf("Open of a plain file = %v, want a not-a-device error", err)
	}
}
