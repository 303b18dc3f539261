package jobs

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// alphabet is Crockford's base32, lowercased: ids sort as their times do.
const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// newID returns prefix and 26 characters: 10 of the time in
// milliseconds, then 16 random, so ids sort by creation time (List is
// newest first) and never collide.
func newID(prefix string, now time.Time) string {
	var b [26]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = alphabet[ms&31]
		ms >>= 5
	}
	var r [10]byte
	rand.Read(r[:])
	x := binary.BigEndian.Uint64(r[:8])
	y := uint64(binary.BigEndian.Uint16(r[8:]))
	for i := 10; i < 26; i++ {
		if i < 23 {
			b[i] = alphabet[x&31]
			x >>= 5
		} else {
			b[i] = alphabet[(x^y)&31]
			y >>= 5
		}
	}
	return prefix + string(b[:])
}

// validID reports whether id can be a record id: the characters ids are
// made of, and not too long (the rest cannot name a record).
func validID(id string) bool {
	if id == "" || len(id) > 100 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
