package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/streamroot/streamroot/builder"
	"github.com/streamroot/streamroot/pkg/atomicfile"
	"github.com/streamroot/streamroot/pkg/httpsrc"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/textesc"
	"github.com/streamroot/streamroot/pkg/trust"
)

const keygenUsage = `Usage: streamroot keygen [-o PREFIX] [-f] [-json]

Makes a minisign key pair for signing images: PREFIX.key (the secret key,
mode 0600, not encrypted: keep it off the boot servers) and PREFIX.pub (the
public key, what 'streamroot initramfs --trust-key' and 'make initramfs
TRUST_KEY=' bake in). PREFIX defaults to "streamroot". Keys made by
'minisign -G' work as well (an encrypted one needs sign's -password-file).

Stdout carries the key id and the public key's base64 line; --json prints
{"key_id", "public_key", "secret_key_file", "public_key_file"}.
`

const signUsage = `Usage: streamroot sign IMAGE -key FILE -version N [-valid-for 720h | -not-after TIME] [-not-before TIME]
       [-password-file FILE] [-chunk 4MiB] [-json] [-no-progress]

Writes IMAGE.manifest (as 'streamroot manifest') and signs it: the
signature, IMAGE.manifest.minisig, is minisign's, and its trusted comment
is the statement a node checks: the manifest's digest, the image size, the
version (monotonic: nodes refuse versions below their minimum) and the
validity window (-not-before, default an hour ago; -not-after, default
-valid-for from now). Publish both files next to the image.
'minisign -Vm IMAGE.manifest -p KEY.pub' verifies it too.

Stdout carries the two files' names; --json prints {"manifest",
"signature", "key_id", "version", "size", "manifest_sha256", "not_before",
"not_after"}.
`

const verifyUsage = `Usage: streamroot verify IMAGE|URL -key FILES [-min-version N] [-manifest FILE|URL]
       [-cacert FILE] [-insecure] [-json] [-no-progress]

Checks an image as a node with those keys baked in would: the manifest's
signature (MANIFEST.minisig) by one of the keys (comma-separated files or
base64 keys), the statement's validity now and its version against
-min-version, then the image: a file is hashed chunk by chunk against the
manifest; for an http(s) URL, the server's size must be the statement's
(a node verifies every chunk as it reads it). -manifest defaults to
IMAGE.manifest.

Stdout carries one line: the key, the version and the validity; --json
prints {"image", "key_id", "version", "size", "manifest_sha256",
"not_before", "not_after", "image_checked"}.
`

func runKeygen(_ context.Context, e *env, args []string) error {
	fs := newFlags("keygen", keygenUsage)
	prefix := fs.String("o", "streamroot", "write PREFIX.key and PREFIX.pub")
	force := fs.Bool("f", false, "replace existing key files")
	asJSON := fs.Bool("json", false, "print the result as a JSON object")
	if err := fs.parseNone(e, args, asJSON); err != nil {
		return err
	}
	secFile, pubFile := *prefix+".key", *prefix+".pub"
	if !*force {
		for _, f := range []string{secFile, pubFile} {
			if _, err := os.Lstat(f); err == nil {
				return withHint(fmt.Errorf("%s exists", f), "a new key would orphan every image signed with the old one: pick another -o, or -f to replace it")
			}
		}
	}
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		return err
	}
	sec, err := priv.MarshalText()
	if err != nil {
		return err
	}
	pubText, _ := pub.MarshalText()
	if err := atomicfile.WriteFile(secFile, sec, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(pubFile, append(pubText, '\n'), 0o644); err != nil {
		return err
	}
	id := trust.KeyID(pub.ID())
	fmt.Fprintf(e.stderr, "wrote %s (secret: keep it off the boot servers) and %s\n", textesc.Escape(secFile), textesc.Escape(pubFile))
	if e.json {
		return writeJSON(e.stdout, map[string]string{"key_id": id, "public_key": pub.String(), "secret_key_file": secFile, "public_key_file": pubFile})
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n%s\n", id, pub.String())
	return err
}

// statementResult is what sign --json and verify --json both print of a
// signed statement.
type statementResult struct {
	KeyID          string    `json:"key_id"`
	Version        uint64    `json:"version"`
	Size           int64     `json:"size"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	NotBefore      time.Time `json:"not_before"`
	NotAfter       time.Time `json:"not_after"`
}

// signResult is what sign --json prints.
type signResult struct {
	Manifest  string `json:"manifest"`
	Signature string `json:"signature"`
	statementResult
}

func runSign(_ context.Context, e *env, args []string) error {
	fs := newFlags("sign", signUsage)
	keyFile := fs.String("key", "", "minisign secret key file (streamroot keygen, minisign -G)")
	version := fs.Uint64("version", 0, "the statement's version, from 1; nodes refuse versions below their minimum")
	validFor := fs.Duration("valid-for", 30*24*time.Hour, "how long the statement is valid from now")
	notAfter := fs.String("not-after", "", "end of validity, RFC 3339 (instead of -valid-for)")
	notBefore := fs.String("not-before", "", "start of validity, RFC 3339 (default an hour ago: nodes' clocks drift)")
	pwFile := fs.String("password-file", "", "file holding the password of an encrypted secret key")
	chunk := sizeFlag(manifest.DefaultChunk)
	fs.Var(&chunk, "chunk", "chunk size of the manifest: a power of two from 64KiB to 64MiB")
	asJSON := fs.Bool("json", false, "print the result as a JSON object")
	noProgress := fs.Bool("no-progress", false, "draw no progress line")
	img, err := fs.parseOne(e, args, "IMAGE", asJSON)
	if err != nil {
		return err
	}
	switch {
	case *keyFile == "":
		return usagef("-key FILE is required (streamroot keygen makes one)")
	case *version == 0:
		return usagef("-version N is required (from 1; raise it with every release so nodes can refuse older ones)")
	case !manifest.ValidChunkSize(int64(chunk)):
		return usagef("-chunk %s: must be a power of two from 64KiB to 64MiB", humanBytes(int64(chunk)))
	}
	now := time.Now()
	st := trust.Statement{Version: *version, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(*validFor)}
	if *notBefore != "" {
		if st.NotBefore, err = time.Parse(time.RFC3339, *notBefore); err != nil {
			return usagef("-not-before %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", *notBefore)
		}
	}
	if *notAfter != "" {
		if st.NotAfter, err = time.Parse(time.RFC3339, *notAfter); err != nil {
			return usagef("-not-after %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", *notAfter)
		}
	}
	if !st.NotAfter.After(now) {
		return usagef("the statement would have expired already (not after %s)", st.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := readSecretKey(*keyFile, *pwFile)
	if err != nil {
		return err
	}
	f, st0, err := openImage(img)
	if err != nil {
		return err
	}
	defer f.Close()
	out := img + ".manifest"
	m, data, err := writeManifest(e, f, st0, out, int64(chunk), *noProgress)
	if err != nil {
		return err
	}
	st.Size = m.Size
	sig, err := trust.Sign(key, data, st)
	if err != nil {
		return err
	}
	sigFile := out + trust.SigSuffix
	if err := atomicfile.WriteFile(sigFile, sig, 0o644); err != nil {
		return err
	}
	s, err := trust.ParseSignature(sig)
	if err != nil {
		return err
	}
	res := signResult{Manifest: out, Signature: sigFile, statementResult: statementResult{KeyID: trust.KeyID(key.ID()), Version: s.Statement.Version,
		Size: m.Size, ManifestSHA256: fmt.Sprintf("%x", manifest.Digest(data)), NotBefore: s.Statement.NotBefore, NotAfter: s.Statement.NotAfter}}
	fmt.Fprintf(e.stderr, "signed %s with key %s: version %d, valid %s to %s\n", textesc.Escape(out), res.KeyID, res.Version,
		res.NotBefore.Format(time.RFC3339), res.NotAfter.Format(time.RFC3339))
	if e.json {
		return writeJSON(e.stdout, res)
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n%s\n", out, sigFile)
	return err
}

// readSecretKey reads a minisign secret key, decrypting it with the
// password in pwFile when it is encrypted (minisign -G's default).
func readSecretKey(file, pwFile string) (minisign.PrivateKey, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return minisign.PrivateKey{}, err
	}
	if !minisign.IsEncrypted(data) {
		var k minisign.PrivateKey
		if err := k.UnmarshalText(data); err != nil {
			return k, withHint(fmt.Errorf("%s: %w", file, err), "give the secret key file (streamroot keygen writes PREFIX.key), not the public one")
		}
		return k, nil
	}
	if pwFile == "" {
		return minisign.PrivateKey{}, withHint(fmt.Errorf("%s is encrypted", file), "give its password with -password-file FILE")
	}
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		return minisign.PrivateKey{}, err
	}
	k, err := minisign.DecryptKey(strings.TrimRight(string(pw), "\r\n"), data)
	if err != nil {
		return k, fmt.Errorf("%s: %w", file, err)
	}
	return k, nil
}

// verifyResult is what verify --json prints.
type verifyResult struct {
	Image string `json:"image"`
	statementResult
	// ImageChecked: a file was hashed against the manifest (a URL only
	// has its size compared).
	ImageChecked bool `json:"image_checked"`
}

func runVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags("verify", verifyUsage)
	keys := fs.String("key", "", "comma-separated minisign public keys (files or base64) to trust")
	minVersion := fs.Uint64("min-version", 0, "refuse statements below this version")
	mfile := fs.String("manifest", "", "the manifest (default IMAGE.manifest); its signature is MANIFEST.minisig")
	cacert := fs.String("cacert", "", "PEM `file` of CA certificates to trust for an https:// URL (instead of the system's)")
	insecure := fs.Bool("insecure", false, "do not verify an https:// server's certificate")
	asJSON := fs.Bool("json", false, "print the result as a JSON object")
	noProgress := fs.Bool("no-progress", false, "draw no progress line")
	img, err := fs.parseOne(e, args, "IMAGE or URL", asJSON)
	if err != nil {
		return err
	}
	if *keys == "" {
		return usagef("-key FILES is required: the public keys the nodes trust")
	}
	pk, err := builder.ReadTrustKeys(strings.Split(*keys, ","))
	if err != nil {
		return fmt.Errorf("-key: %w", err)
	}
	pubs, err := trust.ParseKeys([]byte(strings.Join(pk, "\n")))
	if err != nil {
		return err
	}
	pol := &trust.Policy{Keys: pubs, MinVersion: *minVersion, MinFrom: "-min-version"}
	if *mfile == "" {
		*mfile = img + ".manifest"
	}
	var ho httpsrc.Options
	if isHTTP(img) || isHTTP(*mfile) {
		if ho, err = e.httpsOptions(inspectStall, *cacert, *insecure); err != nil {
			return err
		}
	}
	read := func(name string, max int64) ([]byte, error) {
		if isHTTP(name) {
			return httpsrc.GetSmall(ctx, name, max, ho)
		}
		return os.ReadFile(name)
	}
	data, err := read(*mfile, 64<<20)
	if err != nil {
		return withHint(err, "sign the image first (streamroot sign IMAGE writes IMAGE.manifest and its signature)")
	}
	sig, err := read(*mfile+trust.SigSuffix, trust.MaxSignature)
	if err != nil {
		return withHint(err, "a node with these keys refuses an unsigned image: streamroot sign IMAGE writes IMAGE.manifest%s", trust.SigSuffix)
	}
	v, err := pol.Verify(data, sig, time.Now())
	if err != nil {
		var r *trust.Refusal
		if errors.As(err, &r) {
			return withHint(err, "%s", r.Hint())
		}
		return err
	}
	s, _ := trust.ParseSignature(sig) // verified above
	m, err := manifest.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *mfile, err)
	}
	if m.Size != v.Size {
		return fmt.Errorf("%s: the statement says the image is %d bytes, the manifest %d", *mfile, v.Size, m.Size)
	}
	res := verifyResult{Image: img, statementResult: statementResult{KeyID: v.KeyID, Version: v.Version, Size: v.Size,
		ManifestSHA256: v.ManifestSHA256, NotBefore: s.Statement.NotBefore, NotAfter: s.Statement.NotAfter}}
	if isHTTP(img) {
		hs, err := openURL(ctx, img, ho)
		if err != nil {
			return err
		}
		if hs.Size != m.Size {
			return withHint(fmt.Errorf("%s is %d bytes, the signed manifest says %d", redactRaw(img), hs.Size, m.Size), "publish the image that was signed, or sign the one published")
		}
	} else {
		if err := checkImageFile(e, img, *mfile, m, *noProgress); err != nil {
			return err
		}
		res.ImageChecked = true
	}
	if e.json {
		return writeJSON(e.stdout, res)
	}
	_, err = fmt.Fprintf(e.stdout, "verified: key %s, version %d, valid %s to %s, manifest sha256:%s\n", res.KeyID, res.Version,
		res.NotBefore.Format(time.RFC3339), res.NotAfter.Format(time.RFC3339), res.ManifestSHA256)
	return err
}

// checkImageFile hashes the image file against its signed manifest.
func checkImageFile(e *env, img, mname string, m *manifest.Manifest, noProgress bool) error {
	f, st, err := openImage(img)
	if err != nil {
		return err
	}
	defer f.Close()
	return verifyImage(e, f, st.Size(), m, mname, "the image is corrupt or was replaced after signing: copy it again, or sign the new one", noProgress)
}
