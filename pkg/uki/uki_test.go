package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

// minimalStub is a PE32+ image with one .text section and a header area
// of headerSize bytes (room for (headerSize-0x148)/40 section headers in
// all), with trailing appended after its section (a symbol table when
// symbols is set).
func minimalStub(headerSize uint32, trailing []byte, symbols bool) []byte {
	le := binary.LittleEndian
	b := make([]byte, headerSize+0x200)
	b[0], b[1] = 'M', 'Z'
	le.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	coff := 0x44
	le.PutUint16(b[coff:], pe.IMAGE_FILE_MACHINE_AMD64)
	le.PutUint16(b[coff+2:], 1)
	le.PutUint16(b[coff+16:], 240)
	opt := coff + 20
	le.PutUint16(b[opt:], 0x20b)
	le.PutUint32(b[opt+optSectionAlign:], 0x1000)
	le.PutUint32(b[opt+optFileAlign:], 0x200)
	le.PutUint32(b[opt+optSizeOfImage:], 0x2000)
	le.PutUint32(b[opt+optSizeOfHeaders:], headerSize)
	le.PutUint32(b[opt+optNumDirs:], 16)
	h := b[opt+240:]
	copy(h, ".text")
	le.PutUint32(h[8:], 0x10)
	le.PutUint32(h[12:], 0x1000)
	le.PutUint32(h[16:], 0x200)
	le.PutUint32(h[20:], headerSize)
	le.PutUint32(h[36:], pe.IMAGE_SCN_CNT_CODE|pe.IMAGE_SCN_MEM_EXECUTE|pe.IMAGE_SCN_MEM_READ)
	copy(b[headerSize:], "stub code")
	if symbols {
		le.PutUint32(b[coff+8:], uint32(len(b)))
		le.PutUint32(b[coff+12:], 3)
	}
	return append(b, trailing...)
}

func TestBuild(t *testing.T) {
	kernel := bytes.Repeat([]byte("K"), 5000)
	initrd := bytes.Repeat([]byte("I"), 513)
	out, err := Build(minimalStub(0x400, []byte("symbols here"), true), Sections(kernel, initrd, "console=ttyS0 ip=dhcp"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("debug/pe cannot read the UKI: %v", err)
	}
	if f.NumberOfSymbols != 0 || f.PointerToSymbolTable != 0 {
		t.Errorf("the symbol table is still referenced: %d at %#x", f.NumberOfSymbols, f.PointerToSymbolTable)
	}
	if bytes.Contains(out, []byte("symbols here")) {
		t.Errorf("the stub's symbol table is still in the file (a gap the signature skips)")
	}
	want := map[string][]byte{".text": []byte("stub code"), ".cmdline": []byte("console=ttyS0 ip=dhcp\x00"), ".initrd": initrd, ".linux": kernel}
	var prevEnd uint32
	for i, name := range []string{".text", ".cmdline", ".initrd", ".linux"} {
		s := f.Sections[i]
		if s.Name != name {
			t.Fatalf("section %d is %q, want %q", i, s.Name, name)
		}
		data, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data[:s.VirtualSize], want[name]) || (name != ".text" && int(s.VirtualSize) != len(want[name])) {
			t.Errorf("%s: %d bytes, not the data given (%d bytes)", name, s.VirtualSize, len(want[name]))
		}
		if s.VirtualAddress%0x1000 != 0 || s.VirtualAddress < prevEnd {
			t.Errorf("%s at %#x: unaligned or overlapping the section before (ends %#x)", name, s.VirtualAddress, prevEnd)
		}
		if s.Offset%0x200 != 0 {
			t.Errorf("%s at file offset %#x: not file-aligned", name, s.Offset)
		}
		prevEnd = s.VirtualAddress + s.VirtualSize
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	if oh.SizeOfImage%0x1000 != 0 || oh.SizeOfImage < prevEnd {
		t.Errorf("SizeOfImage %#x does not cover the last section (ends %#x)", oh.SizeOfImage, prevEnd)
	}
	last := f.Sections[len(f.Sections)-1]
	if int(last.Offset+last.Size) != len(out) {
		t.Errorf("the file is %d bytes, its last section ends at %d", len(out), last.Offset+last.Size)
	}
	if oh.CheckSum != checksum(out, 0x44+20+optCheckSum) || oh.CheckSum == 0 {
		t.Errorf("checksum %#x is not the file's", oh.CheckSum)
	}
	again, _ := Build(minimalStub(0x400, []byte("symbols here"), true), Sections(kernel, initrd, "console=ttyS0 ip=dhcp"))
	if !bytes.Equal(out, again) {
		t.Errorf("two builds of the same inputs differ")
	}
}

func TestBuildRefuses(t *testing.T) {
	signed := minimalStub(0x400, nil, false)
	binary.LittleEndian.PutUint32(signed[0x44+20+optDirs+8*dirSecurity:], 0x600)
	binary.LittleEndian.PutUint32(signed[0x44+20+optDirs+8*dirSecurity+4:], 0x100)
	for _, c := range []struct {
		name string
		stub []byte
		secs []Section
		want string
	}{
		{"not PE", []byte(strings.Repeat("x", 100)), nil, "not a PE image"},
		{"no room", minimalStub(0x1c0, nil, false), Sections(nil, nil, "x"), "header room for 2 more sections, 3 asked"},
		{"signed stub", signed, Sections(nil, nil, "x"), "already signed"},
		{"trailing data", minimalStub(0x400, []byte("junk"), false), Sections(nil, nil, "x"), "not its symbol table"},
		{"long name", minimalStub(0x400, nil, false), []Section{{".toolongname", nil}}, "1 to 8 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build(c.stub, c.secs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Build: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestChecksum(t *testing.T) {
	// words 1, 2 and 3 around a 4-byte checksum field at 4, 10 bytes long.
	if got := checksum([]byte{1, 0, 2, 0, 0xff, 0xff, 0xff, 0xff, 3, 0}, 4); got != 16 {
		t.Errorf("checksum = %d, want 16", got)
	}
	// carries fold back into 16 bits
	if got := checksum([]byte{0xff, 0xff, 0x02, 0x00}, 100); got != 0x0002+4 {
		t.Errorf("checksum = %#x, want %#x", got, 0x0002+4)
	}
}

// TestDebianStub builds on systemd's real stub where it is installed.
func TestDebianStub(t *testing.T) {
	stub, err := os.ReadFile("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
	if err != nil {
		t.Skip("systemd-boot-efi is not installed")
	}
	out, err := Build(stub, Sections([]byte("kernel"), []byte("initrd"), "quiet"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".sdmagic", ".cmdline", ".initrd", ".linux"} {
		if f.Section(name) == nil {
			t.Errorf("no section %s", name)
		}
	}
}

// FuzzBuild: a damaged stub is an error, never a panic or a huge
// allocation; what Build returns debug/pe reads, with the sections given.
func FuzzBuild(f *testing.F) {
	f.Add(minimalStub(0x400, nil, false))
	f.Add(minimalStub(0x400, []byte("symbols"), true))
	f.Add(minimalStub(0x1c0, nil, false))
	f.Fuzz(func(t *testing.T, stub []byte) {
		out, err := Build(stub, Sections([]byte("kernel"), []byte("initrd"), "quiet"))
		if err != nil {
			return
		}
		pf, err := pe.NewFile(bytes.NewReader(out))
		if err != nil {
			return // debug/pe is stricter about the stub's own fields
		}
		s := pf.Section(".linux")
		if s == nil {
			t.Fatalf("Build succeeded without a readable .linux section")
		}
		if d, err := s.Data(); err != nil || !bytes.HasPrefix(d, []byte("kernel")) {
			t.Fatalf(".linux = %q, %v", d, err)
		}
	})
}
