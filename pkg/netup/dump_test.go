package netup

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRedump(t *testing.T) {
	other := errors.New("permission denied")
	for _, c := range []struct {
		name        string
		interrupted int   // answers flagged interrupted before a good one
		final       error // the answer after them
		wantCalls   int
		wantErr     error
		wantList    []int
	}{
		{"consistent at once", 0, nil, 1, nil, []int{1}},
		{"interrupted twice", 2, nil, 3, nil, []int{3}},
		{"always interrupted", dumpRetries, nil, dumpRetries, netlink.ErrDumpInterrupted, []int{dumpRetries}},
		{"other error is not retried", 0, other, 1, other, nil},
		{"other error after an interruption", 1, other, 2, other, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			got, err := redump(func() ([]int, error) {
				calls++
				if calls <= c.interrupted {
					return []int{calls}, fmt.Errorf("list: %w", netlink.ErrDumpInterrupted)
				}
				if c.final != nil {
					return nil, c.final
				}
				return []int{calls}, nil
			})
			if calls != c.wantCalls {
				t.Errorf("dumped %d times, want %d", calls, c.wantCalls)
			}
			if c.wantErr == nil && err != nil || c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("err = %v, want %v", err, c.wantErr)
			}
			if !slices.Equal(got, c.wantList) {
				t.Errorf("list = %v, want %v", got, c.wantList)
			}
		})
	}
}
