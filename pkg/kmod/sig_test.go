package kmod

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSignatureRefusal(t *testing.T) {
	for _, tc := range []struct {
		name string
		deps []string
		err  error
		want []string // in Error(); nil: err is returned as it was
	}{
		{"lockdown, unsigned", nil, unix.EPERM, []string{"module virtio_net refused by the kernel", "signature is missing or not trusted", "Secure Boot lockdown", "operation not permitted"}},
		{"bad signature", nil, unix.EKEYREJECTED, []string{"module virtio_net refused", "key was rejected"}},
		{"malformed signature, wrapped", nil, fmt.Errorf("finit: %w", unix.EBADMSG), []string{"module virtio_net refused", "finit: bad message"}},
		{"a dependency", []string{"net_failover", "failover"}, unix.EPERM, []string{"module virtio_net (or one of its dependencies net_failover, failover) refused"}},
		{"not a signature problem", nil, unix.ENOEXEC, nil},
		{"missing file", nil, os.ErrNotExist, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := signatureRefusal("virtio_net", tc.deps, tc.err)
			var se *SignatureError
			if tc.want == nil {
				if got != tc.err || errors.As(got, &se) {
					t.Fatalf("signatureRefusal(%v) = %v, want the error unchanged", tc.err, got)
				}
				return
			}
			if !errors.As(got, &se) {
				t.Fatalf("signatureRefusal(%v) = %v, want a *SignatureError", tc.err, got)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("errors.Is(%v, %v) is false: the errno must stay visible", got, tc.err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("error %q lacks %q", got, w)
				}
			}
			if !strings.Contains(se.Hint(), "byte for byte") {
				t.Errorf("hint %q does not say how to keep the signatures", se.Hint())
			}
		})
	}
}

func TestHasSignature(t *testing.T) {
	for _, c := range []struct {
		name string
		ko   string
		want bool
	}{
		{"signed", "\x7fELF...sig\x00\x00\x02" + SignatureMarker, true},
		{"unsigned", "\x7fELF...", false},
		{"marker not at the end", "\x7fELF" + SignatureMarker + "x", false},
		{"marker cut short", "\x7fELF~Module signature appended~", false},
		{"empty", "", false},
	} {
		if got := HasSignature([]byte(c.ko)); got != c.want {
			t.Errorf("%s: HasSignature = %v, want %v", c.name, got, c.want)
		}
	}
}
