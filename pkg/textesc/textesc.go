// Package textesc renders untrusted strings (names read from disk images,
// volume labels, anything a peer chose) safely for a terminal or a log
// line: control characters, invalid UTF-8 and other non-printing runes
// become visible escapes, so a file named "\x1b[2J" cannot clear the
// operator's screen, move the cursor or forge a line of output.
package textesc

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Escape returns s with every byte or rune that does not print rendered as
// an escape: \n, \r and \t as such, other bytes below 0x20, DEL and each
// byte of invalid UTF-8 as \xNN, and non-printing runes (C1 controls, bidi
// overrides, zero-width marks, ...) as \uNNNN. Printable text, non-ASCII
// letters included, is left alone, and so is the backslash: Escape is
// idempotent, so a message escaped by a library can be escaped again by
// the program that prints it without doubling backslashes.
func Escape(s string) string {
	if !needs(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case !printable(r):
			if r > 0xffff {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// needs reports whether s holds anything Escape changes (the common case,
// a plain name, costs no allocation).
func needs(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n <= 1) || !printable(r) {
			return true
		}
		i += n
	}
	return false
}

// printable is strconv.IsPrint: letters, marks, numbers, punctuation,
// symbols and the ASCII space; not format characters such as U+202E
// (right-to-left override), which reorder what the terminal shows.
func printable(r rune) bool { return strconv.IsPrint(r) }
