// Package cache keeps complete answers for requests that will get the same
// answer again: an exact cache keyed by everything in a request that
// changes its answer, in memory or in Redis, and a semantic cache that
// finds a close enough earlier prompt by its embedding. A wrong hit is
// worse than a miss, so keys are built to tell apart every request an
// engine could answer differently.
package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"math"
	"slices"
	"strconv"

	"github.com/omnigate/omnigate/internal/jsonscan"
)

// Key identifies a request's answer: SHA-256 over the public model, the
// scope and the request's canonical form.
type Key [sha256.Size]byte

// String is the key in hex, as stored in Redis.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Facts are what the key's walk learned about the request on the way.
type Facts struct {
	HasSeed        bool
	HasTemperature bool
	Temperature    float64
}

// ignored are the top-level parameters that do not change an answer: how
// it is delivered (stream, stream_options: a cached answer replays either
// way), who asked (user; scopes separate tenants when configured) and
// what the client keeps about it (metadata, store).
var ignored = map[string]bool{"model": true, "stream": true, "stream_options": true, "user": true, "metadata": true, "store": true}

// MakeKey returns the key of a request body (a JSON object, already
// validated by the request parser) for the public model and scope. The
// canonical form sorts object keys, decodes string escapes, writes numbers
// by value (10, 10.0 and 1e1 are one number) and stands a data URL in for
// by its media type and the SHA-256 of its decoded bytes, so two spellings
// of one request share a key and nothing else does.
func MakeKey(model, scope string, body []byte) (Key, Facts, error) {
	h := sha256.New()
	w := canon{h: h}
	w.str('m', []byte(model))
	w.str('s', []byte(scope))
	var f Facts
	d := jsonscan.NewDecoder(body)
	if err := w.object(&d, func(k []byte, v []byte) bool {
		switch string(k) {
		case "seed":
			f.HasSeed = !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
		case "temperature":
			if x, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64); err == nil {
				f.HasTemperature, f.Temperature = true, x
			}
		}
		return !ignored[string(k)]
	}); err != nil {
		return Key{}, Facts{}, err
	}
	var k Key
	h.Sum(k[:0])
	return k, f, nil
}

// canon writes a JSON value's canonical form into h: each value a tag byte
// and, for strings and keys, a length, so no two values share a form.
type canon struct {
	h   hash.Hash
	buf [binary.MaxVarintLen64 + 1]byte
}

func (c *canon) tag(t byte) { c.h.Write([]byte{t}) }

func (c *canon) str(t byte, b []byte) {
	c.buf[0] = t
	n := binary.PutUvarint(c.buf[1:], uint64(len(b)))
	c.h.Write(c.buf[:n+1])
	c.h.Write(b)
}

type member struct {
	key, value []byte
}

// object writes the object at d with its members sorted by decoded key;
// keep, when set, sees each key and raw value and says whether it counts.
func (c *canon) object(d *jsonscan.Decoder, keep func(k, v []byte) bool) error {
	var ms []member
	err := d.Object(func(key []byte) error {
		k := append([]byte(nil), key...) // the key may alias a scratch buffer
		v, err := d.Skip()
		if err != nil {
			return err
		}
		if keep == nil || keep(k, v) {
			ms = append(ms, member{k, v})
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(ms, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	c.tag('{')
	for _, m := range ms {
		c.str('k', m.key)
		vd := jsonscan.NewDecoder(m.value)
		if err := c.value(&vd); err != nil {
			return err
		}
	}
	c.tag('}')
	return nil
}

func (c *canon) value(d *jsonscan.Decoder) error {
	k, err := d.Peek()
	if err != nil {
		return err
	}
	switch k {
	case jsonscan.Object:
		return c.object(d, nil)
	case jsonscan.Array:
		c.tag('[')
		if err := d.Array(func(int) error { return c.value(d) }); err != nil {
			return err
		}
		c.tag(']')
		return nil
	case jsonscan.String:
		raw, escaped, err := d.ReadRawString()
		if err != nil {
			return err
		}
		s := raw
		if escaped {
			s = jsonscan.AppendUnescaped(nil, raw)
		}
		if mime, sum, ok := dataURL(s); ok {
			c.str('D', mime)
			c.h.Write(sum[:])
			return nil
		}
		c.str('"', s)
		return nil
	case jsonscan.Number:
		lit, err := d.ReadNumber()
		if err != nil {
			return err
		}
		c.number(lit)
		return nil
	}
	raw, err := d.Skip() // true, false, null
	if err != nil {
		return err
	}
	c.str('l', raw)
	return nil
}

// number writes a number by value: an integral one (within float64's exact
// range) as an integer, any other by its float64 bits; a literal past both
// as written.
func (c *canon) number(lit []byte) {
	if i, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
		c.int(i)
		return
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) {
		c.str('N', lit)
		return
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		c.int(int64(f))
		return
	}
	c.buf[0] = 'f'
	binary.LittleEndian.PutUint64(c.buf[1:], math.Float64bits(f))
	c.h.Write(c.buf[:9])
}

func (c *canon) int(i int64) {
	c.buf[0] = 'i'
	n := binary.PutVarint(c.buf[1:], i)
	c.h.Write(c.buf[:n+1])
}

// dataURL recognises "data:<type>;base64,<payload>" and returns the media
// type and the SHA-256 of the decoded payload. A payload that is not valid
// base64 is left to be hashed as the string it is.
func dataURL(s []byte) (mime []byte, sum [sha256.Size]byte, ok bool) {
	if len(s) < 5 || !bytes.EqualFold(s[:5], []byte("data:")) {
		return nil, sum, false
	}
	comma := bytes.IndexByte(s, ',')
	if comma < 0 {
		return nil, sum, false
	}
	meta := s[5:comma]
	if !bytes.HasSuffix(meta, []byte(";base64")) {
		return nil, sum, false
	}
	payload := s[comma+1:]
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(payload)))
	n, err := base64.StdEncoding.Decode(dec, payload)
	if err != nil {
		return nil, sum, false
	}
	return bytes.ToLower(meta[:len(meta)-len(";base64")]), sha256.Sum256(dec[:n]), true
}
