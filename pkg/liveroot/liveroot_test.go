package liveroot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func squashSB(used uint64, major uint16) []byte {
	b := make([]byte, 4096)
	copy(b, "hsqs")
	binary.LittleEndian.PutUint16(b[28:], major)
	binary.LittleEndian.PutUint64(b[40:], used)
	return b
}

func ext4SB(blocks uint32, logBlock uint32) []byte {
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint32(b[1024+0x04:], blocks)
	binary.LittleEndian.PutUint32(b[1024+0x18:], logBlock)
	binary.LittleEndian.PutUint16(b[1024+0x38:], 0xEF53)
	return b
}

// ext4SB64 is an ext4 superblock with INCOMPAT_64BIT and a block count of
// hi<<32 | lo.
func ext4SB64(lo, hi uint32, logBlock uint32) []byte {
	b := ext4SB(lo, logBlock)
	binary.LittleEndian.PutUint32(b[1024+0x60:], 0x80)
	binary.LittleEndian.PutUint32(b[1024+0x150:], hi)
	return b
}

func TestDetect(t *testing.T) {
	iso := make([]byte, 40000)
	copy(iso[32769:], "CD001")
	erofs := make([]byte, 4096)
	binary.LittleEndian.PutUint32(erofs[1024:], 0xE0F5E1E2)
	erofs[1024+12] = 12
	binary.LittleEndian.PutUint32(erofs[1024+36:], 1)
	for _, tc := range []struct {
		name string
		img  []byte
		size int64
		want Kind
		err  error
	}{
		{"squashfs", squashSB(4096, 4), 4096, Squashfs, nil},
		{"squashfs truncated", squashSB(1<<20, 4), 4096, "", ErrTruncated},
		{"squashfs v3", squashSB(4096, 3), 4096, "", nil},
		{"ext4", ext4SB(4, 0), 4096, Ext4, nil},
		{"ext4 truncated", ext4SB(1024, 2), 4096, "", ErrTruncated},
		{"erofs", erofs, 4096, EROFS, nil},
		{"iso", iso, int64(len(iso)), ISO9660, nil},
		{"random", bytes.Repeat([]byte{0x5a}, 8192), 8192, "", ErrUnknown},
		// Sizes that wrap when taken as int64 or shifted: still truncated.
		{"squashfs bytes_used 2^64-1", squashSB(1<<64-1, 4), 4096, "", ErrTruncated},
		{"squashfs bytes_used 2^63", squashSB(1<<63, 4), 4096, "", ErrTruncated},
		{"ext4 64bit, 2^63 blocks", ext4SB64(0, 0x80000000, 2), 4096, "", ErrTruncated},
		{"ext4 64bit, 2^54 1 KiB blocks (2^64 bytes)", ext4SB64(0, 1<<22, 0), 4096, "", ErrTruncated},
		{"ext4 64bit, fits", ext4SB64(4, 0, 0), 4096, Ext4, nil},
		{"empty", nil, 0, "", ErrUnknown},
		// An image that ends inside the ext4 superblock (the fuzzer's find:
		// PID 1 panicked reading the 64-bit count past the end).
		{"ext4 superblock cut short", ext4SB64(4, 0, 0)[:1024+0x100], 4096, "", ErrUnknown},
	} {
		got, err := Detect(bytes.NewReader(tc.img), tc.size)
		if got != tc.want {
			t.Errorf("%s: kind %q, want %q (err %v)", tc.name, got, tc.want, err)
		}
		if tc.want == "" && err == nil {
			t.Errorf("%s: no error", tc.name)
		}
		if tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
		}
	}
}

func TestFindInit(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "sbin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/lib/systemd/systemd"), []byte("x"), 0o755))
	// An absolute link must resolve inside root, not in the initramfs.
	must(os.Symlink("/usr/lib/systemd/systemd", filepath.Join(root, "sbin/init")))
	must(os.Symlink("../nowhere", filepath.Join(root, "sbin/dangling")))
	must(os.WriteFile(filepath.Join(root, "sbin/noexec"), []byte("x"), 0o644))

	for _, tc := range []struct {
		cands []string
		want  string
	}{
		{[]string{"/sbin/init"}, "/sbin/init"},
		{[]string{"", "/sbin/dangling", "/sbin/noexec", "/sbin/init"}, "/sbin/init"},
		{[]string{"/bin/none"}, ""},
	} {
		got, err := FindInit(root, tc.cands...)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("FindInit(%v) = %q, %v; want %q", tc.cands, got, err, tc.want)
		}
	}
}
