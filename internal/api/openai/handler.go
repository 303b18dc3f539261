package openai

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/jobs"
	"github.com/omnigate/omnigate/internal/request"
)

// proxy serves one POST to a model endpoint: the wire around the request
// core. It reads and parses the body, calls the core, and relays the
// answer or renders the error; every decision is the core's.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, ep request.Endpoint) {
	reqID := s.requestID(w, r)
	buf, bodyEnd := s.readRequest(w, r, reqID)
	if buf == nil {
		return // answered
	}
	held := heldBody{buf: buf}
	defer held.release()
	if v := r.Header[jobs.HeaderAsync]; len(v) > 0 && s.submitJob(w, r, ep, *buf, reqID, v[0]) {
		return
	}

	req := s.views.Get().(*request.Request)
	if err := request.Parse(ep, *buf, req); err != nil {
		s.views.Put(req)
		s.reject(w, r, err, reqID)
		return
	}
	// The call lives in this frame, a few frames from the top of the
	// stack: a stream parks here for its whole life (see ServeHTTP).
	// Integers written 10.0 or 1e1 are forwarded as 10: engines differ on
	// the other forms.
	call := dispatch.Call{Req: req, Body: req.Normalize(*buf), RequestID: reqID, Header: r.Header}
	if err := s.clientDeadline(r, &call); err != nil {
		s.views.Put(req)
		s.reject(w, r, err, reqID)
		return
	}
	a, err := s.opt.Core.Do(r.Context(), &call)
	if err != nil {
		s.failCall(w, r, &call, err, bodyEnd)
		return
	}
	answerHeader(w.Header(), &call, a)
	stream := req.Stream
	if stream {
		// No retry can need the request once the answer streams: hand
		// the view and the buffer back and drop every reference to them.
		s.views.Put(req)
		call.Req, call.Body = nil, nil
		held.release()
	}
	status, wrote, rerr := s.relay(r.Context(), w, &call, &a)
	if !wrote && !stream && status == apierror.StatusClientClosed && s.halfClosed(r, bodyEnd) {
		s.serveDetached(w, r, &call, a)
		return
	}
	if !stream {
		s.views.Put(req)
	}
	s.opt.Core.Done(&call, a, status, rerr)
	if !wrote {
		abortIfSilent(status)
	}
}

// failCall answers a call the core could not serve, unless the client
// only half-closed, in which case it is served again. Off the common path.
func (s *Server) failCall(w http.ResponseWriter, r *http.Request, call *dispatch.Call, err error, bodyEnd time.Time) {
	if s.halfClosed(r, bodyEnd) {
		s.serveDetached(w, r, call, nil)
		return
	}
	s.views.Put(call.Req)
	limitHeader(w.Header(), call)
	status := s.fail(r.Context(), w, r, err, call.RequestID)
	s.opt.Core.Done(call, nil, status, nil)
	abortIfSilent(status)
}

// serveDetached serves call again for a client that only half-closed (see
// halfclose.go), in a context its end of input does not cancel. a is the
// answer the cut attempt got, if any. It is off the common path, so its
// frame is not on every stream's stack.
func (s *Server) serveDetached(w http.ResponseWriter, r *http.Request, call *dispatch.Call, a *dispatch.Answer) {
	ctx, stop := detach(r)
	defer stop()
	req := call.Req
	defer s.views.Put(req)
	s.opt.Core.Abandon(call, a)
	a, err := s.opt.Core.Do(ctx, call)
	if err != nil {
		limitHeader(w.Header(), call)
		status := s.fail(ctx, w, r, err, call.RequestID)
		s.opt.Core.Done(call, nil, status, nil)
		abortIfSilent(status)
		return
	}
	answerHeader(w.Header(), call, a)
	status, wrote, rerr := s.relay(ctx, w, call, &a)
	s.opt.Core.Done(call, a, status, rerr)
	if !wrote {
		abortIfSilent(status)
	}
}

// readRequest checks the method and the content type and reads the body,
// and when the body is in returns it and when it ended; else it answers
// and returns nil. Its frame is gone before a stream parks.
func (s *Server) readRequest(w http.ResponseWriter, r *http.Request, reqID string) (*[]byte, time.Time) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.reject(w, r, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; use POST.", r.Method, r.URL.Path), reqID)
		return nil, time.Time{}
	}
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		s.reject(w, r, err, reqID)
		return nil, time.Time{}
	}
	// The read deadline bounds the body only: it is cleared once the body
	// is in, or a long answer would be cut by the connection's next read.
	deadline := s.opt.ReadTimeout > 0 && setReadDeadline(w, time.Now().Add(s.opt.ReadTimeout)) == nil
	buf, err := s.readBody(r, deadline)
	if err == nil {
		if deadline {
			setReadDeadline(w, time.Time{})
		}
		return buf, s.now()
	}
	// Kept after a failed read: net/http then drains the rest of the body
	// before closing, and would wait on a trickle without it. Answered
	// even when the context has ended: a read deadline cancels it too
	// (net/http takes the failed read for the client leaving), and the
	// client is owed its 408.
	e := apierror.From(err)
	if e.Status == http.StatusRequestTimeout {
		w.Header().Set("Connection", "close")
	}
	s.opt.Core.Done(&dispatch.Call{RequestID: reqID}, nil, apierror.Write(w, e).Status, nil)
	return nil, time.Time{}
}

// maxClientTimeout bounds a client's X-Request-Timeout.
const maxClientTimeout = 24 * time.Hour

// clientDeadline sets call.Deadline from the client's timeout, counted
// from now: X-Request-Timeout (seconds; a bad value is a 400 naming it),
// or X-Stainless-Timeout, which the official OpenAI SDKs send with their
// configured timeout (a bad one is ignored: the client did not write it).
// With both, the sooner wins.
func (s *Server) clientDeadline(r *http.Request, call *dispatch.Call) error {
	h := r.Header
	if len(h["X-Request-Timeout"]) == 0 && len(h["X-Stainless-Timeout"]) == 0 {
		return nil
	}
	var d time.Duration
	if v := h.Get("X-Request-Timeout"); v != "" {
		secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(secs > 0) || secs > maxClientTimeout.Seconds() {
			e := apierror.Invalid("X-Request-Timeout", "The X-Request-Timeout header must be a number of seconds above 0 and at most %d, not %q.",
				int(maxClientTimeout.Seconds()), v)
			return e
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if v := h.Get("X-Stainless-Timeout"); v != "" {
		if secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && secs > 0 && secs <= maxClientTimeout.Seconds() {
			if sd := time.Duration(secs * float64(time.Second)); d == 0 || sd < d {
				d = sd
			}
		}
	}
	if d > 0 {
		call.Deadline = s.now().Add(d)
	}
	return nil
}

// answerHeader says what the core did, in X-Omnigate-* headers (see
// dispatch.Answer.Describe).
func answerHeader(h http.Header, call *dispatch.Call, a *dispatch.Answer) {
	a.Describe(call, func(name, _, value string) { h[name] = []string{value} })
}

// limitHeader sets the call's rate-limit headers on an error answer.
func limitHeader(h http.Header, call *dispatch.Call) {
	call.DescribeLimits(func(name, _, value string) { h[name] = []string{value} })
}

// abortIfSilent ends a request whose client is taken for gone without an
// answer by aborting the connection: returning would have net/http send
// 200 with an empty body.
func abortIfSilent(status int) {
	if status == apierror.StatusClientClosed {
		panic(http.ErrAbortHandler)
	}
}

// requestID is the request's X-Request-Id: the client's when it is valid,
// else a new one. It is set on the answer.
func (s *Server) requestID(w http.ResponseWriter, r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	if !request.ValidID(id) {
		id = s.ids.Next()
	}
	w.Header().Set("X-Request-Id", id)
	return id
}

// fail renders err to the client and logs it; it returns the status
// sent. A client that went away (ctx ended) is 499 and gets nothing.
func (s *Server) fail(ctx context.Context, w http.ResponseWriter, r *http.Request, err error, reqID string) int {
	if ctx.Err() != nil {
		s.opt.Log.Info("client went away", "request_id", reqID, "path", r.URL.Path)
		return apierror.StatusClientClosed
	}
	e := apierror.Write(w, err)
	if e.Status >= 500 {
		s.opt.Log.Warn("request failed", "request_id", reqID, "status", e.Status, "err", e)
	}
	return e.Status
}

// reject fails a request the core never saw (bad method, body or JSON).
func (s *Server) reject(w http.ResponseWriter, r *http.Request, err error, reqID string) {
	status := s.fail(r.Context(), w, r, err, reqID)
	s.opt.Core.Done(&dispatch.Call{RequestID: reqID}, nil, status, nil)
	abortIfSilent(status)
}
