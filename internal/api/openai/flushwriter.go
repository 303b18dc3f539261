package openai

import (
	"io"
	"net/http"

	"github.com/omnigate/omnigate/internal/dispatch"
)

// flushWriter is the client connection as a writer with a Flush method: a
// body's WriteTo calls Flush whenever it is about to wait for the upstream,
// so each piece of a stream reaches the client as soon as it arrived,
// without a buffer of our own and without a flush per piece. It keeps the
// first write error, so the relay can tell a client that went away from an
// upstream that broke.
type flushWriter struct {
	w   io.Writer
	f   http.Flusher // nil: no flushing
	tap dispatch.Tap // sees every piece written
	err error
}

// Write writes p to the client.
func (fw *flushWriter) Write(p []byte) (int, error) {
	if fw.err != nil {
		return 0, fw.err
	}
	fw.tap.Write(p)
	n, err := fw.w.Write(p)
	if err != nil {
		fw.err = err
	}
	return n, err
}

// Flush sends what was written so far.
func (fw *flushWriter) Flush() {
	if fw.f != nil && fw.err == nil {
		fw.f.Flush()
	}
}

var _ http.Flusher = (*flushWriter)(nil)
