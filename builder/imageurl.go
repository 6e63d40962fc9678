package builder

import (
	"fmt"
	"net/url"
	"strings"
)

// ImageURLPath is the file the boot reads the default image URL from:
// one line, the URL. With it, a kernel line naming the image by a path
// (Foreman's `root=live:/fdi.iso`) means the image at that URL.
const ImageURLPath = "/etc/streamroot/image-url"

// CheckImageURL validates a URL to bake into the image ("" is none): an
// absolute http or https URL with a host, and nothing a one-line file
// cannot hold. It is checked here, at build time, because a typo found
// at boot costs a PXE round trip per node.
func CheckImageURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("%q: spaces or control characters do not belong in a URL (percent-encode them)", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q: no host", s)
	}
	return s, nil
}
