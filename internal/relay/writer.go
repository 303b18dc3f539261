// Package relay is the part of relaying an answer's event stream that every
// front end shares: the writer that feeds the answer's taps and, for a
// continuable stream, passes whole events only and holds back an engine's
// error event; the judgement of how a stream ended; and the continuation of
// a stream its upstream broke, through the request core. A front end gives
// it a writer for its own wire (an HTTP response, a gRPC stream) and tells
// the client what End says.
package relay

import (
	"bytes"
	"errors"
	"io"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/dispatch"
)

// Flusher sends what was written so far (http.Flusher is one).
type Flusher interface {
	Flush()
}

// Writer is the client's side of a stream as a writer with a Flush method:
// a body's WriteTo calls Flush whenever it is about to wait for the
// upstream, so each piece of a stream reaches the client as soon as it
// arrived, without a buffer of our own and without a flush per piece. It
// keeps the first write error, so the relay can tell a client that went
// away from an upstream that broke.
//
// For a continuable stream (Whole) it writes whole events only, holding
// back the start of one until its end arrives: a stream cut inside an
// event and continued elsewhere must not leave the client half an event.
//
// Its frames sit under every parked stream's WriteTo: it adds none of its
// own between the body and the client's writer.
type Writer struct {
	W     io.Writer    // the client's wire
	F     Flusher      // nil: no flushing
	Tap   dispatch.Tap // sees every piece written
	Whole bool
	err   error
	carry []byte // with Whole: the start of an event not yet written
	// held is an error event of the upstream's that a whole-events stream
	// did not pass on: the stream may yet be continued elsewhere.
	held []byte
}

// errHeld is what Write returns once it held back an error event: the
// upstream failed, the client is fine.
var errHeld = errors.New("the upstream sent an error event")

// Write writes p to the client.
func (fw *Writer) Write(p []byte) (int, error) {
	if fw.err != nil {
		return 0, fw.err
	}
	if fw.Whole {
		return fw.writeWhole(p)
	}
	return fw.write(p)
}

// Err is the first error writing to the client: it went away.
func (fw *Writer) Err() error { return fw.err }

// Held is the engine's error event a continuable stream held back and
// could not continue past (End told the client nothing else): it says
// best what happened. nil when none was held.
func (fw *Writer) Held() []byte { return fw.held }

// writeWhole writes the whole events of carry and p, and keeps the rest.
func (fw *Writer) writeWhole(p []byte) (int, error) {
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
			fw.Whole = false
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
func (fw *Writer) end() {
	if len(fw.carry) > 0 && fw.err == nil && bytes.Equal(bytes.TrimSpace(fw.carry), []byte("data: [DONE]")) {
		fw.write(fw.carry)
		fw.Flush()
	}
	fw.carry = fw.carry[:0]
}

// write writes p to the client as it is.
func (fw *Writer) write(p []byte) (int, error) {
	fw.Tap.Write(p)
	n, err := fw.W.Write(p)
	if err != nil {
		fw.err = err
	}
	return n, err
}

// WriteEvent writes ev, a whole event (the engine's error event held
// back), to the client as it is, past a whole-events stream's holding
// back, and flushes.
func (fw *Writer) WriteEvent(ev []byte) {
	if fw.err != nil {
		return
	}
	fw.write(ev)
	fw.Flush()
}

// ErrorEvent ends a stream, whose status line is gone, with e as an SSE
// event, as OpenAI does, and no [DONE], so it never looks whole. It is
// the gateway's own: it goes out as it is, past a whole-events stream's
// holding back.
func (fw *Writer) ErrorEvent(e *apierror.Error) {
	if fw.err != nil {
		return
	}
	fw.write([]byte("data: "))
	fw.write(e.JSON()) // ends in a newline: one more ends the event
	fw.write([]byte("\n"))
	fw.Flush()
}

// Flush sends what was written so far.
func (fw *Writer) Flush() {
	if fw.F != nil && fw.err == nil {
		fw.F.Flush()
	}
}

var _ Flusher = (*Writer)(nil)
