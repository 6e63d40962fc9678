package netup

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
)

// dumpRetries bounds how often redump asks again.
const dumpRetries = 10

// redump runs a netlink dump (a link or address list) again while the
// kernel flags it interrupted (NLM_F_DUMP_INTR, netlink.ErrDumpInterrupted):
// the set changed while it was read out, so the answer may miss or repeat
// entries. That is routine while links come up — SLAAC and DHCPv6
// addresses, DAD finishing, a bond gaining ports — and a loaded host
// widens the window, so one such answer must not fail the boot; a fresh
// dump a moment later is consistent. Every other error returns at once.
func redump[T any](dump func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for i := range dumpRetries {
		if i > 0 {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
		}
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, fmt.Errorf("%w (asked %d times; the kernel's list kept changing while it was read)", err, dumpRetries)
}
