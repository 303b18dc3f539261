package openai

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/dispatch"
)

// flushWriter is the client connection as a writer with a Flush method: a
// body's WriteTo calls Flush whenever it is about to wait for the upstream,
// so each piece of a stream reaches the client as soon as it arrived,
// without a buffer of our own and without a flush per piece. It keeps the
// first write error, so the relay can tell a client that went away from an
// upstream that broke.
//
// For a continuable stream (whole) it writes whole events only, holding
// back the start of one until its end arrives: a stream cut inside an
// event and continued elsewhere must not leave the client half an event.
type flushWriter struct {
	w     io.Writer
	f     http.Flusher // nil: no flushing
	tap   dispatch.Tap // sees every piece written
	err   error
	whole bool
	carry []byte // with whole: the start of an event not yet written
	// held is an error event of the upstream's that a whole-events stream
	// did not pass on: the stream may yet be continued elsewhere.
	held []byte
}

// errHeld is what Write returns once it held back an error event: the
// upstream failed, the client is fine.
var errHeld = errors.New("the upstream sent an error event")

// Write writes p to the client.
func (fw *flushWriter) Write(p []byte) (int, error) {
	if fw.err != nil {
		return 0, fw.err
	}
	if fw.whole {
		return fw.writeWhole(p)
	}
	return fw.write(p)
}

// writeWhole writes the whole events of carry and p, and keeps the rest.
func (fw *flushWriter) writeWhole(p []byte) (int, error) {
	buf := p
	if len(fw.carry) > 0 {
		fw.carry = append(fw.carry, p...)
		buf = fw.carry
	}
	end := bytes.LastIndex(buf, eventEnd)
	if end < 0 {
		if len(fw.carry) == 0 {
			fw.carry = append(fw.carry, p...)
		}
		if len(fw.carry) > maxEvent { // no events here: pass it on as it is
			fw.whole = false
			_, err := fw.write(fw.carry)
			fw.carry = fw.carry[:0]
			return len(p), err
		}
		return len(p), nil
	}
	end += len(eventEnd)
	if i := errorEventAt(buf[:end]); i >= 0 {
		// Up to the engine's error event, and no further.
		if _, err := fw.write(buf[:i]); err != nil {
			return 0, err
		}
		ev := buf[i:end]
		if j := bytes.Index(ev, eventEnd); j >= 0 {
			ev = ev[:j+len(eventEnd)]
		}
		fw.held = append(fw.held[:0], ev...)
		fw.carry = fw.carry[:0]
		return len(p), errHeld
	}
	if _, err := fw.write(buf[:end]); err != nil {
		return 0, err
	}
	rest := buf[end:]
	if len(fw.carry) > 0 { // buf is carry
		fw.carry = fw.carry[:copy(fw.carry, rest)]
	} else { // buf is p, which the caller reuses
		fw.carry = append(fw.carry[:0], rest...)
	}
	return len(p), nil
}

// errorEventAt is the offset of the first error event among the whole
// events of b, or -1.
func errorEventAt(b []byte) int {
	for off := 0; off < len(b); {
		if backend.ErrorEvent(b[off:]) {
			return off
		}
		i := bytes.Index(b[off:], eventEnd)
		if i < 0 {
			return -1
		}
		off += i + len(eventEnd)
	}
	return -1
}

// maxEvent bounds what a whole-events stream holds back.
const maxEvent = 1 << 20

var eventEnd = []byte("\n\n")

// end writes what a whole-events stream still holds once it ended, when
// it is a whole last event without its blank line ([DONE]); the start of
// a cut event is dropped.
func (fw *flushWriter) end() {
	if len(fw.carry) > 0 && fw.err == nil && bytes.Equal(bytes.TrimSpace(fw.carry), []byte("data: [DONE]")) {
		fw.write(fw.carry)
		fw.Flush()
	}
	fw.carry = fw.carry[:0]
}

// write writes p to the client as it is.
func (fw *flushWriter) write(p []byte) (int, error) {
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
