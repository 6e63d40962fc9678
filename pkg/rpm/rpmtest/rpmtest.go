// Package rpmtest writes small RPM packages for tests, laid out as
// rpmbuild writes them: the 96-byte lead, a signature header padded to
// 8 bytes, a main header and a compressed newc cpio payload. The
// headers hold one dummy entry each: the readers skip them by size.
package rpmtest

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/streamroot/streamroot/pkg/deb/debtest"
)

// File is one payload entry: a regular file, or a directory when Dir.
type File struct {
	Name string // e.g. "./lib/modules/<kver>/vmlinuz"
	Data []byte
	Dir  bool
}

// header is a header structure with one entry and data bytes.
func header(data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0})
	_ = binary.Write(&b, binary.BigEndian, [2]uint32{1, uint32(len(data))})
	_ = binary.Write(&b, binary.BigEndian, [4]uint32{1000, 6, 0, 1}) // NAME, STRING
	b.Write(data)
	return b.Bytes()
}

// CPIO is a newc archive of files with its trailer.
func CPIO(files []File) []byte {
	var b bytes.Buffer
	rec := func(name string, mode uint32, data []byte) {
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		b.WriteString(name + "\x00")
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
		b.Write(data)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	for _, f := range files {
		if f.Dir {
			rec(f.Name, 0o40755, nil)
		} else {
			rec(f.Name, 0o100644, f.Data)
		}
	}
	rec("TRAILER!!!", 0, nil)
	return b.Bytes()
}

// Build returns a package whose payload holds files, compressed as
// suffix says ("", ".xz", ".zst", ".gz").
func Build(suffix string, files []File) ([]byte, error) {
	payload, err := debtest.Compress(suffix, CPIO(files))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	lead := make([]byte, 96)
	copy(lead, []byte{0xed, 0xab, 0xee, 0xdb, 3, 0})
	b.Write(lead)
	b.Write(header([]byte("sig\x00x"))) // 16+16+5 = 37 bytes: padded to 40
	for b.Len()%8 != 0 {
		b.WriteByte(0)
	}
	b.Write(header([]byte("kernel-core\x00")))
	b.Write(payload)
	return b.Bytes(), nil
}
