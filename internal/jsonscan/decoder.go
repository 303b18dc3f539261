package jsonscan

import (
	"unicode/utf8"
)

// Decoder reads JSON values one after another from a byte slice. All offsets
// it reports (Offset, Error.Offset) are positions in that slice, so value
// spans can be used to splice the original bytes. A Decoder is a small value
// and is meant to live on the stack: var d = jsonscan.NewDecoder(body).
type Decoder struct {
	data  []byte
	off   int
	depth int
}

// NewDecoder returns a Decoder positioned at the start of data.
func NewDecoder(data []byte) Decoder { return Decoder{data: data} }

// Offset is the position of the next unread byte. After Peek it is where the
// next value starts; after reading a value it is where that value ends.
func (d *Decoder) Offset() int { return d.off }

// Data returns the slice being decoded.
func (d *Decoder) Data() []byte { return d.data }

// OffsetOf returns where b starts in the data being decoded; b must be a
// slice of it that the Decoder returned (a raw string or key, a number).
func (d *Decoder) OffsetOf(b []byte) int { return cap(d.data) - cap(b) }

func (d *Decoder) errAt(i int, msg string) error { return &Error{Offset: i, Msg: msg} }

func (d *Decoder) unexpected(i int) error { return d.errAt(i, describe(d.data, i)) }

// Peek skips whitespace and returns the kind of the next value without
// consuming it. It fails at end of input or on a byte that starts no value.
func (d *Decoder) Peek() (Kind, error) {
	d.off = skipWS(d.data, d.off)
	if d.off >= len(d.data) {
		return Invalid, d.unexpected(d.off)
	}
	k := kindTable[d.data[d.off]]
	if k == Invalid {
		return Invalid, d.unexpected(d.off)
	}
	return k, nil
}

// End checks that only whitespace follows.
func (d *Decoder) End() error {
	d.off = skipWS(d.data, d.off)
	if d.off != len(d.data) {
		return d.errAt(d.off, describe(d.data, d.off)+" after top-level value")
	}
	return nil
}

// Skip validates and consumes the next value, returning its raw bytes.
func (d *Decoder) Skip() ([]byte, error) {
	k, err := d.Peek()
	if err != nil {
		return nil, err
	}
	start := d.off
	switch k {
	case Object:
		err = d.object(nil, nil)
	case Array:
		err = d.Array(nil)
	case String:
		_, _, err = d.scanString()
	case Number:
		err = d.scanNumber()
	default:
		err = d.scanLiteral()
	}
	if err != nil {
		return nil, err
	}
	return d.data[start:d.off], nil
}

func (d *Decoder) enter() error {
	d.depth++
	if d.depth > MaxDepth {
		return &Error{Offset: d.off, Msg: "nesting deeper than 512 levels", Err: ErrDepth}
	}
	return nil
}

// Object reads an object, calling fn for each member with the key (decoded;
// it aliases the input unless the key has escapes, and is then a new
// allocation) and the Decoder positioned at the member's value. fn may read
// that value with any Read method, or leave it, and Object skips it. fn may
// be nil. An error from fn is returned as is.
func (d *Decoder) Object(fn func(key []byte) error) error {
	return d.object(nil, fn)
}

// ObjectUnique is Object for an object whose keys must be unique. fn knows
// the keys whose values it reads and rejects a repeat of those itself (a
// flag per key is enough); ObjectUnique rejects, with a *DuplicateKeyError,
// a repeat among the keys whose values fn leaves unread, compared decoded.
// keys holds those for this object and the objects nested in it (one Keys
// serves a whole document); after an error it must be zeroed to be reused.
func (d *Decoder) ObjectUnique(keys *Keys, fn func(key []byte) error) error {
	return d.object(keys, fn)
}

func (d *Decoder) object(keys *Keys, fn func(key []byte) error) error {
	k, err := d.Peek()
	if err != nil {
		return err
	}
	if k != Object {
		return d.errAt(d.off, "expected object, found "+k.String())
	}
	if err := d.enter(); err != nil {
		return err
	}
	d.off++
	d.off = skipWS(d.data, d.off)
	if d.off < len(d.data) && d.data[d.off] == '}' {
		d.off++
		d.depth--
		return nil
	}
	var unread objectKeys // with keys: the keys fn left unread
	for {
		if d.off >= len(d.data) || d.data[d.off] != '"' {
			return d.errAt(d.off, describe(d.data, d.off)+", expected object key")
		}
		keyAt := d.off
		key, esc, err := d.scanString()
		if err != nil {
			return err
		}
		d.off = skipWS(d.data, d.off)
		if d.off >= len(d.data) || d.data[d.off] != ':' {
			return d.errAt(d.off, describe(d.data, d.off)+", expected ':'")
		}
		d.off = skipWS(d.data, d.off+1)
		start := d.off
		if fn != nil {
			if esc {
				key = AppendUnescaped(nil, key)
			}
			if err := fn(key); err != nil {
				return err
			}
		}
		if d.off == start {
			if keys != nil {
				if err := unread.add(keys, d, keyAt); err != nil {
					return err
				}
			}
			if _, err := d.Skip(); err != nil {
				return err
			}
		}
		d.off = skipWS(d.data, d.off)
		if d.off < len(d.data) {
			switch d.data[d.off] {
			case ',':
				d.off = skipWS(d.data, d.off+1)
				continue
			case '}':
				d.off++
				d.depth--
				if unread.started {
					keys.n = unread.base // this object's keys are done with
				}
				return nil
			}
		}
		return d.errAt(d.off, describe(d.data, d.off)+", expected ',' or '}'")
	}
}

// Array reads an array, calling fn with each element's index and the Decoder
// positioned at the element. fn may read the element or leave it, and Array
// skips it. fn may be nil. An error from fn is returned as is.
func (d *Decoder) Array(fn func(i int) error) error {
	k, err := d.Peek()
	if err != nil {
		return err
	}
	if k != Array {
		return d.errAt(d.off, "expected array, found "+k.String())
	}
	if err := d.enter(); err != nil {
		return err
	}
	d.off++
	d.off = skipWS(d.data, d.off)
	if d.off < len(d.data) && d.data[d.off] == ']' {
		d.off++
		d.depth--
		return nil
	}
	for i := 0; ; i++ {
		start := d.off
		if fn != nil {
			if err := fn(i); err != nil {
				return err
			}
		}
		if d.off == start {
			if _, err := d.Skip(); err != nil {
				return err
			}
		}
		d.off = skipWS(d.data, d.off)
		if d.off < len(d.data) {
			switch d.data[d.off] {
			case ',':
				d.off = skipWS(d.data, d.off+1)
				continue
			case ']':
				d.off++
				d.depth--
				return nil
			}
		}
		return d.errAt(d.off, describe(d.data, d.off)+", expected ',' or ']'")
	}
}

// ReadRawString reads a string and returns its raw contents between the
// quotes, escapes not decoded, and whether it has any escapes.
func (d *Decoder) ReadRawString() (raw []byte, escaped bool, err error) {
	k, err := d.Peek()
	if err != nil {
		return nil, false, err
	}
	if k != String {
		return nil, false, d.errAt(d.off, "expected string, found "+k.String())
	}
	return d.scanString()
}

// ReadNumber reads a number and returns its literal.
func (d *Decoder) ReadNumber() ([]byte, error) {
	k, err := d.Peek()
	if err != nil {
		return nil, err
	}
	if k != Number {
		return nil, d.errAt(d.off, "expected number, found "+k.String())
	}
	start := d.off
	if err := d.scanNumber(); err != nil {
		return nil, err
	}
	return d.data[start:d.off], nil
}

// ReadFloat reads a number as a float64; it fails on values out of range.
func (d *Decoder) ReadFloat() (float64, error) {
	start := skipWS(d.data, d.off)
	lit, err := d.ReadNumber()
	if err != nil {
		return 0, err
	}
	f, err := ParseFloat(lit)
	if err != nil {
		return 0, d.errAt(start, err.Error())
	}
	return f, nil
}

// ReadBool reads true or false.
func (d *Decoder) ReadBool() (bool, error) {
	k, err := d.Peek()
	if err != nil {
		return false, err
	}
	if k != Bool {
		return false, d.errAt(d.off, "expected boolean, found "+k.String())
	}
	v := d.data[d.off] == 't'
	return v, d.scanLiteral()
}

// ReadNull reads null.
func (d *Decoder) ReadNull() error {
	k, err := d.Peek()
	if err != nil {
		return err
	}
	if k != Null {
		return d.errAt(d.off, "expected null, found "+k.String())
	}
	return d.scanLiteral()
}

func (d *Decoder) scanLiteral() error {
	var lit string
	switch d.data[d.off] {
	case 't':
		lit = "true"
	case 'f':
		lit = "false"
	default:
		lit = "null"
	}
	for i := 0; i < len(lit); i++ {
		if d.off+i >= len(d.data) || d.data[d.off+i] != lit[i] {
			return d.errAt(d.off+i, describe(d.data, d.off+i)+" in literal "+lit)
		}
	}
	d.off += len(lit)
	return nil
}

// scanNumber consumes a number literal at d.off, following RFC 8259's
// grammar exactly: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *Decoder) scanNumber() error {
	data, i := d.data, d.off
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i++; i < len(data) && isDigit(data[i]); i++ {
		}
	default:
		return d.errAt(i, describe(data, i)+" in number")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return d.errAt(i, describe(data, i)+" in number, expected digit after '.'")
		}
		for ; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return d.errAt(i, describe(data, i)+" in number, expected digit in exponent")
		}
		for ; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	d.off = i
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// strPlain marks bytes that need no attention inside a string: printable
// ASCII other than '"' and '\\'.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainWord reports whether all 8 bytes of w are plain string bytes.
func plainWord(w uint64) bool {
	hasZero := func(x uint64) uint64 { return (x - lsb) & ^x & msb }
	return (hasZero(w^(lsb*'"')) | hasZero(w^(lsb*'\\')) | ((w - lsb*0x20) &^ w & msb) | (w & msb)) == 0
}

// scanString consumes a string at d.off (which holds '"'), validating escapes
// and UTF-8, and returns its raw contents.
func (d *Decoder) scanString() (raw []byte, escaped bool, err error) {
	data := d.data
	start := d.off + 1
	i := start
	for {
		for i+8 <= len(data) && plainWord(le64(data[i:])) {
			i += 8
		}
		for i < len(data) && strPlain[data[i]] {
			i++
		}
		if i >= len(data) {
			return nil, false, d.errAt(i, "unexpected end of input in string")
		}
		switch c := data[i]; {
		case c == '"':
			d.off = i + 1
			return data[start:i], escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(data) {
				return nil, false, d.errAt(i+1, "unexpected end of input in string escape")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for j := i + 2; j < i+6; j++ {
					if j >= len(data) || unhex(data[j]) < 0 {
						return nil, false, d.errAt(j, describe(data, j)+" in \\u escape, expected hex digit")
					}
				}
				i += 6
			default:
				return nil, false, d.errAt(i+1, describe(data, i+1)+" in string escape")
			}
		case c < 0x20:
			return nil, false, d.errAt(i, "control character 0x"+hex2(c)+" in string")
		default: // c >= 0x80
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false, d.errAt(i, "invalid UTF-8 in string")
			}
			i += size
		}
	}
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}
