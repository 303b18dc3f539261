package openai

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// WireOptions are the limits a Wire puts around a handler.
type WireOptions struct {
	// ReadTimeout bounds reading one request body, from the start of the
	// handler to the body's last byte; a slower body is answered 408.
	// 0 sets no bound.
	ReadTimeout time.Duration
	// MaxBufferedBytes bounds the request-body bytes the whole process
	// holds at once; a body that finds no room is answered 503. 0 sets no
	// bound.
	MaxBufferedBytes int64
	// HalfCloseWindow is how long after the end of the request body an end
	// of input from the client still reads as a half-close rather than the
	// client leaving; DefaultHalfCloseWindow when 0.
	HalfCloseWindow time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// DefaultHalfCloseWindow is WireOptions.HalfCloseWindow's default. A client
// that half-closes sends its FIN right behind the request's last byte; one
// that gives up does so after waiting. A second also covers a lost FIN's
// retransmission.
const DefaultHalfCloseWindow = time.Second

// Wire is the part of serving that only a real connection needs, around a
// handler that knows nothing of sockets:
//
//   - a read deadline on the request body (http.Server.ReadTimeout would
//     stay set for the whole exchange and cut long streams), cleared when
//     the body has been read;
//   - the bound on request-body bytes held by the process, which readBody
//     enforces;
//   - a client that half-closes its side after the request: net/http reads
//     the end of input and cancels the request's context as if the client
//     had gone (golang/go#18527). The handler gets a context that ignores an
//     end of input arriving before the answer started and within
//     HalfCloseWindow of the body's end; any other end of the connection
//     (after the answer started, later, a failed write, a server shutdown)
//     still cancels it. A client that really left within the window is
//     noticed when its answer cannot be written;
//   - an answer never written: net/http would send 200 with an empty body
//     when the handler gives up on a client it believes gone; the Wire
//     aborts the connection instead.
type Wire struct {
	h      http.Handler
	opt    WireOptions
	window time.Duration
	pool   sync.Pool // *exchange
}

// NewWire wraps h.
func NewWire(h http.Handler, opt WireOptions) *Wire {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	wi := &Wire{h: h, opt: opt, window: opt.HalfCloseWindow}
	if wi.window <= 0 {
		wi.window = DefaultHalfCloseWindow
	}
	return wi
}

// The life of an exchange, as the parent context's end is read.
const (
	xReading   int32 = iota // the body is being read: its reader meets the end of input itself
	xWaiting                // the body is read and nothing is answered yet
	xAnswering              // the answer has started
	xDetached               // the client half-closed: its end of input is not its leaving
	xGone                   // the handler's context is cancelled
)

// exchange is one request's state, pooled.
type exchange struct {
	wire     *Wire
	w        http.ResponseWriter // the server's
	rbody    io.ReadCloser       // the server's request body
	parent   context.Context     // the server's request context
	cancel   context.CancelCauseFunc
	stop     func() bool
	onParent func() // x.parentDone, made once per exchange
	state    atomic.Int32
	bodyEnd  atomic.Int64 // UnixNano when the body was read
	h1       bool         // HTTP/1: an end of input may be a half-close
	started  bool         // the answer has started (handler goroutine only)
	deadline bool         // a read deadline is set
	ended    bool         // the body has been read (handler goroutine only)
	body     wireBody
	resp     wireWriter
}

// ServeHTTP serves r through the wrapped handler. Its frame stays small: a
// stream's goroutine parks under it, and the stack is paid per open stream.
func (wi *Wire) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x, r := wi.begin(w, r)
	wi.h.ServeHTTP(&x.resp, r)
	if !wi.end(x) {
		// The handler gave up without a word (it took the client for gone):
		// net/http would send 200 and an empty body.
		panic(http.ErrAbortHandler)
	}
}

// begin sets up x for r and returns the request the handler gets. A
// handler that panics leaves x to the collector.
func (wi *Wire) begin(w http.ResponseWriter, r *http.Request) (*exchange, *http.Request) {
	x, _ := wi.pool.Get().(*exchange)
	if x == nil {
		x = &exchange{wire: wi}
		x.onParent = x.parentDone
		x.body.x, x.resp.x = x, x
	}
	x.w, x.parent, x.started, x.deadline, x.ended = w, r.Context(), false, false, false
	x.h1 = r.ProtoMajor == 1
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(x.parent))
	x.cancel = cancel
	r = r.WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		x.state.Store(xReading)
		x.rbody = r.Body
		r.Body = &x.body
		if t := wi.opt.ReadTimeout; t > 0 {
			x.deadline = setReadDeadline(w, wi.opt.Now().Add(t)) == nil
		}
	} else {
		x.state.Store(xWaiting)
		x.bodyEnd.Store(wi.opt.Now().UnixNano())
	}
	x.stop = context.AfterFunc(x.parent, x.onParent)
	return x, r
}

// end releases x and reports whether the handler answered. An exchange
// whose parentDone has started is left to the collector, untouched: that
// call may still be reading it.
func (wi *Wire) end(x *exchange) bool {
	started := x.started
	if !x.stop() {
		x.cancel(context.Canceled)
		return started
	}
	x.cancel(context.Canceled)
	x.w, x.rbody, x.parent, x.cancel, x.stop = nil, nil, nil, nil, nil
	wi.pool.Put(x)
	return started
}

// parentDone runs when the server's request context ends, and decides
// whether that ends the handler's.
func (x *exchange) parentDone() {
	if cause := context.Cause(x.parent); cause != context.Canceled || !x.h1 {
		// Not net/http's own cancel on an HTTP/1 connection (the end of
		// input, a failed write): the server is shutting down, or an
		// HTTP/2 client reset the stream, which is never a half-close.
		x.state.Store(xGone)
		x.cancel(cause)
		return
	}
	for {
		s := x.state.Load()
		var next int32
		switch s {
		case xReading:
			// The body's reader sees the end of input (or the read
			// deadline) itself, and the handler answers for it.
			next = xDetached
		case xWaiting:
			next = xGone
			if x.wire.opt.Now().Sub(time.Unix(0, x.bodyEnd.Load())) <= x.wire.window {
				next = xDetached
			}
		case xAnswering:
			next = xGone
		default:
			return
		}
		if x.state.CompareAndSwap(s, next) {
			if next == xGone {
				x.cancel(context.Canceled)
			}
			return
		}
	}
}

// answering marks the start of the answer. An end of input that came
// before it is judged now, so a late parentDone does not take it for the
// client leaving mid-answer.
func (x *exchange) answering() {
	x.started = true
	if x.parent.Err() != nil {
		x.parentDone()
	}
	x.state.CompareAndSwap(xReading, xAnswering)
	x.state.CompareAndSwap(xWaiting, xAnswering)
}

// bodyRead clears the read deadline: the connection's background read
// must not time out under a long stream.
func (x *exchange) bodyRead() {
	if x.ended {
		return
	}
	x.ended = true
	if x.deadline {
		setReadDeadline(x.w, time.Time{})
	}
	x.bodyEnd.Store(x.wire.opt.Now().UnixNano())
	x.state.CompareAndSwap(xReading, xWaiting)
}

// setReadDeadline is http.ResponseController's, without allocating one
// when w is net/http's own writer.
func setReadDeadline(w http.ResponseWriter, t time.Time) error {
	if d, ok := w.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return http.NewResponseController(w).SetReadDeadline(t)
}

// wireBody is the request body as the handler reads it.
type wireBody struct{ x *exchange }

// Read reads the server's body, marking its end and naming a read that
// failed at the deadline.
func (b *wireBody) Read(p []byte) (int, error) {
	x := b.x
	n, err := x.rbody.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		x.bodyRead()
	case x.deadline && errors.Is(err, os.ErrDeadlineExceeded):
		err = &bodyTimeout{limit: x.wire.opt.ReadTimeout, err: err}
	}
	return n, err
}

// Close closes the server's body.
func (b *wireBody) Close() error { return b.x.rbody.Close() }

func (b *wireBody) bufferLimit() int64 { return b.x.wire.opt.MaxBufferedBytes }

// wireWriter is the response writer as the handler sees it: the server's,
// noting when the answer starts.
type wireWriter struct{ x *exchange }

// Header returns the server's header map.
func (ww *wireWriter) Header() http.Header { return ww.x.w.Header() }

// WriteHeader sends the status.
func (ww *wireWriter) WriteHeader(code int) {
	if !ww.x.started {
		ww.x.answering()
	}
	ww.x.w.WriteHeader(code)
}

// Write writes to the answer's body.
func (ww *wireWriter) Write(p []byte) (int, error) {
	if !ww.x.started {
		ww.x.answering()
	}
	return ww.x.w.Write(p)
}

// Flush sends what was written.
func (ww *wireWriter) Flush() {
	if !ww.x.started {
		ww.x.answering()
	}
	if f, ok := ww.x.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the server's writer, for http.ResponseController.
func (ww *wireWriter) Unwrap() http.ResponseWriter { return ww.x.w }

var (
	_ http.Handler = (*Wire)(nil)
	_ http.Flusher = (*wireWriter)(nil)
	_ bodyBudget   = (*wireBody)(nil)
)
