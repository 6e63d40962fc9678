package bootcfg

import "strings"

// token is one kernel argument.
type token struct {
	raw    string // exactly as written, quotes included; what ArgError.Arg names
	key    string // before the first '=', quotes removed
	val    string // after the first '=', quotes removed
	hasVal bool   // there was a '=' (so "rd.shell" and "rd.shell=" differ)
}

// isSpace is the kernel's isspace() for ASCII: the command line is split on
// exactly these bytes.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// tokenize splits a command line the way the kernel's next_arg() does:
// whitespace separates arguments except inside double quotes. An
// unterminated quote runs to the end of the line, as in the kernel.
// Tokens after a bare "--" belong to init's argv, so they are dropped.
func tokenize(s string) []token {
	var toks []token
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return toks
		}
		start := i
		inQuote := false
		for i < len(s) && (inQuote || !isSpace(s[i])) {
			if s[i] == '"' {
				inQuote = !inQuote
			}
			i++
		}
		t := newToken(s[start:i])
		if t.key == "--" && !t.hasVal {
			return toks
		}
		toks = append(toks, t)
	}
}

// newToken removes the quotes (they only group; no dracut value needs a
// literal '"') and splits at the first '='.
func newToken(raw string) token {
	unq := strings.ReplaceAll(raw, `"`, "")
	k, v, ok := strings.Cut(unq, "=")
	return token{raw: raw, key: k, val: v, hasVal: ok}
}
