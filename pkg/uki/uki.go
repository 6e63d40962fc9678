// Package uki assembles a unified kernel image: a UEFI stub (systemd's
// linuxx64.efi.stub) with the kernel, the initramfs and the kernel command
// line appended as PE sections (.linux, .initrd, .cmdline), so one
// Authenticode signature over the file covers all three.
//
// It writes the sections itself rather than calling objcopy: appending
// sections to a PE32+ image is a few header fields, binutils' PE support
// differs between versions, and the result is then byte-for-byte the same
// on every host. debug/pe reads PE files but cannot write them.
package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"fmt"
)

// Section is one named blob to append.
type Section struct {
	Name string // at most 8 bytes, e.g. ".cmdline"
	Data []byte
}

// Sections returns the UKI sections in the order systemd's stub expects
// them: the kernel last, so it can grow into the space after it.
func Sections(kernel, initramfs []byte, cmdline string) []Section {
	return []Section{
		{".cmdline", append([]byte(cmdline), 0)},
		{".initrd", initramfs},
		{".linux", kernel},
	}
}

const (
	sectionHeaderSize = 40
	// initialized data, readable: what systemd's own tools give these
	// sections.
	sectionFlags = pe.IMAGE_SCN_CNT_INITIALIZED_DATA | pe.IMAGE_SCN_MEM_READ
	// offsets in the PE32+ optional header
	optSizeOfInitData = 8
	optSectionAlign   = 32
	optFileAlign      = 36
	optSizeOfImage    = 56
	optSizeOfHeaders  = 60
	optCheckSum       = 64
	optNumDirs        = 108
	optDirs           = 112
	dirSecurity       = 4
)

// Build returns stub with sections appended: new section headers after
// the existing ones (the stub's header area must have room), the data at
// the end of the file aligned to the file alignment, placed in memory
// after the stub's last section, and the image size and checksum updated.
// A COFF symbol table after the sections is dropped. The stub must be
// unsigned: a signature would not cover the new sections.
func Build(stub []byte, sections []Section) ([]byte, error) {
	if len(stub) < 0x40 || stub[0] != 'M' || stub[1] != 'Z' {
		return nil, fmt.Errorf("uki: stub is not a PE image (no MZ header)")
	}
	le := binary.LittleEndian
	peOff := int(le.Uint32(stub[0x3c:]))
	if peOff+24 > len(stub) || string(stub[peOff:peOff+4]) != "PE\x00\x00" {
		return nil, fmt.Errorf("uki: stub has no PE signature at 0x%x", peOff)
	}
	coff := peOff + 4
	nsec := int(le.Uint16(stub[coff+2:]))
	optSize := int(le.Uint16(stub[coff+16:]))
	opt := coff + 20
	if opt+optSize > len(stub) || optSize < optDirs || le.Uint16(stub[opt:]) != 0x20b {
		return nil, fmt.Errorf("uki: stub is not a PE32+ (64-bit) image")
	}
	secAlign := le.Uint32(stub[opt+optSectionAlign:])
	fileAlign := le.Uint32(stub[opt+optFileAlign:])
	// The PE format's bounds: file alignment 512 to 64 KiB, powers of two.
	if fileAlign < 512 || fileAlign > 1<<16 || secAlign > 1<<20 || secAlign == 0 ||
		secAlign&(secAlign-1) != 0 || fileAlign&(fileAlign-1) != 0 {
		return nil, fmt.Errorf("uki: stub has bad alignments (section %d, file %d)", secAlign, fileAlign)
	}
	if le.Uint32(stub[opt+optNumDirs:]) > dirSecurity && optSize >= optDirs+8*(dirSecurity+1) {
		if le.Uint32(stub[opt+optDirs+8*dirSecurity+4:]) != 0 {
			return nil, fmt.Errorf("uki: stub is already signed; use the unsigned stub (linuxx64.efi.stub) and sign the UKI")
		}
	}
	table := opt + optSize
	tableEnd := table + nsec*sectionHeaderSize
	if tableEnd > len(stub) {
		return nil, fmt.Errorf("uki: stub's section table runs past its end")
	}
	headers := le.Uint32(stub[opt+optSizeOfHeaders:])
	firstRaw := headers
	var vEnd, rawEnd uint32
	if uint64(headers) > uint64(len(stub)) {
		return nil, fmt.Errorf("uki: stub's headers (%d bytes) run past its %d bytes", headers, len(stub))
	}
	rawEnd = headers
	for i := 0; i < nsec; i++ {
		h := stub[table+i*sectionHeaderSize:]
		va, vsize := le.Uint32(h[12:]), le.Uint32(h[8:])
		rawSize, raw := le.Uint32(h[16:]), le.Uint32(h[20:])
		if rawSize > 0 && raw < firstRaw {
			firstRaw = raw
		}
		vEnd = max(vEnd, va+max(vsize, rawSize))
		if uint64(raw)+uint64(rawSize) > uint64(len(stub)) {
			return nil, fmt.Errorf("uki: stub's section %d runs past its %d bytes", i, len(stub))
		}
		rawEnd = max(rawEnd, raw+rawSize)
	}
	newEnd := tableEnd + len(sections)*sectionHeaderSize
	if uint32(newEnd) > firstRaw {
		return nil, fmt.Errorf("uki: stub has header room for %d more sections, %d asked",
			(int(firstRaw)-tableEnd)/sectionHeaderSize, len(sections))
	}

	// Anything after the last section is the COFF symbol table a linker
	// left (deprecated in images; systemd's stub has one): the new sections
	// go in its place, so the file has no gap the signature skips.
	out := bytes.Clone(stub)
	if int(rawEnd) < len(out) {
		syms := le.Uint32(stub[coff+8:])
		if syms < rawEnd {
			return nil, fmt.Errorf("uki: stub has %d bytes after its last section that are not its symbol table", len(out)-int(rawEnd))
		}
		out = out[:rawEnd]
		le.PutUint32(out[coff+8:], 0)
		le.PutUint32(out[coff+12:], 0)
	}
	out = append(out, make([]byte, pad(len(out), fileAlign))...)
	va := align(vEnd, secAlign)
	initData := le.Uint32(out[opt+optSizeOfInitData:])
	for i, s := range sections {
		if len(s.Name) == 0 || len(s.Name) > 8 {
			return nil, fmt.Errorf("uki: section name %q: want 1 to 8 bytes", s.Name)
		}
		if uint64(len(s.Data)) > 1<<31 || uint64(va)+uint64(len(s.Data))+uint64(secAlign) > 1<<32 {
			return nil, fmt.Errorf("uki: section %s (%d bytes) does not fit a PE image", s.Name, len(s.Data))
		}
		size := uint32(len(s.Data))
		rawSize := align(size, fileAlign)
		h := out[tableEnd+i*sectionHeaderSize : tableEnd+(i+1)*sectionHeaderSize]
		clear(h)
		copy(h, s.Name)
		le.PutUint32(h[8:], size)
		le.PutUint32(h[12:], va)
		le.PutUint32(h[16:], rawSize)
		le.PutUint32(h[20:], uint32(len(out)))
		le.PutUint32(h[36:], sectionFlags)
		out = append(out, s.Data...)
		out = append(out, make([]byte, rawSize-size)...)
		initData += rawSize
		va = align(va+size, secAlign)
	}
	le.PutUint16(out[coff+2:], uint16(nsec+len(sections)))
	le.PutUint32(out[opt+optSizeOfInitData:], initData)
	le.PutUint32(out[opt+optSizeOfImage:], va)
	le.PutUint32(out[opt+optCheckSum:], 0)
	le.PutUint32(out[opt+optCheckSum:], checksum(out, opt+optCheckSum))
	return out, nil
}

func align(n, a uint32) uint32 { return (n + a - 1) &^ (a - 1) }

func pad(n int, a uint32) int { return int(align(uint32(n), a)) - n }

// checksum is the PE image checksum (the one Windows' imagehlp computes):
// a 16-bit folded sum of the file's 16-bit words, skipping the checksum
// field itself, plus the file length.
func checksum(b []byte, at int) uint32 {
	var sum uint64
	for i := 0; i+1 < len(b); i += 2 {
		if i == at || i == at+2 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint16(b[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}
