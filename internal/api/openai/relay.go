package openai

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/bufpool"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/relay"
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
// deployment (see relay.Streams.End): *ap is then the answer that carried
// it on.
func (s *Server) relay(ctx context.Context, w http.ResponseWriter, call *dispatch.Call, ap **dispatch.Answer) (status int, wrote bool, err error) {
	a, reqID := *ap, call.RequestID
	resp := a.Resp
	defer resp.Body.Close()
	relay.WriteUntil(w, a.Until)
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
	fw := &relay.Writer{W: w, Tap: a.Tap(), Whole: a.Continuable()}
	fw.F, _ = w.(http.Flusher)
	if wt, ok := resp.Body.(io.WriterTo); ok {
		// The body writes each piece straight from its connection buffer:
		// an idle stream holds no buffer here at all.
		_, err = wt.WriteTo(fw)
	} else {
		err = relay.Copy(fw, resp.Body)
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
func (s *Server) endStream(ctx context.Context, fw *relay.Writer, err error, call *dispatch.Call, ap **dispatch.Answer) (int, error) {
	o := s.streams.End(ctx, fw, err, call, ap)
	switch {
	case o.Held:
		fw.WriteEvent(fw.Held())
	case o.Tell != nil:
		fw.ErrorEvent(o.Tell)
	}
	return o.Status, o.Err
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
