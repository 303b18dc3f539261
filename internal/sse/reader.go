// Package sse reads Server-Sent Events streams on the hot path: one reusable
// buffer per stream, no allocation per event once the buffers have grown to
// the stream's largest event.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// DefaultMaxEventSize bounds one event (and one line). Audio chunks can be
// megabytes of base64, so the bound is generous; it exists to stop a broken
// upstream from growing a buffer without end.
const DefaultMaxEventSize = 64 << 20

// ErrEventTooLarge is returned when a line or an event's data exceeds the
// reader's maximum size.
var ErrEventTooLarge = errors.New("sse: event too large")

var doneData = []byte("[DONE]")

// Event is one dispatched event. Its slices are valid until the next call to
// Next or Reset.
type Event struct {
	// Type is the value of the last "event:" field, nil when none was sent.
	Type []byte
	// Data is the "data:" lines joined with "\n".
	Data []byte
	// ID is the value of the last "id:" field of this event, nil when none.
	ID []byte
}

// Done reports whether the event is the OpenAI end-of-stream sentinel
// "data: [DONE]".
func (e Event) Done() bool { return bytes.Equal(e.Data, doneData) }

// Reader reads events from an SSE stream. Lines end in LF or CRLF; a lone CR
// is not treated as a line end (no OpenAI-compatible server sends one).
type Reader struct {
	br      *bufio.Reader
	max     int
	long    []byte // assembles a line longer than the bufio buffer
	data    []byte
	typ     []byte
	id      []byte
	hasData bool
	hasType bool
	hasID   bool
	started bool // past the optional leading BOM
}

// NewReader returns a Reader reading from r with the default maximum event
// size.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 32<<10), max: DefaultMaxEventSize}
}

// SetMaxEventSize changes the largest line or event data accepted, in bytes.
func (r *Reader) SetMaxEventSize(n int) { r.max = n }

// Reset discards all state and reads from src from now on, keeping the
// buffers.
func (r *Reader) Reset(src io.Reader) {
	r.br.Reset(src)
	r.long = r.long[:0]
	r.data = r.data[:0]
	r.typ = r.typ[:0]
	r.id = r.id[:0]
	r.hasData, r.hasType, r.hasID, r.started = false, false, false, false
}

// Next returns the next event. At the end of the stream it returns io.EOF;
// a stream cut in the middle of a line returns io.ErrUnexpectedEOF. An event
// whose lines are complete but whose blank terminating line is missing at the
// end of the stream is still dispatched.
func (r *Reader) Next() (Event, error) {
	r.data = r.data[:0]
	r.typ = r.typ[:0]
	r.id = r.id[:0]
	r.hasData, r.hasType, r.hasID = false, false, false
	for {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && (r.hasData || r.hasType) {
				return r.event(), nil
			}
			return Event{}, err
		}
		if len(line) == 0 {
			if r.hasData || r.hasType {
				return r.event(), nil
			}
			continue
		}
		if line[0] == ':' {
			continue // comment
		}
		name, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			name, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(name) { // no allocation: the compiler special-cases this
		case "data":
			if r.hasData {
				r.data = append(r.data, '\n')
			}
			if len(r.data)+len(value) > r.max {
				return Event{}, ErrEventTooLarge
			}
			r.data = append(r.data, value...)
			r.hasData = true
		case "event":
			r.typ = append(r.typ[:0], value...)
			r.hasType = true
		case "id":
			r.id = append(r.id[:0], value...)
			r.hasID = true
		}
		// "retry" and unknown fields are ignored, as the spec says.
	}
}

func (r *Reader) event() Event {
	ev := Event{Data: r.data}
	if r.hasType {
		ev.Type = r.typ
	}
	if r.hasID {
		ev.ID = r.id
	}
	return ev
}

// readLine returns the next line without its line ending. The slice is valid
// until the next read.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.long = append(r.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = r.br.ReadSlice('\n')
			if len(r.long)+len(line) > r.max+2 {
				return nil, ErrEventTooLarge
			}
			r.long = append(r.long, line...)
		}
		line = r.long
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if !r.started {
		r.started = true
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	return line, nil
}
