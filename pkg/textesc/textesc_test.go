package textesc

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"LiveOS/squashfs.img", "LiveOS/squashfs.img"},
		{"Fedora-Live-41 → ärger 日本", "Fedora-Live-41 → ärger 日本"},
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"line\nforged: ok\r\t", `line\nforged: ok\r\t`},
		{"\x00\x07\x7f", `\x00\x07\x7f`},
		{"bad \xff\xfe utf8 \xe2\x82", `bad \xff\xfe utf8 \xe2\x82`},
		{"\u009b2J", `\u009b2J`},                   // C1 CSI
		{"evil\u202etxt.exe", `evil\u202etxt.exe`}, // right-to-left override
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"\U000e0041tag", `\U000e0041tag`},
		{`already \x1b escaped`, `already \x1b escaped`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"plain", "a\x1b[2Jb", "\xff\u202e\n", "日本\u009b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q: invalid UTF-8", s, e)
		}
		for _, r := range e {
			if r < 0x20 || r == 0x7f || !printable(r) {
				t.Fatalf("Escape(%q) = %q: holds %U", s, e, r)
			}
		}
		if Escape(e) != e {
			t.Fatalf("not idempotent: %q → %q → %q", s, e, Escape(e))
		}
		if !needs(s) && e != s || strings.ContainsRune(s, 0x1b) && strings.ContainsRune(e, 0x1b) {
			t.Fatalf("Escape(%q) = %q", s, e)
		}
	})
}
