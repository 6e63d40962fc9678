package measure

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	// The banks' hashes, for crypto.Hash.New.
	_ "crypto/sha1"
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// PCR is the register the image identity is measured into: systemd's
// "system-identity" PCR (see the package doc).
const PCR = 15

// LogPath is systemd's userspace TPM measurement log.
const LogPath = "/run/log/systemd/tpm2-measure.log"

// EventPrefix starts every event text this package measures, so a verifier
// tells streamroot's records from systemd's in the same PCR.
const EventPrefix = "streamroot-image:"

// Identity is what names the booted image. Empty fields are measured as
// empty (or "none"), so the event always has the same fields in the same
// order.
type Identity struct {
	// ManifestDigest is the SHA-256 of the chunk manifest the image was
	// verified against, nil when none was.
	ManifestDigest []byte
	// ImageSHA256 is the whole-image pin (streamroot.sha256=), or nil.
	ImageSHA256 []byte
	// KeyID names the key whose signature admitted the image, "" when
	// the image was not signed.
	KeyID string
	// Version is the signed statement's version, 0 when unsigned.
	Version uint64
	// URL is the image's source as messages show it (no password).
	URL string
}

// Event is the measured text:
//
//	streamroot-image:manifest=sha256:<hex>:image=sha256:<hex>:key=<id>:version=<n>:url=<url>
//
// with "none" for a digest that is absent. The URL comes last, so its
// colons need no escaping.
func (id Identity) Event() string {
	d := func(b []byte) string {
		if len(b) == 0 {
			return "none"
		}
		return "sha256:" + hex.EncodeToString(b)
	}
	return EventPrefix + "manifest=" + d(id.ManifestDigest) + ":image=" + d(id.ImageSHA256) +
		":key=" + id.KeyID + ":version=" + strconv.FormatUint(id.Version, 10) + ":url=" + id.URL
}

// Bank is one PCR bank: the TPM's algorithm id and its hash.
type Bank struct {
	Alg  uint16
	Name string // systemd's name: sha1, sha256, sha384, sha512
	Hash crypto.Hash
}

// banks are the algorithms systemd names in its logs (tpm2_hash_alg_to_string).
var banks = []Bank{
	{0x0004, "sha1", crypto.SHA1},
	{0x000B, "sha256", crypto.SHA256},
	{0x000C, "sha384", crypto.SHA384},
	{0x000D, "sha512", crypto.SHA512},
}

// BankOf is the bank with TPM algorithm id alg; ok is false for one this
// package cannot hash (SM3, SHA3): those banks are not extended.
func BankOf(alg uint16) (Bank, bool) {
	for _, b := range banks {
		if b.Alg == alg {
			return b, true
		}
	}
	return Bank{}, false
}

// BankNamed is the bank systemd calls name.
func BankNamed(name string) (Bank, bool) {
	for _, b := range banks {
		if b.Name == name {
			return b, true
		}
	}
	return Bank{}, false
}

// Digest is one bank's digest of an event, as the log spells it.
type Digest struct {
	HashAlg string `json:"hashAlg"`
	Digest  string `json:"digest"`
}

// Content is a systemd record's "content" object.
type Content struct {
	// String is the measured text.
	String string `json:"string"`
	// BootID is the kernel's boot id, 32 hex digits without dashes.
	BootID string `json:"bootId,omitempty"`
	// Timestamp is CLOCK_BOOTTIME in µs when the record was written.
	Timestamp uint64 `json:"timestamp"`
	// EventType is systemd's own event kind; streamroot's records have
	// none (systemd's types name systemd's measurements).
	EventType string `json:"eventType,omitempty"`
}

// Record is one entry of the userspace measurement log.
type Record struct {
	PCR         uint32   `json:"pcr"`
	Digests     []Digest `json:"digests"`
	ContentType string   `json:"content_type"`
	Content     Content  `json:"content"`
}

// NewRecord is the record of measuring text into pcr in the given banks.
func NewRecord(pcr uint32, text string, in []Bank) Record {
	r := Record{PCR: pcr, ContentType: "systemd", Content: Content{String: text}}
	for _, b := range in {
		r.Digests = append(r.Digests, Digest{HashAlg: b.Name, Digest: hex.EncodeToString(Sum(b, []byte(text)))})
	}
	return r
}

// Sum is data's digest in bank b.
func Sum(b Bank, data []byte) []byte {
	h := b.Hash.New()
	h.Write(data)
	return h.Sum(nil)
}

// Extend is the PCR value after extending old with digest in bank b:
// H(old || digest).
func Extend(b Bank, old, digest []byte) []byte {
	h := b.Hash.New()
	h.Write(old)
	h.Write(digest)
	return h.Sum(nil)
}

// Format is the record as one JSON text sequence element: 0x1E, the
// JSON, a newline (what systemd's JSON_FORMAT_SEQ writes).
func (r Record) Format() ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(append([]byte{0x1E}, js...), '\n'), nil
}

// DigestIn is the record's digest for bank name, decoded; ok is false when
// the record has none for that bank.
func (r Record) DigestIn(name string) ([]byte, bool) {
	for _, d := range r.Digests {
		if d.HashAlg == name {
			b, err := hex.DecodeString(d.Digest)
			return b, err == nil
		}
	}
	return nil, false
}

// Check says whether the record's digests are those of its content
// string, as systemd-pcrlock checks them.
func (r Record) Check() error {
	if len(r.Digests) == 0 {
		return errors.New("record has no digests")
	}
	for _, d := range r.Digests {
		b, ok := BankNamed(d.HashAlg)
		if !ok {
			continue
		}
		got, err := hex.DecodeString(d.Digest)
		if err != nil {
			return fmt.Errorf("%s digest: %w", d.HashAlg, err)
		}
		if want := Sum(b, []byte(r.Content.String)); !bytes.Equal(got, want) {
			return fmt.Errorf("%s digest %x is not that of the content string (%x)", d.HashAlg, got, want)
		}
	}
	return nil
}

// MaxLog bounds what ParseLog reads: systemd's log holds a handful of
// records per boot.
const MaxLog = 1 << 20

// ParseLog reads a userspace measurement log: JSON objects each after a
// 0x1E, as systemd-pcrlock reads it. Whitespace around each element is
// ignored; an element that is not a record is an error.
func ParseLog(data []byte) ([]Record, error) {
	if len(data) > MaxLog {
		return nil, fmt.Errorf("log of %d bytes is over %d", len(data), MaxLog)
	}
	var out []Record
	for i, el := range bytes.Split(data, []byte{0x1E}) {
		el = bytes.TrimSpace(el)
		if len(el) == 0 {
			if i == 0 {
				continue // before the first separator
			}
			return nil, fmt.Errorf("record %d is empty", i)
		}
		if i == 0 {
			return nil, errors.New("log does not start with a record separator (0x1E)")
		}
		var r Record
		dec := json.NewDecoder(bytes.NewReader(el))
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("record %d: data after the JSON object", i)
		}
		if r.PCR >= 24 {
			return nil, fmt.Errorf("record %d: pcr %d out of range", i, r.PCR)
		}
		out = append(out, r)
	}
	return out, nil
}

// Replay is the value of pcr in bank name after the records that name it,
// in order, extended onto initial (what the PCR held before the first of
// them). A record without a digest for the bank is an error: the PCR
// cannot be computed without it.
func Replay(records []Record, pcr uint32, name string, initial []byte) ([]byte, error) {
	b, ok := BankNamed(name)
	if !ok {
		return nil, fmt.Errorf("unknown bank %q", name)
	}
	if len(initial) != b.Hash.Size() {
		return nil, fmt.Errorf("initial %s value has %d bytes, want %d", name, len(initial), b.Hash.Size())
	}
	v := initial
	for i, r := range records {
		if r.PCR != pcr {
			continue
		}
		d, ok := r.DigestIn(name)
		if !ok || len(d) != b.Hash.Size() {
			return nil, fmt.Errorf("record %d has no valid %s digest", i, name)
		}
		v = Extend(b, v, d)
	}
	return v, nil
}

// IsOurs says whether the record is a streamroot image measurement.
func (r Record) IsOurs() bool { return strings.HasPrefix(r.Content.String, EventPrefix) }
