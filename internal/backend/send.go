package backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/backend/h1"
)

// attempt is one upstream request as Do builds it, once, for whichever
// sender carries it.
type attempt struct {
	endpoint  string // below the base URL: "chat/completions"
	body      []byte // as it goes upstream
	stream    bool   // asks for an SSE stream
	requestID string
	deadline  time.Time     // the client's, sent as X-Request-Timeout; zero: none
	trace     *TraceContext // nil: none
	// The time limits, 0 for none: until the response head and the first
	// byte of its body (first_token: for a stream, its first event; a
	// non-streaming answer comes whole, so it bounds the whole answer),
	// between body reads (idle), and for the whole attempt (total).
	head, idle, total time.Duration
}

// sender carries one attempt upstream. The response body it returns
// enforces the idle and total limits; an expired limit comes back, from
// send or from a body read, as a *TimeoutError or an *h1.TimeoutError.
// Cancelling ctx aborts the attempt at once.
type sender interface {
	send(ctx context.Context, a attempt) (*http.Response, error)
}

// h1Sender sends over an *h1.Transport with what it needs rendered once:
// the dial address, Host, the header bytes and a request per endpoint.
// Its limits are socket deadlines: no timers, no derived contexts.
type h1Sender struct {
	t          *h1.Transport
	addr, host string
	base       string // the base URL, without the trailing slash
	basePath   string // its path
	jsonHdr    []byte
	sseHdr     []byte
	endpoints  map[string]h1Endpoint
}

// h1Endpoint is one known endpoint: the request target, and the request
// that responses carry as resp.Request: one shared value that only names
// the method and URL (it has no body and no context of the caller's; the
// caller has its own context). Nobody may modify it.
type h1Endpoint struct {
	target string
	req    *http.Request
}

// newH1Sender renders what is sent to u, the base URL, for each of the
// endpoints. The header gets the User-Agent net/http would add, so
// upstreams see the same request either way.
func newH1Sender(t *h1.Transport, u *url.URL, base string, jsonHdr, sseHdr http.Header, endpoints []string) (*h1Sender, error) {
	s := &h1Sender{t: t, addr: u.Host, host: u.Host, base: base, basePath: strings.TrimRight(u.EscapedPath(), "/"),
		endpoints: map[string]h1Endpoint{}}
	if u.Port() == "" {
		s.addr = net.JoinHostPort(u.Hostname(), "80")
	}
	var err error
	for _, hh := range []struct {
		dst *[]byte
		h   http.Header
	}{{&s.jsonHdr, jsonHdr}, {&s.sseHdr, sseHdr}} {
		h := hh.h.Clone()
		if h.Get("User-Agent") == "" {
			h.Set("User-Agent", "Go-http-client/1.1")
		}
		if *hh.dst, err = h1.AppendHeader(nil, h); err != nil {
			return nil, err
		}
	}
	for _, ep := range endpoints {
		if s.endpoints[ep], err = s.endpoint(ep); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *h1Sender) endpoint(ep string) (h1Endpoint, error) {
	ep = strings.TrimLeft(ep, "/")
	u, err := url.Parse(s.base + "/" + ep)
	if err != nil {
		return h1Endpoint{}, err
	}
	return h1Endpoint{target: s.basePath + "/" + ep,
		req: &http.Request{Method: http.MethodPost, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: s.host}}, nil
}

// send sends a; see sender.
func (s *h1Sender) send(ctx context.Context, a attempt) (*http.Response, error) {
	ep, ok := s.endpoints[a.endpoint]
	if !ok {
		var err error
		if ep, err = s.endpoint(a.endpoint); err != nil {
			return nil, err
		}
	}
	req := h1.Request{Method: http.MethodPost, Addr: s.addr, Host: s.host, Target: ep.target, Header: s.jsonHdr,
		Body: a.body, HeadTimeout: a.head, IdleTimeout: a.idle}
	if a.stream {
		req.Header = s.sseHdr
	}
	var fields [4]string // on the heap (req's fields escape): the usual ones only
	n := 0
	if a.requestID != "" {
		fields[0], fields[1] = "X-Request-Id", a.requestID
		n = 2
	}
	if !a.deadline.IsZero() {
		fields[n], fields[n+1] = "X-Request-Timeout", timeLeft(a.deadline)
		n += 2
	}
	if n > 0 {
		req.Fields = fields[:n]
	}
	if tc := a.trace; tc != nil {
		req.Fields = append(req.Fields, "Traceparent", tc.Parent)
		if tc.State != "" {
			req.Fields = append(req.Fields, "Tracestate", tc.State)
		}
	}
	if a.total > 0 {
		req.Deadline = time.Now().Add(a.total)
	}
	resp, err := s.t.Send(ctx, &req)
	if err != nil {
		return nil, err
	}
	resp.Request = ep.req // not WithContext: an open stream would keep the copy
	return resp, nil
}

// roundTripSender sends through any http.RoundTripper (net/http's for
// https, HandlerTransport for the simulator), its limits as timers that
// cancel the attempt's context with a *TimeoutError as the cause.
type roundTripSender struct {
	rt      http.RoundTripper
	base    string            // the base URL, without the trailing slash
	urls    map[string]string // endpoint → full URL, for the known endpoints
	jsonHdr http.Header
	sseHdr  http.Header
}

func newRoundTripSender(rt http.RoundTripper, base string, jsonHdr, sseHdr http.Header, endpoints []string) *roundTripSender {
	s := &roundTripSender{rt: rt, base: base, urls: map[string]string{}, jsonHdr: jsonHdr.Clone(), sseHdr: sseHdr.Clone()}
	for _, ep := range endpoints {
		s.urls[ep] = base + "/" + ep
	}
	// net/http sends a request again, on another connection, when a reused
	// one was closed before any answer, only if it may repeat it: an
	// Idempotency-Key entry says so, and is not sent when it has no value.
	// The h1 sender retries the same way.
	s.jsonHdr["Idempotency-Key"] = nil
	s.sseHdr["Idempotency-Key"] = nil
	return s
}

// send sends a; see sender.
func (s *roundTripSender) send(ctx context.Context, a attempt) (*http.Response, error) {
	actx, cancel := attemptContext(ctx, a.total)
	target, ok := s.urls[a.endpoint]
	if !ok {
		target = s.base + "/" + strings.TrimLeft(a.endpoint, "/")
	}
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(a.body))
	if err != nil {
		cancel(nil)
		return nil, err
	}
	if a.stream {
		req.Header = s.sseHdr.Clone()
	} else {
		req.Header = s.jsonHdr.Clone()
	}
	if a.requestID != "" {
		req.Header["X-Request-Id"] = []string{a.requestID}
	}
	if !a.deadline.IsZero() {
		req.Header["X-Request-Timeout"] = []string{timeLeft(a.deadline)}
	}
	if tc := a.trace; tc != nil {
		req.Header["Traceparent"] = []string{tc.Parent}
		if tc.State != "" {
			req.Header["Tracestate"] = []string{tc.State}
		}
	}
	var head *time.Timer
	if a.head > 0 {
		head = time.AfterFunc(a.head, func() { cancel(&TimeoutError{Phase: PhaseFirstToken, Limit: a.head}) })
	}
	resp, err := s.rt.RoundTrip(req)
	if err != nil {
		if head != nil {
			head.Stop()
		}
		cancel(nil)
		return nil, expired(ctx, actx, err)
	}
	// The head timer runs on until the body's first byte (timerBody.Read).
	b := &timerBody{rc: resp.Body, parent: ctx, ctx: actx, cancel: cancel, idle: a.idle, head: head}
	if a.idle > 0 {
		b.timer = time.AfterFunc(a.idle, func() { cancel(&TimeoutError{Phase: PhaseIdle, Limit: a.idle}) })
		b.timer.Stop()
	}
	resp.Body = b
	return resp, nil
}

// timeLeft renders the seconds left until deadline, to the millisecond
// (at least one).
func timeLeft(deadline time.Time) string {
	ms := max(time.Until(deadline).Milliseconds(), 1)
	return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)
}

// attemptContext derives the attempt's context: the total limit, and a
// cancel whose cause names the limit that expired.
func attemptContext(ctx context.Context, total time.Duration) (context.Context, context.CancelCauseFunc) {
	if total <= 0 {
		return context.WithCancelCause(ctx)
	}
	tctx, tcancel := context.WithTimeoutCause(ctx, total, &TimeoutError{Phase: PhaseTotal, Limit: total})
	actx, cancel := context.WithCancelCause(tctx)
	return actx, func(cause error) { cancel(cause); tcancel() }
}

// expired returns err as the *TimeoutError of the limit that cancelled
// actx, when one did and the caller's ctx is still live; else err.
func expired(ctx, actx context.Context, err error) error {
	var te *TimeoutError
	if errors.As(err, &te) || ctx.Err() != nil || actx.Err() == nil || !errors.As(context.Cause(actx), &te) {
		return err
	}
	return &TimeoutError{Phase: te.Phase, Limit: te.Limit, Err: err}
}

// timerBody is a response body of a roundTripSender: the idle timer runs
// while a Read waits, a read error caused by an expired limit says which,
// and Close releases the attempt's context.
type timerBody struct {
	rc     io.ReadCloser
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   time.Duration
	timer  *time.Timer // nil without an idle limit
	head   *time.Timer // the first_token timer, until the first byte; nil after
}

// Read reads the upstream body, bounded by the idle limit.
func (b *timerBody) Read(p []byte) (int, error) {
	if b.timer != nil {
		b.timer.Reset(b.idle)
	}
	n, err := b.rc.Read(p)
	if b.timer != nil {
		b.timer.Stop()
	}
	if b.head != nil && (n > 0 || err != nil) {
		b.head.Stop()
		b.head = nil
	}
	if err != nil && err != io.EOF {
		err = expired(b.parent, b.ctx, err)
	}
	return n, err
}

// Close closes the upstream body and releases the attempt's context.
func (b *timerBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	if b.head != nil {
		b.head.Stop()
	}
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

var (
	_ sender        = (*h1Sender)(nil)
	_ sender        = (*roundTripSender)(nil)
	_ io.ReadCloser = (*timerBody)(nil)
)
