package request

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// IDs makes request ids (X-Request-Id, x-request-id): a random
// per-process prefix and a counter, unique without a syscall per request.
// Init it before use.
type IDs struct {
	prefix string
	n      atomic.Uint64
}

// Init draws the prefix.
func (g *IDs) Init() {
	var b [6]byte
	rand.Read(b[:])
	g.prefix = "og-" + hex.EncodeToString(b[:]) + "-"
}

// Next returns a new id.
func (g *IDs) Next() string {
	return g.prefix + strconv.FormatUint(g.n.Add(1), 36)
}

// maxIDLen bounds a client's request id that is echoed and forwarded.
const maxIDLen = 128

// ValidID accepts a client's request id: printable ASCII without spaces,
// safe to echo in a header and log, at most 128 bytes.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
