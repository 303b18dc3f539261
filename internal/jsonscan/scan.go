// Package jsonscan is a strict RFC 8259 scanner over []byte for the request
// hot path: it validates, iterates objects and arrays, and decodes scalars
// without building a tree and, on valid input, without allocating.
//
// Strings must be valid UTF-8 (RFC 8259 §8.1); lone surrogate escapes such as
// "\ud800" are accepted, as the grammar allows, and decode to U+FFFD.
package jsonscan

import (
	"errors"
	"strconv"
)

// MaxDepth is the deepest nesting of arrays and objects the scanner accepts.
const MaxDepth = 512

// ErrDepth is wrapped by the *Error returned when input nests deeper than MaxDepth.
var ErrDepth = errors.New("nesting too deep")

// Error is a syntax error at a byte offset of the scanned input.
type Error struct {
	Offset int    // byte offset into the data given to the Decoder
	Msg    string // what was wrong there
	Err    error  // ErrDepth, or nil
}

func (e *Error) Error() string {
	return "invalid JSON at byte " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// Unwrap returns ErrDepth for depth errors.
func (e *Error) Unwrap() error { return e.Err }

// Kind is the type of a JSON value, known from its first byte.
type Kind uint8

// The JSON value kinds.
const (
	Invalid Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{"invalid", "null", "boolean", "number", "string", "array", "object"}

// String names the kind as JSON does ("object", "number", …).
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// kindTable maps a value's first byte to its kind.
var kindTable = func() (t [256]Kind) {
	t['n'] = Null
	t['t'], t['f'] = Bool, Bool
	t['-'] = Number
	for c := '0'; c <= '9'; c++ {
		t[c] = Number
	}
	t['"'] = String
	t['['] = Array
	t['{'] = Object
	return t
}()

// KindOf returns the kind of the value that v starts with (after any
// whitespace); Invalid if v is empty or starts with no value. It does not
// validate v.
func KindOf(v []byte) Kind {
	i := skipWS(v, 0)
	if i >= len(v) {
		return Invalid
	}
	return kindTable[v[i]]
}

func isWS(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func skipWS(data []byte, i int) int {
	for i < len(data) && isWS(data[i]) {
		i++
	}
	return i
}

// Check reports whether data is exactly one JSON value, with optional
// surrounding whitespace: nil, or an *Error saying where and why.
func Check(data []byte) error {
	d := NewDecoder(data)
	if _, err := d.Skip(); err != nil {
		return err
	}
	return d.End()
}

func describe(data []byte, i int) string {
	if i >= len(data) {
		return "unexpected end of input"
	}
	c := data[i]
	if c < 0x20 || c >= 0x7f {
		return "unexpected byte 0x" + strconv.FormatUint(uint64(c), 16)
	}
	return "unexpected character " + strconv.QuoteRune(rune(c))
}
