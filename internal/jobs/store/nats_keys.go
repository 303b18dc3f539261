package store

import (
	"slices"
	"strconv"
	"strings"
)

// Keys in the NATS bucket. A bucket key is a subject ([-/_=.a-zA-Z0-9],
// split into tokens on "."), and listing a kind is a subject filter
// ("r.batch.>"), so a record key "batch/ID" is stored as "r.batch.ID": a
// namespace token, then each "/"-separated segment as a token of its own.
// Segments are ids ([A-Za-z0-9_-]) and pass as they are; any other byte
// is written "=XX" (hex), and an empty segment "=", so that every key
// maps to a valid subject and back.

// encodeKey returns key in namespace ns ("r" records, "c" counters) as a
// bucket key.
func encodeKey(ns, key string) string {
	var b strings.Builder
	b.WriteString(ns)
	for seg := range strings.SplitSeq(key, "/") {
		b.WriteByte('.')
		if seg == "" {
			b.WriteByte('=')
		}
		for _, c := range []byte(seg) {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
				b.WriteByte(c)
			} else {
				b.WriteString("=" + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
			}
		}
	}
	return b.String()
}

// decodeKey undoes encodeKey, namespace dropped; false for a key it did
// not make.
func decodeKey(k string) (string, bool) {
	_, rest, ok := strings.Cut(k, ".")
	if !ok {
		return "", false
	}
	var b strings.Builder
	for i, seg := range strings.Split(rest, ".") {
		if i > 0 {
			b.WriteByte('/')
		}
		if seg == "=" {
			continue
		}
		for j := 0; j < len(seg); j++ {
			if seg[j] != '=' {
				b.WriteByte(seg[j])
				continue
			}
			if j+3 > len(seg) {
				return "", false
			}
			c, err := strconv.ParseUint(seg[j+1:j+3], 16, 8)
			if err != nil {
				return "", false
			}
			b.WriteByte(byte(c))
			j += 2
		}
	}
	return b.String(), true
}

// newestFirst sorts keys in descending order and keeps the first limit.
func newestFirst(keys []string, limit int) []string {
	slices.Sort(keys)
	keys = slices.Compact(keys) // a listing may repeat a key written meanwhile
	slices.Reverse(keys)
	if len(keys) > limit {
		keys = keys[:limit]
	}
	if len(keys) == 0 {
		return nil
	}
	return keys
}
