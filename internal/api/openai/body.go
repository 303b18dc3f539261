package openai

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/bufpool"
)

// checkContentType accepts application/json (any parameters) or no header.
func checkContentType(ct string) error {
	if ct == "" || ct == "application/json" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		return nil
	}
	hint := ""
	if mt == "application/x-www-form-urlencoded" {
		hint = " (curl sends that for -d unless you add -H 'Content-Type: application/json')"
	}
	return apierror.New(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"Content-Type must be application/json, not %q%s.", ct, hint)
}

// bufferedBytes is the capacity of the request-body buffers the process
// holds right now. It is process-wide, like the memory it stands for: every
// Server's bodies count, and Options.MaxBufferedBytes bounds the sum.
var bufferedBytes atomic.Int64

// BufferedBytes reports the bytes of request-body buffers held right now.
func BufferedBytes() int64 { return bufferedBytes.Load() }

// reserve counts n more bytes of body buffers unless the total would pass
// limit (0: no limit).
func reserve(n, limit int64) bool {
	if limit <= 0 {
		bufferedBytes.Add(n)
		return true
	}
	for {
		cur := bufferedBytes.Load()
		if cur+n > limit {
			return false
		}
		if bufferedBytes.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// heldBody is the pooled buffer holding a request body, released once. Its
// capacity counts in bufferedBytes until then, so *buf must not be replaced.
type heldBody struct{ buf *[]byte }

func (h *heldBody) release() {
	if h.buf != nil {
		releaseBody(h.buf)
		h.buf = nil
	}
}

// releaseBody returns a body buffer and its room in the budget.
func releaseBody(buf *[]byte) {
	bufferedBytes.Add(-int64(cap(*buf)))
	if cap(*buf) == firstBodyBuf {
		firstBufs.Put(buf)
		return
	}
	bufpool.Put(buf)
}

// firstBufs holds the buffers every body starts in, all of firstBodyBuf:
// a small body never picks up (and counts in the budget) a large buffer
// another request left in the shared pool.
var firstBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, firstBodyBuf)
	return &b
}}

// firstBodyBuf is what a body buffer starts with: it grows only as bytes
// arrive, so a Content-Length alone reserves nothing.
const firstBodyBuf = 4096

// readBody reads the whole body into a pooled buffer, within MaxBodyBytes
// after decoding. The buffer starts small and doubles as bytes arrive,
// never past what the body may hold, and every byte of its capacity is
// reserved in the process-wide budget first: a client that declares a
// large Content-Length and sends little costs little.
//
// With deadline, a read that fails at the connection's read deadline
// (Options.ReadTimeout) is answered 408.
func (s *Server) readBody(r *http.Request, deadline bool) (*[]byte, error) {
	limit := s.opt.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	budget := s.opt.MaxBufferedBytes
	var timeout time.Duration
	if deadline {
		timeout = s.opt.ReadTimeout
	}
	src, dec, err := decodeBody(r)
	if err != nil {
		return nil, err
	}
	if dec != nil {
		defer dec.release()
	}
	most := limit // the largest body we take; one byte more is too large
	if dec == nil && r.ContentLength >= 0 {
		most = r.ContentLength
	}
	buf := firstBufs.Get().(*[]byte)
	*buf = (*buf)[:0]
	if !reserve(firstBodyBuf, budget) {
		firstBufs.Put(buf)
		return nil, overloaded()
	}
	b := *buf
	fail := func(err error) (*[]byte, error) {
		*buf = b
		releaseBody(buf)
		return nil, err
	}
	for {
		room := int64(cap(b))
		if room > most {
			room = most
		}
		if int64(len(b)) == room {
			if room == most {
				// Full at the most we take: any byte more is too many.
				n, err := probe(src)
				if n > 0 {
					return fail(tooLarge(limit))
				}
				if err == io.EOF {
					break
				}
				return fail(readError(err, dec, timeout))
			}
			next := min(2*int64(cap(b)), most)
			if !reserve(next-int64(cap(b)), budget) {
				return fail(overloaded())
			}
			grown := make([]byte, len(b), next)
			copy(grown, b)
			b = grown
			continue
		}
		n, err := src.Read(b[len(b):room])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(readError(err, dec, timeout))
		}
	}
	*buf = b
	return buf, nil
}

var probes = sync.Pool{New: func() any { return new([1]byte) }}

// probe reads one byte past a full body: 0 and io.EOF when it has ended.
func probe(src io.Reader) (int, error) {
	p := probes.Get().(*[1]byte)
	defer probes.Put(p)
	return io.ReadFull(src, p[:])
}

func tooLarge(limit int64) error {
	return apierror.New(http.StatusRequestEntityTooLarge, "request_too_large",
		"The request body is larger than the limit of %d bytes.", limit)
}

// overloaded is the answer when the process holds as many body bytes as
// it may: no wait, since waiting would hold the connection and the part
// already read.
func overloaded() error {
	e := apierror.New(http.StatusServiceUnavailable, backend.CodeGatewayOverloaded,
		"The gateway is holding as many request bodies as it may; try again shortly.")
	e.RetryAfter = time.Second
	return e
}

// readError renders a failed body read; timeout is the read deadline's
// length, 0 when none was set.
func readError(err error, dec *decoder, timeout time.Duration) error {
	if timeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		e := apierror.New(http.StatusRequestTimeout, "request_timeout",
			"The request body did not arrive within %s.", timeout)
		e.Err = err
		return e
	}
	if dec != nil {
		return apierror.Invalid("", "Could not read the %s-encoded request body: %v.", dec.name, err)
	}
	return apierror.Invalid("", "Could not read the request body: %v.", err)
}

// decoder is a pooled reader undoing a Content-Encoding.
type decoder struct {
	name string        // as the client wrote it: gzip, x-gzip, deflate
	br   *bufio.Reader // the body, as the io.ByteReader flate wants (else it makes its own)
	r    io.Reader     // the decoded body
	pool *sync.Pool
}

func (d *decoder) release() {
	d.br.Reset(nil) // keep no request body alive in the pool
	d.pool.Put(d)
}

var gzipDecoders, zlibDecoders sync.Pool // *decoder

// decodeBody returns the reader of the decoded body: the body itself for no
// Content-Encoding or identity, a pooled gzip or zlib reader for gzip
// (x-gzip) or deflate (RFC 9110's deflate is zlib-wrapped). Any other
// coding, or more than one, is 415.
func decodeBody(r *http.Request) (io.Reader, *decoder, error) {
	vals := r.Header["Content-Encoding"]
	if len(vals) == 0 {
		return r.Body, nil, nil
	}
	var coding string
	for _, v := range vals {
		for c := range strings.SplitSeq(v, ",") {
			c = strings.ToLower(strings.TrimSpace(c))
			if c == "" || c == "identity" {
				continue
			}
			if coding != "" || (c != "gzip" && c != "x-gzip" && c != "deflate") {
				return nil, nil, apierror.New(http.StatusUnsupportedMediaType, "unsupported_content_encoding",
					"Content-Encoding %q is not supported; send the body as identity, gzip or deflate.", strings.Join(vals, ", "))
			}
			coding = c
		}
	}
	if coding == "" {
		return r.Body, nil, nil
	}
	pool := &gzipDecoders
	if coding == "deflate" {
		pool = &zlibDecoders
	}
	d, _ := pool.Get().(*decoder)
	if d == nil {
		d = &decoder{pool: pool, br: bufio.NewReaderSize(nil, 4096)}
		if coding == "deflate" {
			d.r = zlibReader()
		} else {
			d.r = new(gzip.Reader)
		}
	}
	d.name = coding
	d.br.Reset(r.Body)
	var err error
	if zr, ok := d.r.(*gzip.Reader); ok {
		err = zr.Reset(d.br)
	} else {
		err = d.r.(zlib.Resetter).Reset(d.br, nil)
	}
	if err != nil {
		d.release()
		return nil, nil, readError(err, d, 0)
	}
	return d.r, d, nil
}

// zlibReader makes a zlib reader to Reset: zlib has no exported zero value.
func zlibReader() io.Reader {
	// The smallest zlib stream: header, an empty final stored block, checksum.
	empty := []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}
	zr, err := zlib.NewReader(bytes.NewReader(empty))
	if err != nil {
		panic(err)
	}
	return zr
}
