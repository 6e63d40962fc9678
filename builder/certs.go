package builder

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
)

// CABundlePath is where the runtime (and Go's crypto/x509 on Linux) looks
// for trusted roots.
const CABundlePath = "/etc/ssl/certs/ca-certificates.crt"

// loadCABundle reads the base bundle (skipped when base is "") and the
// extra PEM files, checks them and returns their concatenation.
//
// Every PEM block must be a CERTIFICATE: a private key pasted into a CA
// file would otherwise end up in an image served to anyone. The base
// bundle is the distribution's, so a certificate Go cannot parse there is
// only a warning (crypto/x509 skips it at run time too); an extra file is
// the operator's own and must parse completely, with at least one
// certificate — an empty or mistyped file would otherwise surface only as
// a TLS failure on the booting machine.
func loadCABundle(base string, extra []string, log *slog.Logger) ([]byte, error) {
	var out bytes.Buffer
	if base != "" {
		b, n, bad, err := readCerts("-ca", base, " (use -ca none to build without a CA bundle)")
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("-ca %s: no parseable certificate", base)
		}
		if bad > 0 {
			log.Warn("CA bundle has certificates Go cannot parse; kept as they are", "file", base, "unparseable", bad, "ok", n)
		}
		out.Write(b)
	}
	for _, p := range extra {
		b, n, bad, err := readCerts("-extra-ca", p, "")
		if err != nil {
			return nil, err
		}
		if bad > 0 {
			return nil, fmt.Errorf("-extra-ca %s: %d certificate(s) do not parse", p, bad)
		}
		if n == 0 {
			return nil, fmt.Errorf("-extra-ca %s: no PEM certificate found", p)
		}
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteByte('\n')
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}

// readCerts reads the PEM file path named by flag (-ca, -extra-ca) and
// counts its certificates with checkPEMCerts; what counts as too few or
// too many bad ones is the caller's rule. Its errors name the flag, and
// the file where the read error does not; advice ends a failed read's
// error (how to do without the file), or is "".
func readCerts(flag, path, advice string) (b []byte, ok, bad int, err error) {
	b, err = os.ReadFile(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w%s", flag, err, advice)
	}
	ok, bad, err = checkPEMCerts(b)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return b, ok, bad, nil
}

// checkPEMCerts counts the certificates in b that parse (ok) and that do
// not (bad); a PEM block of any other type is an error.
func checkPEMCerts(b []byte) (ok, bad int, err error) {
	for i := 1; ; i++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return ok, bad, nil
		}
		if blk.Type != "CERTIFICATE" {
			return ok, bad, fmt.Errorf("PEM block %d is %q, not CERTIFICATE", i, blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			bad++
			continue
		}
		ok++
	}
}
