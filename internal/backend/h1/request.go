package h1

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request is a request in raw parts, for Transport.Send. The transport
// writes the request line, Host, the Header bytes, the Fields, and
// Content-Length when there is a body or the method is POST, PUT or PATCH.
type Request struct {
	Method string
	// Addr is the host:port to connect to.
	Addr string
	// Host is the Host header value.
	Host string
	// Target is the request target in origin form: "/v1/chat/completions".
	Target string
	// Header holds pre-rendered header lines, each "Key: value\r\n"
	// (see AppendHeader); it is written as is.
	Header []byte
	// Fields are more header fields as key, value pairs, checked and
	// written after Header.
	Fields []string
	// Body is the whole request body. It is written in one go with the
	// head, and is what makes a request replayable on a stale connection.
	Body []byte
	// Close asks the server to close the connection after the response.
	Close bool

	// Deadline, when set, bounds the whole exchange: dial, write, the
	// response head and every body read.
	Deadline time.Time
	// HeadTimeout, when positive, bounds the wait from Send until the
	// response head and the first byte of its body have arrived (an SSE
	// stream's headers alone are no sign of life).
	HeadTimeout time.Duration
	// IdleTimeout, when positive, bounds each wait for response body bytes.
	IdleTimeout time.Duration
}

// exchange is one request ready to be written, in either form.
type exchange struct {
	method     string
	addr       string
	head       []byte // request line and header, and the body when small
	body       []byte // body bytes written after head, when not inlined
	stream     io.ReadCloser
	streamLen  int64 // >= 0: Content-Length of stream; -1: chunked
	replayable bool
	close      bool

	deadline                 time.Time
	headTimeout, idleTimeout time.Duration
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if b != nil && cap(*b) <= 4*inlineBody {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

// rawExchange renders r into a pooled buffer.
func rawExchange(r *Request) (*exchange, *[]byte, error) {
	if len(r.Fields)%2 != 0 {
		return nil, nil, errors.New("h1: Request.Fields has an odd count")
	}
	for i := 0; i < len(r.Fields); i += 2 {
		if !validFieldName(r.Fields[i]) || !validFieldValue(r.Fields[i+1]) {
			return nil, nil, fmt.Errorf("h1: invalid header field %q", r.Fields[i])
		}
	}
	if !validFieldValue(r.Host) || !validTarget(r.Target) || !validMethod(r.Method) {
		return nil, nil, fmt.Errorf("h1: invalid request line or host: %q %q %q", r.Method, r.Target, r.Host)
	}
	buf := getBuf()
	b := append(*buf, r.Method...)
	b = append(b, ' ')
	b = append(b, r.Target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	b = append(b, r.Header...)
	for i := 0; i < len(r.Fields); i += 2 {
		b = appendField(b, r.Fields[i], r.Fields[i+1])
	}
	if len(r.Body) > 0 || bodyMethod(r.Method) {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(r.Body)), 10)
		b = append(b, "\r\n"...)
	}
	if r.Close {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	x := &exchange{method: r.Method, addr: r.Addr, replayable: true, close: r.Close,
		deadline: r.Deadline, headTimeout: r.HeadTimeout, idleTimeout: r.IdleTimeout}
	if len(r.Body) <= inlineBody {
		b = append(b, r.Body...)
	} else {
		x.body = r.Body
	}
	*buf = b
	x.head = b
	return x, buf, nil
}

// requestExchange renders an *http.Request, buffering a body of known
// length so it is written with the head and can be replayed.
func requestExchange(req *http.Request) (*exchange, *[]byte, error) {
	u := req.URL
	if u == nil {
		return nil, nil, errors.New("h1: nil Request.URL")
	}
	if u.Scheme != "http" {
		return nil, nil, fmt.Errorf("h1: unsupported protocol scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, nil, errors.New("h1: no Host in request URL")
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	host := req.Host
	if host == "" {
		host = u.Host
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	target := u.RequestURI()
	if !validMethod(method) || !validTarget(target) || !validFieldValue(host) {
		return nil, nil, fmt.Errorf("h1: invalid request line or host: %q %q %q", method, target, host)
	}
	buf := getBuf()
	b := append(*buf, method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	var err error
	if b, err = appendHeader(b, req.Header, true); err != nil {
		putBuf(buf)
		return nil, nil, err
	}
	if u.User != nil && req.Header.Get("Authorization") == "" {
		pw, _ := u.User.Password()
		b = append(b, "Authorization: Basic "...)
		b = base64.StdEncoding.AppendEncode(b, []byte(u.User.Username()+":"+pw))
		b = append(b, "\r\n"...)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		b = append(b, "User-Agent: Go-http-client/1.1\r\n"...)
	}
	closeConn := req.Close || headerHasToken(req.Header["Connection"], "close")
	if req.Close && !headerHasToken(req.Header["Connection"], "close") {
		b = append(b, "Connection: close\r\n"...)
	}
	x := &exchange{method: method, addr: addr, close: closeConn, replayable: true}

	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	n := req.ContentLength
	if body == nil {
		n = 0
	}
	switch {
	case n == 0 && body != nil:
		// ContentLength 0 with a body means unknown length; see http.Request.
		n = -1
		fallthrough
	case n < 0 || n > maxBufferedBody:
		x.stream, x.streamLen = body, n
		x.replayable = false // streamed bytes cannot be sent twice
		if n < 0 {
			b = append(b, "Transfer-Encoding: chunked\r\n\r\n"...)
		} else {
			b = append(b, "Content-Length: "...)
			b = strconv.AppendInt(b, n, 10)
			b = append(b, "\r\n\r\n"...)
		}
	default:
		if n > 0 || bodyMethod(method) {
			b = append(b, "Content-Length: "...)
			b = strconv.AppendInt(b, n, 10)
			b = append(b, "\r\n"...)
		}
		b = append(b, "\r\n"...)
		if body != nil {
			hl := len(b)
			b = append(b, make([]byte, n)...)
			_, err := io.ReadFull(body, b[hl:])
			body.Close()
			if err != nil {
				*buf = b
				putBuf(buf)
				return nil, nil, fmt.Errorf("h1: reading request body: %w", err)
			}
		}
	}
	*buf = b
	x.head = b
	return x, buf, nil
}

func bodyMethod(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

// AppendHeader renders h as header lines, each "Key: value\r\n", for
// Request.Header. It fails on a name or value that could split the header.
func AppendHeader(dst []byte, h http.Header) ([]byte, error) {
	return appendHeader(dst, h, false)
}

// appendHeader renders h; skipTransport leaves out the fields the transport
// writes itself.
func appendHeader(b []byte, h http.Header, skipTransport bool) ([]byte, error) {
	for k, vs := range h {
		if skipTransport {
			switch k {
			case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
				continue
			}
		}
		if !validFieldName(k) {
			return b, fmt.Errorf("h1: invalid header field name %q", k)
		}
		for _, v := range vs {
			if !validFieldValue(v) {
				return b, fmt.Errorf("h1: invalid header field value for %q", k)
			}
			b = appendField(b, k, v)
		}
	}
	return b, nil
}

func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, strings.TrimSpace(v)...)
	return append(b, "\r\n"...)
}

// validFieldName reports whether s is an RFC 9110 token.
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validFieldValue rejects the bytes that would end or split a header line.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

func validTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func validMethod(s string) bool { return validFieldName(s) }

// headerHasToken reports whether a comma-separated header value list holds
// token, case-insensitively.
func headerHasToken(vs []string, token string) bool {
	for _, v := range vs {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}
