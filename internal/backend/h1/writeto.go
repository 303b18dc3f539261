package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
)

var (
	errChunkHeader   = errors.New("h1: malformed chunked encoding")
	errChunkLineLong = errors.New("h1: chunk header line too long")
	errChunkOverhead = errors.New("h1: chunked encoding contains too much non-data")
)

// WriteError is what body.WriteTo returns when the writer failed: Err is
// the writer's error. Any other error of WriteTo is a failure reading the
// upstream (mapped as Read maps it).
type WriteError struct{ Err error }

// Error returns the writer's error text.
func (e *WriteError) Error() string { return "h1: write: " + e.Err.Error() }

// Unwrap returns the writer's error.
func (e *WriteError) Unwrap() error { return e.Err }

// WriteTo writes the rest of the body to w straight from the connection's
// buffer, with no buffer of its own: one w.Write per piece of data, as
// soon as it is there, never waiting for more first. When w has a Flush
// method (an http.Flusher), it is called each time the body is about to
// read from the socket, so a stream's events reach the client as they
// arrive while events that arrived together are flushed together. It returns nil at the
// end of the body (and the connection goes back to the pool as with Read),
// a *WriteError when w fails (the body stays open: Close it), or the read
// error. Like Read, it must not run concurrently with Close.
func (b *body) WriteTo(w io.Writer) (int64, error) {
	if f, ok := w.(interface{ Flush() }); ok && b.c != nil {
		b.c.rd.flush = f // end clears it before the connection is reused
		defer func() {
			if b.c != nil {
				b.c.rd.flush = nil
			}
		}()
	}
	var total int64
	for b.err == nil {
		p, err := b.next()
		if err != nil {
			b.end(err)
			break
		}
		n, werr := w.Write(p)
		if n < 0 || n > len(p) {
			n = 0
			if werr == nil {
				werr = errors.New("invalid write result")
			}
		}
		b.consume(n)
		total += int64(n)
		if werr == nil && n < len(p) {
			werr = io.ErrShortWrite
		}
		if werr != nil {
			return total, &WriteError{Err: werr}
		}
		if b.mode == bodyLength && b.n == 0 {
			b.end(io.EOF) // end at once: the connection goes back now
		}
	}
	if b.err == io.EOF {
		return total, nil
	}
	return total, b.err
}

// next returns the body data buffered now, waiting for some only when none
// is buffered; it does not consume it (see consume). At the end of a
// chunked or until-close body it returns io.EOF.
func (b *body) next() ([]byte, error) {
	limit := int64(-1)
	switch b.mode {
	case bodyLength:
		limit = b.n
	case bodyChunked:
		for b.left == 0 {
			if err := b.nextChunk(); err != nil {
				return nil, err
			}
		}
		limit = b.left
	}
	br := b.c.br
	if br.Buffered() == 0 {
		if _, err := br.Peek(1); err != nil {
			if err == io.EOF && b.mode != bodyEOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	n := br.Buffered()
	if limit >= 0 && int64(n) > limit {
		n = int(limit)
	}
	p, _ := br.Peek(n)
	return p, nil
}

// consume drops n bytes of data returned by next.
func (b *body) consume(n int) {
	b.c.br.Discard(n)
	switch b.mode {
	case bodyLength:
		b.n -= int64(n)
	case bodyChunked:
		b.left -= int64(n)
	}
}

// nextChunk reads the CRLF ending the previous chunk and the next chunk
// header. After the last chunk it skips the trailer and returns io.EOF.
func (b *body) nextChunk() error {
	br := b.c.br
	if b.crlf {
		p, err := br.Peek(2)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if p[0] != '\r' || p[1] != '\n' {
			return errChunkHeader
		}
		br.Discard(2)
		b.crlf = false
	}
	line, err := readChunkLine(br)
	if err != nil {
		return err
	}
	n, err := parseChunkSize(line)
	if err != nil {
		return err
	}
	// Like net/http, refuse a body that is mostly framing: up to 16 bytes
	// of chunk header per chunk plus twice the chunk's data are free, and
	// no more than 16 KiB beyond that in all (extensions are the only way
	// to send more).
	b.excess += int64(len(line)) - 16 - 2*min(n, math.MaxInt64/4)
	b.excess = max(b.excess, 0)
	if b.excess > 16<<10 {
		return errChunkOverhead
	}
	if n == 0 {
		return b.readTrailer()
	}
	b.left, b.crlf = n, true
	return nil
}

// maxChunkLine is the longest chunk header line net/http reads, its LF
// included.
const maxChunkLine = 4 << 10

// readChunkLine reads a chunk header line ending in CRLF, with no other CR
// in it, as net/http requires. Lines longer than the connection's buffer
// (long extensions, or trailing white space) are gathered in a fresh
// slice; others are returned in place.
func readChunkLine(br *reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull && len(long) <= maxChunkLine {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err == nil && len(line) > maxChunkLine {
		err = errChunkLineLong
	}
	switch err {
	case nil:
	case io.EOF:
		return nil, io.ErrUnexpectedEOF
	case bufio.ErrBufferFull:
		return nil, errChunkLineLong
	default:
		return nil, err
	}
	if bytes.IndexByte(line, '\r') != len(line)-2 {
		return nil, errChunkHeader // a bare LF or a stray CR, as net/http refuses them
	}
	return line, nil
}

// parseChunkSize parses a chunk-size line ending in CRLF the way net/http
// does: trailing spaces and tabs dropped, then any extension from ';' on,
// then 1 to 16 hex digits and nothing else.
func parseChunkSize(line []byte) (int64, error) {
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	for n := len(line); n > 0 && (line[n-1] == ' ' || line[n-1] == '\t'); n-- {
		line = line[:n-1]
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	if len(line) == 0 || len(line) > 16 {
		return 0, errChunkHeader
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, errChunkHeader
		}
		if n > math.MaxInt64>>4 {
			return 0, errChunkHeader // no body is that long
		}
		n = n<<4 | int64(c)
	}
	return n, nil
}

var _ io.WriterTo = (*body)(nil)
