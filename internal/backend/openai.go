package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend/h1"
	"github.com/omnigate/omnigate/internal/bufpool"
	"github.com/omnigate/omnigate/internal/config"
)

// maxErrorBody bounds how much of an upstream error answer is read.
const maxErrorBody = 64 << 10

// OpenAI is a Backend for one OpenAI-compatible upstream deployment. It is
// safe for concurrent use; everything per request lives on the stack of Do.
type OpenAI struct {
	send      sender
	name      string // the deployment's, for the logs
	dialect   string
	upstreamQ []byte // the upstream model name as a JSON string; nil: keep the client's
	upstream  string
	stream    bool // StreamOnly

	firstToken, idle, total time.Duration
	limits                  map[string]time.Duration
}

// deploymentHeader is what every request to d carries: its key from the
// environment (read once, here) and its static headers.
func deploymentHeader(d config.Deployment) (http.Header, error) {
	h := http.Header{}
	if d.APIKeyEnv != "" {
		key := os.Getenv(d.APIKeyEnv)
		if key == "" {
			return nil, fmt.Errorf("deployment %q: environment variable %s (api_key_env) is empty", d.Name, d.APIKeyEnv)
		}
		h.Set("Authorization", "Bearer "+key)
	}
	for k, v := range d.Headers { // may replace Authorization for upstreams that want another scheme
		h.Set(k, v)
	}
	return h, nil
}

// endpoints are the paths Request.Endpoint names; their URLs are made once.
var endpoints = []string{"chat/completions", "completions", "embeddings"}

// NewOpenAI returns the backend for deployment d, sending through t (a
// transport from NewTransport, or HandlerTransport for the simulator). A nil
// t gets a new NewTransport(d). The bearer token is read from the
// environment once, here.
func NewOpenAI(d config.Deployment, t http.RoundTripper) (*OpenAI, error) {
	u, err := url.Parse(d.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("deployment %q: url %q is not an absolute http(s) URL", d.Name, d.URL)
	}
	if !KnownDialect(d.Dialect) {
		return nil, fmt.Errorf("deployment %q: unknown dialect %q", d.Name, d.Dialect)
	}
	if t == nil {
		if t, err = NewTransport(d); err != nil {
			return nil, fmt.Errorf("deployment %q: %w", d.Name, err)
		}
	}
	o := &OpenAI{
		name:       d.Name,
		dialect:    d.Dialect,
		upstream:   d.UpstreamModel,
		stream:     d.StreamOnly,
		firstToken: d.Timeouts.FirstToken.D(),
		idle:       d.Timeouts.Idle.D(),
		total:      d.Timeouts.Total.D(),
	}
	o.limits = map[string]time.Duration{PhaseConnect: d.Timeouts.Connect.D(), PhaseFirstToken: o.firstToken, PhaseIdle: o.idle, PhaseTotal: o.total}
	if d.UpstreamModel != "" {
		o.upstreamQ = quoteJSON(d.UpstreamModel)
	}
	h, err := deploymentHeader(d)
	if err != nil {
		return nil, err
	}
	h.Set("Content-Type", "application/json")
	jsonHdr := h.Clone()
	jsonHdr.Set("Accept", "application/json")
	sseHdr := h.Clone()
	sseHdr.Set("Accept", "text/event-stream")
	base := strings.TrimRight(d.URL, "/")
	// The lean h1 sender takes the usual shape of URL; a query or user
	// info in it (rare) goes through the transport's RoundTrip.
	if ht, ok := t.(*h1.Transport); ok && u.Scheme == "http" && u.RawQuery == "" && u.User == nil {
		if o.send, err = newH1Sender(ht, u, base, jsonHdr, sseHdr, endpoints); err != nil {
			return nil, fmt.Errorf("deployment %q: %w", d.Name, err)
		}
	} else {
		o.send = newRoundTripSender(t, base, jsonHdr, sseHdr, endpoints)
	}
	return o, nil
}

// Do sends r upstream. See Backend.
func (o *OpenAI) Do(ctx context.Context, r *Request) (*http.Response, error) {
	aggregate := o.stream && !r.Stream
	a := attempt{endpoint: r.Endpoint, body: o.prepare(r, aggregate), stream: r.Stream || aggregate,
		requestID: r.RequestID, deadline: r.Deadline, trace: r.Trace,
		head: o.firstToken, idle: o.idle, total: o.total}
	resp, err := o.send.send(ctx, a)
	if err != nil {
		if ctx.Err() == nil && tlsRefused(err) {
			return nil, misconfiguredTLS(o.errorSource(r), err)
		}
		return nil, classify(ctx, o.limits, err)
	}
	ab := &attemptBody{rc: resp.Body, ctx: ctx, limits: o.limits}
	if wt, ok := resp.Body.(io.WriterTo); ok {
		resp.Body = &attemptWriterBody{attemptBody: ab, wt: wt}
	} else {
		resp.Body = ab
	}
	return o.answer(resp, r, a.stream, aggregate)
}

// answer turns a response into Do's result: an error status becomes the
// normalised error, a stream-only answer is aggregated, and the model name
// is rewritten when the upstream's differs from the public one.
func (o *OpenAI) answer(resp *http.Response, r *Request, stream, aggregate bool) (*http.Response, error) {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		e := NormalizeError(o.errorSource(r), resp.StatusCode, b)
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		return nil, e
	}
	public := ""
	if o.upstream != "" && r.PublicModel != "" && o.upstream != r.PublicModel {
		public = r.PublicModel
	}
	sse := stream
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		sse = strings.HasPrefix(ct, "text/event-stream")
	}
	if aggregate && sse { // else the upstream ignored stream:true and sent JSON
		return o.aggregate(resp, o.errorSource(r), public)
	}
	if sse {
		// A stream's headers are no sign of life: until its first bytes
		// come (within first_token), nothing is relayed, so a silent or
		// failing engine can still be left for another. An engine that
		// fails after its 200 (vLLM, out of memory) says so in its first
		// event: that is its answer.
		ab := attemptOf(resp.Body)
		if err := ab.start(); err != nil {
			resp.Body.Close()
			return nil, err
		}
		if ErrorEvent(ab.first) {
			return nil, o.streamError(resp, ab, r)
		}
	}
	if !sse {
		// Read before it is relayed: a body cut or stalled after its head
		// is then the attempt's failure, which another deployment can
		// make good, not the client's.
		if err := readWhole(resp); err != nil {
			return nil, err
		}
	}
	if public != "" {
		resp.Body = newModelRewriter(resp.Body, public, sse)
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	return resp, nil
}

// errorSource names o and r's model for NormalizeError.
func (o *OpenAI) errorSource(r *Request) ErrorSource {
	return ErrorSource{Dialect: o.dialect, Deployment: o.name, Upstream: o.upstream, Public: r.PublicModel}
}

// retryAfter reads a Retry-After value, delay-seconds or an HTTP date, as
// a wait from now; 0 when absent, malformed or past. It is capped at an
// hour, so a confused engine cannot park clients for days.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		d = time.Duration(min(n, 3600)) * time.Second // capped before it can overflow
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// attemptBody is the upstream body of one attempt as Do returns it: read
// errors become *apierror.Error.
type attemptBody struct {
	rc     io.ReadCloser
	ctx    context.Context // the caller's
	limits map[string]time.Duration
	// first holds the bytes read ahead (a stream's first ones, by start;
	// a whole answer, by readWhole) until the next Read or WriteTo;
	// firstErr is what the read that got them returned (io.EOF: that was
	// all). bp is their pooled buffer, given back at Close.
	first    []byte
	firstErr error
	bp       *[]byte
}

// firstRead is how much start reads: an engine's first event or two.
const firstRead = 512

// start waits for the body's first bytes, within first_token, and keeps
// them for the next read.
func (b *attemptBody) start() error {
	b.bp = bufpool.Get(firstRead)
	buf := (*b.bp)[:firstRead]
	n, err := b.rc.Read(buf)
	b.first = buf[:n]
	if err != nil && err != io.EOF {
		return classify(b.ctx, b.limits, err)
	}
	b.firstErr = err
	return nil
}

// takeFirst copies the bytes read ahead into p; their buffer goes back
// once they are all taken (an open stream holds none).
func (b *attemptBody) takeFirst(p []byte) (int, error) {
	n := copy(p, b.first)
	if b.first = b.first[n:]; len(b.first) == 0 {
		b.dropFirst()
		return n, b.firstErr
	}
	return n, nil
}

// dropFirst gives back the read-ahead buffer.
func (b *attemptBody) dropFirst() {
	if b.bp != nil {
		bufpool.Put(b.bp)
	}
	b.bp, b.first = nil, nil
}

// Read reads the upstream body.
func (b *attemptBody) Read(p []byte) (int, error) {
	if b.first != nil {
		return b.takeFirst(p)
	}
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		return n, classify(b.ctx, b.limits, err)
	}
	return n, err
}

// Close closes the upstream body and gives back the read-ahead buffer.
func (b *attemptBody) Close() error {
	b.dropFirst()
	return b.rc.Close()
}

// attemptOf returns the attemptBody that body, as Do made it, is.
func attemptOf(body io.ReadCloser) *attemptBody {
	if wb, ok := body.(*attemptWriterBody); ok {
		return wb.attemptBody
	}
	return body.(*attemptBody)
}

// attemptWriterBody is an attemptBody over a body that has WriteTo (the
// h1 sender's), so a caller can copy it with no buffer of its own.
type attemptWriterBody struct {
	*attemptBody
	wt io.WriterTo
}

// WriteTo writes the body to w. A *h1.WriteError (w failed) comes back as
// is; read errors are classified as Read classifies them.
func (b *attemptWriterBody) WriteTo(w io.Writer) (int64, error) {
	var first int64
	if b.first != nil {
		k, err := w.Write(b.first)
		first = int64(k)
		b.dropFirst()
		if err != nil || b.firstErr != nil {
			return first, err // nil at io.EOF: the body ended with its first bytes
		}
	}
	n, err := b.wt.WriteTo(w)
	n += first
	var we *h1.WriteError
	if err != nil && !errors.As(err, &we) {
		err = classify(b.ctx, b.limits, err)
	}
	return n, err
}

var (
	_ Backend       = (*OpenAI)(nil)
	_ io.ReadCloser = (*attemptBody)(nil)
	_ io.WriterTo   = (*attemptWriterBody)(nil)
)

// ErrorEvent reports whether first (a stream's first bytes, or an event)
// is an error event ("data: {"error": ...}"), as vLLM sends when it fails
// after its 200.
func ErrorEvent(first []byte) bool {
	b := bytes.TrimLeft(first, " \t\r\n")
	if rest, ok := bytes.CutPrefix(b, []byte("event: error")); ok {
		return len(rest) == 0 || rest[0] == '\n' || rest[0] == '\r'
	}
	b, ok := bytes.CutPrefix(b, []byte("data:"))
	if !ok {
		return false
	}
	b = bytes.TrimLeft(b, " ")
	if !bytes.HasPrefix(b, []byte("{")) {
		return false
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	return bytes.HasPrefix(b, []byte(`"error"`))
}

// streamError turns a stream that opened with an error event into the
// attempt's error, as if the engine had answered with its status: the
// event's code when it is an HTTP error status, else 502.
func (o *OpenAI) streamError(resp *http.Response, ab *attemptBody, r *Request) error {
	defer resp.Body.Close()
	ev := append([]byte(nil), ab.first...)
	ab.first = nil
	for !bytes.Contains(ev, []byte("\n\n")) && len(ev) < maxErrorBody {
		buf := make([]byte, 4<<10)
		n, err := ab.rc.Read(buf)
		ev = append(ev, buf[:n]...)
		if err != nil {
			break
		}
	}
	if i := bytes.Index(ev, []byte("\n\n")); i >= 0 {
		ev = ev[:i]
	}
	var data []byte // the event's data lines, joined
	for line := range bytes.SplitSeq(ev, []byte("\n")) {
		if d, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data:")); ok {
			data = append(data, bytes.TrimLeft(d, " ")...)
		}
	}
	status := http.StatusBadGateway
	var code struct {
		Error struct {
			Code json.RawMessage `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &code) == nil {
		if n, err := strconv.Atoi(string(code.Error.Code)); err == nil && n >= 400 && n <= 599 {
			status = n
		}
	}
	e := NormalizeError(o.errorSource(r), status, data)
	if e.Code == "" && e.Status == http.StatusBadGateway {
		e.Code = CodeUpstreamUnavailable
	}
	return e
}

// wholeLimit is the largest non-streaming answer read whole before Do
// returns (most are far smaller); a larger one is read as it is relayed.
const wholeLimit = 32 << 10

// readWhole reads a non-streaming answer of up to wholeLimit bytes before
// it is relayed, and checks it is a JSON object; the body then serves the
// bytes read (and the rest of a larger body).
func readWhole(resp *http.Response) error {
	size := wholeLimit
	if resp.ContentLength >= 0 && resp.ContentLength < wholeLimit {
		size = int(resp.ContentLength) + 1 // +1 reads io.EOF with the last byte
	}
	ab := attemptOf(resp.Body)
	ab.bp = bufpool.Get(size)
	buf := (*ab.bp)[:size]
	n, err := bufpool.Fill(ab, buf)
	ab.first = buf[:n]
	switch {
	case err == io.EOF:
		ab.firstErr = io.EOF // all of it: the connection went back at once
		if !jsonObject(ab.first) {
			resp.Body.Close()
			return &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeServer, Code: CodeInvalidResponse,
				Message: "The upstream answered with a body that is not a JSON object.",
				Err:     &ConnError{Err: fmt.Errorf("upstream body %q", clip(buf[:n], 256))}}
		}
	case err != nil:
		resp.Body.Close()
		return err
	}
	return nil // larger than wholeLimit: the rest follows from the connection
}

// jsonObject is the check a whole answer gets before it is passed on: it
// starts with '{' and ends with '}'. That catches what engines and proxies
// actually send in place of an answer (an HTML or text error page, a body
// cut short) at the cost of two byte tests; a full validation cost 1 % of
// the gateway's CPU per request.
func jsonObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}'
}
