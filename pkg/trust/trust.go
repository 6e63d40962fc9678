// Package trust is the signed statement that lets a node boot an image no
// kernel-line pin names: a minisign signature over the image's chunk
// manifest whose trusted comment is a small JSON statement (the manifest's
// digest, the image size, a monotonic version and a validity window), the
// keys baked into the initramfs that may sign it, and the policy the
// kernel line may only narrow.
//
// # Why minisign
//
// minisign is Ed25519 in a tiny, documented text format with a maintained
// Go implementation (aead.dev/minisign) and a C tool in every distribution:
// an operator verifies what a node will accept with
//
//	minisign -Vm IMAGE.manifest -p streamroot.pub
//
// which prints the trusted comment (the statement) it verified. Its trusted
// comment is covered by the signature, so the statement needs no second
// envelope; a signature is ~300 bytes, a public key one base64 line.
//
// # Files
//
// The signature of IMAGE.manifest is IMAGE.manifest.minisig (minisign's
// own default name), fetched from <manifest URL> + SigSuffix, at most
// MaxSignature bytes. The initramfs holds the public keys (KeysFile, one
// minisign public key per line) and the minimum version (MinVersionFile).
package trust

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"
)

// Where things are.
const (
	// SigSuffix follows the manifest's URL (or file name) to name its
	// signature: minisign's default, so `minisign -Sm IMAGE.manifest`
	// writes the file a node fetches.
	SigSuffix = ".minisig"
	// KeysFile and MinVersionFile are what the builder bakes into the
	// initramfs (next to /etc/streamroot/image-url and manifest.sha256).
	KeysFile       = "/etc/streamroot/trust.pub"
	MinVersionFile = "/etc/streamroot/min-version"
	// MaxSignature bounds the signature file: a minisign signature is
	// about 300 bytes plus its comments.
	MaxSignature = 4096
	// MaxKeys bounds the keys file (rotation needs two or three).
	MaxKeys = 64
	// StatementType is the statement's "type": another one is refused by
	// name, so a future format is never misread.
	StatementType = "streamroot-statement/1"
)

// Statement is what a signature vouches for, as JSON in minisign's
// trusted comment.
type Statement struct {
	Type string `json:"type"`
	// Manifest is "sha256:<hex>" of the manifest file the signature covers.
	Manifest string `json:"manifest"`
	// Size is the image's size in bytes (the manifest's "size").
	Size int64 `json:"size"`
	// Version is monotonic per image line: nodes refuse versions below
	// their minimum (rollback).
	Version uint64 `json:"version"`
	// NotBefore and NotAfter bound when a node accepts the statement.
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// check refuses a statement that does not say what it must.
func (s Statement) check() error {
	switch {
	case s.Type != StatementType:
		return fmt.Errorf("statement type %q, want %q", s.Type, StatementType)
	case !validDigest(s.Manifest):
		return fmt.Errorf("statement manifest %q: want sha256:<64 lowercase hex digits>", s.Manifest)
	case s.Size <= 0:
		return fmt.Errorf("statement size %d: want the image size in bytes", s.Size)
	case s.Version == 0:
		return errors.New("statement version 0: versions start at 1")
	case s.NotBefore.IsZero() || s.NotAfter.IsZero():
		return errors.New("statement without not_before and not_after")
	case !s.NotAfter.After(s.NotBefore):
		return fmt.Errorf("statement valid from %s to %s: an empty window", stamp(s.NotBefore), stamp(s.NotAfter))
	}
	return nil
}

func validDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 || strings.ToLower(h) != h {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// ManifestDigest is the statement form of a manifest's digest.
func ManifestDigest(manifest []byte) string {
	sum := sha256.Sum256(manifest)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// KeyID is a key id as minisign prints it: 16 uppercase hex digits.
func KeyID(id uint64) string { return fmt.Sprintf("%016X", id) }

// ParseKeyID reads a key id as KeyID writes it (case and leading zeros
// free, as operators copy them from minisign's output).
func ParseKeyID(s string) (uint64, error) {
	if s == "" || len(s) > 16 {
		return 0, fmt.Errorf("key id %q: want up to 16 hex digits", s)
	}
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("key id %q: want up to 16 hex digits", s)
	}
	return id, nil
}

// Signature is a parsed signature file: minisign's fields and the
// statement in its trusted comment. Nothing in it is authentic until
// Policy.Verify says so.
type Signature struct {
	KeyID     uint64
	Statement Statement
	raw       []byte
}

// ParseSignature parses a minisign signature file whose trusted comment is
// a Statement. It checks form only, never authenticity.
func ParseSignature(data []byte) (*Signature, error) {
	if len(data) > MaxSignature {
		return nil, fmt.Errorf("signature is %d bytes, more than %d: not a minisign signature", len(data), MaxSignature)
	}
	var ms minisign.Signature
	if err := ms.UnmarshalText(data); err != nil {
		return nil, fmt.Errorf("not a minisign signature: %w", err)
	}
	st, err := parseStatement(ms.TrustedComment)
	if err != nil {
		return nil, fmt.Errorf("signature by key %s: %w", KeyID(ms.KeyID), err)
	}
	return &Signature{KeyID: ms.KeyID, Statement: st, raw: data}, nil
}

func parseStatement(comment string) (Statement, error) {
	var st Statement
	d := json.NewDecoder(strings.NewReader(comment))
	d.DisallowUnknownFields()
	if err := d.Decode(&st); err != nil {
		return st, fmt.Errorf("trusted comment is not a streamroot statement: %w", err)
	}
	if d.More() {
		return st, errors.New("trusted comment is not a streamroot statement: text after the JSON object")
	}
	return st, st.check()
}

// Sign signs manifest with key, with st as the trusted comment (its
// Manifest filled in from manifest), as `minisign -S` would: prehashed
// (minisign's default since 0.10).
func Sign(key minisign.PrivateKey, manifest []byte, st Statement) ([]byte, error) {
	st.Type = StatementType
	st.Manifest = ManifestDigest(manifest)
	st.NotBefore, st.NotAfter = st.NotBefore.UTC().Truncate(time.Second), st.NotAfter.UTC().Truncate(time.Second)
	if err := st.check(); err != nil {
		return nil, err
	}
	comment, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	r := minisign.NewReader(bytes.NewReader(manifest))
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, err
	}
	sig := r.SignWithComments(key, string(comment), "signature from streamroot sign, key "+KeyID(key.ID()))
	if len(sig) > MaxSignature {
		return nil, fmt.Errorf("signature would be %d bytes, more than the %d a node reads", len(sig), MaxSignature)
	}
	return sig, nil
}

// ParseKeys reads public keys: minisign public key files concatenated, or
// bare base64 key lines; blank lines and "#" comments are skipped. A key
// given twice counts once.
func ParseKeys(data []byte) ([]minisign.PublicKey, error) {
	var keys []minisign.PublicKey
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "untrusted comment:") {
			continue
		}
		var k minisign.PublicKey
		if err := k.UnmarshalText([]byte(line)); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if !slices.ContainsFunc(keys, func(o minisign.PublicKey) bool { return o.Equal(k) }) {
			if slices.ContainsFunc(keys, func(o minisign.PublicKey) bool { return o.ID() == k.ID() }) {
				return nil, fmt.Errorf("line %d: two different keys with the id %s", i+1, KeyID(k.ID()))
			}
			keys = append(keys, k)
		}
		if len(keys) > MaxKeys {
			return nil, fmt.Errorf("more than %d keys", MaxKeys)
		}
	}
	return keys, nil
}

// MarshalKeys writes keys as KeysFile holds them: a minisign public key
// file per key, one after the other.
func MarshalKeys(keys []minisign.PublicKey) []byte {
	var b bytes.Buffer
	for _, k := range keys {
		t, _ := k.MarshalText() // never fails
		b.Write(t)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Policy is what a node accepts: statements signed by one of Keys, of at
// least MinVersion, valid now.
type Policy struct {
	Keys       []minisign.PublicKey
	MinVersion uint64
	// MinFrom says who set MinVersion, for the refusal's words
	// ("the initramfs", "streamroot.min_version=").
	MinFrom string
}

// IDs are the policy's key ids, as KeyID writes them.
func (p *Policy) IDs() []string {
	ids := make([]string, len(p.Keys))
	for i, k := range p.Keys {
		ids[i] = KeyID(k.ID())
	}
	return ids
}

// LoadBaked reads the initramfs's policy: nil when it carries no keys.
func LoadBaked(keysFile, minVersionFile string) (*Policy, error) {
	data, err := readSmall(keysFile, 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		data = nil
	} else if err != nil {
		return nil, err
	}
	keys, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keysFile, err)
	}
	mv, err := readSmall(minVersionFile, 64)
	var minV uint64
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if minV, err = strconv.ParseUint(strings.TrimSpace(string(mv)), 10, 64); err != nil {
			return nil, fmt.Errorf("%s: not a version number", minVersionFile)
		}
	}
	if len(keys) == 0 {
		if minV > 0 {
			return nil, fmt.Errorf("%s without %s: a version can only be checked in a signed statement", minVersionFile, keysFile)
		}
		return nil, nil
	}
	return &Policy{Keys: keys, MinVersion: minV, MinFrom: "the initramfs"}, nil
}

func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes", path, max)
	}
	return b, nil
}

// Narrow is p as the kernel line restricts it: only the keys ids names
// (none: all), and a minimum version of at least minVersion. It can never
// widen p: an id p does not carry, or any narrowing of no policy, is an
// error (the operator asked for a check this initramfs cannot make).
func Narrow(p *Policy, ids []string, minVersion uint64) (*Policy, error) {
	if p == nil {
		if len(ids) > 0 || minVersion > 0 {
			return nil, errors.New("streamroot.trust= and streamroot.min_version= narrow the keys baked into the initramfs, and it carries none")
		}
		return nil, nil
	}
	q := *p
	if len(ids) > 0 {
		q.Keys = nil
		for _, s := range ids {
			id, err := ParseKeyID(s)
			if err != nil {
				return nil, fmt.Errorf("streamroot.trust=: %w", err)
			}
			i := slices.IndexFunc(p.Keys, func(k minisign.PublicKey) bool { return k.ID() == id })
			if i < 0 {
				return nil, fmt.Errorf("streamroot.trust= names key %s, which the initramfs does not carry (it has %s)", KeyID(id), strings.Join(p.IDs(), ", "))
			}
			if !slices.ContainsFunc(q.Keys, func(k minisign.PublicKey) bool { return k.ID() == id }) {
				q.Keys = append(q.Keys, p.Keys[i])
			}
		}
	}
	if minVersion > q.MinVersion {
		q.MinVersion, q.MinFrom = minVersion, "streamroot.min_version="
	}
	return &q, nil
}

// Verified is the identity of the image a node boots, for the boot's
// record and its measurement: the manifest's digest, and, when a
// signature vouched for it, the key and the version.
type Verified struct {
	// ManifestSHA256 is the hex SHA-256 of the manifest ("" without one).
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
	// KeyID is the signing key's id (KeyID), "" when unsigned.
	KeyID string `json:"key_id,omitempty"`
	// Version is the statement's version, 0 when unsigned.
	Version uint64 `json:"version,omitempty"`
	// URL is the image URL, without a password.
	URL string `json:"url,omitempty"`
	// Size is the image size the statement names (0 when unsigned).
	Size int64 `json:"size,omitempty"`
}

// Refusal is a signature the policy does not accept: which key, what
// failed, and what to do.
type Refusal struct {
	KeyID  string // "" when the signature did not even parse
	Reason string
	hint   string
}

func (r *Refusal) Error() string {
	if r.KeyID == "" {
		return "signature refused: " + r.Reason
	}
	return "signature by key " + r.KeyID + " refused: " + r.Reason
}

// Hint is the operator's way out.
func (r *Refusal) Hint() string { return r.hint }

// Verify checks sig over manifest against the policy at time now and
// returns what it vouches for. Every refusal is a *Refusal.
func (p *Policy) Verify(manifest, sig []byte, now time.Time) (Verified, error) {
	s, err := ParseSignature(sig)
	if err != nil {
		return Verified{}, &Refusal{Reason: err.Error(),
			hint: "sign the manifest with streamroot sign IMAGE (it writes IMAGE.manifest" + SigSuffix + ") and publish the signature next to the manifest"}
	}
	id := KeyID(s.KeyID)
	i := slices.IndexFunc(p.Keys, func(k minisign.PublicKey) bool { return k.ID() == s.KeyID })
	if i < 0 {
		return Verified{}, &Refusal{KeyID: id, Reason: fmt.Sprintf("not a trusted key (this boot trusts %s)", strings.Join(p.IDs(), ", ")),
			hint: "sign with a key baked into the initramfs (streamroot initramfs --trust-key, make initramfs TRUST_KEY=), or rebuild it with the new key beside the old one"}
	}
	if !minisign.Verify(p.Keys[i], manifest, s.raw) {
		return Verified{}, &Refusal{KeyID: id, Reason: "the signature does not match the manifest (the manifest or the signature was altered)",
			hint: "the manifest on the server is not the one that was signed: publish the manifest and signature streamroot sign wrote together"}
	}
	st := s.Statement
	digest := ManifestDigest(manifest)
	if st.Manifest != digest {
		return Verified{}, &Refusal{KeyID: id, Reason: fmt.Sprintf("the statement names manifest %s, but the signed manifest is %s", st.Manifest, digest),
			hint: "sign with streamroot sign, which names the manifest it signs"}
	}
	switch {
	case now.Before(st.NotBefore):
		return Verified{}, &Refusal{KeyID: id, Reason: fmt.Sprintf("the statement is not valid before %s (the node's clock says %s)", stamp(st.NotBefore), stamp(now)),
			hint: "check the node's clock (RTC), or sign again with an earlier --not-before"}
	case !now.Before(st.NotAfter):
		return Verified{}, &Refusal{KeyID: id, Reason: fmt.Sprintf("the statement expired at %s (the node's clock says %s)", stamp(st.NotAfter), stamp(now)),
			hint: "sign the image again (streamroot sign IMAGE --valid-for …) and publish the new signature"}
	case st.Version < p.MinVersion:
		return Verified{}, &Refusal{KeyID: id, Reason: fmt.Sprintf("version %d is below the minimum %d set by %s (rollback)", st.Version, p.MinVersion, p.MinFrom),
			hint: "publish an image signed with a version of at least the minimum (streamroot sign IMAGE --version N)"}
	}
	return Verified{ManifestSHA256: strings.TrimPrefix(digest, "sha256:"), KeyID: id, Version: st.Version, Size: st.Size}, nil
}
