package builder

import (
	"errors"
	"fmt"
	"strings"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/hint"
)

// ImageURLPath is the file the boot reads the default image URL from
// (bootcfg.ImageURLFile): one line, the URL. With it, a kernel line naming
// the image by a path (Foreman's `root=live:/fdi.iso`) means the image at
// that URL.
const ImageURLPath = bootcfg.ImageURLFile

// CheckImageURL validates a URL to bake into the image ("" is none) with
// the boot's own rules (bootcfg.ParseImageURL: an absolute http or https
// URL with a host), and nothing a one-line file cannot hold. It is checked
// here, at build time, because a typo found at boot costs a PXE round trip
// per node.
func CheckImageURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("%q: spaces or control characters do not belong in a URL (percent-encode them)", s)
	}
	if _, err := bootcfg.ParseImageURL(s); err != nil {
		// The boot's words, without its "kernel argument": this is a flag.
		var ae *bootcfg.ArgError
		if errors.As(err, &ae) {
			return "", hint.New(fmt.Errorf("%q: %s", s, ae.Reason), "give an http:// or https:// URL with a host, as the node will fetch it")
		}
		return "", err
	}
	return s, nil
}
