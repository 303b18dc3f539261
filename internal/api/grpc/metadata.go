package grpcapi

import (
	"context"
	"net/http"
	"net/textproto"
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/request"
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
	if v := md["x-request-id"]; len(v) > 0 && request.ValidID(v[0]) {
		id = v[0]
	} else {
		id = s.ids.Next()
	}
	return h, id
}

// answerMD says what the core did, as the HTTP front end's X-Omnigate-*
// headers do (see dispatch.Answer.Describe), in lowercase metadata.
func answerMD(md metadata.MD, call *dispatch.Call, a *dispatch.Answer) {
	a.Describe(call, func(_, key, value string) { md[key] = []string{value} })
}
