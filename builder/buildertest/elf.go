// Package buildertest makes the small ELF files the initramfs builder's
// tests need, without compiling anything: an executable for /init or
// busybox (static or not), and a kernel module with a .modinfo section.
package buildertest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"strings"

	"github.com/streamroot/streamroot/pkg/kmod"
)

// ELF returns a minimal x86-64 ELF executable header, with a PT_INTERP
// program header when interp is set: enough for debug/elf, and for the
// builder's static check. marker follows the headers so tests can tell
// files apart.
func ELF(interp, marker string) []byte {
	var buf bytes.Buffer
	hdr := elf.Header64{
		Ident:     [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Ehsize:    64,
		Phentsize: 56,
	}
	if interp != "" {
		hdr.Phoff = 64
		hdr.Phnum = 1
	}
	_ = binary.Write(&buf, binary.LittleEndian, hdr)
	if interp != "" {
		n := uint64(len(interp) + 1)
		_ = binary.Write(&buf, binary.LittleEndian, elf.Prog64{
			Type: uint32(elf.PT_INTERP), Off: 64 + 56, Filesz: n, Memsz: n, Align: 1,
		})
		buf.WriteString(interp + "\x00")
	}
	buf.WriteString(marker)
	return buf.Bytes()
}

// Module is a minimal relocatable x86-64 ELF object with a .modinfo
// section holding the key=value records, as modpost leaves in a .ko,
// followed by kmod.SignatureMarker, as the kernel's sign-file appends a
// signature after the ELF object: a reader must pass it through byte for
// byte.
func Module(records ...string) []byte {
	modinfo := []byte(strings.Join(records, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	infoOff := ehsize
	strOff := infoOff + len(modinfo)
	shOff := (strOff + len(shstr) + 7) &^ 7
	var b bytes.Buffer
	le := binary.LittleEndian
	_ = binary.Write(&b, le, elf.Header64{
		Ident:     [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:      uint16(elf.ET_REL),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Shoff:     uint64(shOff),
		Ehsize:    ehsize,
		Shentsize: shentsize,
		Shnum:     3,
		Shstrndx:  2,
	})
	b.Write(modinfo)
	b.Write(shstr)
	b.Write(make([]byte, shOff-b.Len()))
	for _, s := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Off: uint64(infoOff), Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: uint64(strOff), Size: uint64(len(shstr)), Addralign: 1},
	} {
		_ = binary.Write(&b, le, s)
	}
	b.WriteString(kmod.SignatureMarker)
	return b.Bytes()
}
