package imgfmt

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"testing"
)

// FuzzDetect feeds the superblock detector mutated superblocks with any
// claimed image size. Besides not panicking, a layout it accepts never
// declares more bytes than the image has.
func FuzzDetect(f *testing.F) {
	for _, seed := range [][]byte{squashSB(4096, 4), ext4SB(4, 0), ext4SB64(4, 1, 2), erofsSB(2048), isoSB(32774)} {
		f.Add(seed, int64(len(seed)))
	}
	f.Fuzz(func(t *testing.T, data []byte, size int64) {
		kind, err := Detect(bytes.NewReader(data), size)
		if err != nil {
			return
		}
		le := binary.LittleEndian
		var hi, declared uint64
		switch kind {
		case Squashfs:
			declared = le.Uint64(data[40:])
		case EROFS:
			declared = uint64(le.Uint32(data[1024+36:])) << data[1024+12]
		case Ext4:
			blocks := uint64(le.Uint32(data[1024+0x04:]))
			if le.Uint32(data[1024+0x60:])&0x80 != 0 {
				blocks |= uint64(le.Uint32(data[1024+0x150:])) << 32
			}
			hi, declared = bits.Mul64(blocks, 1024<<le.Uint32(data[1024+0x18:]))
		}
		if size < 0 || hi != 0 || declared > uint64(size) {
			t.Fatalf("%s accepted: declares %d (hi %d) bytes, the image has %d", kind, declared, hi, size)
		}
	})
}
