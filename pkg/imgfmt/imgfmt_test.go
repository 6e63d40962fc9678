package imgfmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/streamroot/streamroot/pkg/isoread/isotest"
)

func squashSB(used uint64, major uint16) []byte {
	b := make([]byte, 4096)
	copy(b, "hsqs")
	binary.LittleEndian.PutUint32(b[12:], 4096) // block size
	binary.LittleEndian.PutUint16(b[22:], 12)   // its log
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

// isoSB is an ISO 9660 volume descriptor's magic in size bytes.
func isoSB(size int) []byte {
	b := make([]byte, size)
	copy(b[32769:], "CD001")
	return b
}

// erofsSB is an erofs superblock of one 4 KiB block in size bytes.
func erofsSB(size int) []byte {
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b[1024:], 0xE0F5E1E2)
	b[1024+12] = 12
	binary.LittleEndian.PutUint32(b[1024+36:], 1)
	return b
}

func TestDetect(t *testing.T) {
	iso, erofs := isoSB(40000), erofsSB(4096)
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

// Probe reports what each superblock claims.
func TestProbeFacts(t *testing.T) {
	ext3 := ext4SB(1000, 2)
	binary.LittleEndian.PutUint32(ext3[1024+0x5C:], 0x4) // has_journal
	copy(ext3[1024+0x78:], "root\x00junk")
	erofs := erofsSB(4096)
	binary.LittleEndian.PutUint32(erofs[1024+36:], 3)
	binary.LittleEndian.PutUint32(erofs[1024+80:], 0x2) // COMPR_CFGS
	binary.LittleEndian.PutUint16(erofs[1024+84:], 0x9) // lz4, zstd
	copy(erofs[1024+64:], "vol")

	f, err := Probe(ext3)
	if err != nil || f.Kind != Ext4 || f.Ext4.Type != "ext3" || f.Ext4.BlockSize != 4096 || f.Ext4.Blocks != 1000 || f.Ext4.Label != "root" || f.Declared != 4096000 {
		t.Errorf("ext3: %+v %+v, %v", f, f.Ext4, err)
	}
	if f.Fits(4095999) || !f.Fits(4096000) || f.Fits(-1) {
		t.Errorf("ext3 of 4096000 bytes: Fits is wrong")
	}
	f, err = Probe(erofs)
	if err != nil || f.Kind != EROFS || f.Declared != 3*4096 || f.EROFS.VolumeName != "vol" || len(f.EROFS.Compression) != 2 || f.EROFS.Compression[1] != "zstd" {
		t.Errorf("erofs: %+v %+v, %v", f, f.EROFS, err)
	}
	f, err = Probe(squashSB(8192, 4))
	if err != nil || f.Kind != Squashfs || f.Declared != 8192 || f.Squashfs.BlockSize != 4096 {
		t.Errorf("squashfs: %+v, %v", f, err)
	}
	huge := ext4SB64(0, 1<<22, 0)
	if f, err := Probe(huge); err != nil || f.Declared != 1<<64-1 || f.Fits(1<<62) {
		t.Errorf("ext4 of 2^64 bytes: %+v, %v", f, err)
	}
	for _, bad := range [][]byte{ext4SB(1, 7), func() []byte { b := bytes.Clone(erofs); b[1024+12] = 17; return b }()} {
		if _, err := Probe(bad); err == nil || errors.Is(err, ErrUnknown) || !bytes.Contains([]byte(err.Error()), []byte("block size")) {
			t.Errorf("invalid block size: err %v", err)
		}
	}
}

// The live layout's names, with the defaults and rd.live.dir=. .
func TestLayout(t *testing.T) {
	has := func(names ...string) func(string) bool {
		return func(p string) bool {
			for _, n := range names {
				if n == p {
					return true
				}
			}
			return false
		}
	}
	def := DefaultLayout()
	top := Layout{LiveDir: ".", SquashImg: "fdi.img"}
	for _, tc := range []struct {
		name   string
		l      Layout
		kind   Kind
		isFile func(string) bool
		want   string
	}{
		{"ISO, default", def, ISO9660, has(), "LiveOS/squashfs.img"},
		{"ISO, top dir", top, ISO9660, has(), "fdi.img"},
		{"squashfs, rootfs.img", def, Squashfs, has("LiveOS/rootfs.img", "LiveOS/ext3fs.img"), "LiveOS/rootfs.img"},
		{"erofs, ext3fs.img", def, EROFS, has("LiveOS/ext3fs.img"), "LiveOS/ext3fs.img"},
		{"squashfs, top dir", top, Squashfs, has("rootfs.img"), "rootfs.img"},
		{"squashfs, plain root", def, Squashfs, has("rootfs.img"), ""},
		{"ext4", def, Ext4, has("LiveOS/rootfs.img"), ""},
	} {
		if got := tc.l.Inner(tc.kind, tc.isFile); got != tc.want {
			t.Errorf("%s: Inner = %q, want %q", tc.name, got, tc.want)
		}
	}
	if c := InitCandidates(); len(c) != 4 || c[0] != "/sbin/init" {
		t.Errorf("InitCandidates = %q", c)
	}
}

// An ISO is known by its volume descriptor at sector 16 (this was
// isoread.Sniff, the CLI's own check, before there was one for both).
func TestProbeISO(t *testing.T) {
	raw := isotest.Build([]isotest.File{{Path: "a", Data: []byte("a")}}, isotest.Options{})
	if f, err := Probe(raw); err != nil || f.Kind != ISO9660 {
		t.Errorf("an ISO: %+v, %v", f, err)
	}
	for _, b := range [][]byte{make([]byte, 40000), raw[:100], raw[:32773]} {
		if _, err := Probe(b); !errors.Is(err, ErrUnknown) {
			t.Errorf("%d bytes that are no ISO: err %v", len(b), err)
		}
	}
}
