package bootlog

import (
	"encoding/json"
	"os"
)

// Report is the boot's record PID 1 leaves in
// /run/initramfs/streamroot.json for the booted system; the demo reads it
// back through this type.
type Report struct {
	Stages []StageTime  `json:"stages"`
	Lease  *ReportLease `json:"lease,omitempty"`
	Image  *ReportImage `json:"image,omitempty"`
	Layers any          `json:"layers,omitempty"` // liveroot's layers, bottom first
}

// ReportLease is the boot link's address and lease.
type ReportLease struct {
	Iface        string `json:"iface"`
	MAC          string `json:"mac"`
	Address      string `json:"address"` // with its prefix: 10.0.2.15/24
	Router       string `json:"router"`  // "" when there is none
	ServerID     string `json:"server_id"`
	LeaseSeconds int    `json:"lease_seconds"`
	ClientID     string `json:"client_id"` // hex
	DHCP         bool   `json:"dhcp"`
}

// ReportImage is the root image and how it was opened.
type ReportImage struct {
	Root           string `json:"root"` // the URL without a password, or the NBD argument
	Mode           string `json:"mode"`
	Size           int64  `json:"size"`
	ETag           string `json:"etag"`
	Received       int64  `json:"received,omitempty"` // ram mode: what PID 1 downloaded
	File           string `json:"file,omitempty"`     // ram mode: the image in RAM
	Device         string `json:"device,omitempty"`   // the block daemon's /dev/nbdN
	ManifestChunks int    `json:"manifest_chunks,omitempty"`
}

// WriteFile writes the report, indented, to path.
func (r Report) WriteFile(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
