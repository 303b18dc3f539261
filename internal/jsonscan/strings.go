package jsonscan

import (
	"unicode/utf8"
)

// AppendUnescaped appends the decoded form of raw, the contents of a JSON
// string between its quotes that a Decoder has validated, to dst. Lone or
// mismatched surrogate escapes decode to U+FFFD, as encoding/json does.
func AppendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(raw) {
			break // not valid input; keep what we have
		}
		switch e := raw[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(raw, i+2)
			if !ok {
				return dst
			}
			i += 6
			if utf16IsSurrogate(r) {
				r2, ok2 := rune(-1), false
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2, ok2 = hex4(raw, i+2)
				}
				if ok2 && r >= 0xd800 && r < 0xdc00 && r2 >= 0xdc00 && r2 < 0xe000 {
					r = (r-0xd800)<<10 | (r2 - 0xdc00) + 0x10000
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst
}

func utf16IsSurrogate(r rune) bool { return r >= 0xd800 && r < 0xe000 }

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		v := unhex(c)
		if v < 0 {
			return 0, false
		}
		r = r<<4 | v
	}
	return r, true
}

// Equal reports whether raw, the validated contents of a JSON string between
// its quotes, decodes to s. It does not allocate.
func Equal(raw []byte, s string) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\\' {
			var buf [128]byte
			if len(s) > len(buf) {
				return string(AppendUnescaped(nil, raw)) == s
			}
			return string(AppendUnescaped(buf[:0], raw)) == s
		}
	}
	return string(raw) == s
}

// EqualRaw reports whether a and b, the validated contents of two JSON
// strings between their quotes, decode to the same string. It does not
// allocate unless one is longer than 128 bytes and has escapes.
func EqualRaw(a, b []byte) bool {
	ea, eb := hasEscape(a), hasEscape(b)
	if !ea && !eb {
		return string(a) == string(b)
	}
	if !ea && len(a) > len(b) || !eb && len(b) > len(a) {
		return false // decoding never makes a string longer
	}
	var bufA, bufB [128]byte
	da, db := a, b
	if ea {
		da = AppendUnescaped(bufA[:0], a)
	}
	if eb {
		db = AppendUnescaped(bufB[:0], b)
	}
	return string(da) == string(db)
}

func hasEscape(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' {
			return true
		}
	}
	return false
}

// AppendString appends s to dst as a JSON string with quotes: '"', '\\' and
// control characters are escaped, as are U+2028 and U+2029 (which break
// JavaScript), and each byte of invalid UTF-8 becomes \ufffd.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&15])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
