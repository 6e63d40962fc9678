package rootdev

import (
	"bytes"
	"fmt"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/hint"
)

// The pins and what they protect before the kernel sees data:
//
//	mode     sha256 only           manifest             both
//	ram      whole image, pre-mount every chunk          both, pre-mount
//	stream   (booted as ram)       every chunk          every chunk; whole image after the fill (mismatch: all reads fail)
//	lazy     refused               every chunk          every chunk; the whole image never is local, not checked
//
// A whole-image hash can only be checked on the whole image, so on its own
// it needs a whole copy before the mount (ram mode); anything that streams
// needs a manifest.

// fetchPlan is the fetch mode in effect and what is checked in it.
type fetchPlan struct {
	Mode bootcfg.FetchMode
	// WholeHash: streamroot.sha256= is checked (ram: before the mount;
	// stream: when the fill completes, revoking the device on a mismatch).
	WholeHash bool
	// Note is one console line on a mode change or an unchecked pin, or "".
	Note string
}

// ramShortage is an image that does not fit in RAM, as the caller measured it.
type ramShortage struct {
	Size, Avail int64
}

// planFetch decides the fetch mode from the requested one (FetchDefault
// when the kernel line names none) and the pins, and, once the image's
// size is known and it does not fit in RAM (short non-nil), for that.
// It refuses any combination that would let bytes failing streamroot.sha256=
// reach the kernel unnoticed.
func planFetch(req bootcfg.FetchMode, sha256, manifest bool, short *ramShortage) (fetchPlan, error) {
	mode := req
	var note string
	if mode == bootcfg.FetchDefault {
		mode = bootcfg.FetchStream
		if sha256 && !manifest {
			mode = bootcfg.FetchRAM
			note = "streamroot.sha256= can only be checked on the whole image: fetching it into RAM first; " +
				"publish a chunk manifest (streamroot.manifest=) to stream verified"
		}
	}
	if sha256 && !manifest && mode != bootcfg.FetchRAM {
		return fetchPlan{}, hint.New(
			fmt.Errorf("streamroot.fetch=%s with streamroot.sha256= and no streamroot.manifest=: a whole-image hash can only be checked on the whole image, "+
				"so %s mode would hand the kernel unverified bytes", mode, mode),
			"publish a chunk manifest (streamroot manifest IMAGE writes IMAGE.manifest next to the image) and add the streamroot.manifest=sha256:… it prints: "+
				"every chunk is then verified in every mode; or drop streamroot.fetch= to download and verify the whole image first")
	}
	if short != nil && mode != bootcfg.FetchLazy {
		if sha256 && !manifest {
			return fetchPlan{}, hint.New(
				fmt.Errorf("the image (%s) does not fit in RAM (%s available), and streamroot.sha256= without streamroot.manifest= can only be checked on a whole copy: "+
					"refusing to boot it unverified", bootlog.MiB(short.Size), bootlog.MiB(short.Avail)),
				"publish a chunk manifest (streamroot manifest IMAGE) and add streamroot.manifest=sha256:…: lazy mode then verifies every chunk; or give the node more memory")
		}
		note = fmt.Sprintf("the image (%s) does not fit in RAM (%s available): falling back to streamroot.fetch=lazy", bootlog.MiB(short.Size), bootlog.MiB(short.Avail))
		mode = bootcfg.FetchLazy
	}
	if mode == bootcfg.FetchLazy && sha256 {
		// Only reachable with a manifest: every chunk is verified, and the
		// manifest's own whole-image line must equal streamroot.sha256=
		// (checkPins), so nothing the manifest does not vouch for is served.
		if note != "" {
			note += "; "
		}
		note += "streamroot.sha256= is not checked in lazy mode (the whole image is never local); every chunk is verified against the manifest"
	}
	return fetchPlan{Mode: mode, WholeHash: sha256 && mode != bootcfg.FetchLazy, Note: note}, nil
}

// checkPins refuses a streamroot.sha256= that is not the whole-image
// digest the pinned manifest records: they pin different images, and
// booting would only fail later (after the fill) or never check one of them.
func checkPins(sha256 []byte, manifestSHA256 [32]byte) error {
	if len(sha256) == 0 || bytes.Equal(sha256, manifestSHA256[:]) {
		return nil
	}
	return hint.New(fmt.Errorf("streamroot.sha256=%x but the manifest pinned by streamroot.manifest= says the image's sha256 is %x: they pin different images",
		sha256, manifestSHA256),
		"use the two arguments streamroot manifest IMAGE prints for the same image (or drop streamroot.sha256=: the manifest already pins the whole image)")
}
