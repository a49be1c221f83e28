// Package termsafe makes untrusted text safe to print on a terminal.
//
// Torrent names, file paths, comments and tracker or peer messages come
// from whoever made the torrent or runs the peer. Printed raw, an ESC in
// them drives the terminal (colours, cursor moves, title changes, on some
// terminals worse), a newline forges a line of shoal's own output, and a
// bidirectional override makes text read other than it is. String escapes
// exactly those runes, Go-style (\x1b, \n, \u202e, \xff for a byte that is
// not UTF-8), and keeps every other rune, so names in any script stay
// readable. A backslash is kept as is: the result is for eyes, not for
// parsing back.
package termsafe

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// String returns s with every rune unsafe on a terminal escaped: C0 and C1
// control characters (newline and tab included), DEL, invisible format
// characters such as bidirectional overrides, line and paragraph
// separators, and bytes that are not valid UTF-8. s is returned unchanged,
// without allocating, when nothing needs escaping.
func String(s string) string {
	i := unsafeAt(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteByte("0123456789abcdef"[s[i]>>4])
			b.WriteByte("0123456789abcdef"[s[i]&0xf])
		case safe(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\n', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// unsafeAt returns the index of the first rune String must escape, or -1.
func unsafeAt(s string) int {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !safe(r) {
			return i
		}
		i += n
	}
	return -1
}

// safe reports whether r may reach a terminal as it is: a graphic rune
// (letters, marks, numbers, punctuation, symbols, spaces) or one of the
// zero-width joiners some scripts and emoji need. Everything else, control
// and format characters above all, is escaped.
func safe(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 0x20 && r != 0x7f
	}
	return unicode.IsGraphic(r) || r == '\u200c' || r == '\u200d'
}

// Strings applies String to each element, for lists such as a file's path
// components or a torrent's trackers.
func Strings(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = String(s)
	}
	return out
}

// JSON rewrites encoded JSON so that it prints safely: every rune String
// would escape (DEL, C1 controls, format characters; encoding/json already
// escapes C0 controls inside strings) becomes a \u escape, which JSON
// decoders read back as the same rune. Such runes can only stand inside
// strings, so the document means exactly what it did.
func JSON(data []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r < 0x20 || safe(r) || (r == utf8.RuneError && n == 1) {
			// Structural whitespace, and bytes encoding/json never emits.
			i += n
			continue
		}
		out = append(out, data[last:i]...)
		if r1, r2 := utf16.EncodeRune(r); r1 != unicode.ReplacementChar {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += n
		last = i
	}
	if out == nil {
		return data
	}
	return append(out, data[last:]...)
}
