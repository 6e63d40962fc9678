package bzimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

// fake is a setup header with kernel_version pointing at version.
func fake(version string, proto uint16) []byte {
	b := make([]byte, 0x400)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], proto)
	binary.LittleEndian.PutUint16(b[0x20E:], 0x300-0x200)
	copy(b[0x300:], version+"\x00")
	return b
}

func TestRelease(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want string
		err  bool
	}{
		{"debian", fake("6.1.0-47-amd64 (debian-kernel@lists.debian.org) #1 SMP", 0x20f), "6.1.0-47-amd64", false},
		{"el", fake("5.14.0-427.13.1.el9_4.x86_64 (mockbuild@x) #1", 0x20f), "5.14.0-427.13.1.el9_4.x86_64", false},
		{"old protocol", fake("2.4.0", 0x1ff), "", true},
		{"no magic", make([]byte, 0x400), "", true},
		{"short", []byte("MZ"), "", true},
		{"slash", fake("../x y", 0x20f), "", true},
		{"empty", fake("", 0x20f), "", true},
	} {
		got, err := Release(bytes.NewReader(tc.b), int64(len(tc.b)))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: %q, %v; want %q (error %v)", tc.name, got, err, tc.want, tc.err)
		}
	}
	if _, err := Release(bytes.NewReader(make([]byte, 0x400)), 0x400); !errors.Is(err, ErrNotBzImage) {
		t.Errorf("no magic: %v", err)
	}
}

// TestRealKernel reads the release of the kernel make kernel unpacks.
func TestRealKernel(t *testing.T) {
	b, err := os.ReadFile("../../build/kernel/vmlinuz")
	if err != nil {
		t.Skip("no build/kernel/vmlinuz (make kernel)")
	}
	want, err := os.ReadFile("../../build/kernel/kver")
	if err != nil {
		t.Skip(err)
	}
	got, err := Release(bytes.NewReader(b), int64(len(b)))
	if err != nil || got != string(bytes.TrimSpace(want)) {
		t.Errorf("Release = %q, %v; want %q", got, err, bytes.TrimSpace(want))
	}
}

func FuzzRelease(f *testing.F) {
	f.Add(fake("6.1.0-47-amd64 (x) #1", 0x20f))
	f.Fuzz(func(t *testing.T, b []byte) {
		rel, err := Release(bytes.NewReader(b), int64(len(b)))
		if err == nil && (rel == "" || len(rel) > maxVersion) {
			t.Fatalf("release %q", rel)
		}
	})
}
