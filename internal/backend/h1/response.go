package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var (
	errHeadTooLarge = errors.New("h1: response head too large")
	errBodyClosed   = errors.New("h1: read on closed response body")
)

// readHead reads one response head: the status line and the header. The
// head is copied into one string that every key and value slices, so a
// typical response costs a handful of allocations. scratch is reused
// between calls.
func readHead(br *reader, scratch *[]byte) (*http.Response, error) {
	buf := (*scratch)[:0]
	defer func() { *scratch = buf[:0] }()
	var endsArr [24]int
	ends := endsArr[:0] // end offset of each line in buf
	for {
		start := len(buf)
		for {
			frag, err := br.ReadSlice('\n')
			buf = append(buf, frag...)
			if len(buf) > maxHeadBytes {
				return nil, errHeadTooLarge
			}
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull {
				if err == io.EOF && len(buf) > 0 {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
		}
		end := len(buf) - 1
		if end > start && buf[end-1] == '\r' {
			end--
		}
		buf = buf[:end]
		if end == start {
			if len(ends) == 0 {
				return nil, errors.New("h1: empty status line")
			}
			break
		}
		ends = append(ends, end)
	}
	return parseHead(string(buf), ends)
}

// parseHead parses the lines of a head held in s; ends are the offsets
// where each line ends.
func parseHead(s string, ends []int) (*http.Response, error) {
	line := s[:ends[0]]
	proto, status, ok := strings.Cut(line, " ")
	if !ok {
		return nil, fmt.Errorf("h1: malformed status line %q", line)
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok || major != 1 {
		return nil, fmt.Errorf("h1: malformed HTTP version %q", proto)
	}
	status = strings.TrimLeft(status, " ")
	code, _, _ := strings.Cut(status, " ")
	if len(code) != 3 || code[0] < '1' || code[0] > '9' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return nil, fmt.Errorf("h1: malformed status code %q", code)
	}
	resp := &http.Response{
		Status:     status,
		StatusCode: int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0'),
		Proto:      proto,
		ProtoMajor: major,
		ProtoMinor: minor,
		Header:     make(http.Header, len(ends)-1),
	}
	vals := make([]string, len(ends)-1)
	prev := ends[0]
	for i, end := range ends[1:] {
		line := s[prev:end]
		prev = end
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return nil, fmt.Errorf("h1: malformed header line %q", line)
		}
		key := line[:colon]
		if !validFieldName(key) { // also rejects obsolete line folding
			return nil, fmt.Errorf("h1: malformed header field name %q", key)
		}
		if !isCanonical(key) {
			key = http.CanonicalHeaderKey(key)
		}
		v := strings.Trim(line[colon+1:], " \t")
		vals[i] = v
		if old, ok := resp.Header[key]; ok {
			resp.Header[key] = append(old, v)
		} else {
			resp.Header[key] = vals[i : i+1 : i+1]
		}
	}
	return resp, nil
}

// isCanonical reports whether key is already in CanonicalHeaderKey form.
func isCanonical(key string) bool {
	upper := true
	for i := 0; i < len(key); i++ {
		c := key[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// Body framing modes.
const (
	bodyLength  = iota // Content-Length bytes
	bodyChunked        // chunked transfer coding
	bodyEOF            // until the server closes
)

// startBody decides the framing of resp and attaches its body. When the
// response has no body the connection is released at once. closing says
// the connection must not be reused (the request was not all written).
func (c *conn) startBody(ctx context.Context, t *Transport, x *exchange, resp *http.Response, stop func() bool, closing bool) error {
	h := resp.Header
	ch := h["Connection"]
	closing = closing || x.close || t.maxIdle() < 0 || headerHasToken(ch, "close") ||
		(resp.ProtoMinor == 0 && !headerHasToken(ch, "keep-alive"))
	mode, length := bodyEOF, int64(-1)
	if te, ok := h["Transfer-Encoding"]; ok {
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") || resp.ProtoMinor == 0 {
			return fmt.Errorf("h1: unsupported transfer encoding %q", te)
		}
		mode = bodyChunked
		delete(h, "Transfer-Encoding")
		delete(h, "Content-Length")
		resp.TransferEncoding = []string{"chunked"}
	} else if cl, ok := h["Content-Length"]; ok {
		n, err := parseContentLength(cl)
		if err != nil {
			return err
		}
		mode, length = bodyLength, n
	}
	resp.ContentLength = length
	noBody := x.method == http.MethodHead || resp.StatusCode == http.StatusNoContent ||
		resp.StatusCode == http.StatusNotModified || (mode == bodyLength && length == 0)
	if noBody {
		if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
			resp.ContentLength = 0
		}
		resp.Close = closing
		resp.Body = http.NoBody
		c.release(t, stop, !closing)
		return nil
	}
	if mode == bodyEOF {
		closing = true
	}
	resp.Close = closing
	b := &body{c: c, t: t, ctx: ctx, stop: stop, mode: uint8(mode), n: length, keep: !closing}
	// From here the idle timeout bounds each wait, or the deadline alone;
	// the head timeout still bounds the wait for the body's first byte
	// unless it came with the head.
	c.rd.deadline, c.rd.idle = x.deadline, x.idleTimeout
	if c.br.Buffered() > 0 {
		c.rd.first = time.Time{} // the first byte came with the head
	}
	if c.rd.first.IsZero() && x.idleTimeout <= 0 {
		c.rd.phase = PhaseDeadline
		c.setReadDeadline(x.deadline)
	}
	resp.Body = b
	return nil
}

func parseContentLength(vs []string) (int64, error) {
	n := int64(-1)
	for _, v := range vs {
		m, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || m < 0 || (n >= 0 && m != n) {
			return 0, fmt.Errorf("h1: bad Content-Length %q", vs)
		}
		n = m
	}
	return n, nil
}

// release ends the exchange on c: back to the pool when it ended cleanly
// and the connection may be kept, else closed.
func (c *conn) release(t *Transport, stop func() bool, keep bool) {
	if stop != nil && !stop() {
		keep = false // the context fired: abort closed or is closing nc
	}
	if keep && c.br.Buffered() == 0 {
		c.br.releaseIfEmpty() // an idle connection holds no buffer
		t.put(c)
		return
	}
	c.close()
}

// body is a response body read straight from the connection. Read returns
// what is available without waiting to fill p, so streams flow as they
// arrive. Close must not be called concurrently with Read.
type body struct {
	c    *conn // nil once the exchange is over
	t    *Transport
	ctx  context.Context
	stop func() bool
	mode uint8
	n    int64 // bytes left, for bodyLength
	crlf bool  // chunked: the CRLF after a chunk's data is still to read
	left int64 // chunked: bytes left in the current chunk
	// chunked: framing bytes beyond what the data allows (see nextChunk)
	excess int64
	keep   bool
	err    error // sticky: io.EOF, errBodyClosed or the failure
}

// Read reads the body; see body.
func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	switch b.mode {
	case bodyLength:
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err = b.c.br.Read(p)
		b.n -= int64(n)
		if b.n == 0 {
			err = io.EOF // end at once: the connection goes back now
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	case bodyChunked:
		var q []byte
		if q, err = b.next(); err == nil {
			n = copy(p, q)
			b.consume(n)
		}
	default:
		n, err = b.c.br.Read(p)
	}
	if err != nil {
		b.end(err)
	}
	return n, b.err
}

// readTrailer skips the trailer section after the last chunk.
func (b *body) readTrailer() error {
	total := 0
	start := true // at the start of a line
	for {
		line, err := b.c.br.ReadSlice('\n')
		if total += len(line); total > maxHeadBytes {
			return errHeadTooLarge
		}
		switch err {
		case nil:
		case bufio.ErrBufferFull: // a line longer than the buffer: read on
			start = false
			continue
		case io.EOF:
			return io.ErrUnexpectedEOF
		default:
			return err
		}
		if start && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return io.EOF
		}
		start = true
	}
}

// end finishes the exchange with err: io.EOF releases the connection, any
// other error closes it.
func (b *body) end(err error) {
	c := b.c
	b.c = nil
	c.rd.flush = nil // the connection may serve another request next
	if err == io.EOF {
		b.err = io.EOF
		c.release(b.t, b.stop, b.keep && b.mode != bodyEOF)
		return
	}
	if b.stop != nil {
		b.stop()
	}
	c.close()
	b.err = c.mapErr(b.ctx, err, c.rd.phase)
}

// Close ends the body. Before EOF the connection is closed, unless the
// rest of a Content-Length body is already buffered and can be skipped.
func (b *body) Close() error {
	if b.c == nil {
		if b.err == io.EOF || b.err == nil {
			b.err = errBodyClosed
		}
		return nil
	}
	c := b.c
	if b.mode == bodyLength && b.keep && int64(c.br.Buffered()) >= b.n {
		c.br.Discard(int(b.n))
		b.c = nil
		c.release(b.t, b.stop, true)
	} else {
		b.c = nil
		if b.stop != nil {
			b.stop()
		}
		c.close()
	}
	b.err = errBodyClosed
	return nil
}

var _ io.ReadCloser = (*body)(nil)
