package grpcapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/metadata"

	"github.com/omnigate/omnigate/internal/dispatch"
)

// incoming is the call's metadata as the HTTP headers the core reads
// (X-Omnigate-Priority, Cache-Control, Authorization, a model's sticky
// header, traceparent), and its request id: the client's x-request-id when
// it is valid, else a new one. gRPC's own keys (pseudo-headers, grpc-*,
// content-type, te, user-agent) and binary ones (-bin) are left out; a
// call with no other has no headers (nil), and costs no map.
func (s *Server) incoming(ctx context.Context) (http.Header, string) {
	md, _ := metadata.FromIncomingContext(ctx)
	var h http.Header
	for k, v := range md {
		if k == "" || k[0] == ':' || strings.HasPrefix(k, "grpc-") || k == "content-type" || k == "te" || k == "user-agent" ||
			strings.HasSuffix(k, "-bin") {
			continue
		}
		if h == nil {
			h = make(http.Header, 4)
		}
		h[textproto.CanonicalMIMEHeaderKey(k)] = v
	}
	id := ""
	if v := md["x-request-id"]; len(v) > 0 && validRequestID(v[0]) {
		id = v[0]
	} else {
		id = s.ids.next()
	}
	return h, id
}

// answerMD says what the core did, as the HTTP front end's X-Omnigate-*
// headers do (see dispatch.Answer.Describe), in lowercase metadata.
func answerMD(md metadata.MD, call *dispatch.Call, a *dispatch.Answer) {
	a.Describe(call, func(_, key, value string) { md[key] = []string{value} })
}

// requestIDs makes request ids: a random per-process prefix and a counter,
// unique without a syscall per call.
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

// maxRequestIDLen bounds a client's x-request-id that is echoed and
// forwarded.
const maxRequestIDLen = 128

// validRequestID accepts printable ASCII without spaces, safe to echo and
// log.
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
