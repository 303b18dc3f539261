package openai

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/backend/h1"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/limits"
	"github.com/omnigate/omnigate/internal/request"
)

// endpointNames maps an Endpoint to its backend path and capability word.
var endpointNames = [...]struct{ path, capability string }{
	request.Chat:        {"chat/completions", "chat"},
	request.Completions: {"completions", "completions"},
	request.Embeddings:  {"embeddings", "embeddings"},
}

// proxy serves one POST to a model endpoint, start to finish.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, ep request.Endpoint) {
	start := s.opt.Now()
	reqID := r.Header.Get("X-Request-Id")
	if !validRequestID(reqID) {
		reqID = s.ids.next()
	}
	w.Header().Set("X-Request-Id", reqID)

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.fail(w, r, nil, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; use POST.", r.Method, r.URL.Path), reqID)
		return
	}
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		s.fail(w, r, nil, err, reqID)
		return
	}
	buf, err := s.readBody(r)
	if err != nil {
		s.fail(w, r, nil, err, reqID)
		return
	}
	body := *buf
	held := heldBody{buf: buf}
	defer held.release()

	req := s.reqs.Get().(*request.Request)
	if err := request.Parse(ep, body, req); err != nil {
		s.reqs.Put(req)
		s.fail(w, r, nil, err, reqID)
		return
	}
	chain, err := s.opt.Router.Route(req.Model)
	if err != nil {
		s.reqs.Put(req)
		s.fail(w, r, nil, err, reqID)
		return
	}
	primary := chain[0]
	mm := s.mm[primary.Index]
	mm.Inflight.Inc()
	defer mm.Inflight.Dec()

	// The chain picks the upstream answer; relaying it happens here, a few
	// frames from the top of the stack, because a stream parks at the
	// bottom of this call for its whole life (see ServeHTTP).
	var status int
	a, err := s.serveChain(w, r, ep, req, body, chain, reqID)
	stream := req.Stream
	s.reqs.Put(req) // a stream may stay open for minutes: keep nothing it does not need
	if err != nil {
		status = s.fail(w, r, primary, err, reqID)
	} else {
		if stream {
			// No retry can need the body once the answer streams.
			held.release()
		}
		status = s.relay(r.Context(), w, a.resp, stream)
		a.e.Release()
	}
	mm.Request(status)
	if status < 400 {
		mm.Latency.Observe(s.opt.Now().Sub(start).Seconds())
	}
}

// answer is an upstream response to relay, and the replica that sent it
// (acquired: release it when the relay is done).
type answer struct {
	resp *http.Response
	e    *balance.Endpoint
}

// serveChain tries the models of the chain in order, and the replicas of
// each, until one answers. Nothing is written to the client's body yet.
func (s *Server) serveChain(w http.ResponseWriter, r *http.Request, ep request.Endpoint, req *request.Request, body []byte,
	chain []*catalog.Model, reqID string) (answer, error) {
	ctx := r.Context()
	var lastErr error
	names := endpointNames[ep]
	for i, m := range chain {
		if !m.Serves(names.capability) {
			if i == 0 {
				return answer{}, apierror.Invalid("model", "The model %q does not serve /v1/%s.", m.Name, names.path)
			}
			continue
		}
		clamp, err := limits.Check(req, m)
		if err != nil {
			if i == 0 {
				return answer{}, err
			}
			continue // this fallback cannot take the request as sent
		}
		sendBody, sendReq := body, req
		if len(clamp) > 0 {
			sendReq = s.reqs.Get().(*request.Request)
			*sendReq = *req
			sendBody = clamp.Apply(sendReq, body)
			w.Header().Set("X-Omnigate-Clamped", clamp.Header())
			for _, c := range clamp {
				s.mm[m.Index].Clamped(c.Param)
			}
		}
		if n := limits.DefaultMaxTokens(sendReq, m); n > 0 {
			if sendReq == req {
				sendReq = s.reqs.Get().(*request.Request)
				*sendReq = *req
			}
			sendBody = sendReq.SetMaxTokens(sendBody, n)
		}
		if i > 0 {
			s.mm[chain[0].Index].Fallback(m.Name)
		}
		a, err := s.tryModel(ctx, ep, m, sendReq, sendBody, reqID)
		if sendReq != req {
			s.reqs.Put(sendReq)
		}
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return answer{}, err
		}
		if len(clamp) > 0 {
			w.Header().Del("X-Omnigate-Clamped") // the next model has its own limits
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = apierror.New(http.StatusServiceUnavailable, "no_deployment", "No deployment of %q is available.", chain[0].Name)
	}
	return answer{}, lastErr
}

// tryModel sends the request to the replicas of one model, moving to the
// next replica when one cannot be reached.
func (s *Server) tryModel(ctx context.Context, ep request.Endpoint, m *catalog.Model, req *request.Request,
	body []byte, reqID string) (answer, error) {
	pool := s.opt.Pools[m.Index]
	mm := s.mm[m.Index]
	var tried []*balance.Endpoint
	var lastErr error
	for {
		e := pool.Pick(s.opt.Now(), tried)
		if e == nil {
			if lastErr == nil {
				ae := apierror.New(http.StatusServiceUnavailable, "no_deployment", "No deployment of %q is available.", m.Name)
				ae.RetryAfter = pool.UpAgain(s.opt.Now()) // every replica is marked down
				lastErr = ae
			}
			return answer{}, lastErr
		}
		tried = append(tried, e)
		e.Acquire()
		resp, err := e.Backend.Do(ctx, &backend.Request{
			Endpoint: endpointNames[ep].path, Body: body, ModelSpan: req.ModelSpan,
			PublicModel: m.Name, Stream: req.Stream, RequestID: reqID,
		})
		if err != nil {
			e.Release()
			if ctx.Err() != nil {
				return answer{}, err
			}
			mm.Upstream(e.Config.Name, outcome(err))
			if backend.IsLocal(err) {
				return answer{}, err // the gateway's own limit: no verdict on e
			}
			e.Record(!unreachable(err), s.opt.Now())
			if !retryable(err) {
				return answer{}, err
			}
			lastErr = err
			continue
		}
		e.Record(true, s.opt.Now())
		mm.Upstream(e.Config.Name, strconv.Itoa(resp.StatusCode))
		return answer{resp, e}, nil
	}
}

// relay copies the upstream answer to the client, flushing each read of a
// stream as soon as it arrives.
func (s *Server) relay(ctx context.Context, w http.ResponseWriter, resp *http.Response, stream bool) int {
	defer resp.Body.Close()
	h := w.Header()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	}
	if !stream {
		return s.relayWhole(ctx, w, resp)
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	var err error
	if wt, ok := resp.Body.(io.WriterTo); ok {
		// The body writes each piece straight from its connection buffer:
		// an idle stream holds no buffer here at all.
		_, err = wt.WriteTo(flushWriter{w: w, f: flusher})
		var we *h1.WriteError
		if errors.As(err, &we) {
			return apierror.StatusClientClosed
		}
		if err == nil {
			return resp.StatusCode
		}
	}
	// Streams hold their buffer for their whole life, so keep it small
	// (10,000 idle streams must fit in a few hundred MB).
	var p []byte
	if err == nil {
		buf := getBuf(4 << 10)
		defer putBuf(buf)
		p = (*buf)[:4<<10]
	}
	for {
		var n int
		if err == nil {
			n, err = resp.Body.Read(p)
		}
		if n > 0 {
			if _, werr := w.Write(p[:n]); werr != nil {
				return apierror.StatusClientClosed
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			return resp.StatusCode
		}
		if err != nil {
			if ctx.Err() != nil {
				return apierror.StatusClientClosed
			}
			// The status line is gone; tell the client in the stream, as
			// OpenAI does, and end it.
			e := apierror.New(http.StatusBadGateway, "upstream_stream_error", "The upstream stream ended abnormally.")
			e.Err = err
			w.Write([]byte("data: "))
			w.Write(e.JSON())
			w.Write([]byte("\n"))
			if flusher != nil {
				flusher.Flush()
			}
			s.opt.Log.Warn("stream cut", "err", err)
			return http.StatusBadGateway
		}
	}
}

// wholeBody is the largest non-streaming answer relayWhole reads whole
// before it writes: most completions are smaller.
const wholeBody = 32 << 10

// relayWhole relays a non-streaming answer (relay has set its
// Content-Type). One that fits wholeBody is read
// whole before anything is written, then sent with its Content-Length in
// one write, however many pieces it arrived in (the model-name rewrite
// leaves the length unknown until then); an upstream that cuts it short
// gets the client a clear error instead of a broken connection. A larger
// answer is copied as it comes.
func (s *Server) relayWhole(ctx context.Context, w http.ResponseWriter, resp *http.Response) int {
	size := wholeBody
	if resp.ContentLength >= 0 && resp.ContentLength < int64(size) {
		size = int(resp.ContentLength) + 1 // +1 reads EOF with the last byte
	}
	buf := getBuf(size)
	defer putBuf(buf)
	p := (*buf)[:size]
	n, err := readFull(resp.Body, p)
	h := w.Header()
	switch {
	case err == io.EOF:
		h.Set("Content-Length", strconv.Itoa(n))
		w.WriteHeader(resp.StatusCode)
		if _, werr := w.Write(p[:n]); werr != nil {
			return apierror.StatusClientClosed
		}
		return resp.StatusCode
	case err != nil:
		if ctx.Err() != nil {
			return apierror.StatusClientClosed
		}
		s.opt.Log.Warn("response cut", "err", err)
		return apierror.Write(w, err).Status
	}
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	for {
		if n > 0 {
			if _, werr := w.Write(p[:n]); werr != nil {
				return apierror.StatusClientClosed
			}
		}
		if err == io.EOF {
			return resp.StatusCode
		}
		if err != nil {
			if ctx.Err() != nil {
				return apierror.StatusClientClosed
			}
			// A truncated JSON body must not look complete: abort the connection.
			s.opt.Log.Warn("response cut", "err", err)
			panic(http.ErrAbortHandler)
		}
		n, err = resp.Body.Read(p)
	}
}

// readFull reads into p until it is full (err nil) or the reader fails
// (io.EOF at the end of the body).
func readFull(r io.Reader, p []byte) (n int, err error) {
	for n < len(p) && err == nil {
		var m int
		m, err = r.Read(p[n:])
		n += m
	}
	return n, err
}

// fail writes err to the client, logs it and returns the status sent.
// A client that went away is 499 and is never counted against an upstream.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, m *catalog.Model, err error, reqID string) int {
	if r.Context().Err() != nil {
		s.opt.Log.Info("client went away", "request_id", reqID, "path", r.URL.Path)
		if m == nil {
			s.opt.Metrics.Request("", apierror.StatusClientClosed)
		}
		return apierror.StatusClientClosed
	}
	e := apierror.Write(w, err)
	if e.Status >= 500 {
		s.opt.Log.Warn("request failed", "request_id", reqID, "status", e.Status, "err", e)
	}
	if m == nil {
		s.opt.Metrics.Request("", e.Status)
	}
	return e.Status
}

// retryable reports whether another replica or model may succeed where this
// attempt failed: the upstream was unreachable or said it is unavailable.
func retryable(err error) bool {
	if backend.IsLocal(err) {
		return false // every replica and fallback would fail the same way
	}
	if unreachable(err) {
		return true
	}
	var e *apierror.Error
	if errors.As(err, &e) {
		return e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable
	}
	return false
}

// unreachable reports a connection-level failure, which counts against the
// endpoint's passive health.
func unreachable(err error) bool {
	var d *backend.DialError
	return errors.As(err, &d)
}

func outcome(err error) string {
	if unreachable(err) {
		return "unreachable"
	}
	if backend.IsLocal(err) {
		return "gateway_limit"
	}
	var e *apierror.Error
	if errors.As(err, &e) {
		return strconv.Itoa(e.Status)
	}
	return "error"
}
