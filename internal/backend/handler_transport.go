package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// ErrHandlerAborted is the body read error when an in-process handler
// panicked with http.ErrAbortHandler, as a cut connection would show.
var ErrHandlerAborted = errors.New("in-process handler aborted the response")

// HandlerTransport returns a RoundTripper that serves each request by calling
// h in a new goroutine, with no network in between. The response is returned
// as soon as h writes its header (WriteHeader, or the first Write or Flush),
// and its body streams through a pipe, so SSE works as over a socket.
// Cancelling the request's context, or closing the response body, cancels the
// handler's r.Context(). The embedded simulator is served this way, so it
// and real upstreams share the OpenAI backend's code path.
func HandlerTransport(h http.Handler) http.RoundTripper { return handlerTransport{h} }

type handlerTransport struct{ h http.Handler }

// RoundTrip serves req with the handler; see HandlerTransport.
func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	parent := req.Context()
	if err := parent.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(parent)
	sreq := req.Clone(ctx)
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "127.0.0.1:0"
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	if sreq.Host == "" {
		sreq.Host = req.URL.Host
	}
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	// A cancelled request ends the body at once: reads return the cause,
	// and the handler's writes fail.
	stop := context.AfterFunc(parent, func() { pw.CloseWithError(context.Cause(parent)) })

	go func() {
		defer cancel() // as net/http does when ServeHTTP returns
		defer func() {
			if p := recover(); p != nil {
				err := ErrHandlerAborted
				if p != http.ErrAbortHandler {
					err = fmt.Errorf("in-process handler panicked: %v", p)
				}
				w.abort(err)
				return
			}
			w.finish()
		}()
		t.h.ServeHTTP(w, sreq)
	}()

	select {
	case <-w.ready:
	case <-parent.Done():
		// The handler sees its context done and its writes fail on the
		// closed pipe; like a real transport, do not wait for it to return.
		return nil, context.Cause(parent)
	}
	if w.err != nil { // aborted before any header: like a connection reset
		stop()
		return nil, w.err
	}
	body := &pipeBody{pr: pr, parent: parent, cancel: cancel, stop: stop}
	resp := &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		Body:          body,
		ContentLength: -1,
		Request:       req,
	}
	if cl := w.sent.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			resp.ContentLength = n
		}
	}
	return resp, nil
}

// pipeWriter is the handler's ResponseWriter: the header is handed over on
// the first WriteHeader, Write or Flush; the body goes through the pipe,
// unbuffered, so each Write is read before the handler goes on.
type pipeWriter struct {
	header http.Header
	pw     *io.PipeWriter

	once   sync.Once
	ready  chan struct{}
	status int
	sent   http.Header // the header as it was at WriteHeader
	err    error       // set before ready closes when aborted before the header
}

// Header returns the header map the handler fills.
func (w *pipeWriter) Header() http.Header { return w.header }

// WriteHeader hands the status and a copy of the header to RoundTrip.
func (w *pipeWriter) WriteHeader(code int) {
	if code < 200 && code >= 100 {
		return // informational: not forwarded
	}
	w.once.Do(func() {
		w.status = code
		w.sent = w.header.Clone()
		close(w.ready)
	})
}

// Write sends p through the pipe, sending a 200 header first if needed.
func (w *pipeWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		if w.header.Get("Content-Type") == "" && len(p) > 0 {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.WriteHeader(http.StatusOK)
	}
	return w.pw.Write(p)
}

// Flush sends the header if it was not yet sent; the body is never buffered.
func (w *pipeWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
}

// finish ends the body when the handler returns.
func (w *pipeWriter) finish() {
	w.WriteHeader(http.StatusOK) // no-op when already sent
	w.pw.Close()
}

// abort cuts the body (or, before the header, fails the round trip).
func (w *pipeWriter) abort(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.ready)
	})
	w.pw.CloseWithError(err)
}

// pipeBody is the client's end: closing it stops the handler.
type pipeBody struct {
	pr     *io.PipeReader
	parent context.Context
	cancel context.CancelFunc
	stop   func() bool
}

// Read reads the handler's output.
func (b *pipeBody) Read(p []byte) (int, error) {
	n, err := b.pr.Read(p)
	if err != nil && b.parent.Err() != nil {
		// The handler may have ended cleanly on seeing its context done
		// before the pipe was cut: a cancelled request never reads as EOF.
		err = context.Cause(b.parent)
	}
	return n, err
}

// Close stops the handler: its context is cancelled, its writes fail.
func (b *pipeBody) Close() error {
	b.stop()
	b.pr.Close()
	b.cancel()
	return nil
}

var (
	_ http.ResponseWriter = (*pipeWriter)(nil)
	_ http.Flusher        = (*pipeWriter)(nil)
	_ io.ReadCloser       = (*pipeBody)(nil)
)
