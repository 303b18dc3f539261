package dispatch

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/omnigate/omnigate/internal/answer"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/cache"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/request"
)

// What the cache did for a request: the X-Omnigate-Cache header, the
// access log's cache field, the cache metric's result label.
const (
	CacheHit         = "hit"         // served from a store
	CacheMiss        = "miss"        // sent upstream; kept if it completes
	CacheBypass      = "bypass"      // the client said Cache-Control: no-cache or no-store
	CacheUncacheable = "uncacheable" // sampled (temperature > 0, no seed) or an endpoint the cache does not keep
	CacheCoalesced   = "coalesced"   // the same request was in flight: its answer was shared
	// CacheSemanticHit (cache_semantic.go) is a hit on a similar prompt.
)

// cacheFill is what a request that went upstream on a cache miss needs to
// keep its answer: where, and the flight identical requests follow.
type cacheFill struct {
	cache  *cache.Cache
	policy *config.Cache
	ref    cache.Ref
	stream bool
	flight *cache.Flight // nil: not leading one
	store  bool          // false: Cache-Control: no-store, or a fallback answered
	embed  bool          // an embeddings answer: it has usage but no choices
	sem    *semanticFill // a semantic miss: index the answer by its prompt; nil: none
	buf    []byte
	over   bool // the answer outgrew the policy's max_entry_bytes
	next   Tap  // the answer's own tap, fed first
}

// Write feeds the answer's own tap, then keeps the piece for the store
// and the followers.
func (f *cacheFill) Write(p []byte) {
	f.next.Write(p)
	if f.flight != nil {
		f.flight.Write(p)
	}
	if !f.store || f.over {
		return
	}
	if int64(len(f.buf)+len(p)) > f.policy.MaxEntryBytes {
		f.over, f.buf = true, nil
		return
	}
	f.buf = append(f.buf, p...)
}

// cacheable reports whether r's endpoint is kept by the cache.
func cacheable(r *request.Request) bool {
	return r.Endpoint == request.Chat || r.Endpoint == request.Completions || r.Endpoint == request.Embeddings
}

// lookup is fromCache, traced when the call is.
func (c *Core) lookup(ctx context.Context, call *Call, m *Model, cch *cache.Cache) *Answer {
	if call.st.span == nil {
		return c.fromCache(ctx, call, m, cch)
	}
	start := c.clock.Now()
	a := c.fromCache(ctx, call, m, cch)
	call.st.span.Looked(m.Name, start, c.clock.Now(), call.st.cache)
	return a
}

// fromCache serves call from m's cache when it can: a kept answer (hit),
// or the answer of the identical request in flight (coalesced). Otherwise
// it notes how the answer is to be kept (call.st.fill) and returns nil.
func (c *Core) fromCache(ctx context.Context, call *Call, m *Model, cch *cache.Cache) *Answer {
	st := call.st
	p := &m.Cache
	noCache, noStore := cacheControl(call.Header)
	if noCache && noStore {
		st.cache = CacheBypass
		return nil
	}
	if !cacheable(call.Req) {
		st.cache = CacheUncacheable
		return nil
	}
	// Sampled (temperature above 0, or OpenAI's default of 1) and no
	// seed: the next answer would differ. The byte search spares a
	// sampled request the key's hashing; the key's walk then tells a
	// real seed from the word in a prompt.
	r := call.Req
	sampled := !p.Random && r.Endpoint != request.Embeddings && (!r.HasTemperature || r.Temperature > 0)
	if sampled && !bytes.Contains(call.Body, []byte(`"seed"`)) {
		st.cache = CacheUncacheable
		return nil
	}
	scope := cacheScope(p, call)
	key, facts, err := cache.MakeKey(m.Name, scope, call.Body)
	if err != nil || sampled && !facts.HasSeed {
		st.cache = CacheUncacheable
		return nil
	}
	ref := cache.Ref{Model: m.Name, Scope: scope, Key: key}
	usage := call.Req.Stream && wantsUsage(call.Req, call.Body)
	if !noCache {
		if e := cch.Get(ctx, p, ref); e != nil {
			st.cache = CacheHit
			return c.cachedAnswer(call, m, e.Answer, usage)
		}
	}
	a, sem := c.similar(ctx, call, m, cch, ref, !noCache, usage)
	if a != nil {
		return a
	}
	st.cache = CacheMiss
	fill := &cacheFill{cache: cch, policy: p, ref: ref, stream: call.Req.Stream, store: !noStore, embed: call.Req.Endpoint == request.Embeddings, sem: sem}
	if !noCache {
		f, leader := cch.Flights.Join(cache.FlightKey{Key: key, Stream: call.Req.Stream, Usage: usage})
		if !leader {
			if a := c.follow(ctx, call, m, f); a != nil {
				st.cache = CacheCoalesced
				return a
			}
			// The leader got no answer: this request goes on its own.
		} else {
			fill.flight = f
		}
	}
	st.fill = fill
	return nil
}

// follow waits for the leader of f and relays its answer; nil when the
// leader gave up (or ctx ended first: the request then fails on its own).
func (c *Core) follow(ctx context.Context, call *Call, m *Model, f *cache.Flight) *Answer {
	status, ctype, ok, err := f.Wait(ctx)
	if !ok || err != nil || status != http.StatusOK {
		return nil
	}
	a := c.answers.Get().(*Answer)
	*a = Answer{Resp: backend.OK(ctype, f.Reader(ctx), -1), Model: m, Cache: CacheCoalesced}
	return a
}

// cachedAnswer is the answer a hit serves: the kept document, or its
// replay as a stream (with the usage chunk when the client asked).
func (c *Core) cachedAnswer(call *Call, m *Model, doc []byte, usage bool) *Answer {
	body, ctype := doc, "application/json"
	if call.Req.Stream {
		if b, err := answer.Replay(doc, usage); err == nil {
			body, ctype = b, "text/event-stream"
		}
	}
	a := c.answers.Get().(*Answer)
	*a = Answer{Resp: backend.OK(ctype, io.NopCloser(bytes.NewReader(body)), int64(len(body))), Model: m, Cache: CacheHit}
	return a
}

// keep ends a cache miss: the answer, relayed whole (err nil, status 200,
// a stream to its [DONE]), is stored when complete and not sampled with
// logprobs; the flight's followers get the same end.
func (c *Core) keep(ctx context.Context, call *Call, a *Answer, status int, err error) {
	f := call.st.fill
	call.st.fill = nil
	ok := a != nil && err == nil && status == http.StatusOK && (!f.stream || a.usage.done())
	if f.flight != nil {
		switch {
		case a == nil:
			f.flight.Abort()
		case ok:
			f.flight.Finish(nil)
		default:
			f.flight.Finish(errFlightCut)
		}
	}
	if !ok || !f.store || f.over || len(f.buf) == 0 {
		return
	}
	doc := bytes.Clone(f.buf)
	if !f.embed {
		var info answer.Info
		if f.stream {
			doc, info, err = answer.Assemble(bytes.NewReader(f.buf), "")
		} else {
			info, err = answer.Inspect(doc)
		}
		if err != nil || !info.Complete || info.HasLogprobs || !info.HasUsage {
			return // not whole, sampled with logprobs, or a replay would lack the usage a live answer has
		}
		f.put(ctx, f.cache.NewEntry(f.policy, f.ref.Model, f.ref.Scope, doc, info.FinishReason))
		return
	}
	f.put(ctx, f.cache.NewEntry(f.policy, f.ref.Model, f.ref.Scope, doc, ""))
}

// errFlightCut ends the followers of a leader whose answer broke off.
var errFlightCut = &flightCut{}

type flightCut struct{}

func (*flightCut) Error() string { return "the shared answer broke off upstream" }

// cacheControl reads the client's Cache-Control: no-cache (do not answer
// from the cache) and no-store (do not keep the answer).
func cacheControl(h http.Header) (noCache, noStore bool) {
	for _, v := range h["Cache-Control"] {
		for _, d := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "no-cache":
				noCache = true
			case "no-store":
				noStore = true
			}
		}
	}
	return noCache, noStore
}

// cacheScope is whose answers a request shares, by the model's policy.
func cacheScope(p *config.Cache, call *Call) string {
	switch p.Scope {
	case config.ScopeAPIKey:
		if call.Header != nil {
			return "key:" + call.Header.Get("Authorization")
		}
		return "key:"
	case config.ScopeUser:
		if sp := call.Req.UserSpan; sp[1] > sp[0] && sp[1] <= len(call.Body) {
			return "user:" + string(call.Body[sp[0]:sp[1]])
		}
		return "user:"
	}
	return ""
}
