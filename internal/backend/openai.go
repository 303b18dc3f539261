package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend/h1"
	"github.com/omnigate/omnigate/internal/config"
)

// maxErrorBody bounds how much of an upstream error answer is read.
const maxErrorBody = 64 << 10

// OpenAI is a Backend for one OpenAI-compatible upstream deployment. It is
// safe for concurrent use; everything per request lives on the stack of Do.
type OpenAI struct {
	rt        http.RoundTripper
	dialect   string
	base      string            // URL without the trailing slash
	urls      map[string]string // endpoint → full URL, for the known endpoints
	upstreamQ []byte            // the upstream model name as a JSON string; nil: keep the client's
	upstream  string
	stream    bool // StreamOnly
	jsonHdr   http.Header
	sseHdr    http.Header

	firstToken, idle, total time.Duration
	limits                  map[string]time.Duration

	h1 *h1Path // set when rt is an *h1.Transport: the fast path
}

// h1Path is what the fast path over an *h1.Transport needs, rendered once:
// the dial address, Host, the header bytes and a request per endpoint.
type h1Path struct {
	t          *h1.Transport
	addr, host string
	basePath   string // path of the base URL, without the trailing slash
	jsonHdr    []byte
	sseHdr     []byte
	endpoints  map[string]h1Endpoint
}

// h1Endpoint is one known endpoint: the request target, and the request
// that responses carry as resp.Request: one shared value that only names
// the method and URL (it has no body and no context of the caller's; the
// caller has its own context). Nobody may modify it.
type h1Endpoint struct {
	target string
	req    *http.Request
}

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
		t = NewTransport(d)
	}
	o := &OpenAI{
		rt:         t,
		dialect:    d.Dialect,
		base:       strings.TrimRight(d.URL, "/"),
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
	o.urls = map[string]string{}
	for _, ep := range []string{"chat/completions", "completions", "embeddings"} {
		o.urls[ep] = o.base + "/" + ep
	}
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
	h.Set("Content-Type", "application/json")
	o.jsonHdr = h.Clone()
	o.jsonHdr.Set("Accept", "application/json")
	o.sseHdr = h.Clone()
	o.sseHdr.Set("Accept", "text/event-stream")
	if ht, ok := t.(*h1.Transport); ok && u.Scheme == "http" {
		if o.h1, err = newH1Path(ht, u, o); err != nil { // nil, nil: use RoundTrip
			return nil, fmt.Errorf("deployment %q: %w", d.Name, err)
		}
	}
	return o, nil
}

// newH1Path renders what the fast path sends for o. The header gets the
// User-Agent net/http would add, so upstreams see the same request.
func newH1Path(t *h1.Transport, u *url.URL, o *OpenAI) (*h1Path, error) {
	p := &h1Path{t: t, addr: u.Host, host: u.Host, basePath: strings.TrimRight(u.EscapedPath(), "/"), endpoints: map[string]h1Endpoint{}}
	if u.Port() == "" {
		p.addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if u.RawQuery != "" || u.User != nil {
		return nil, nil // rare shapes: the generic RoundTrip path handles them
	}
	var err error
	for _, hh := range []struct {
		dst *[]byte
		h   http.Header
	}{{&p.jsonHdr, o.jsonHdr}, {&p.sseHdr, o.sseHdr}} {
		h := hh.h.Clone()
		if h.Get("User-Agent") == "" {
			h.Set("User-Agent", "Go-http-client/1.1")
		}
		if *hh.dst, err = h1.AppendHeader(nil, h); err != nil {
			return nil, err
		}
	}
	for ep, target := range o.urls {
		tu, err := url.Parse(target)
		if err != nil {
			return nil, err
		}
		p.endpoints[ep] = h1Endpoint{target: p.basePath + "/" + ep,
			req: &http.Request{Method: http.MethodPost, URL: tu, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: u.Host}}
	}
	return p, nil
}

// Do sends r upstream. See Backend.
func (o *OpenAI) Do(ctx context.Context, r *Request) (*http.Response, error) {
	body := r.Body
	if o.upstreamQ != nil {
		body = spliceSpan(body, r.ModelSpan, o.upstreamQ)
	}
	aggregate := o.stream && !r.Stream
	if aggregate {
		var err error
		if body, err = forceStream(body); err != nil {
			return nil, apierror.Invalid("", "the request body is not a JSON object")
		}
	}
	stream := r.Stream || aggregate

	if o.h1 != nil {
		return o.doH1(ctx, r, body, stream, aggregate)
	}

	actx, cancel := o.attemptContext(ctx)
	target, ok := o.urls[r.Endpoint]
	if !ok {
		target = o.base + "/" + strings.TrimLeft(r.Endpoint, "/")
	}
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		cancel(nil)
		return nil, &apierror.Error{Status: http.StatusInternalServerError, Type: apierror.TypeServer, Message: "internal error", Err: err}
	}
	if stream {
		req.Header = o.sseHdr.Clone()
	} else {
		req.Header = o.jsonHdr.Clone()
	}
	if r.RequestID != "" {
		req.Header["X-Request-Id"] = []string{r.RequestID}
	}

	// first_token bounds the wait for the response header of a stream. A
	// non-streaming answer's header comes only when the whole answer is
	// ready, so there only total applies.
	var ft *time.Timer
	if o.firstToken > 0 && stream {
		ft = time.AfterFunc(o.firstToken, func() {
			cancel(&TimeoutError{Phase: PhaseFirstToken, Limit: o.firstToken})
		})
	}
	resp, err := o.rt.RoundTrip(req)
	if ft != nil && !ft.Stop() && err == nil {
		// The timer fired as the headers arrived: the attempt is cancelled.
		resp.Body.Close()
		err = context.Cause(actx)
	}
	if err != nil {
		cancel(nil)
		return nil, classify(ctx, actx, o.limits, err)
	}
	ab := &attemptBody{rc: resp.Body, parent: ctx, ctx: actx, cancel: cancel, idle: o.idle, limits: o.limits}
	if o.idle > 0 {
		ab.timer = time.AfterFunc(o.idle, func() { cancel(&TimeoutError{Phase: PhaseIdle, Limit: o.idle}) })
		ab.timer.Stop()
	}
	resp.Body = ab
	return o.answer(resp, r, stream, aggregate)
}

// doH1 sends over the *h1.Transport. The timeouts are socket deadlines
// there (no timers, no derived contexts); ctx still aborts at once.
func (o *OpenAI) doH1(ctx context.Context, r *Request, body []byte, stream, aggregate bool) (*http.Response, error) {
	p := o.h1
	ep, ok := p.endpoints[r.Endpoint]
	if !ok {
		ep.target = p.basePath + "/" + strings.TrimLeft(r.Endpoint, "/")
		u, err := url.Parse(o.base + "/" + strings.TrimLeft(r.Endpoint, "/"))
		if err != nil {
			return nil, &apierror.Error{Status: http.StatusInternalServerError, Type: apierror.TypeServer, Message: "internal error", Err: err}
		}
		ep.req = &http.Request{Method: http.MethodPost, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: p.host}
	}
	req := h1.Request{Method: http.MethodPost, Addr: p.addr, Host: p.host, Target: ep.target, Header: p.jsonHdr,
		Body: body, IdleTimeout: o.idle}
	if stream {
		req.Header = p.sseHdr
		// first_token bounds the wait for the response header of a stream
		// only: a non-streaming header comes with the whole answer.
		req.HeadTimeout = o.firstToken
	}
	var fields [2]string
	if r.RequestID != "" {
		fields = [2]string{"X-Request-Id", r.RequestID}
		req.Fields = fields[:]
	}
	if o.total > 0 {
		req.Deadline = time.Now().Add(o.total)
	}
	resp, err := p.t.Send(ctx, &req)
	if err != nil {
		return nil, classify(ctx, ctx, o.limits, err)
	}
	resp.Request = ep.req // not WithContext: an open stream would keep the copy
	ab := &attemptBody{rc: resp.Body, parent: ctx, ctx: ctx, limits: o.limits}
	if wt, ok := resp.Body.(io.WriterTo); ok {
		resp.Body = &attemptWriterBody{attemptBody: ab, wt: wt}
	} else {
		resp.Body = ab
	}
	return o.answer(resp, r, stream, aggregate)
}

// answer turns a response into Do's result: an error status becomes the
// normalised error, a stream-only answer is aggregated, and the model name
// is rewritten when the upstream's differs from the public one.
func (o *OpenAI) answer(resp *http.Response, r *Request, stream, aggregate bool) (*http.Response, error) {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		e := NormalizeError(o.dialect, resp.StatusCode, b)
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
		return o.aggregate(resp, public)
	}
	if public != "" {
		resp.Body = newModelRewriter(resp.Body, public, sse)
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	return resp, nil
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

// attemptContext derives the attempt's context: the total timeout, and a
// cancel whose cause names the timeout that fired.
func (o *OpenAI) attemptContext(ctx context.Context) (context.Context, context.CancelCauseFunc) {
	if o.total <= 0 {
		return context.WithCancelCause(ctx)
	}
	tctx, tcancel := context.WithTimeoutCause(ctx, o.total, &TimeoutError{Phase: PhaseTotal, Limit: o.total})
	actx, cancel := context.WithCancelCause(tctx)
	return actx, func(cause error) { cancel(cause); tcancel() }
}

// attemptBody is the upstream body of one attempt: it enforces the idle
// timeout (the longest a Read may wait for the upstream), turns read errors
// into *apierror.Error, and releases the attempt's context on Close. Over
// an *h1.Transport the socket enforces the timeouts: timer and cancel are
// nil there.
type attemptBody struct {
	rc     io.ReadCloser
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc // nil: no attempt context
	idle   time.Duration
	timer  *time.Timer // nil without an idle timeout
	limits map[string]time.Duration
}

// Read reads the upstream body, bounded by the idle timeout.
func (b *attemptBody) Read(p []byte) (int, error) {
	if b.timer != nil {
		b.timer.Reset(b.idle)
	}
	n, err := b.rc.Read(p)
	if b.timer != nil {
		b.timer.Stop()
	}
	if err != nil && err != io.EOF {
		return n, classify(b.parent, b.ctx, b.limits, err)
	}
	return n, err
}

// Close closes the upstream body and releases the attempt's context.
func (b *attemptBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.rc.Close()
	if b.cancel != nil {
		b.cancel(nil)
	}
	return err
}

// attemptWriterBody is an attemptBody over a body that has WriteTo (the
// h1 fast path, where no timer runs: the socket enforces the timeouts), so
// a caller can copy it with no buffer of its own.
type attemptWriterBody struct {
	*attemptBody
	wt io.WriterTo
}

// WriteTo writes the body to w. A *h1.WriteError (w failed) comes back as
// is; read errors are classified as Read classifies them.
func (b *attemptWriterBody) WriteTo(w io.Writer) (int64, error) {
	n, err := b.wt.WriteTo(w)
	var we *h1.WriteError
	if err != nil && !errors.As(err, &we) {
		err = classify(b.parent, b.ctx, b.limits, err)
	}
	return n, err
}

var (
	_ Backend       = (*OpenAI)(nil)
	_ io.ReadCloser = (*attemptBody)(nil)
	_ io.WriterTo   = (*attemptWriterBody)(nil)
)
