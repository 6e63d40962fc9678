package measure

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"golang.org/x/sys/unix"
)

// Devices are the TPM device nodes tried, in order: the kernel's resource
// manager first (it lets other users share the TPM), then the raw device.
var Devices = []string{"/dev/tpmrm0", "/dev/tpm0"}

// ErrNoTPM is returned by Open when the node has no TPM device.
var ErrNoTPM = errors.New("no TPM 2.0 device")

// TPM is an open TPM 2.0.
type TPM struct {
	// Path is the device node in use.
	Path string
	tpm  transport.TPMCloser
}

// Open opens the first of devices that exists (Devices when none are
// given). ErrNoTPM when none does.
func Open(devices ...string) (*TPM, error) {
	if len(devices) == 0 {
		devices = Devices
	}
	for _, p := range devices {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		t, err := linuxtpm.Open(p)
		if err != nil {
			return nil, fmt.Errorf("open TPM %s: %w", p, err)
		}
		return &TPM{Path: p, tpm: t}, nil
	}
	return nil, fmt.Errorf("%w (none of %s)", ErrNoTPM, strings.Join(devices, ", "))
}

// Close closes the device.
func (t *TPM) Close() error { return t.tpm.Close() }

// Banks are the PCR banks in which pcr is allocated, those this package
// can hash; skipped are the algorithm ids of the others.
func (t *TPM) Banks(pcr uint) (in []Bank, skipped []uint16, err error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(t.tpm)
	if err != nil {
		return nil, nil, fmt.Errorf("TPM: get the PCR banks: %w", err)
	}
	sel, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, nil, fmt.Errorf("TPM: PCR banks: %w", err)
	}
	for _, s := range sel.PCRSelections {
		if int(pcr/8) >= len(s.PCRSelect) || s.PCRSelect[pcr/8]&(1<<(pcr%8)) == 0 {
			continue // bank allocated without this PCR
		}
		if b, ok := BankOf(uint16(s.Hash)); ok {
			in = append(in, b)
		} else {
			skipped = append(skipped, uint16(s.Hash))
		}
	}
	if len(in) == 0 {
		return nil, skipped, fmt.Errorf("TPM has no PCR %d in a SHA-1/SHA-2 bank (banks %#x)", pcr, skipped)
	}
	return in, skipped, nil
}

// Read is the value of pcr in bank b.
func (t *TPM) Read(pcr uint, b Bank) ([]byte, error) {
	rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
		{Hash: tpm2.TPMAlgID(b.Alg), PCRSelect: tpm2.PCClientCompatible.PCRs(pcr)},
	}}}.Execute(t.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM: read PCR %d (%s): %w", pcr, b.Name, err)
	}
	if len(rsp.PCRValues.Digests) != 1 {
		return nil, fmt.Errorf("TPM: read PCR %d (%s): %d values", pcr, b.Name, len(rsp.PCRValues.Digests))
	}
	return rsp.PCRValues.Digests[0].Buffer, nil
}

// extend extends pcr with the record's digests, one per bank.
func (t *TPM) extend(pcr uint, r Record, in []Bank) error {
	var ds []tpm2.TPMTHA
	for _, b := range in {
		d, _ := r.DigestIn(b.Name)
		ds = append(ds, tpm2.TPMTHA{HashAlg: tpm2.TPMAlgID(b.Alg), Digest: d})
	}
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: ds},
	}.Execute(t.tpm)
	if err != nil {
		return fmt.Errorf("TPM: extend PCR %d: %w", pcr, err)
	}
	return nil
}

// Measure extends PCR with id's event in every bank it can and appends the
// record to the log at logPath (LogPath when ""), the way systemd does: the
// log is locked, marked incomplete (sticky bit) until the record is written
// after the extend, and synced.
func (t *TPM) Measure(id Identity, logPath string) (Record, error) {
	if logPath == "" {
		logPath = LogPath
	}
	in, _, err := t.Banks(PCR)
	if err != nil {
		return Record{}, err
	}
	r := NewRecord(PCR, id.Event(), in)
	r.Content.BootID = bootID()
	r.Content.Timestamp = bootTime()
	line, err := r.Format()
	if err != nil {
		return Record{}, err
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return Record{}, fmt.Errorf("measurement log: %w", err)
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return Record{}, fmt.Errorf("measurement log: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return Record{}, fmt.Errorf("measurement log: lock %s: %w", logPath, err)
	}
	if err := f.Chmod(0o600 | os.ModeSticky); err != nil {
		return Record{}, fmt.Errorf("measurement log: mark %s incomplete: %w", logPath, err)
	}
	if err := t.extend(PCR, r, in); err != nil {
		return Record{}, err
	}
	if _, err := f.Write(line); err != nil {
		return r, fmt.Errorf("measurement log: PCR %d was extended but the record was not written (the log stays marked incomplete): %w", PCR, err)
	}
	if err := f.Sync(); err != nil {
		return r, fmt.Errorf("measurement log: sync %s: %w", logPath, err)
	}
	if err := f.Chmod(0o600); err != nil {
		return r, fmt.Errorf("measurement log: mark %s complete: %w", logPath, err)
	}
	return r, nil
}

// bootID is the kernel's boot id as systemd writes id128s: 32 hex digits.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
}

// bootTime is CLOCK_BOOTTIME in µs.
func bootTime() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return uint64(ts.Nano() / 1000)
}
