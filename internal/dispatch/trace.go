package dispatch

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/request"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// Tracer traces requests through the core (Options.Tracer). With none,
// nothing here runs: no span, no context value, no allocation, no clock
// read. A span is told what the core did, never the prompt or the answer.
type Tracer interface {
	// Start begins the span of a request r, the child of the client's
	// traceparent in h (nil: none) when it has a valid one.
	Start(ctx context.Context, r *request.Request, h http.Header) Span
}

// Span is the trace of one request, from Do to Done.
type Span interface {
	// Queued records a wait for a place in model's admission queue, from
	// start to end; err is why it ended without one (nil: it got one).
	Queued(model string, start, end time.Time, err error)
	// Looked records a lookup in model's cache, from start to end, and
	// what the cache did (CacheHit, CacheMiss…).
	Looked(model string, start, end time.Time, result string)
	// Attempt begins the span of an upstream attempt.
	Attempt(a Attempt) AttemptSpan
	// End ends the request with what it did. rec is a copy: the span may
	// not keep pointers into it past the call.
	End(rec telemetry.Record)
}

// Attempt is an upstream attempt as it begins.
type Attempt struct {
	Model      string // the public model it is for (a fallback, perhaps)
	Deployment string
	N          int         // its number in the request, from 1
	Kind       AttemptKind // why it was sent
}

// AttemptKind is why an attempt was sent.
type AttemptKind uint8

// The kinds of attempt.
const (
	AttemptFirst        AttemptKind = iota + 1 // the request's first
	AttemptRetry                               // after a failed one (of this model or one before it in the chain)
	AttemptHedge                               // alongside a slow first one (hedge.after)
	AttemptContinuation                        // carrying on a stream its upstream cut
)

// String is the kind's name, as traces show it.
func (k AttemptKind) String() string {
	switch k {
	case AttemptFirst:
		return "first"
	case AttemptRetry:
		return "retry"
	case AttemptHedge:
		return "hedge"
	case AttemptContinuation:
		return "continuation"
	}
	return "unknown"
}

// AttemptSpan is the trace of one upstream attempt.
type AttemptSpan interface {
	// TraceContext is the attempt's W3C trace context, sent upstream as
	// the traceparent and tracestate headers (tracestate "": none).
	TraceContext() (traceparent, tracestate string)
	// End ends the attempt: status is the upstream's HTTP status (0 when
	// it gave none), outcome the verdict's (verdict.outcome; for an
	// answer, how its relay ended), err what failed, if anything.
	End(status int, outcome string, err error)
}

// traceAttempt begins the span of call's attempt req on d for m, the
// n-th of its send (hedge: its hedge; cont: the send carries on a cut
// stream), and gives req its trace context. A call that is not traced
// passes the client's own trace context upstream, unchanged: a gateway
// that does not trace is transparent to traces.
//
// Kept out of line, with plain arguments: sendFrom's frame is on the stack
// of every request while it waits for its upstream, and the stack a
// stream's goroutine grows to then it keeps while the stream lasts.
//
//go:noinline
func traceAttempt(call *Call, req *backend.Request, m *Model, d *balance.Deployment, n int, hedge, cont bool) AttemptSpan {
	if call.st.span == nil {
		req.Trace = clientTrace(call.Header)
		return nil
	}
	a := Attempt{Model: m.Name, Deployment: d.Config.Name, N: int(call.st.stats.attempts), Kind: AttemptRetry}
	switch {
	case hedge:
		a.N, a.Kind = a.N+1, AttemptHedge // counted once the hedge is over
	case cont && n == 1:
		a.Kind = AttemptContinuation
	case call.st.stats.attempts == 1:
		a.Kind = AttemptFirst
	}
	s := call.st.span.Attempt(a)
	if p, st := s.TraceContext(); p != "" {
		req.Trace = &backend.TraceContext{Parent: p, State: st}
	}
	return s
}

// clientTrace returns the client's traceparent and tracestate headers in
// h; nil, at no cost, when there is no traceparent. Several tracestate
// fields are one list (W3C).
func clientTrace(h http.Header) *backend.TraceContext {
	p := h["Traceparent"]
	if len(p) == 0 {
		return nil // a tracestate means nothing without it
	}
	tc := &backend.TraceContext{Parent: p[0]}
	switch s := h["Tracestate"]; len(s) {
	case 0:
	case 1:
		tc.State = s[0]
	default:
		tc.State = strings.Join(s, ",")
	}
	return tc
}

// endSpan ends call's span with its record. Out of line: the copy of rec
// it hands the span is then not in Done's frame.
//
//go:noinline
func endSpan(call *Call, rec *telemetry.Record) {
	call.st.span.End(*rec)
	call.st.span = nil
}

// endAttempt ends s (nil: not traced), an attempt that failed with err,
// judged v. An attempt the client's leaving cut short did not fail.
func endAttempt(s AttemptSpan, v verdict, err error) {
	if s == nil {
		return
	}
	status := 0
	if e := (*apierror.Error)(nil); errors.As(err, &e) && e.Upstream {
		status = e.Status
	}
	if v.outcome == "client_closed" {
		err = nil
	}
	s.End(status, v.outcome, err)
}

// errStreamMalformed is what an answer whose stream was not valid SSE
// failed with, for its span.
var errStreamMalformed = errors.New("malformed stream")

// endRelaySpan ends the span of a's attempt, whose relay ended with err;
// health and reason are endRelay's verdict on it.
func endRelaySpan(a *Answer, health balance.Outcome, reason string, err error) {
	outcome := reason
	switch {
	case err == context.Canceled:
		outcome, err = "client_closed", nil
	case reason == "":
		outcome = statusLabel(a.Resp.StatusCode)
	case err == nil && a.usage.errEvent:
		err = ErrStreamErrorEvent
	case err == nil && health == balance.Failure:
		err = errStreamMalformed
	}
	a.span.End(a.Resp.StatusCode, outcome, err)
}
