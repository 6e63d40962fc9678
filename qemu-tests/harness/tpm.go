package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// SWTPM is a software TPM 2.0 (Debian's swtpm) for one guest: QEMU's
// tpm-emulator backend talks to it over its control socket.
type SWTPM struct {
	Dir  string // the TPM's state and control socket
	Sock string
	Log  string
	proc *process
}

// swtpmStart bounds the wait for swtpm's control socket.
const swtpmStart = 20 * time.Second

// StartSWTPM starts `swtpm socket --tpm2` with a fresh state (a TPM just
// manufactured: every PCR at its reset value) and waits for its control
// socket. It exits when QEMU disconnects (--terminate) and is killed by PID
// at cleanup in any case.
func (e *Env) StartSWTPM(t testing.TB) *SWTPM {
	t.Helper()
	if _, err := exec.LookPath("swtpm"); err != nil {
		t.Fatalf("swtpm: %v (make test-deps installs it)", err)
	}
	// Under /tmp, not the artifact dir: a unix socket path has 108 bytes.
	dir, err := os.MkdirTemp("", "swtpm-")
	if err != nil {
		t.Fatal(err)
	}
	s := &SWTPM{Dir: dir, Sock: filepath.Join(dir, "ctrl.sock"), Log: filepath.Join(e.ArtifactDir(t), "swtpm.log")}
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--ctrl", "type=unixio,path="+s.Sock, "--log", "file="+s.Log+",level=20", "--terminate")
	p, err := startProcess("swtpm", cmd)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	s.proc = p
	t.Cleanup(func() {
		if err := p.Kill(); err != nil {
			t.Errorf("swtpm: %v", err)
		}
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(swtpmStart)
	for {
		if _, err := os.Stat(s.Sock); err == nil {
			break
		}
		if p.Exited() {
			log, _ := os.ReadFile(s.Log)
			t.Fatalf("swtpm exited before its socket appeared: %v\n%s", p.err, log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm: no control socket %s after %s", s.Sock, swtpmStart)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("swtpm pid %d, state %s", p.cmd.Process.Pid, dir)
	return s
}

// QEMUArgs attach the TPM to a guest as a TIS device (the kernel's
// built-in tpm_tis finds it through ACPI).
func (s *SWTPM) QEMUArgs() []string {
	return []string{
		"-chardev", "socket,id=chrtpm,path=" + s.Sock,
		"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
		"-device", "tpm-tis,tpmdev=tpm0",
	}
}

// TPMInit is the TPM fixture's /sbin/init: it reports what the booted root
// sees of the measurement, PCR 15 of every bank from sysfs and systemd's
// userspace measurement log, then powers off.
const TPMInit = `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
[ -r /proc/mounts ] || mount -t proc proc /proc
dmesg -n 1
b64() { base64 -w0; }
pcrs=""
for d in /sys/class/tpm/tpm0/pcr-*; do
	[ -r "$d/15" ] || continue
	pcrs="$pcrs${pcrs:+,}\"${d##*/pcr-}\":\"$(cat "$d/15")\""
done
log=/run/log/systemd/tpm2-measure.log
mode=$(stat -c %a "$log" 2>/dev/null)
printf 'STREAMROOT-TPM {"fixture":"%s","pid":%s,"pcr15":{%s},"log_mode":"%s","log_b64":"%s"}\n' \
	"$(cat /etc/fixture-id)" "$$" "$pcrs" "$mode" "$(b64 < $log 2>/dev/null)" > /dev/console
sync
poweroff -f
echo o > /proc/sysrq-trigger
`

// TPMReport is what TPMInit printed.
type TPMReport struct {
	Fixture string            `json:"fixture"`
	PID     int               `json:"pid"`
	PCR15   map[string]string `json:"pcr15"` // bank (sha1, sha256, …) → hex as sysfs shows it
	LogMode string            `json:"log_mode"`
	Log     []byte            `json:"log_b64"`
}

var tpmLine = regexp.MustCompile(`STREAMROOT-TPM (\{[^\n]*\})\n`)

// TPMFixture builds a small busybox root squashfs whose init is TPMInit
// (fixture-id "tpm") in dir, and returns its path.
func TPMFixture(dir string) (string, error) {
	root := filepath.Join(dir, "root-tpm")
	if err := BusyboxRoot(root, []RootFile{
		{"sbin/init", TPMInit, 0o755},
		{"etc/fixture-id", "tpm\n", 0o644},
	}); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "tpm.squashfs")
	return out, mksquashfs(root, out)
}

// ExpectTPMReport waits for TPMInit's line (or a failure block) and
// decodes it.
func (vm *VM) ExpectTPMReport(t testing.TB) *TPMReport {
	t.Helper()
	var fb *FailureBlock
	js, err := vm.waitUntil(vm.timeout+10*time.Second, "STREAMROOT-TPM line", func(s string) (string, bool) {
		if m := tpmLine.FindStringSubmatch(s); m != nil {
			return m[1], true
		}
		if b, ok := ParseFailure(s); ok {
			fb = b
			return "", true
		}
		return "", false
	})
	if err == nil && fb != nil {
		err = errors.New("boot failed:\n" + fb.Text)
	}
	if err != nil {
		t.Fatal(err)
	}
	var r TPMReport
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(fmt.Errorf("TPM report %q: %w", js, err))
	}
	return &r
}
