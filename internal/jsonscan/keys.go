package jsonscan

import (
	"math"
	"strconv"
)

// DuplicateKeyError is ObjectUnique's error for a key an object has twice.
// JSON allows it, but decoders differ on which value they keep, so a
// program that checks a document and passes it on should refuse it.
type DuplicateKeyError struct {
	Key    string // decoded
	Offset int    // where its second occurrence starts (the quote)
}

func (e *DuplicateKeyError) Error() string {
	return "duplicate key " + strconv.Quote(e.Key) + " at byte " + strconv.Itoa(e.Offset)
}

// Keys is the memory ObjectUnique compares keys with: the spans of the
// unread keys of the objects being read, the innermost last. Its zero
// value is ready; it serves one document, whose nested objects stack their
// keys on it. Keys beyond its room go, per object, in a map (an
// allocation, for documents with very many unread keys).
type Keys struct {
	// spans[i] is where a key's raw contents sit: offset<<32 | length.
	spans [32]uint64
	n     int
}

// objectKeys is ObjectUnique's state for one object: its keys are
// keys.spans[base:keys.n], then more.
type objectKeys struct {
	started bool // base is set: the object has had an unread key
	base    int
	// filter has the filterBit of each key in spans; all ones once every
	// key must be compared with every earlier one, decoded (a key has
	// escapes) or in more (no room left in spans).
	filter uint64
	more   map[string]struct{}
}

// filterBit hashes a key without escapes to one bit of objectKeys.filter,
// so that most keys are compared with none of the earlier ones.
func filterBit(raw []byte) uint64 {
	h := uint(len(raw))
	if len(raw) > 0 {
		h += uint(raw[0])*7 + uint(raw[len(raw)-1])*13
	}
	return 1 << (h & 63)
}

// add records the key at keyAt (its opening quote) in d's data, and fails
// with a *DuplicateKeyError if the object had it already.
func (o *objectKeys) add(keys *Keys, d *Decoder, keyAt int) error {
	data := d.data
	// Scanned again rather than kept: the common, known key pays nothing.
	k := Decoder{data: data, off: keyAt}
	raw, escaped, _ := k.scanString()
	if o.dup(keys, data, keyAt+1, raw, escaped) {
		return &DuplicateKeyError{Key: string(AppendUnescaped(nil, raw)), Offset: keyAt}
	}
	return nil
}

// dup records the key raw (escaped: it has escapes), at off in data, and
// reports whether the object had it already.
func (o *objectKeys) dup(keys *Keys, data []byte, off int, raw []byte, escaped bool) bool {
	if !o.started {
		// Nested objects are done with by now: n is where this one began.
		o.started, o.base = true, keys.n
	}
	if o.filter&filterBit(raw) != 0 || escaped {
		for _, s := range keys.spans[o.base:keys.n] {
			if EqualRaw(data[s>>32:s>>32+s&math.MaxUint32], raw) {
				return true
			}
		}
	}
	if escaped {
		o.filter = ^uint64(0)
	}
	if o.more == nil && keys.n < len(keys.spans) && len(data) <= math.MaxUint32 {
		keys.spans[keys.n] = uint64(off)<<32 | uint64(len(raw))
		keys.n++
		o.filter |= filterBit(raw)
		return false
	}
	if o.more == nil {
		o.more = make(map[string]struct{})
		o.filter = ^uint64(0)
	}
	key := string(raw)
	if escaped {
		key = string(AppendUnescaped(nil, raw))
	}
	if _, ok := o.more[key]; ok {
		return true
	}
	o.more[key] = struct{}{}
	return false
}
