package openai

import (
	"io"
	"net/http"
)

// flushWriter is the client connection as a writer with a Flush method: a
// body's WriteTo calls Flush whenever it is about to wait for the upstream,
// so each piece of a stream reaches the client as soon as it arrived,
// without a buffer of our own and without a flush per piece.
type flushWriter struct {
	w io.Writer
	f http.Flusher // nil: no flushing
}

// Write writes p to the client.
func (fw flushWriter) Write(p []byte) (int, error) { return fw.w.Write(p) }

// Flush sends what was written so far.
func (fw flushWriter) Flush() {
	if fw.f != nil {
		fw.f.Flush()
	}
}

var _ http.Flusher = flushWriter{}
