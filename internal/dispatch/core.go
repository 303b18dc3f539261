// Package dispatch is the request core: one pipeline that every front end
// (HTTP today; gRPC and background jobs use the same seam) calls with a
// parsed request. It routes to a chain of models, checks the request
// against each model's limits (clamping or defaulting values by splicing
// the original bytes), picks a deployment, sends, and judges every outcome
// in one place (verdict.go) to decide on retries, fallbacks and the
// deployment's health. It never sees the client's connection: it returns
// the upstream answer for the front end to relay, and hears back once the
// relay is done.
package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/omnigate/omnigate/internal/admission"
	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/limits"
	"github.com/omnigate/omnigate/internal/quota"
	"github.com/omnigate/omnigate/internal/request"
	"github.com/omnigate/omnigate/internal/resilience"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// Router chooses the models that may serve a request, in the order to
// try, each with the error classes that lead to it; for a request to an
// auto name, also why it chose the first ("" otherwise). body and h are
// the request's bytes and headers.
type Router interface {
	Route(r *request.Request, body []byte, h http.Header) ([]catalog.Link, string, error)
}

// Picker chooses a deployment of pool for a request that is not in
// c.Tried: its index, or -1 when there is none.
type Picker interface {
	Pick(c *balance.Choice, pool []*balance.Deployment) int
}

// Options configure a Core. Metrics is required.
type Options struct {
	Metrics *telemetry.Metrics
	Clock   clock.Clock     // clock.Real when nil
	Picker  Picker          // each model's own (Model.Picker) when nil
	Log     *slog.Logger    // slog.Default when nil
	OnSwap  func(*Snapshot) // called after a Swap with the new snapshot
	// Access writes the access log; nil: none.
	Access *telemetry.AccessLog
	// LogBodies adds the start of each request body and answer to the
	// access log's records.
	LogBodies bool
	// Tracer traces requests; nil: none, at no cost.
	Tracer Tracer
}

// Core runs the pipeline over the current snapshot.
type Core struct {
	snap    atomic.Pointer[Snapshot]
	clock   clock.Clock
	picker  Picker // overrides the models' own; nil: none
	metrics *telemetry.Metrics
	access  *telemetry.AccessLog
	bodies  bool
	tracer  Tracer // nil: none
	log     *slog.Logger
	views   sync.Pool // *request.Request, working copies for clamps and defaults
	answers sync.Pool // *Answer, back once Done
	states  sync.Pool // *callState, back once Done
	hashes  sync.Pool // *[]uint64, a pick's prompt block hashes
}

// defaultPicker serves models with no picker of their own.
var defaultPicker balance.Picker

// New returns a core serving snap.
func New(snap *Snapshot, opt Options) *Core {
	c := &Core{clock: opt.Clock, picker: opt.Picker, metrics: opt.Metrics, access: opt.Access, bodies: opt.LogBodies && opt.Access != nil,
		tracer: opt.Tracer, log: opt.Log}
	if c.clock == nil {
		c.clock = clock.Real{}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.views.New = func() any { return new(request.Request) }
	c.answers.New = func() any { return new(Answer) }
	c.states.New = func() any { return new(callState) }
	c.hashes.New = func() any { b := make([]uint64, 0, balance.MaxPrefixBlocks); return &b }
	c.snap.Store(snap)
	return c
}

// Snapshot returns the configuration requests are served with now.
func (c *Core) Snapshot() *Snapshot { return c.snap.Load() }

// Swap installs a new snapshot for the requests that start from now on and
// returns the previous one (requests already running keep theirs).
func (c *Core) Swap(s *Snapshot) *Snapshot { return c.snap.Swap(s) }

// Now is the core's clock.
func (c *Core) Now() time.Time { return c.clock.Now() }

// Call is one request through the core. The front end fills Req (parsed
// from Body, left unmodified by the core), Body and RequestID, and passes
// the same Call to Do and then to Done.
type Call struct {
	Req       *request.Request
	Body      []byte
	RequestID string
	// Header is the client's request headers (read only), for the
	// sticky header a model keeps requests together by; nil: none.
	Header http.Header
	// Deadline, when set, is the client's (X-Request-Timeout): the core
	// does no work past it, retries and fallbacks included, and the
	// upstream call is cancelled when it passes.
	Deadline time.Time
	// Key is the client's API key, when the front end checked it already
	// (a job's runs); nil: Do checks the Authorization header when the
	// snapshot has keys.
	Key *auth.Key
	// API is the front end the call came by, for its access line: "grpc",
	// "job" (a background job's run); "" is the HTTP API.
	API string

	// mirror marks a shadow request (the core's own): no key, no limits,
	// no cache, not mirrored again.
	mirror bool

	// st is the core's own state of the call, from Do to Done. It lives
	// behind a pointer (pooled): a stream parks its front end's frame,
	// this Call in it, for minutes, and every byte of that frame is paid
	// per open stream.
	st *callState
}

// callState is what the core keeps of a call between Do and Done.
type callState struct {
	cancel    context.CancelFunc // ends the deadline's context, at Done
	start     time.Time
	requested *Model    // after routing; nil when routing failed
	snap      *Snapshot // held from Do to Done, so a reload waits for it
	stats     callStats
	logged    *loggedBodies // nil unless bodies are logged
	span      Span          // nil: not traced
	cache     string        // what the cache did (CacheHit…); "": no cache
	route     string        // why automatic routing chose the first model; "": the request named it
	fill      *cacheFill    // a cache miss's answer to keep; nil: none
	quota     quota.Ticket  // what the key's limits were charged
	shadow    *shadowed     // the request and answer to mirror; nil: not mirrored
}

// callStats is what a call did on its way, for its telemetry.Record.
type callStats struct {
	// queued: waiting for admission places; waited: backing off between
	// retry rounds; upstream: in attempts other than the answering one
	// (failed ones, and a continued stream's earlier parts).
	queued, waited, upstream                 time.Duration
	attempts, retries, hedges, continuations int32
	endpoint                                 request.Endpoint
	stream                                   bool
	admission                                bool // reached an admission queue
}

// Requested is the public name of the model the request was routed to
// first (after aliases); "" before routing.
func (c *Call) Requested() string {
	if c.st == nil || c.st.requested == nil {
		return ""
	}
	return c.st.requested.Name
}

// Answer is an upstream answer for the front end to relay.
type Answer struct {
	// Resp is the 2xx upstream response: its Body is JSON, or an SSE
	// stream when Req.Stream. The front end closes it.
	Resp *http.Response
	// Model is the model that answered (a fallback, perhaps).
	Model *Model
	// Deployment is the deployment that answered.
	Deployment *balance.Deployment
	// Clamped lists the parameters clamped to the model's limits, for the
	// X-Omnigate-Clamped header: "max_tokens=4096, temperature=2".
	Clamped string
	// Cache says what the cache did (CacheHit, CacheMiss, CacheCoalesced…),
	// for the X-Omnigate-Cache header; "" when the model has no cache. A
	// hit or a coalesced answer has no Deployment.
	Cache string
	// Similarity is a semantic hit's cosine similarity to the earlier
	// prompt, for X-Omnigate-Cache-Similarity; 0 otherwise.
	Similarity float32
	// Route is why automatic routing chose the tier, for X-Omnigate-Route
	// ("rule:2", "score:0.81"…); "" when the request named its model.
	Route string
	// Escalated is set when the small tier's answer was weak and the large
	// tier answered instead, for X-Omnigate-Escalated: "qwen3-omni-7b;
	// reason=length; prompt_tokens=12; completion_tokens=64" (the small
	// attempt's usage).
	Escalated string

	// FallbackReason is set when a fallback answered: why the models
	// before it did not (the verdict's outcome class: 503, unreachable,
	// misconfigured…, or limits when they could not take the request).
	FallbackReason string

	// Until is when the attempt's total timeout ends: the front end stops
	// writing to a client that stopped reading by then, so it cannot hold
	// the engine's connection longer.
	Until time.Time

	ticket balance.Ticket     // the breaker's, for the end of the relay
	cancel context.CancelFunc // a hedged attempt's own context, ended at Done
	sent   time.Time          // when the attempt that answered was sent
	tokens int64              // counted on Deployment while the answer runs
	// firstByte is how long the attempt took to answer (its time to first
	// token, for a stream).
	firstByte time.Duration
	permit    admission.Permit // the model's admission place, held to the end of the relay
	usage     usageTap
	cont      *continuation // a continuable stream's request and record
	logged    *loggedBodies // the call's, when bodies are logged
	fill      *cacheFill    // the call's cache miss, kept as it is relayed
	shadow    *shadowed     // the call's mirrored request, its answer kept as it is relayed
	span      AttemptSpan   // the answering attempt's, ended with the relay; nil: not traced
}

// Tap is what the front end feeds the relayed bytes to.
func (a *Answer) Tap() Tap {
	var t Tap = &a.usage
	if a.cont != nil {
		t = &a.cont.rec
	}
	if a.logged != nil {
		a.logged.next = t
		t = a.logged
	}
	if a.fill != nil {
		a.fill.next = t
		t = a.fill
	}
	if a.shadow != nil {
		a.shadow.next = t
		t = a.shadow
	}
	return t
}

// Do serves call up to the upstream answer. With an Answer the front end
// relays it; either way it then calls Done once. Errors are
// *apierror.Error values ready to render.
func (c *Core) Do(ctx context.Context, call *Call) (*Answer, error) {
	if call.st == nil {
		call.st = c.states.Get().(*callState)
	}
	call.st.start = c.clock.Now()
	call.st.stats = callStats{endpoint: call.Req.Endpoint, stream: call.Req.Stream}
	c.keepRequest(call)
	if !call.Deadline.IsZero() && call.st.cancel == nil {
		ctx, call.st.cancel = context.WithDeadline(ctx, call.Deadline)
	}
	if c.tracer != nil && call.st.span == nil { // a call served again keeps its span
		call.st.span = c.tracer.Start(ctx, call.Req, call.Header)
	}
	snap := c.hold(call)
	interactive := call.Key == nil // not a background job's run
	if interactive && snap.Auth != nil && !call.mirror {
		k, err := snap.Auth.Authenticate(call.Header, call.st.start)
		if err != nil {
			return nil, err
		}
		call.Key = k
	}
	chain, why, err := snap.Router.Route(call.Req, call.Body, call.Header)
	if err != nil {
		return nil, err
	}
	call.st.route = why
	call.st.requested = snap.Model(chain[0].Model)
	call.st.requested.Metrics.Inflight.Inc()
	if err := call.Key.Allows(chain[0].Model.Name, why != ""); err != nil {
		return nil, err // counted against the model asked for
	}
	if k := call.Key; k != nil && snap.Limits != nil && k.Limited() && !call.mirror {
		if err := c.takeQuota(ctx, call, snap.Limits, interactive); err != nil {
			return nil, err
		}
	}
	if why != "" {
		c.metrics.Routed(call.Req.Model, chain[0].Model.Name, why)
	}
	if m := call.st.requested; m.Cache.On() && snap.Cache != nil && !call.mirror {
		if a := c.lookup(ctx, call, m, snap.Cache); a != nil {
			a.Route = why
			return a, nil
		}
	}
	if call.st.requested.Shadow != nil {
		c.sampleShadow(call, call.st.requested)
	}

	var lastErr error
	class := resilience.AnyClass // why the chain moves on
	for i, link := range chain {
		if !link.On.Has(class) {
			continue // this fallback is not for that
		}
		m := snap.Model(link.Model)
		esc := i == 0 && why != "" && snap.Escalate.escalates(call, m)
		var undo func()
		if esc && snap.Escalate.LowLogprob && !call.Req.Logprobs {
			undo = c.askLogprobs(call)
		}
		a, err, cls := c.tryModel(ctx, call, m, i == 0, chain[i+1:])
		if undo != nil {
			undo()
		}
		if err == nil {
			if esc {
				a = c.escalate(ctx, call, snap.Escalate, a, undo != nil)
			}
			if i > 0 {
				a.FallbackReason = fallbackReason(ctx, lastErr)
			}
			a.Cache, a.Route = call.st.cache, why
			if sh := call.st.shadow; sh != nil && i == 0 && a.Model == call.st.requested {
				a.shadow = sh
			} else {
				call.st.shadow = nil
			}
			if f := call.st.fill; f != nil {
				a.fill = f
				f.store = f.store && i == 0 // a fallback's answer is not the asked model's
				if f.flight != nil {
					f.flight.Answer(http.StatusOK, a.Resp.Header.Get("Content-Type"))
				}
			}
			return a, nil
		}
		if cls == 0 {
			return nil, err
		}
		if err != errSkip {
			lastErr, class = err, cls
		} else if lastErr == nil {
			lastErr = err
		}
	}
	if lastErr == nil {
		lastErr = apierror.New(http.StatusServiceUnavailable, "no_deployment", "No deployment of %q is available.", call.st.requested.Name)
	}
	return nil, lastErr
}

// takes reports whether a link of rest is tried for class.
func takes(rest []catalog.Link, class resilience.Class) bool {
	for _, l := range rest {
		if l.On.Has(class) {
			return true
		}
	}
	return false
}

// fallbackReason names why the chain moved on, from the last error of the
// models before the one that answered.
func fallbackReason(ctx context.Context, err error) string {
	if err == errSkip || err == nil {
		return "limits"
	}
	return judge(ctx, err).outcome
}

// errSkip marks a fallback model that cannot take the request as sent.
var errSkip = &apierror.Error{Status: http.StatusBadRequest, Message: "skipped"}

// tryModel checks the request against one model of the chain and sends it
// to the model's deployments; rest is the chain after it. class is the
// error class the chain goes on with after err (0: it stops there).
func (c *Core) tryModel(ctx context.Context, call *Call, m *Model, first bool, rest []catalog.Link) (a *Answer, err error, class resilience.Class) {
	r := call.Req
	if !m.Serves(r.Endpoint.String()) {
		if first {
			return nil, apierror.Invalid("model", "The model %q does not serve /v1/%s.", m.Name, r.Endpoint.Path()), 0
		}
		return nil, errSkip, resilience.AnyClass
	}
	clamp, err := limits.Check(r, m.Model)
	if err != nil {
		if first {
			return nil, err, judge(ctx, err).class // a longer window may take it
		}
		return nil, errSkip, resilience.AnyClass // this fallback cannot take the request as sent
	}
	// Clamps and defaults go into a working copy of the view, whose
	// spans Edit keeps exact, so the body is never parsed twice.
	view, body := r, call.Body
	dflt := limits.DefaultMaxTokens(r, m.Model)
	if len(clamp) > 0 || dflt > 0 {
		view = c.views.Get().(*request.Request)
		defer c.views.Put(view)
		*view = *r
		if len(clamp) > 0 {
			body = clamp.Apply(view, body)
			for _, x := range clamp {
				m.Metrics.Clamped(x.Param)
			}
		}
		if dflt > 0 {
			body = view.SetMaxTokens(body, dflt)
		}
	}
	if !first {
		call.st.requested.Metrics.Fallback(m.Name)
	}
	permit, err, class := c.admit(ctx, call, m)
	if err != nil {
		return nil, err, class
	}
	a, err, class = c.sendModel(ctx, call, m, view, body, rest, clamp)
	if err != nil {
		permit.Release(0, false)
		return nil, err, class
	}
	permit.Observe(a.firstByte, engineQueued(a.Deployment, c.clock.Now())) // now: a stream may hold its place for minutes
	a.permit = permit
	return a, nil, 0
}

// sendModel sends the checked request (view and body, with the clamps
// applied) to m's deployments, shrinking it when they ran out of memory.
func (c *Core) sendModel(ctx context.Context, call *Call, m *Model, view *request.Request, body []byte, rest []catalog.Link,
	clamp limits.Clamp) (*Answer, error, resilience.Class) {
	a, err := c.send(ctx, call, m, view, body, rest)
	if err != nil {
		v := judge(ctx, err)
		if v.class == resilience.Overloaded && !takes(rest, v.class) {
			return c.shrink(ctx, call, m, view, body, rest, clamp, err)
		}
		return nil, err, v.class
	}
	if len(clamp) > 0 {
		a.Clamped = clamp.Header()
	}
	if continuable(m, view, body) {
		a.record(view, body)
	}
	return a, nil, 0
}

// shrink is the last resort of a model whose engines ran out of memory
// (err) and that no fallback takes over from: one more attempt with half
// the max_tokens, when the model clamps rather than rejects. The answer
// says so in X-Omnigate-Clamped: "max_tokens=1024 (out_of_memory)".
func (c *Core) shrink(ctx context.Context, call *Call, m *Model, view *request.Request, body []byte, rest []catalog.Link,
	clamp limits.Clamp, err error) (*Answer, error, resilience.Class) {
	n := view.MaxTokens / 2
	if m.Limits.OnViolation != config.OnViolationClamp || n < minShrunkTokens || !c.retryAllowed(m, c.clock.Now()) {
		return nil, err, resilience.Overloaded
	}
	small := c.views.Get().(*request.Request)
	defer c.views.Put(small)
	*small = *view
	body = small.SetMaxTokens(body, n)
	m.Metrics.Retry()
	call.st.stats.retries++
	a, err2 := c.send(ctx, call, m, small, body, rest)
	if err2 != nil {
		return nil, err2, judge(ctx, err2).class
	}
	a.Clamped = clamp.Header()
	if a.Clamped != "" {
		a.Clamped += ", "
	}
	a.Clamped += "max_tokens=" + strconv.Itoa(n) + " (out_of_memory)"
	return a, nil, 0
}

// minShrunkTokens is the smallest max_tokens shrink asks for: below it an
// answer is hardly worth having.
const minShrunkTokens = 16

// send tries the model's deployments until one answers or the verdict on
// a failure says another would not do better: each once, at once, then,
// when no model of rest (the chain after m) is tried for the failure's
// class (a fallback is quicker than a wait), in rounds after a backoff,
// up to the model's attempts and within its retry budget.
func (c *Core) send(ctx context.Context, call *Call, m *Model, view *request.Request, body []byte, rest []catalog.Link) (*Answer, error) {
	return c.sendFrom(ctx, call, m, view, body, rest, balance.Tried{}, false)
}

// sendFrom is send with the deployments of skip left out; cont: it
// carries on a cut stream.
func (c *Core) sendFrom(ctx context.Context, call *Call, m *Model, view *request.Request, body []byte, rest []catalog.Link, skip balance.Tried,
	cont bool) (*Answer, error) {
	tried := skip
	var lastErr error
	var lastClass resilience.Class
	attempts, rounds := 0, 0
	if m.Budget != nil {
		m.Budget.Request(c.clock.Now())
	}
	ch := balance.Choice{Tried: &tried, Audio: view.AudioRequested, Tokens: tokens(view)}
	if hs := c.choose(call.Header, m, view, body, &ch); hs != nil {
		defer c.hashes.Put(hs)
	}
	for {
		now := c.clock.Now()
		ch.Now = now
		i := c.pick(m, &ch)
		if i < 0 && lastErr != nil && !takes(rest, lastClass) && attempts < m.Retry.Attempts && available(m, nil, now) {
			// Every deployment was tried this round: wait, then the pool
			// again (those whose breaker opened stay out). A wait that is
			// not worth it costs no retry.
			wait, ok := c.roundWait(ctx, m, rounds+1, lastErr, now)
			if ok && c.retryAllowed(m, now) {
				rounds++
				if !c.sleep(ctx, wait) {
					return nil, lastErr
				}
				call.st.stats.waited += wait
				tried = skip
				m.Metrics.Retry()
				call.st.stats.retries++
				continue
			}
		}
		if i < 0 {
			if lastErr == nil {
				lastErr = noDeployment(m, now)
			}
			return nil, lastErr
		}
		tried.Add(i)
		d := m.Pool[i]
		ticket := d.Breaker.Begin(now)
		if !ticket.OK() {
			continue // another request took the half-open probe
		}
		attempts++
		call.st.stats.attempts++
		d.Acquire(ch.Tokens)
		req := &backend.Request{
			Endpoint: view.Endpoint.Path(), Body: body, ModelSpan: view.ModelSpan,
			StreamSpan: view.StreamSpan, StreamOptionsSpan: view.StreamOptionsSpan,
			PublicModel: m.Name, Stream: view.Stream, RequestID: call.RequestID, Deadline: call.Deadline,
		}
		span := traceAttempt(call, req, m, d, attempts, false, cont)
		var resp *http.Response
		var err error
		var cancel context.CancelFunc
		if m.Hedge.After > 0 {
			before := attempts
			resp, err, d, ticket, cancel, span, attempts = c.hedged(ctx, call, m, req, d, ticket, span, &ch, attempts)
			call.st.stats.attempts += int32(attempts - before)
			call.st.stats.hedges += int32(attempts - before)
		} else {
			resp, err = d.Backend.Do(ctx, req)
		}
		if err == nil {
			m.Metrics.Upstream(d.Config.Name, statusLabel(resp.StatusCode))
			took := c.clock.Now().Sub(now)
			if view.Stream {
				d.ObserveFirstByte(took)
			}
			a := c.answers.Get().(*Answer)
			*a = Answer{Resp: resp, Model: m, Deployment: d, ticket: ticket, cancel: cancel, sent: now, firstByte: took, tokens: ch.Tokens,
				logged: call.st.logged, span: span}
			if total := d.Config.Timeouts.Total.D(); total > 0 {
				a.Until = now.Add(total)
			}
			return a, nil
		}
		v := c.end(ctx, m, d, ticket, ch.Tokens, err, span)
		call.st.stats.upstream += c.clock.Now().Sub(now)
		lastErr, lastClass = err, v.class
		if !v.retry || attempts >= m.Retry.Attempts {
			return nil, err
		}
		// Another deployment, at once, if one is left this round and the
		// budget allows; else the round ends above.
		if available(m, &tried, now) {
			if !c.retryAllowed(m, now) {
				return nil, err
			}
			m.Metrics.Retry()
			call.st.stats.retries++
		}
	}
}

// engineQueued reports whether d's engine may have kept requests waiting:
// there is no fresh scrape, or it had requests waiting while full (its
// batch at max_num_seqs, or its KV cache nearly so). A request counts as
// waiting until the engine's next step admits it, so waiting alone
// shows at any load.
func engineQueued(d *balance.Deployment, now time.Time) bool {
	m := d.EngineFresh(now)
	if m == nil {
		return true
	}
	full := d.Config.MaxNumSeqs <= 0 || m.Running >= d.Config.MaxNumSeqs || m.HasKV && m.KVUsage >= 0.9
	return m.Waiting > 0 && full
}

// tokens estimates what a request holds in an engine while it runs: its
// prompt (4 characters a token) and the most it may generate.
func tokens(view *request.Request) int64 {
	return int64(view.PromptChars/4 + max(view.MaxTokens, 0)*max(view.N, 1))
}

// pick asks the model's picker (or the core's override) for a deployment.
func (c *Core) pick(m *Model, ch *balance.Choice) int {
	switch {
	case c.picker != nil:
		return c.picker.Pick(ch, m.Pool)
	case m.Picker != nil:
		return m.Picker.Pick(ch, m.Pool)
	}
	return defaultPicker.Pick(ch, m.Pool)
}

// choose fills what the picks of a request (view and body, with the
// client's header h) on m know of it beyond the pool: the prompt's block
// hashes when the model keeps prefix affinity (in a pooled buffer,
// returned for the caller to put back) and the sticky key.
func (c *Core) choose(h http.Header, m *Model, r *request.Request, body []byte, ch *balance.Choice) *[]uint64 {
	var hs *[]uint64
	if m.Picker != nil && m.Picker.Prefix != nil {
		if sp := r.PromptSpan; sp[1] > sp[0] && sp[1] <= len(body) && sp[1]-sp[0] >= m.Balance.Prefix.BlockBytes {
			hs = c.hashes.Get().(*[]uint64)
			*hs = balance.PrefixHashes((*hs)[:0], body[sp[0]:sp[1]], m.Balance.Prefix.BlockBytes)
			ch.Prefix = *hs
		}
	}
	if m.Picker == nil || m.Picker.Weights.Sticky > 0 {
		ch.Sticky = stickyKey(h, m, r, body)
	}
	return hs
}

// stickyKey hashes the request's sticky key: the model's sticky header,
// else the body's "user"; 0 when it has neither.
func stickyKey(h http.Header, m *Model, r *request.Request, body []byte) uint64 {
	if h != nil {
		if v := h[m.Balance.StickyHeader]; len(v) > 0 && v[0] != "" {
			return xxhash.Sum64String(v[0]) | 1
		}
	}
	if sp := r.UserSpan; sp[1]-sp[0] > 2 && sp[1] <= len(body) {
		return xxhash.Sum64(body[sp[0]:sp[1]]) | 1
	}
	return 0
}

// roundWait is the wait before round n of m's retries after err: the
// jittered backoff, or the engine's Retry-After when longer. ok is false
// when the wait is not worth it: a Retry-After past the model's
// max_backoff (the client hears it instead), or a wait that would end
// past the client's deadline.
func (c *Core) roundWait(ctx context.Context, m *Model, n int, err error, now time.Time) (wait time.Duration, ok bool) {
	wait = resilience.Backoff(n, m.Retry.Backoff.D(), m.Retry.MaxBackoff.D())
	after := balance.UpAgain(m.Pool, now) // no deployment free before
	if e := (*apierror.Error)(nil); errors.As(err, &e) {
		after = max(after, e.RetryAfter)
	}
	if after > m.Retry.MaxBackoff.D() {
		return 0, false
	}
	wait = max(wait, after)
	if dl, has := ctx.Deadline(); has && time.Until(dl) < wait { // a context's deadline is on the real clock
		return 0, false
	}
	return wait, true
}

// noDeployment is the error of a model none of whose deployments can take
// a request now: 429 rate_limited when some are only busy (they asked,
// with a Retry-After, to be left alone), else 503 no_deployment; either
// way with the time until the first may again.
func noDeployment(m *Model, now time.Time) *apierror.Error {
	e := apierror.New(http.StatusServiceUnavailable, "no_deployment", "No deployment of %q is available.", m.Name)
	for _, d := range m.Pool {
		if d.InRotation() && d.Breaker.Ready(now) && d.BusyFor(now) > 0 {
			e = apierror.New(http.StatusTooManyRequests, "rate_limited", "Every deployment of %q is rate limited; try again later.", m.Name)
			break
		}
	}
	e.RetryAfter = balance.UpAgain(m.Pool, now)
	return e
}

// available reports whether a deployment of m outside tried (nil: none
// tried, and one that is busy counts: a round waits out a Retry-After)
// could take a request at now.
func available(m *Model, tried *balance.Tried, now time.Time) bool {
	for i, d := range m.Pool {
		if (tried == nil || !tried.Has(i) && d.BusyFor(now) == 0) && d.InRotation() && d.Breaker.Ready(now) {
			return true
		}
	}
	return false
}

// retryAllowed asks the model's retry budget for one retry.
func (c *Core) retryAllowed(m *Model, now time.Time) bool {
	return m.Budget == nil || m.Budget.Retry(now)
}

// sleep waits d on the core's clock, or until ctx ends (false).
func (c *Core) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-c.clock.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// end closes one attempt on d, traced by span (nil: not traced): the
// verdict feeds the breaker, the upstream metric and the span, and the
// in-flight count drops.
func (c *Core) end(ctx context.Context, m *Model, d *balance.Deployment, t balance.Ticket, tokens int64, err error, span AttemptSpan) verdict {
	d.Release(tokens)
	v := judge(ctx, err)
	endAttempt(span, v, err)
	if v.outcome != "client_closed" {
		m.Metrics.Upstream(d.Config.Name, v.outcome)
	}
	if v.outcome == "misconfigured" {
		// The operator must hear of it: the client only learns that the
		// gateway is at fault (the breaker bounds how often this logs).
		c.log.Error("deployment misconfigured", "model", m.Name, "deployment", d.Config.Name, "err", err)
	}
	c.settle(m, d, t, v.health, v.outcome, err)
	if v.busy > 0 {
		d.Busy(c.clock.Now().Add(v.busy))
	}
	return v
}

// settle gives a deployment the outcome of one of its attempts (health,
// with reason the outcome class and err what happened): the last failure
// it is held to, and its breaker, whose changes are logged.
func (c *Core) settle(m *Model, d *balance.Deployment, t balance.Ticket, health balance.Outcome, reason string, err error) {
	now := c.clock.Now()
	if health == balance.Failure {
		d.NoteFailure(balance.Failed{At: now, Reason: reason, Message: apierror.From(err).Message})
	}
	if from, to := d.Breaker.End(t, health, now); from != to {
		m.Metrics.Breaker(d.Config.Name, to.String())
		c.log.Warn("breaker", "model", m.Name, "deployment", d.Config.Name, "from", from.String(), "to", to.String(), "err", err)
	}
}

// Done ends a call: a (nil when Do failed) has been relayed with the
// client-facing status, and err is what broke the relay, if anything (a
// stream the upstream cut counts against its deployment). It records the
// request's metrics and access log line. a belongs to the core again
// afterwards.
func (c *Core) Done(call *Call, a *Answer, status int, err error) {
	if a != nil && err == nil && status == apierror.StatusClientClosed {
		err = context.Canceled
	}
	if call.st == nil { // refused before Do: a request with no model
		rec := telemetry.Record{RequestID: call.RequestID, API: call.API, Status: status}
		c.metrics.Finished(nil, nil, &rec)
		if c.access != nil {
			c.access.Log(&rec)
		}
		return
	}
	now := c.clock.Now()
	cs := call.st
	st := &cs.stats
	rec := telemetry.Record{RequestID: call.RequestID, API: call.API, Status: status, Stream: st.stream, Start: cs.start, Err: err, Key: call.Key.NameOr(),
		Queued: st.queued, Waited: st.waited, Upstream: st.upstream, Admission: st.admission,
		Attempts: int(st.attempts), Retries: int(st.retries), Hedges: int(st.hedges), Continuations: int(st.continuations)}
	if !cs.start.IsZero() {
		rec.Total = now.Sub(cs.start)
	}
	var asked, served *telemetry.ModelMetrics
	if m := cs.requested; m != nil {
		rec.Model, asked = m.Name, m.Metrics
	}
	rec.Cache = cs.cache
	if cs.fill != nil {
		c.keep(context.Background(), call, a, status, err)
	}
	if a != nil {
		rec.Served, served = a.Model.Name, a.Model.Metrics
		rec.Similarity = a.Similarity
		if a.Deployment != nil {
			rec.Deployment = a.Deployment.Config.Name
		}
		rec.Fallback = a.FallbackReason
		rec.FirstByte = a.firstByte
		if !a.sent.IsZero() {
			rec.Upstream += now.Sub(a.sent)
		}
		if u, ok := a.usage.usage(); ok {
			rec.HasUsage, rec.PromptTokens, rec.CompletionTokens = true, u.PromptTokens, u.CompletionTokens
			if err == nil && u.CompletionTokens > 1 && !a.sent.IsZero() && st.stream {
				rec.PerToken = (now.Sub(a.sent) - a.firstByte) / time.Duration(u.CompletionTokens-1)
			}
		}
	}
	rec.Overhead = max(rec.Total-rec.Queued-rec.Waited-rec.Upstream, 0)
	if l := cs.logged; l != nil {
		rec.RequestBody, rec.AnswerBody = l.request, l.answer
	}
	if cs.quota.Taken() {
		c.settleQuota(call, a, &rec, now)
	}
	if sh := cs.shadow; sh != nil && a != nil && a.shadow == sh && err == nil && status == http.StatusOK {
		c.mirror(cs.requested, call.RequestID, sh)
	}
	c.finish(call, a, err)
	if cs.span != nil {
		endSpan(call, &rec)
	}
	c.metrics.Finished(asked, served, &rec)
	if c.access != nil {
		c.access.Log(&rec)
	}
	*cs = callState{}
	c.states.Put(cs)
	call.st = nil
}

// Abandon undoes a call the front end will serve again (its client only
// half-closed, and the context that ended the attempt was not the
// client's): a, when the attempt had answered, is released as neutral,
// and the call counts as nothing yet (its span and kept bodies stay).
func (c *Core) Abandon(call *Call, a *Answer) {
	c.finish(call, a, context.Canceled)
	if call.st != nil {
		call.st.requested = nil
	}
}

// finish releases what a call holds: its deadline, its answer (whose relay
// ended with err), its place in the model's in-flight count and its hold
// on the snapshot.
func (c *Core) finish(call *Call, a *Answer, err error) {
	cs := call.st
	if cs == nil {
		return
	}
	if cs.cancel != nil {
		cs.cancel()
		cs.cancel = nil
	}
	if a != nil {
		c.release(a, err)
	}
	if cs.requested != nil {
		cs.requested.Metrics.Inflight.Dec()
	}
	if cs.snap != nil {
		cs.snap.inUse.Add(-1)
		cs.snap = nil
	}
}

// hold returns the current snapshot, counted as in use by call until
// finish.
func (c *Core) hold(call *Call) *Snapshot {
	for {
		s := c.snap.Load()
		s.inUse.Add(1)
		if c.snap.Load() == s {
			call.st.snap = s
			return s
		}
		s.inUse.Add(-1) // swapped meanwhile: the old one may be waited on already
	}
}

// endRelay gives the relay's outcome to the deployment that answered.
func (c *Core) endRelay(a *Answer, err error) {
	a.Deployment.Release(a.tokens)
	health, reason := balance.Success, ""
	switch {
	case err == context.Canceled:
		health = balance.Neutral // the client left
	case err == nil && a.usage.errEvent:
		health, reason = balance.Failure, "stream_error_event" // passed on as it came
	case err == nil && a.usage.malformed:
		health, reason = balance.Failure, "stream_malformed"
	case err != nil:
		v := judge(context.Background(), err)
		health, reason = v.health, "stream_"+v.outcome
	}
	c.settle(a.Model, a.Deployment, a.ticket, health, reason, err)
	if a.span != nil {
		endRelaySpan(a, health, reason, err)
	}
}

var _ Picker = (*balance.Picker)(nil)
