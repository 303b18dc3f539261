package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/bufpool"
	"github.com/omnigate/omnigate/internal/dispatch"
)

// ErrShutdown is the cause a front end's base context ends with when the
// shutdown grace runs out: a stream still open then is told so, never
// ended cleanly as if it were complete.
var ErrShutdown = errors.New("the gateway is shutting down")

// Streams judges and continues the streams of one front end.
type Streams struct {
	Core *dispatch.Core
	Log  *slog.Logger
}

// Outcome is how a relayed stream ended.
type Outcome struct {
	// Status is the status to record: 0 when the stream ended whole (the
	// answer's own status stands), 499 when the client went away.
	Status int
	// Err is what broke the relay, for Done: nil when the stream ended
	// whole or the client left.
	Err error
	// Tell is what the client is owed at the end of a broken stream,
	// whose status is gone: nil when it ended whole or the client left.
	Tell *apierror.Error
	// Held says the client is to be told the engine's own error event,
	// the one the writer held back (Writer.Held), rather than Tell: it
	// says best what happened.
	Held bool
}

// End says how the relay of *ap's stream through fw ended, given what
// the copy returned (the body's WriteTo, or Copy). A continuable stream
// its upstream broke is first continued on another deployment for as long
// as the core can (*ap is then the answer that carried it on). It is kept
// apart from the copy so that its frames are not on the stack of every
// parked stream.
func (s *Streams) End(ctx context.Context, fw *Writer, err error, call *dispatch.Call, ap **dispatch.Answer) Outcome {
	reqID := call.RequestID
	err = ended(fw, *ap, err)
	if err != nil && fw.err == nil && ctx.Err() == nil && (*ap).Continuable() && apierror.From(err).Code != backend.CodeDeadlineExceeded {
		if err = s.resume(ctx, fw, call, ap, err); err == nil {
			return Outcome{}
		}
	}
	switch {
	case fw.err == nil && err != nil && errors.Is(context.Cause(ctx), ErrShutdown):
		s.Log.Warn("stream ended by shutdown", "request_id", reqID)
		return Outcome{Status: http.StatusServiceUnavailable, Err: context.Canceled, // not the deployment's doing
			Tell: apierror.New(http.StatusServiceUnavailable, "gateway_shutting_down", "The gateway is shutting down; the answer is incomplete.")}
	case fw.err != nil || (err != nil && ctx.Err() != nil):
		s.Log.Info("client went away", "request_id", reqID, "stream", true)
		return Outcome{Status: apierror.StatusClientClosed}
	case err != nil:
		// The status is gone; tell the client in the stream, as OpenAI
		// does, and end it without [DONE] so it never looks whole.
		e := apierror.New(http.StatusBadGateway, "upstream_stream_error", "The upstream stream ended abnormally.")
		e.Err = err
		if ae := apierror.From(err); ae.Code == backend.CodeDeadlineExceeded {
			e = ae // the client's own deadline passed: say that
		}
		s.Log.Warn("stream cut", "request_id", reqID, "err", err)
		// An engine's error event held back for a continuation that could
		// not be had says best what happened.
		return Outcome{Status: e.Status, Err: err, Tell: e, Held: len(fw.held) > 0}
	}
	return Outcome{}
}

// resume continues the stream of *ap, which its upstream broke with
// cause, on another deployment, for as long as it breaks and the core can
// continue it; *ap becomes the answer that carries it on. It returns nil
// when the stream then ended whole, else what to report: the last
// upstream failure, never why a continuation could not be had.
func (s *Streams) resume(ctx context.Context, fw *Writer, call *dispatch.Call, ap **dispatch.Answer, cause error) error {
	for {
		next, err := s.Core.Continue(ctx, call, *ap, cause)
		if err != nil {
			s.Log.Info("stream not continued", "request_id", call.RequestID, "cause", cause, "err", err)
			return cause
		}
		s.Log.Warn("stream continued", "request_id", call.RequestID, "cause", cause, "deployment", next.Deployment.Config.Name)
		*ap = next
		fw.Tap, fw.carry = next.Tap(), fw.carry[:0] // the client never saw a cut event
		WriteUntil(fw.W, next.Until)
		fw.held = fw.held[:0]
		err = Copy(fw, next.Resp.Body)
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
func ended(fw *Writer, a *dispatch.Answer, err error) error {
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

// WriteUntil bounds the writes of an answer to the client's wire w by
// until (the attempt's total timeout), when w can take a write deadline
// (net/http's response writer can): a client that stops reading cannot
// hold the engine's connection past it.
func WriteUntil(w io.Writer, until time.Time) {
	// net/http's own writer has the method; asking it directly spares
	// the error a ResponseController builds for one that lacks it.
	if d, ok := w.(interface{ SetWriteDeadline(time.Time) error }); ok && !until.IsZero() {
		d.SetWriteDeadline(until)
	}
}

// Copy copies a body that has no WriteTo to fw, flushing each read. Its
// buffer lives as long as the stream, so it is small (10,000 idle streams
// must fit in a few hundred MB).
func Copy(fw *Writer, body io.Reader) error {
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
