package measure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEvent(t *testing.T) {
	d := bytes.Repeat([]byte{0xab}, 32)
	for _, tc := range []struct {
		name string
		id   Identity
		want string
	}{
		{"unsigned, manifest", Identity{ManifestDigest: d, URL: "http://10.0.0.1:8080/a.squashfs"},
			"streamroot-image:manifest=sha256:" + strings.Repeat("ab", 32) + ":image=none:key=:version=0:url=http://10.0.0.1:8080/a.squashfs"},
		{"signed", Identity{ManifestDigest: d, ImageSHA256: d, KeyID: "RWQ1", Version: 7, URL: "https://s/x"},
			"streamroot-image:manifest=sha256:" + strings.Repeat("ab", 32) + ":image=sha256:" + strings.Repeat("ab", 32) + ":key=RWQ1:version=7:url=https://s/x"},
		{"nothing pinned", Identity{URL: "nbd:10.0.0.1:10809"}, "streamroot-image:manifest=none:image=none:key=:version=0:url=nbd:10.0.0.1:10809"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.id.Event(); got != tc.want {
				t.Errorf("Event() = %q\nwant      %q", got, tc.want)
			}
		})
	}
}

// The digests are the event text's hashes, and the record is one JSON text
// sequence element with systemd's field names.
func TestRecordFormat(t *testing.T) {
	in := []Bank{banks[0], banks[1]}
	r := NewRecord(15, "streamroot-image:x", in)
	r.Content.BootID, r.Content.Timestamp = "0123456789abcdef0123456789abcdef", 42
	got, err := r.Format()
	if err != nil {
		t.Fatal(err)
	}
	want := "\x1e{\"pcr\":15,\"digests\":[" +
		"{\"hashAlg\":\"sha1\",\"digest\":\"" + hex.EncodeToString(Sum(banks[0], []byte("streamroot-image:x"))) + "\"}," +
		"{\"hashAlg\":\"sha256\",\"digest\":\"" + hex.EncodeToString(Sum(banks[1], []byte("streamroot-image:x"))) + "\"}]," +
		"\"content_type\":\"systemd\",\"content\":{\"string\":\"streamroot-image:x\",\"bootId\":\"0123456789abcdef0123456789abcdef\",\"timestamp\":42}}\n"
	if string(got) != want {
		t.Errorf("Format() =\n%q\nwant\n%q", got, want)
	}
	if s := sha256.Sum256([]byte("streamroot-image:x")); !bytes.Equal(Sum(banks[1], []byte("streamroot-image:x")), s[:]) {
		t.Error("Sum(sha256) is not SHA-256")
	}
	if err := r.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	bad := r
	bad.Content.String = "streamroot-image:y"
	if err := bad.Check(); err == nil {
		t.Error("Check accepted digests of another string")
	}
}

// A log as systemd writes it (its own record first, ours after) parses
// back, and replaying it from zero gives H(H(0||d1)||d2) per bank.
func TestParseAndReplay(t *testing.T) {
	sys := NewRecord(15, "machine-id:0123", banks[:2])
	sys.Content.EventType = "machine-id"
	ours := NewRecord(15, Identity{URL: "http://s/i"}.Event(), banks[:2])
	other := NewRecord(11, "enter-initrd", banks[:2])
	var log []byte
	for _, r := range []Record{sys, other, ours} {
		b, err := r.Format()
		if err != nil {
			t.Fatal(err)
		}
		log = append(log, b...)
	}
	recs, err := ParseLog(log)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Content.EventType != "machine-id" || !recs[2].IsOurs() || recs[0].IsOurs() || recs[1].PCR != 11 {
		t.Fatalf("parsed %+v", recs)
	}
	for _, b := range banks[:2] {
		zero := make([]byte, b.Hash.Size())
		d1, _ := sys.DigestIn(b.Name)
		d2, _ := ours.DigestIn(b.Name)
		want := Extend(b, Extend(b, zero, d1), d2)
		got, err := Replay(recs, 15, b.Name, zero)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s replay %x, want %x", b.Name, got, want)
		}
	}
	// A known vector: SHA-256 extend of zero with the digest of "a".
	a := sha256.Sum256([]byte("a"))
	if got, want := Extend(banks[1], make([]byte, 32), a[:]), mustHex(t, sha256Hex(append(make([]byte, 32), a[:]...))); !bytes.Equal(got, want) {
		t.Errorf("Extend = %x, want %x", got, want)
	}
	if _, err := Replay(recs, 15, "sha384", make([]byte, 48)); err == nil {
		t.Error("replay of a bank the records lack succeeded")
	}
	if _, err := Replay(recs, 15, "sha256", make([]byte, 20)); err == nil {
		t.Error("replay from a wrong-size initial value succeeded")
	}
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestParseLogErrors(t *testing.T) {
	for _, tc := range []struct{ name, log, want string }{
		{"no separator", `{"pcr":15}`, "does not start"},
		{"not json", "\x1e{nope\n", "record 1"},
		{"empty element", "\x1e\n\x1e{\"pcr\":1}\n", "record 1 is empty"},
		{"trailing data", "\x1e{\"pcr\":1} {}\n", "data after"},
		{"pcr range", "\x1e{\"pcr\":24}\n", "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLog([]byte(tc.log))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseLog(%q) = %v, want %q", tc.log, err, tc.want)
			}
		})
	}
	if recs, err := ParseLog(nil); err != nil || len(recs) != 0 {
		t.Errorf("empty log: %v %v", recs, err)
	}
}

func TestBanks(t *testing.T) {
	for _, b := range banks {
		if got, ok := BankOf(b.Alg); !ok || got.Name != b.Name {
			t.Errorf("BankOf(%#x) = %v %v", b.Alg, got, ok)
		}
		if b.Hash.Size() != len(Sum(b, nil)) {
			t.Errorf("%s: size %d", b.Name, b.Hash.Size())
		}
	}
	if _, ok := BankOf(0x0012); ok { // SM3-256
		t.Error("SM3 has a bank")
	}
}

// The log is read by attestation tools from a file others may write:
// ParseLog must not panic, and what it accepts formats back to records
// it accepts again.
func FuzzParseLog(f *testing.F) {
	r := NewRecord(15, "streamroot-image:x", banks)
	b, _ := r.Format()
	f.Add(b)
	f.Add([]byte("\x1e{\"pcr\":15,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"zz\"}]}\n"))
	f.Add([]byte("\x1e\x1e"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := ParseLog(data)
		if err != nil {
			return
		}
		var out []byte
		for _, r := range recs {
			b, err := r.Format()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
		again, err := ParseLog(out)
		if err != nil || len(again) != len(recs) {
			t.Fatalf("reformatted log: %v (%d records, want %d)", err, len(again), len(recs))
		}
		for _, b := range banks {
			_, _ = Replay(recs, 15, b.Name, make([]byte, b.Hash.Size()))
		}
	})
}
