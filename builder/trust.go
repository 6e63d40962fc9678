package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/streamroot/streamroot/pkg/trust"
)

// ReadTrustKeys turns each -trust-key item into a minisign public key in
// base64: a key file as `minisign -G` or `streamroot keygen` writes it, or
// the base64 key itself (what minisign prints, "RW…"). Every key is
// checked here, at build time: a typo found at boot refuses every image.
func ReadTrustKeys(items []string) ([]string, error) {
	var keys []string
	for _, it := range items {
		data, err := os.ReadFile(it)
		if errors.Is(err, fs.ErrNotExist) {
			// The key itself? (base64 has '/' too: try it as a key first.)
			_, kerr := trust.ParseKeys([]byte(it))
			if kerr != nil {
				return nil, fmt.Errorf("%s: neither a key file nor a minisign public key (%v)", it, kerr)
			}
			data, err = []byte(it), nil
		}
		if err != nil {
			return nil, err
		}
		ks, err := trust.ParseKeys(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it, err)
		}
		if len(ks) == 0 {
			return nil, fmt.Errorf("%s: no minisign public key in it", it)
		}
		for _, k := range ks {
			keys = append(keys, k.String())
		}
	}
	all, err := trust.ParseKeys([]byte(strings.Join(keys, "\n")))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(all))
	for i, k := range all {
		out[i] = k.String()
	}
	return out, nil
}

// addTrust writes the trusted keys and the minimum version, if any.
func addTrust(im *image, opts Options) error {
	if len(opts.TrustKeys) == 0 {
		if opts.MinVersion > 0 {
			return errors.New("a minimum version needs trusted keys: a version is only checked in a signed statement")
		}
		return nil
	}
	keys, err := trust.ParseKeys([]byte(strings.Join(opts.TrustKeys, "\n")))
	if err != nil {
		return fmt.Errorf("trusted keys: %w", err)
	}
	if err := im.file(trust.KeysFile, 0o644, trust.MarshalKeys(keys)); err != nil {
		return err
	}
	if opts.MinVersion > 0 {
		return im.file(trust.MinVersionFile, 0o644, []byte(strconv.FormatUint(opts.MinVersion, 10)+"\n"))
	}
	return nil
}
