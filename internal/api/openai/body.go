package openai

import (
	"io"
	"mime"
	"net/http"
	"sync"

	"github.com/omnigate/omnigate/internal/apierror"
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

// heldBody is the pooled buffer holding a request body, released once.
type heldBody struct{ buf *[]byte }

func (h *heldBody) release() {
	if h.buf != nil {
		putBuf(h.buf)
		h.buf = nil
	}
}

var bufPool sync.Pool // *[]byte

func getBuf(n int) *[]byte {
	if v := bufPool.Get(); v != nil {
		b := v.(*[]byte)
		if cap(*b) >= n {
			*b = (*b)[:0]
			return b
		}
		bufPool.Put(v)
	}
	b := make([]byte, 0, max(n, 4096))
	return &b
}

// putBuf returns a buffer; very large ones are dropped so one huge request
// does not pin memory.
func putBuf(b *[]byte) {
	if cap(*b) <= 1<<20 {
		bufPool.Put(b)
	}
}

// readBody reads the whole body into a pooled buffer, within MaxBodyBytes.
func (s *Server) readBody(r *http.Request) (*[]byte, error) {
	limit := s.opt.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	size := 4096
	if r.ContentLength > 0 {
		size = int(r.ContentLength)
	}
	buf := getBuf(size)
	b := *buf
	lr := io.LimitedReader{R: r.Body, N: limit + 1}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*buf = b
			putBuf(buf)
			return nil, apierror.Invalid("", "Could not read the request body: %v.", err)
		}
	}
	*buf = b
	if int64(len(b)) > limit {
		putBuf(buf)
		return nil, tooLarge(limit)
	}
	return buf, nil
}

func tooLarge(limit int64) error {
	return apierror.New(http.StatusRequestEntityTooLarge, "request_too_large",
		"The request body is larger than the limit of %d bytes.", limit)
}
