package trust

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/streamroot/streamroot/internal/wanterr"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func newKey(t testing.TB) (minisign.PublicKey, minisign.PrivateKey) {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func statement(version uint64) Statement {
	return Statement{Size: 1 << 20, Version: version, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
}

func mustSign(t testing.TB, priv minisign.PrivateKey, m []byte, st Statement) []byte {
	t.Helper()
	sig, err := Sign(priv, m, st)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestVerify(t *testing.T) {
	oldPub, oldPriv := newKey(t)
	newPub, newPriv := newKey(t)
	_, otherPriv := newKey(t)
	manifest := []byte("streamroot-manifest 1\nsize 1048576\n")
	pol := &Policy{Keys: []minisign.PublicKey{oldPub, newPub}, MinVersion: 3, MinFrom: "the initramfs"}
	good := mustSign(t, newPriv, manifest, statement(3))
	for _, tc := range []struct {
		name       string
		manifest   []byte
		sig        []byte
		now        time.Time
		wantKey    string
		wantReason string // "" : accepted
	}{
		{"new key", manifest, good, t0, KeyID(newPub.ID()), ""},
		{"old key", manifest, mustSign(t, oldPriv, manifest, statement(7)), t0, KeyID(oldPub.ID()), ""},
		{"tampered manifest", append([]byte("x"), manifest...), good, t0, KeyID(newPub.ID()), "does not match the manifest"},
		{"wrong key", manifest, mustSign(t, otherPriv, manifest, statement(3)), t0, KeyID(otherPriv.ID()), "not a trusted key (this boot trusts " + KeyID(oldPub.ID()) + ", " + KeyID(newPub.ID()) + ")"},
		{"expired", manifest, good, t0.Add(time.Hour), KeyID(newPub.ID()), "expired at 2026-06-01T13:00:00Z"},
		{"not yet valid", manifest, good, t0.Add(-2 * time.Hour), KeyID(newPub.ID()), "not valid before 2026-06-01T11:00:00Z"},
		{"rollback", manifest, mustSign(t, newPriv, manifest, statement(2)), t0, KeyID(newPub.ID()), "version 2 is below the minimum 3 set by the initramfs (rollback)"},
		{"garbage", manifest, []byte("hello"), t0, "", "not a minisign signature"},
		{"plain minisign comment", manifest, minisign.Sign(newPriv, manifest), t0, "", "not a streamroot statement"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := pol.Verify(tc.manifest, tc.sig, tc.now)
			if tc.wantReason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if v.KeyID != tc.wantKey || v.ManifestSHA256 != strings.TrimPrefix(ManifestDigest(manifest), "sha256:") || v.Version == 0 || v.Size != 1<<20 {
					t.Errorf("verified %+v", v)
				}
				return
			}
			var r *Refusal
			if !errors.As(err, &r) {
				t.Fatalf("err %v, want a *Refusal", err)
			}
			if !strings.Contains(r.Error(), tc.wantReason) {
				t.Errorf("%q does not say %q", r.Error(), tc.wantReason)
			}
			if tc.wantKey != "" && (r.KeyID != tc.wantKey || !strings.Contains(r.Error(), "key "+tc.wantKey)) {
				t.Errorf("refusal %q names key %q, want %q", r.Error(), r.KeyID, tc.wantKey)
			}
			if r.Hint() == "" {
				t.Error("no hint")
			}
		})
	}
}

// What streamroot sign writes is what minisign -V reads: the library's own
// verifier accepts it, and the trusted comment is the statement.
func TestSignIsMinisign(t *testing.T) {
	pub, priv := newKey(t)
	m := []byte("manifest\n")
	sig := mustSign(t, priv, m, statement(1))
	if !minisign.Verify(pub, m, sig) {
		t.Fatal("minisign does not verify what Sign wrote")
	}
	var ms minisign.Signature
	if err := ms.UnmarshalText(sig); err != nil {
		t.Fatal(err)
	}
	if ms.Algorithm != minisign.HashEdDSA {
		t.Errorf("algorithm %x, want prehashed (minisign's default)", ms.Algorithm)
	}
	if !strings.HasPrefix(ms.TrustedComment, `{"type":"streamroot-statement/1","manifest":"sha256:`) {
		t.Errorf("trusted comment %q", ms.TrustedComment)
	}
}

func TestSignRefusesBadStatements(t *testing.T) {
	_, priv := newKey(t)
	for name, st := range map[string]Statement{
		"version 0":    statement(0),
		"no size":      {Version: 1, NotBefore: t0, NotAfter: t0.Add(time.Hour)},
		"empty window": {Size: 1, Version: 1, NotBefore: t0, NotAfter: t0},
		"no window":    {Size: 1, Version: 1},
	} {
		if _, err := Sign(priv, []byte("m"), st); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

func TestParseSignatureBounds(t *testing.T) {
	_, priv := newKey(t)
	sig := mustSign(t, priv, []byte("m"), statement(1))
	if _, err := ParseSignature(append(sig, bytes.Repeat([]byte(" "), MaxSignature)...)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("an oversized signature: %v", err)
	}
	// Unknown fields in the statement are refused: a newer signer's
	// promise must not be silently dropped.
	var ms minisign.Signature
	_ = ms.UnmarshalText(sig)
	for _, c := range []string{
		strings.Replace(ms.TrustedComment, `"type"`, `"extra":1,"type"`, 1),
		ms.TrustedComment + " {}",
		strings.Replace(ms.TrustedComment, "streamroot-statement/1", "streamroot-statement/2", 1),
		strings.Replace(ms.TrustedComment, "sha256:", "sha256:A", 1),
	} {
		if _, err := parseStatement(c); err == nil {
			t.Errorf("statement %q accepted", c)
		}
	}
}

func TestKeys(t *testing.T) {
	a, _ := newKey(t)
	b, _ := newKey(t)
	data := MarshalKeys([]minisign.PublicKey{a, b})
	data = append(data, []byte("# rotation\n\n"+a.String()+"\n")...)
	keys, err := ParseKeys(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[0].Equal(a) || !keys[1].Equal(b) {
		t.Fatalf("keys %v", keys)
	}
	if _, err := ParseKeys([]byte("RWQnot-a-key\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a bad key line: %v", err)
	}
	for _, s := range []string{KeyID(a.ID()), strings.ToLower(KeyID(a.ID()))} {
		if id, err := ParseKeyID(s); err != nil || id != a.ID() {
			t.Errorf("ParseKeyID(%q) = %x, %v", s, id, err)
		}
	}
	for _, s := range []string{"", "xyz", "12345678901234567"} {
		if _, err := ParseKeyID(s); err == nil {
			t.Errorf("ParseKeyID(%q) accepted", s)
		}
	}
}

func TestLoadBaked(t *testing.T) {
	a, _ := newKey(t)
	dir := t.TempDir()
	keys, mv := filepath.Join(dir, "trust.pub"), filepath.Join(dir, "min-version")
	p, err := LoadBaked(keys, mv)
	if err != nil || p != nil {
		t.Fatalf("no files: %v, %v", p, err)
	}
	if err := os.WriteFile(mv, []byte("4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBaked(keys, mv); err == nil {
		t.Error("a minimum version without keys was accepted")
	}
	if err := os.WriteFile(keys, MarshalKeys([]minisign.PublicKey{a}), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err = LoadBaked(keys, mv)
	if err != nil || p == nil || len(p.Keys) != 1 || p.MinVersion != 4 {
		t.Fatalf("baked: %+v, %v", p, err)
	}
	if err := os.WriteFile(mv, []byte("four\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBaked(keys, mv); err == nil {
		t.Error("a bad minimum version was accepted")
	}
}

// The kernel line may only narrow: fewer keys, a higher minimum.
func TestNarrow(t *testing.T) {
	a, _ := newKey(t)
	b, _ := newKey(t)
	base := &Policy{Keys: []minisign.PublicKey{a, b}, MinVersion: 5, MinFrom: "the initramfs"}
	for _, tc := range []struct {
		name    string
		p       *Policy
		ids     []string
		min     uint64
		keys    int
		wantMin uint64
		from    string
		err     string
	}{
		{"nothing", base, nil, 0, 2, 5, "the initramfs", ""},
		{"one key", base, []string{strings.ToLower(KeyID(b.ID()))}, 0, 1, 5, "the initramfs", ""},
		{"lower min ignored", base, nil, 3, 2, 5, "the initramfs", ""},
		{"higher min", base, nil, 9, 2, 9, "streamroot.min_version=", ""},
		{"unknown key", base, []string{"00000000DEADBEEF"}, 0, 0, 0, "", "does not carry"},
		{"bad id", base, []string{"zz"}, 0, 0, 0, "", "hex digits"},
		{"no policy, no args", nil, nil, 0, 0, 0, "", ""},
		{"no policy, trust", nil, []string{KeyID(a.ID())}, 0, 0, 0, "", "carries none"},
		{"no policy, min", nil, nil, 2, 0, 0, "", "carries none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Narrow(tc.p, tc.ids, tc.min)
			if wanterr.Check(t, err, tc.err) {
				return
			}
			if tc.p == nil {
				if q != nil {
					t.Fatalf("a policy from nothing: %+v", q)
				}
				return
			}
			if len(q.Keys) != tc.keys || q.MinVersion != tc.wantMin || q.MinFrom != tc.from {
				t.Errorf("narrowed to %d keys, min %d from %q", len(q.Keys), q.MinVersion, q.MinFrom)
			}
			if len(base.Keys) != 2 || base.MinVersion != 5 {
				t.Error("Narrow changed the baked policy")
			}
		})
	}
}
