package harness

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

// guestLACPDU is an LACPDU as Linux's bonding driver sends it: system
// priority 65535, the bond's MAC, key, port priority 255, port, state.
func guestLACPDU(port uint16) []byte {
	f := make([]byte, 14+110)
	copy(f[0:6], lacpMAC)
	copy(f[6:12], []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56})
	binary.BigEndian.PutUint16(f[12:], 0x8809)
	b := f[14:]
	b[0], b[1], b[2], b[3] = 1, 1, 1, 20
	binary.BigEndian.PutUint16(b[4:], 0xffff)
	copy(b[6:12], []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56})
	binary.BigEndian.PutUint16(b[12:], 9)
	binary.BigEndian.PutUint16(b[14:], 0xff)
	binary.BigEndian.PutUint16(b[16:], port)
	b[18] = 0x47 // active, short timeout, aggregatable, defaulted
	b[22], b[23] = 2, 20
	b[42], b[43] = 3, 16
	return f
}

func TestLACPAnswer(t *testing.T) {
	p := &LACPPartner{System: net.HardwareAddr{0x02, 0, 0, 0, 0x11, 0x11}}
	in := guestLACPDU(2)
	out := p.answer(in, 1)
	if len(out) != 14+110 {
		t.Fatalf("answer %d bytes, want 124", len(out))
	}
	b := out[14:]
	if !bytes.Equal(out[0:6], lacpMAC) || binary.BigEndian.Uint16(out[12:]) != 0x8809 || b[0] != 1 || b[2] != 1 || b[3] != 20 {
		t.Errorf("header/actor TLV: % x", out[:18])
	}
	if !bytes.Equal(b[6:12], p.System) || b[18]&0x38 != 0x38 {
		t.Errorf("actor: system % x state %#x", b[6:12], b[18])
	}
	if b[22] != 2 || b[23] != 20 || !bytes.Equal(b[24:39], in[18:33]) {
		t.Errorf("partner TLV does not echo the guest's actor:\n% x\n% x", b[22:42], in[16:36])
	}
	if b[42] != 3 || b[43] != 16 || b[58] != 0 || b[59] != 0 {
		t.Errorf("collector/terminator: % x", b[42:60])
	}
	if p.answer(in[:30], 1) != nil {
		t.Error("a short frame answered")
	}
	marker := guestLACPDU(1)
	marker[14] = 2 // the Marker protocol, not LACP
	if p.answer(marker, 1) != nil {
		t.Error("a marker PDU answered as LACP")
	}
}
