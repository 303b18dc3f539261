package openai

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/bufpool"
	"github.com/omnigate/omnigate/internal/dispatch"
)

// relay copies the upstream answer to the client: an event stream piece by
// piece, each flushed as it arrives; a JSON answer whole (relayWhole). The
// answer's Content-Type decides, not the request: an engine that ignores
// stream:true and answers JSON is relayed as JSON. It returns the status
// the client saw, whether anything was written, and, when the upstream
// broke the answer, why (a client that went away is 499 with no error:
// that is not the upstream's doing).
//
// A continuable stream that its upstream breaks is continued on another
// deployment (resume): *ap is then the answer that carried it on.
func (s *Server) relay(ctx context.Context, w http.ResponseWriter, call *dispatch.Call, ap **dispatch.Answer) (status int, wrote bool, err error) {
	a, reqID := *ap, call.RequestID
	resp := a.Resp
	defer resp.Body.Close()
	writeUntil(w, a.Until)
	h := w.Header()
	ct := resp.Header.Get("Content-Type")
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	if !strings.HasPrefix(ct, "text/event-stream") {
		return s.relayWhole(ctx, w, resp, a.Tap(), reqID)
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(resp.StatusCode)
	fw := &flushWriter{w: w, tap: a.Tap(), whole: a.Continuable()}
	fw.f, _ = w.(http.Flusher)
	if wt, ok := resp.Body.(io.WriterTo); ok {
		// The body writes each piece straight from its connection buffer:
		// an idle stream holds no buffer here at all.
		_, err = wt.WriteTo(fw)
	} else {
		err = s.copyStream(fw, resp.Body)
	}
	status, err = s.endStream(ctx, fw, err, call, ap)
	if status == 0 {
		status = resp.StatusCode
	}
	return status, true, err
}

// endStream says how a relayed stream ended, given what the copy
// returned: 0 and nil when it ended whole; the client's leaving; or, when
// it broke, an error event for the client (the status line is gone) and
// the status to record. Kept apart from relay so that its frame is not on
// the stack of every parked stream.
func (s *Server) endStream(ctx context.Context, fw *flushWriter, err error, call *dispatch.Call, ap **dispatch.Answer) (int, error) {
	reqID := call.RequestID
	err = ended(fw, *ap, err)
	if err != nil && fw.err == nil && ctx.Err() == nil && (*ap).Continuable() && apierror.From(err).Code != backend.CodeDeadlineExceeded {
		if err = s.resume(ctx, fw, call, ap, err); err == nil {
			return 0, nil
		}
	}
	switch {
	case fw.err == nil && err != nil && errors.Is(context.Cause(ctx), ErrShutdown):
		errorEvent(fw, apierror.New(http.StatusServiceUnavailable, "gateway_shutting_down",
			"The gateway is shutting down; the answer is incomplete."))
		s.opt.Log.Warn("stream ended by shutdown", "request_id", reqID)
		return http.StatusServiceUnavailable, context.Canceled // not the deployment's doing
	case fw.err != nil || (err != nil && ctx.Err() != nil):
		s.opt.Log.Info("client went away", "request_id", reqID, "stream", true)
		return apierror.StatusClientClosed, nil
	case err != nil:
		// The status line is gone; tell the client in the stream, as
		// OpenAI does, and end it without [DONE] so it never looks whole.
		e := apierror.New(http.StatusBadGateway, "upstream_stream_error", "The upstream stream ended abnormally.")
		e.Err = err
		if ae := apierror.From(err); ae.Code == backend.CodeDeadlineExceeded {
			e = ae // the client's own deadline passed: say that
		}
		if len(fw.held) > 0 {
			// The engine's own error event, held back for a continuation
			// that could not be had: it says best what happened.
			fw.write(fw.held)
			fw.Flush()
		} else {
			errorEvent(fw, e)
		}
		s.opt.Log.Warn("stream cut", "request_id", reqID, "err", err)
		return e.Status, err
	}
	return 0, nil
}

// resume continues the stream of *ap, which its upstream broke with
// cause, on another deployment, for as long as it breaks and the core can
// continue it; *ap becomes the answer that carries it on. It returns nil
// when the stream then ended whole, else what to report: the last
// upstream failure, never why a continuation could not be had.
func (s *Server) resume(ctx context.Context, fw *flushWriter, call *dispatch.Call, ap **dispatch.Answer, cause error) error {
	for {
		next, err := s.opt.Core.Continue(ctx, call, *ap, cause)
		if err != nil {
			s.opt.Log.Info("stream not continued", "request_id", call.RequestID, "cause", cause, "err", err)
			return cause
		}
		s.opt.Log.Warn("stream continued", "request_id", call.RequestID, "cause", cause, "deployment", next.Deployment.Config.Name)
		*ap = next
		fw.tap, fw.carry = next.Tap(), fw.carry[:0] // the client never saw a cut event
		writeUntil(fw.w.(http.ResponseWriter), next.Until)
		fw.held = fw.held[:0]
		err = s.copyStream(fw, next.Resp.Body)
		next.Resp.Body.Close()
		err = ended(fw, next, err)
		if err == nil || fw.err != nil || ctx.Err() != nil {
			return err
		}
		cause = err
	}
}

// ended is how the relay of a's stream ended, given what the copy
// returned: a clean end must have come with [DONE] (a whole-events stream
// may still hold it), else the stream was cut; an error event held back
// is the upstream's failure.
func ended(fw *flushWriter, a *dispatch.Answer, err error) error {
	switch {
	case err == nil:
		fw.end()
		if !a.StreamDone() {
			return dispatch.ErrStreamIncomplete
		}
	case errors.Is(err, errHeld):
		return dispatch.ErrStreamErrorEvent
	}
	return err
}

// writeUntil bounds the writes of an answer to the client by until (the
// attempt's total timeout): a client that stops reading cannot hold the
// engine's connection past it. net/http clears it after the request.
func writeUntil(w http.ResponseWriter, until time.Time) {
	// net/http's own writer has the method; asking it directly spares
	// the error a ResponseController builds for one that lacks it.
	if d, ok := w.(interface{ SetWriteDeadline(time.Time) error }); ok && !until.IsZero() {
		d.SetWriteDeadline(until)
	}
}

// errorEvent ends a stream, whose status line is gone, with e as an SSE
// event, as OpenAI does, and no [DONE], so it never looks whole.
// It is the gateway's own: it goes out as it is, past a whole-events
// stream's holding back.
func errorEvent(fw *flushWriter, e *apierror.Error) {
	if fw.err != nil {
		return
	}
	fw.write([]byte("data: "))
	fw.write(e.JSON()) // ends in a newline: one more ends the event
	fw.write([]byte("\n"))
	fw.Flush()
}

// copyStream copies a body that has no WriteTo, flushing each read. Its
// buffer lives as long as the stream, so it is small (10,000 idle streams
// must fit in a few hundred MB).
func (s *Server) copyStream(fw *flushWriter, body io.Reader) error {
	buf := bufpool.Get(4 << 10)
	defer bufpool.Put(buf)
	p := (*buf)[:4<<10]
	for {
		n, err := body.Read(p)
		if n > 0 {
			if _, werr := fw.Write(p[:n]); werr != nil {
				return werr
			}
			fw.Flush()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// wholeBody is the largest non-streaming answer relayWhole reads whole
// before it writes: most completions are smaller.
const wholeBody = 32 << 10

// relayWhole relays a non-streaming answer (relay has set its
// Content-Type). One that fits wholeBody is read whole before anything is
// written, then sent with its Content-Length in one write, however many
// pieces it arrived in (the model-name rewrite leaves the length unknown
// until then); an upstream that cuts it short gets the client a clear
// error instead of a broken connection. A larger answer is copied as it
// comes.
func (s *Server) relayWhole(ctx context.Context, w http.ResponseWriter, resp *http.Response, tap dispatch.Tap, reqID string) (status int, wrote bool, err error) {
	size := wholeBody
	if resp.ContentLength >= 0 && resp.ContentLength < int64(size) {
		size = int(resp.ContentLength) + 1 // +1 reads EOF with the last byte
	}
	buf := bufpool.Get(size)
	defer bufpool.Put(buf)
	p := (*buf)[:size]
	n, err := bufpool.Fill(resp.Body, p)
	h := w.Header()
	switch { // the backend read a small answer whole, and checked it is a JSON object
	case err == io.EOF:
		tap.Write(p[:n])
		h.Set("Content-Length", strconv.Itoa(n))
		w.WriteHeader(resp.StatusCode)
		if _, werr := w.Write(p[:n]); werr != nil {
			return apierror.StatusClientClosed, true, nil
		}
		return resp.StatusCode, true, nil
	case err != nil:
		if ctx.Err() != nil {
			return apierror.StatusClientClosed, false, nil
		}
		s.opt.Log.Warn("response cut", "request_id", reqID, "err", err)
		return apierror.Write(w, err).Status, true, err
	}
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	for {
		if n > 0 {
			tap.Write(p[:n])
			if _, werr := w.Write(p[:n]); werr != nil {
				return apierror.StatusClientClosed, true, nil
			}
		}
		if err == io.EOF {
			return resp.StatusCode, true, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return apierror.StatusClientClosed, true, nil
			}
			// A truncated JSON body must not look complete: abort the connection.
			s.opt.Log.Warn("response cut", "request_id", reqID, "err", err)
			panic(http.ErrAbortHandler)
		}
		n, err = resp.Body.Read(p)
	}
}
