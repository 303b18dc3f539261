package openai

import (
	"net/http"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/request"
)

// proxy serves one POST to a model endpoint: the wire around the request
// core. It reads and parses the body, calls the core, and relays the
// answer or renders the error; every decision is the core's.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, ep request.Endpoint) {
	reqID := s.requestID(w, r)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.reject(w, r, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; use POST.", r.Method, r.URL.Path), reqID)
		return
	}
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		s.reject(w, r, err, reqID)
		return
	}
	buf, err := s.readBody(r)
	if err != nil {
		s.reject(w, r, err, reqID)
		return
	}
	held := heldBody{buf: buf}
	defer held.release()

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
	call := dispatch.Call{Req: req, Body: req.Normalize(*buf), RequestID: reqID}
	a, err := s.opt.Core.Do(r.Context(), &call)
	stream := req.Stream
	s.views.Put(req) // a stream may stay open for minutes: keep nothing it does not need
	call.Req = nil
	if err != nil {
		s.opt.Core.Done(&call, nil, s.fail(w, r, err, reqID), nil)
		return
	}
	if a.Clamped != "" {
		w.Header().Set("X-Omnigate-Clamped", a.Clamped)
	}
	if stream {
		// No retry can need the body once the answer streams: hand the
		// buffer back and drop every reference to it.
		call.Body = nil
		held.release()
	}
	status, rerr := s.relay(r.Context(), w, a, reqID)
	s.opt.Core.Done(&call, a, status, rerr)
}

// requestID is the request's X-Request-Id: the client's when it is valid,
// else a new one. It is set on the answer.
func (s *Server) requestID(w http.ResponseWriter, r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		id = s.ids.next()
	}
	w.Header().Set("X-Request-Id", id)
	return id
}

// fail renders err to the client and logs it; it returns the status
// sent. A client that went away is 499 and gets nothing.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, reqID string) int {
	if r.Context().Err() != nil {
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
	s.opt.Core.Done(&dispatch.Call{}, nil, s.fail(w, r, err, reqID), nil)
}
