package grpcapi

import (
	"encoding/binary"
	"math"
	"unicode/utf8"

	"github.com/omnigate/omnigate/internal/jsonscan"
)

// wire appends protobuf wire format. Every field number the messages use
// is below 16, so a tag is one byte. A nested message's length is written
// in the one byte reserved before it, and the message moved up when it
// is 128 bytes or more (rare for a stream chunk's parts).
type wire struct {
	b []byte
}

// Wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
)

func (w *wire) tag(field, typ int) { w.b = append(w.b, byte(field<<3|typ)) }

// varint writes an integer field (negative ones as 10 bytes, as int32
// and int64 fields are).
func (w *wire) varint(field int, v int64) {
	w.tag(field, wireVarint)
	w.b = binary.AppendUvarint(w.b, uint64(v))
}

// double writes a double field.
func (w *wire) double(field int, v float64) {
	w.tag(field, wireFixed64)
	w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v))
}

// str writes a string field from a JSON string's raw contents, unescaped
// and made valid UTF-8 (protobuf strings must be).
func (w *wire) str(field int, raw []byte, esc bool) {
	w.tag(field, wireBytes)
	at := len(w.b)
	w.b = append(w.b, 0)
	if esc {
		w.b = jsonscan.AppendUnescaped(w.b, raw)
	} else {
		w.b = append(w.b, raw...)
	}
	if s := w.b[at+1:]; !utf8.Valid(s) {
		w.b = append(w.b[:at+1], validUTF8(s)...)
	}
	w.end(at)
}

// open starts a nested message field; end(at) closes it.
func (w *wire) open(field int) (at int) {
	w.tag(field, wireBytes)
	w.b = append(w.b, 0)
	return len(w.b) - 1
}

// end writes the length of the field whose length byte is at at.
func (w *wire) end(at int) {
	n := len(w.b) - at - 1
	if n < 0x80 {
		w.b[at] = byte(n)
		return
	}
	var l [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(l[:], uint64(n))
	w.b = append(w.b, l[:k-1]...) // room for the longer length
	copy(w.b[at+k:], w.b[at+1:at+1+n])
	copy(w.b[at:], l[:k])
}

// packed writes a packed repeated int32 field from varints in vs.
func (w *wire) packed(field int, vs []int64) {
	if len(vs) == 0 {
		return
	}
	at := w.open(field)
	for _, v := range vs {
		w.b = binary.AppendUvarint(w.b, uint64(v))
	}
	w.end(at)
}
