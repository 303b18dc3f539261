// Package batching merges concurrent small /v1/embeddings and
// /v1/completions requests to one deployment into one upstream call and
// splits the answer back, each client getting exactly its own embeddings
// or choices. Chat completions are not batched.
//
// # Installing
//
// Wrap goes around one deployment's backend, once, when the deployment's
// model has batching enabled (config.Batching, defaults applied):
//
//	b, _ := backend.NewOpenAI(d, t)
//	var be backend.Backend = b
//	if model.Batching.Enabled {
//		be = batching.Wrap(be, model.Batching)
//	}
//
// The wrapper holds live state (the batches being gathered), so it belongs
// with the deployment's backend, made once per deployment and kept across
// config reloads that do not change it, not rebuilt per request. It sits
// below retries and balancing: a merged call is one attempt on one
// deployment, and each member's Do returns what an unbatched Do would.
// What it does not batch it passes through untouched.
//
// # What merges
//
// An embeddings request whose input is a string or an array of strings,
// or a completions request whose prompt is (token-id inputs and prompts
// pass through), joins the open batch of its key: its body with the input
// (or prompt) value cut out, with its endpoint and public model name.
// Requests merge only when every other byte of their bodies is the same
// (model, encoding_format, dimensions, user; for completions max_tokens,
// temperature, seed, n, stop…; and their order and spacing: one SDK writes
// them the same way every time). The first request of a key opens a batch
// and waits Window; others join until the window ends or MaxInputs inputs
// (prompts) are gathered. A request with MaxInputs inputs or more, a
// stream, a completions request with echo, best_of, logprobs or suffix set
// (other than null or false: answers this package does not split), another
// endpoint, or a body this package cannot read is passed through
// untouched, as is a batch that ends with one member.
//
// The merged call's body is the first member's with its input replaced by
// the concatenation of every member's inputs (spliced, not re-encoded); its
// Deadline is the latest of the members' (none if one has none), and its
// RequestID and trace context (traceparent) the first member's. It runs on
// a context of its own, cancelled only once every member has left.
//
// # Splitting the answer
//
// Each member gets the entries of its own inputs, their index renumbered
// from 0, with the answer's other fields (id, object, created, model,
// system_fingerprint) as they were. Embeddings: the data entries, float
// and base64 alike. Completions: for P prompts of n choices the engine
// answers P·n choices, index prompt·n + choice (OpenAI's and vLLM's
// layout), so a member whose prompts are the merged call's p to p+k-1
// gets choices p·n to (p+k)·n-1, its prompt i's choice j at index i·n + j,
// as if it had been sent alone. A count or index mismatch, or a body that
// is not the expected JSON, fails every member with a 502
// (backend.CodeInvalidResponse).
//
// Usage is an estimate, and honestly so: OpenAI-compatible engines report
// only the batch's totals, not per input. Each total is split by largest
// remainder, so the parts always sum to the engine's total:
//
//   - prompt_tokens in proportion to each member's estimated input tokens;
//   - completion_tokens in proportion to the estimated tokens of the text
//     of each member's own choices (the engine's per-choice counts are
//     not in a non-streaming answer without logprobs);
//   - total_tokens is the member's two parts added up when the engine's
//     total is their sum (for embeddings, the prompt part), else it is
//     split in proportion to both estimates together.
//
// The estimate is the simulator's tokenizer (runs of letters and digits
// cost a token per 5 characters started, each other symbol and CJK
// character one), so against the simulator the split is exact (but for
// completion_tokens when a stop string cut a token's text); against a real
// engine it is proportional to a cheap approximation of its tokenizer.
// Other usage members (prompt_tokens_details, say) are left as the
// engine gave them, totals of the merged call.
//
// # Errors
//
// A merged call that fails with a transport error or a 5xx (or 429) gives
// every member the same error. A 4xx client error (a member's input too
// long, say) would otherwise fail strangers for one member's fault, so then
// each member is sent again on its own, and only the guilty one fails
// (a completions prompt past the context length, say).
// A member whose context ends while it waits leaves the batch before it is
// sent; after, its part of the answer is dropped.
package batching

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

// batcher is the backend.Backend Wrap returns: it merges concurrent
// batchable requests into one call to the backend it wraps.
type batcher struct {
	next      backend.Backend
	window    time.Duration
	maxInputs int
	clock     clock.Clock

	mu   sync.Mutex
	open map[string]*batch // by key: the batch still gathering
}

// Wrap returns b with batching as cfg says (cfg.Enabled is the caller's
// decision and not read). A zero Window or MaxInputs takes the default.
// The result is safe for concurrent use.
func Wrap(b backend.Backend, cfg config.Batching) backend.Backend {
	return wrap(b, cfg, clock.Real{})
}

func wrap(b backend.Backend, cfg config.Batching, clk clock.Clock) *batcher {
	w := cfg.Window.D()
	if w <= 0 {
		w = config.DefaultBatchWindow
	}
	n := cfg.MaxInputs
	if n < 2 {
		n = config.DefaultBatchMaxInputs
	}
	return &batcher{next: b, window: w, maxInputs: n, clock: clk, open: map[string]*batch{}}
}

// batch is the requests of one key gathered in one window.
type batch struct {
	key     string
	members []*member
	inputs  int // the members' inputs, together
	window  <-chan time.Time
	full    chan struct{} // closed when no more can join (full, or empty)
	closed  bool          // full is closed: the batch is no longer in open
	sent    bool          // the merged call has started
	live    int           // members still waiting, once sent
	cancel  context.CancelFunc
}

// member is one request in a batch.
type member struct {
	ctx  context.Context
	r    *backend.Request
	in   inputs
	done chan result // buffered: the batch never blocks on a member gone
	gone bool        // left the batch (guarded by batcher.mu)
}

// result is what a member's Do returns, or alone: send it by itself.
type result struct {
	resp  *http.Response
	err   error
	alone bool
}

// Do sends r, merged with others when it can be. See backend.Backend.
func (b *batcher) Do(ctx context.Context, r *backend.Request) (*http.Response, error) {
	in, ok := parseRequest(r, b.maxInputs)
	if !ok {
		return b.next.Do(ctx, r)
	}
	if err := ctx.Err(); err != nil {
		return nil, leftError(ctx)
	}
	m := &member{ctx: ctx, r: r, in: in, done: make(chan result, 1)}
	bt := b.join(m, batchKey(r, in))
	select {
	case res := <-m.done:
		if res.alone {
			return b.next.Do(ctx, r)
		}
		return res.resp, res.err
	case <-ctx.Done():
		b.leave(bt, m)
		return nil, leftError(ctx)
	}
}

// join adds m to the open batch of key, opening one (and the goroutine
// that sends it) when there is none or m would overfill it.
func (b *batcher) join(m *member, key string) *batch {
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.open[key]
	if bt != nil && bt.inputs+len(m.in.items) > b.maxInputs {
		b.closeLocked(bt)
		bt = nil
	}
	if bt == nil {
		// The window starts now, not when run gets to it.
		bt = &batch{key: key, window: b.clock.After(b.window), full: make(chan struct{})}
		b.open[key] = bt
		go b.run(bt)
	}
	bt.members = append(bt.members, m)
	bt.inputs += len(m.in.items)
	if bt.inputs >= b.maxInputs {
		b.closeLocked(bt)
	}
	return bt
}

// closeLocked stops bt taking members: its goroutine sends it now.
func (b *batcher) closeLocked(bt *batch) {
	if bt.closed {
		return
	}
	bt.closed = true
	close(bt.full)
	if b.open[bt.key] == bt {
		delete(b.open, bt.key)
	}
}

// leave takes m out of bt: before the merged call, out of its members;
// after, out of those waiting, cancelling the call when none is left.
func (b *batcher) leave(bt *batch, m *member) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.gone {
		return
	}
	m.gone = true
	if !bt.sent {
		for i, x := range bt.members {
			if x == m {
				bt.members = append(bt.members[:i], bt.members[i+1:]...)
				break
			}
		}
		bt.inputs -= len(m.in.items)
		if len(bt.members) == 0 {
			b.closeLocked(bt)
		}
		return
	}
	bt.live--
	if bt.live == 0 && bt.cancel != nil {
		bt.cancel()
	}
}

// run waits out bt's window, then sends it.
func (b *batcher) run(bt *batch) {
	select {
	case <-bt.window:
	case <-bt.full:
	}
	b.mu.Lock()
	b.closeLocked(bt)
	bt.sent = true
	members := bt.members
	bt.live = len(members)
	ctx, cancel := context.WithCancel(context.Background())
	bt.cancel = cancel
	b.mu.Unlock()
	defer cancel()
	switch len(members) {
	case 0:
		return
	case 1:
		members[0].done <- result{alone: true}
		return
	}
	b.send(ctx, members)
}

// send makes the merged call for members and gives each its result.
func (b *batcher) send(ctx context.Context, members []*member) {
	merged := mergeRequest(members)
	resp, err := b.next.Do(ctx, merged)
	if err != nil {
		if ae, ok := err.(*apierror.Error); ok && clientError(ae.Status) {
			for _, m := range members {
				m.done <- result{alone: true}
			}
			return
		}
		for _, m := range members {
			m.done <- result{err: copyError(err)}
		}
		return
	}
	parts, err := splitResponse(resp, members)
	for i, m := range members {
		if err != nil {
			m.done <- result{err: copyError(err)}
		} else {
			m.done <- result{resp: parts[i]}
		}
	}
}

// clientError reports a status that blames the request rather than the
// engine: one member's input may have caused it.
func clientError(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusTooManyRequests &&
		status != http.StatusUnauthorized && status != http.StatusForbidden && status != http.StatusNotFound &&
		status != apierror.StatusClientClosed
}

// copyError gives each member its own *apierror.Error, so that one
// caller annotating its error does not change another's.
func copyError(err error) error {
	if ae, ok := err.(*apierror.Error); ok {
		c := *ae
		return &c
	}
	return err
}

// leftError is a member's error when its own context ended first, as the
// backend reports it.
func leftError(ctx context.Context) error {
	err := context.Cause(ctx)
	if ctx.Err() == context.DeadlineExceeded {
		return &apierror.Error{Status: http.StatusGatewayTimeout, Type: apierror.TypeTimeout, Code: backend.CodeDeadlineExceeded,
			Message: "the request's deadline passed before the upstream answered", Err: &backend.DeadlineError{Err: err}}
	}
	return &apierror.Error{Status: apierror.StatusClientClosed, Type: apierror.TypeInvalidRequest, Code: backend.CodeClientClosed,
		Message: "the client closed the request", Err: err}
}

var _ backend.Backend = (*batcher)(nil)
