package request

import (
	"errors"
	"strconv"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/jsonscan"
)

// path names a parameter the way OpenAI's errors do, e.g.
// messages[1].content[0].image_url.url, and is formatted only on error so
// that walking a valid body does not allocate. Indexes are -1 when unused.
type path struct {
	top  string // top-level key
	i    int    // index in the top-level array
	sub  string // key inside that element
	j    int    // index in the sub array
	leaf string // key below
	tail string // key below leaf (kept apart so that building a path does not allocate)
}

func top(key string) path { return path{top: key, i: -1, j: -1} }

// index returns the path of element n of the array at p's deepest level.
func (q path) index(n int) path {
	if q.i < 0 && q.sub == "" {
		q.i = n
	} else {
		q.j = n
	}
	return q
}

func (q path) child(key string) path {
	switch {
	case q.top == "": // the body itself
		q.top = key
	case q.leaf == "":
		q.leaf = key
	case q.tail == "":
		q.tail = key
	default: // deeper than any parameter Parse checks; allocates
		q.tail += "." + key
	}
	return q
}

func (q path) String() string {
	s := q.top
	if q.i >= 0 {
		s += "[" + strconv.Itoa(q.i) + "]"
	}
	if q.sub != "" {
		s += "." + q.sub
	}
	if q.j >= 0 {
		s += "[" + strconv.Itoa(q.j) + "]"
	}
	if q.leaf != "" {
		s += "." + q.leaf
	}
	if q.tail != "" {
		s += "." + q.tail
	}
	return s
}

func missing(param string) error {
	return apierror.Invalid(param, "Missing required parameter: '%s'.", param)
}

func typeErr(at path, want, got string) error {
	param := at.String()
	return apierror.Invalid(param, "Invalid type for '%s': expected %s, but got %s instead.", param, want, got)
}

func badValue(at path, raw []byte, supported string) error {
	return apierror.Invalid(at.String(), "Invalid value: '%s'. Supported values are: %s.", jsonscan.AppendUnescaped(nil, raw), supported)
}

func emptyArray(at path) error {
	param := at.String()
	return apierror.Invalid(param, "Invalid '%s': empty array. Expected an array with minimum length 1, but got an empty array instead.", param)
}

// outOfRangeInt: got, an integer literal, is below lo (or above hi).
func outOfRangeInt(at path, got string, below bool, lo, hi int64) error {
	param := at.String()
	if below {
		return apierror.Invalid(param, "Invalid '%s': integer below minimum value. Expected a value >= %d, but got %s instead.", param, lo, got)
	}
	return apierror.Invalid(param, "Invalid '%s': integer above maximum value. Expected a value <= %d, but got %s instead.", param, hi, got)
}

func outOfRange(at path, kind, got string, lo, hi float64) error {
	param := at.String()
	if v, _ := strconv.ParseFloat(got, 64); v < lo {
		return apierror.Invalid(param, "Invalid '%s': %s below minimum value. Expected a value >= %s, but got %s instead.", param, kind, fmtFloat(lo), got)
	}
	return apierror.Invalid(param, "Invalid '%s': %s above maximum value. Expected a value <= %s, but got %s instead.", param, kind, fmtFloat(hi), got)
}

// got describes the next value the way OpenAI's type errors do ("a string",
// "an integer", "a decimal", …). Only called on the error path.
func (p *parser) got() string {
	k, err := p.d.Peek()
	if err != nil {
		return "nothing"
	}
	switch k {
	case jsonscan.Null:
		return "null"
	case jsonscan.Bool:
		return "a boolean"
	case jsonscan.String:
		return "a string"
	case jsonscan.Array:
		return "an array"
	case jsonscan.Object:
		return "an object"
	}
	save := p.d
	lit, err := p.d.ReadNumber()
	p.d = save
	if err == nil {
		for _, c := range lit {
			if c == '.' || c == 'e' || c == 'E' {
				return "a decimal"
			}
		}
	}
	return "an integer"
}

// optString reads a string or null (ok false). Other kinds are a type error.
func (p *parser) optString(at path) (raw []byte, ok bool, err error) {
	k, err := p.d.Peek()
	if err != nil {
		return nil, false, err
	}
	switch k {
	case jsonscan.Null:
		return nil, false, p.d.ReadNull()
	case jsonscan.String:
		raw, _, err := p.d.ReadRawString()
		return raw, err == nil, err
	}
	return nil, false, typeErr(at, "a string", p.got())
}

// reqString reads a string; null is a type error.
func (p *parser) reqString(at path) (raw []byte, escaped bool, err error) {
	k, err := p.d.Peek()
	if err != nil {
		return nil, false, err
	}
	if k != jsonscan.String {
		return nil, false, typeErr(at, "a string", p.got())
	}
	return p.d.ReadRawString()
}

// optFloat reads a number or null (ok false).
func (p *parser) optFloat(at path) (v float64, ok bool, err error) {
	k, err := p.d.Peek()
	if err != nil {
		return 0, false, err
	}
	switch k {
	case jsonscan.Null:
		return 0, false, p.d.ReadNull()
	case jsonscan.Number:
		v, err := p.d.ReadFloat()
		return v, err == nil, err
	}
	return 0, false, typeErr(at, "a decimal", p.got())
}

// optInt reads an integer in [lo, hi] or null (ok false). Any integral
// number is an integer, 10.0 and 1e1 too; those are listed in
// Request.NonCanonical for Normalize.
func (p *parser) optInt(at path, lo, hi int64) (v int64, ok bool, err error) {
	k, err := p.d.Peek()
	if err != nil {
		return 0, false, err
	}
	switch k {
	case jsonscan.Null:
		return 0, false, p.d.ReadNull()
	case jsonscan.Number:
		lit, err := p.d.ReadNumber()
		if err != nil {
			return 0, false, err
		}
		v, err := jsonscan.ParseInt(lit)
		if err != nil || v < lo || v > hi {
			return 0, false, intErr(&at, lit, v, err, lo, hi)
		}
		if !plainInt(lit) {
			return v, true, p.nonCanonical(&at, lit, v)
		}
		return v, true, nil
	}
	return 0, false, typeErr(at, "an integer", p.got())
}

// intValue converts an integer literal, which must be integral and in [lo, hi].
func intValue(at *path, lit []byte, lo, hi int64) (int64, error) {
	v, err := jsonscan.ParseInt(lit)
	if err != nil || v < lo || v > hi {
		return 0, intErr(at, lit, v, err, lo, hi)
	}
	return v, nil
}

func intErr(at *path, lit []byte, v int64, err error, lo, hi int64) error {
	switch {
	case errors.Is(err, jsonscan.ErrRange):
		return outOfRangeInt(*at, string(lit), lit[0] == '-', lo, hi)
	case err != nil:
		return typeErr(*at, "an integer", "a decimal")
	}
	return outOfRangeInt(*at, strconv.FormatInt(v, 10), v < lo, lo, hi)
}

// nonCanonical records an integer parameter written with a fraction or an
// exponent, for Normalize.
func (p *parser) nonCanonical(at *path, lit []byte, v int64) error {
	r := p.r
	if r.NumNonCanonical == len(r.NonCanonical) { // cannot happen: each integer parameter comes once
		return typeErr(*at, "an integer", "a decimal")
	}
	start := p.d.OffsetOf(lit)
	r.NonCanonical[r.NumNonCanonical] = IntValue{Span: [2]int{start, start + len(lit)}, Value: v}
	r.NumNonCanonical++
	return nil
}

// plainInt reports whether a number literal has neither fraction nor exponent.
func plainInt(lit []byte) bool {
	for _, c := range lit {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}

// optBool reads a boolean or null (ok false).
func (p *parser) optBool(at path) (v, ok bool, err error) {
	k, err := p.d.Peek()
	if err != nil {
		return false, false, err
	}
	switch k {
	case jsonscan.Null:
		return false, false, p.d.ReadNull()
	case jsonscan.Bool:
		v, err := p.d.ReadBool()
		return v, err == nil, err
	}
	return false, false, typeErr(at, "a boolean", p.got())
}

// optArray reads an array, calling fn for each element, or null.
func (p *parser) optArray(at path, fn func(i int) error) error {
	k, err := p.d.Peek()
	if err != nil {
		return err
	}
	switch k {
	case jsonscan.Null:
		return p.d.ReadNull()
	case jsonscan.Array:
		return p.d.Array(fn)
	}
	return typeErr(at, "an array", p.got())
}

// optObject reads an object, calling fn (if not nil) for each member, or null.
func (p *parser) optObject(at path, fn func(key []byte) error) error {
	k, err := p.d.Peek()
	if err != nil {
		return err
	}
	switch k {
	case jsonscan.Null:
		return p.d.ReadNull()
	case jsonscan.Object:
		return p.members(at, fn)
	}
	return typeErr(at, "an object", p.got())
}

// reqObject reads an object; null is a type error.
func (p *parser) reqObject(at path, fn func(key []byte) error) error {
	k, err := p.d.Peek()
	if err != nil {
		return err
	}
	if k != jsonscan.Object {
		return typeErr(at, "an object", p.got())
	}
	if err := p.d.ObjectUnique(&p.keys, fn); err != nil {
		return duplicateErr(at, err)
	}
	return nil
}

// unescapeShort decodes raw, the contents of a string with escapes, into
// buf (on the caller's stack), or returns raw as is if it may not fit: a
// short value to compare (a role, a part type, a function name) that
// escaped is longer than buf is none of those, and raw with its
// backslashes matches none.
func unescapeShort(buf []byte, raw []byte) []byte {
	if len(raw) > len(buf) {
		return raw
	}
	return jsonscan.AppendUnescaped(buf[:0], raw) // never longer than raw
}

// oneOf reports whether raw string contents equal one of values.
func oneOf(raw []byte, values ...string) bool {
	for _, v := range values {
		if jsonscan.Equal(raw, v) {
			return true
		}
	}
	return false
}
