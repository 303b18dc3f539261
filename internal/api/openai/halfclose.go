package openai

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/omnigate/omnigate/internal/relay"
)

// A client may shut down its sending side once the request is out (some
// proxies and scripted clients do). net/http's background read then meets
// the end of input and cancels the request's context as if the client had
// gone (golang/go#18527), and the answer is lost. Wrapping every request in
// a context of our own to ignore that would cost every request; instead
// the rare request it hits is served again, detached from that cancel:
// when its context ends with net/http's own cancel on an HTTP/1
// connection, before any byte of the answer was written and within
// HalfCloseWindow of the body's end. A client that really left in that
// window is noticed when its answer cannot be written; its engine work is
// the price, and the engine's attempt that the cancel cut counts as
// neutral, never against the deployment.

// DefaultHalfCloseWindow is Options.HalfCloseWindow's default. A client
// that half-closes sends its FIN right behind the request's last byte; one
// that gives up does so after waiting. A second also covers a lost FIN's
// retransmission.
const DefaultHalfCloseWindow = time.Second

// ErrShutdown is the cause the server's base context ends with when the
// shutdown grace runs out: a stream still open then is told so in an
// error event, never ended cleanly as if it were complete. It is the
// relay's, which every front end's streams share.
var ErrShutdown = relay.ErrShutdown

// shutdownKey carries the server's base context, whose end (the shutdown
// grace running out) must still reach a detached request.
type shutdownKey struct{}

// WithShutdown returns ctx carrying itself as the context whose end stops
// requests served detached from their own (see halfClosed). serve uses it
// as http.Server.BaseContext.
func WithShutdown(ctx context.Context) context.Context {
	return context.WithValue(ctx, shutdownKey{}, ctx)
}

// halfClosed reports whether r's context ended by net/http reading the end
// of input within the window after the body's end at bodyEnd.
func (s *Server) halfClosed(r *http.Request, bodyEnd time.Time) bool {
	ctx := r.Context()
	return r.ProtoMajor == 1 && ctx.Err() != nil && context.Cause(ctx) == context.Canceled &&
		s.now().Sub(bodyEnd) <= s.opt.HalfCloseWindow
}

// detach returns a context for serving r again: r's values, no cancel from
// r, the server's shutdown still. Call stop when the request is done.
func detach(r *http.Request) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	base, _ := r.Context().Value(shutdownKey{}).(context.Context)
	if base == nil {
		return ctx, func() { cancel(nil) }
	}
	unhook := context.AfterFunc(base, func() { cancel(context.Cause(base)) })
	return ctx, func() { unhook(); cancel(nil) }
}

// errNoDeadline: the writer cannot set read deadlines (a test recorder).
var errNoDeadline = errors.New("the response writer cannot set a read deadline")

// setReadDeadline is http.ResponseController's for net/http's own writer
// (the only one the handler is given), without allocating a controller.
func setReadDeadline(w http.ResponseWriter, t time.Time) error {
	if d, ok := w.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return errNoDeadline
}
