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
	// IPv6 is the link's IPv6 configuration (DHCPv6 or SLAAC), the same
	// record as net.<iface>.json's "ipv6"; absent without IPv6.
	IPv6 *ReportLease6 `json:"ipv6,omitempty"`
}

// ReportLease6 is the boot link's IPv6 configuration: its addresses and,
// from DHCPv6, the identity (DUID, IAID) the booted system's client must
// present to keep the one lease, the server's DUID and the lease times.
type ReportLease6 struct {
	Method    string        `json:"method"` // dhcp6, auto6 or static
	Addresses []ReportAddr6 `json:"addresses"`
	Router    string        `json:"router,omitempty"`
	DNS       []string      `json:"dns,omitempty"`
	Search    []string      `json:"search,omitempty"`
	DUID      string        `json:"duid,omitempty"` // colon hex
	IAID      uint32        `json:"iaid"`
	ServerID  string        `json:"server_duid,omitempty"` // colon hex; "" without DHCPv6
	T1        int64         `json:"t1_seconds,omitempty"`
	T2        int64         `json:"t2_seconds,omitempty"`
	Managed   bool          `json:"ra_managed,omitempty"`
	Other     bool          `json:"ra_other,omitempty"`
}

// ReportAddr6 is one global IPv6 address on the boot link.
type ReportAddr6 struct {
	Address   string `json:"address"`
	Prefix    int    `json:"prefix"`
	From      string `json:"from"`          // dhcp6, slaac or static
	Valid     int64  `json:"valid_seconds"` // -1: forever
	Preferred int64  `json:"preferred_seconds"`
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
	// ManifestSHA256, KeyID and Version say what vouched for the image: its
	// manifest's digest, and for a signed image the signing key's id and
	// the statement's version (what the TPM measured, too).
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
	KeyID          string `json:"key_id,omitempty"`
	Version        uint64 `json:"version,omitempty"`
}

// WriteFile writes the report, indented, to path.
func (r Report) WriteFile(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
