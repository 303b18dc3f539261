package openai

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// requestIDs makes X-Request-Id values: a random per-process prefix and a
// counter, unique without a syscall per request.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func (g *requestIDs) init() {
	var b [6]byte
	rand.Read(b[:])
	g.prefix = "og-" + hex.EncodeToString(b[:]) + "-"
}

func (g *requestIDs) next() string {
	return g.prefix + strconv.FormatUint(g.n.Add(1), 36)
}

// maxRequestIDLen bounds a client-sent X-Request-Id we echo and forward.
const maxRequestIDLen = 128

// validRequestID accepts printable ASCII without spaces, so the value is safe
// to echo in a header and log.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
