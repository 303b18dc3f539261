// Package admission is the queue in front of one model (tier): at most
// Limit requests in flight on its deployments, the rest waiting in
// priority order, fairly across tenants, for a bounded time.
//
// # The limit
//
// Limit adapts to the time to first token of the attempts it admits (not
// their whole duration, so a long answer does not look like overload), as
// Netflix concurrency-limits' Gradient2 does. Samples are gathered in
// windows of max(10, limit) successful releases — about one turn of every
// place, so the effect of one change is seen before the next. At the end
// of a window with mean latency short:
//
//	floor    = floor + (short-floor)/4             when short < floor
//	floor    = floor + min(short-floor, floor/100)  otherwise
//	gradient = 1.5·floor/short
//	target   = limit + √limit                       when gradient ≥ 1
//	target   = limit·max(gradient, 0.5)             otherwise
//	target   = min(target, limit)                   unless every place was taken in the window
//	limit    = clamp(0.8·limit + 0.2·target, min, max)
//
// So the limit grows by 0.2·√limit a window while latency stays within
// 1.5× the floor and the places are all used (a limit nobody uses does
// not grow), and past 1.5× the floor it shrinks by up to 10% a window.
// The floor is the no-load latency: it falls fast to a lower window and
// rises by at most 1% a window, so a latency that stays higher (a longer
// prompt mix, slower hardware) becomes the new floor in about 70 windows
// per doubling while a burst of overload is cut first. Failed and
// cancelled attempts free their place but teach nothing.
//
// # Rules of thumb
//
// The bounds come from the deployments' engines (config.Admission.Resolve):
// Max is the sum of their max_num_seqs (more in flight only queues inside
// the engines, where the gateway can neither order nor shed it), Min one
// per deployment, and the limit starts at min(32, max(4, pending/2)) per
// deployment, pending being its max_num_seqs: enough to fill a batch
// without waiting on the controller, few enough that a cold engine is not
// flooded. MaxQueue defaults to 8 × Max.
//
// # Waiting
//
// A freed place goes to an Interactive waiter before any Batch one; within
// a priority, tenants (API key or user; "" is one anonymous tenant) take
// turns, each with its own FIFO, a newcomer before the tenant just served.
// While more than one tenant waits, one may have at most
// max(1, MaxQueue/n) requests waiting (in flight ones do not count), n
// the waiting tenants counting itself; past it it is answered 429
// rate_limited. When the queue is full, a tenant under its share takes
// the place of the newest waiter (Batch first) of the tenant with the
// most, which gets the 429; otherwise the newcomer gets 503 overloaded.
// A waiter gets 503 overloaded after QueueTimeout, and its ctx's error
// when the client leaves or its deadline passes; one whose expected wait
// is past its deadline is refused at once with 503. The expected wait is
// the waiters ahead, plus one, over the recent completion rate (permits
// released in the last 1–2 s, measured on the slow path only; unknown
// for the first second of queueing, when nothing is refused for it);
// Retry-After is that wait rounded up to whole seconds in [1s, 60s].
//
// The uncontended path is one lock and unlock, no clock read, no
// allocation; the package starts no goroutine.
package admission

import (
	"context"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

// Priority orders the waiters: Interactive before Batch.
type Priority int8

// The priorities, most urgent first.
const (
	Interactive Priority = iota
	Batch
	numPriorities
)

// ParsePriority reads a priority header value: "" (the default),
// interactive or high; batch or low. Case does not matter.
func ParsePriority(s string) (Priority, bool) {
	switch {
	case s == "", strings.EqualFold(s, "interactive"), strings.EqualFold(s, "high"):
		return Interactive, true
	case strings.EqualFold(s, "batch"), strings.EqualFold(s, "low"):
		return Batch, true
	}
	return Interactive, false
}

// String returns the priority's name.
func (p Priority) String() string {
	if p == Batch {
		return "batch"
	}
	return "interactive"
}

// The error codes of a refusal.
const (
	CodeOverloaded  = "overloaded"
	CodeRateLimited = "rate_limited"
)

// Retry-After bounds.
const (
	minRetryAfter = time.Second
	maxRetryAfter = time.Minute
)

// Queue admits the requests of one model. It is live state: one per
// model, kept across config reloads (SetConfig). Safe for concurrent use.
type Queue struct {
	clk  clock.Clock
	pool sync.Pool // of *waiter

	mu          sync.Mutex
	cfg         config.Admission
	ctl         gradient
	places      int // ctl.places(), the limit as a count
	inflight    int
	queued      int
	levels      [numPriorities]level
	tenants     map[string]*tenant // those with a waiter
	free        []*tenant
	completions uint64
	rate        rateMeter
	counts      Counts
}

// Counts are the outcomes of Acquire since the queue was made.
type Counts struct {
	Admitted    uint64 // given a permit, at once or after waiting
	Full        uint64 // 503: the queue was full
	Timeout     uint64 // 503: waited QueueTimeout
	Deadline    uint64 // 503: the expected wait was past the deadline
	RateLimited uint64 // 429: over the tenant's share, or its place taken by another tenant
	Cancelled   uint64 // the client left or its deadline passed while waiting
}

// Status is a snapshot for /admin and metrics.
type Status struct {
	Limit         int     // places now
	LimitEstimate float64 // the controller's unrounded limit
	Min, Max      int
	InFlight      int
	Queued        [numPriorities]int // by Priority
	MaxQueue      int
	Tenants       int           // tenants waiting
	Floor         time.Duration // the long-term time to first token
	Latency       time.Duration // the last window's mean time to first token
	Completed     uint64        // permits released
	Counts
}

// New returns a queue for cfg, which has been through
// config.Admission.Resolve (an unresolved one is resolved as for one
// deployment of unknown size, and a missing queue timeout is 5s).
func New(cfg config.Admission, clk clock.Clock) *Queue {
	cfg = normalize(cfg)
	q := &Queue{clk: clk, cfg: cfg, tenants: make(map[string]*tenant)}
	q.pool.New = func() any { return &waiter{ready: make(chan struct{}, 1)} }
	q.ctl = newGradient(cfg.Limit.Initial, cfg.Limit.Min, cfg.Limit.Max)
	q.places = q.ctl.places()
	return q
}

func normalize(cfg config.Admission) config.Admission {
	if cfg.Limit.Max <= 0 {
		cfg = cfg.Resolve(nil)
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = config.TierQueueTimeouts[""]
	}
	l := &cfg.Limit
	l.Min = min(max(l.Min, 1), l.Max)
	l.Initial = min(max(l.Initial, l.Min), l.Max)
	return cfg
}

// SetConfig applies a reloaded cfg: new bounds (the limit is clamped into
// them), queue size and timeout; the learned limit and floor, the waiters
// and the permits stay. Waiters already queued keep their timeout.
func (q *Queue) SetConfig(cfg config.Admission) {
	cfg = normalize(cfg)
	q.mu.Lock()
	q.cfg = cfg
	q.ctl.setBounds(cfg.Limit.Min, cfg.Limit.Max)
	q.places = q.ctl.places()
	q.dispatchLocked()
	q.mu.Unlock()
}

// Permit is a place in flight. Release it exactly once; the zero Permit's
// Release does nothing.
type Permit struct {
	q *Queue
}

// Release frees the place. latency is the attempt's time to first token
// and ok whether it teaches the controller: false for a failure or a
// client cancel, whose timing says nothing about the deployments' load.
func (p Permit) Release(latency time.Duration, ok bool) {
	q := p.q
	if q == nil {
		return
	}
	q.mu.Lock()
	q.completions++
	if ok && latency > 0 && q.ctl.sample(latency, q.inflight+q.queued, true) {
		q.places = q.ctl.places()
	}
	q.inflight--
	q.dispatchLocked()
	q.mu.Unlock()
}

// Observe teaches the controller the attempt's time to first token as
// soon as it is known, while the place stays taken (a stream may hold it
// for minutes); Release it later with ok false, so it is not counted
// twice. A limit that only learnt at the end of long streams would stay
// where it started while they run. queued is false when the engine that
// answered is known to have had nothing waiting while full (its metrics
// said so): a slower answer then is a bigger batch, not a queue; it cuts
// nothing, and the limit keeps probing up toward the engines' capacity.
func (p Permit) Observe(latency time.Duration, queued bool) {
	q := p.q
	if q == nil || latency <= 0 {
		return
	}
	q.mu.Lock()
	if q.ctl.sample(latency, q.inflight+q.queued, queued) {
		q.places = q.ctl.places()
		q.dispatchLocked()
	}
	q.mu.Unlock()
}

// Acquire waits for a place for a request of priority p from tenant. The
// error is an *apierror.Error (503 overloaded or 429 rate_limited, with
// RetryAfter) or ctx's error. A free place with nobody waiting is taken
// without looking at ctx.
func (q *Queue) Acquire(ctx context.Context, p Priority, tenant string) (Permit, error) {
	if p < 0 || p >= numPriorities {
		p = Interactive
	}
	q.mu.Lock()
	if q.queued == 0 && q.inflight < q.places {
		q.inflight++
		q.counts.Admitted++
		q.mu.Unlock()
		return Permit{q}, nil
	}
	return q.wait(ctx, p, tenant)
}

// TryAcquire takes a place when one is free and nobody waits, without
// waiting: ok is false otherwise, and Acquire then queues.
func (q *Queue) TryAcquire() (Permit, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued == 0 && q.inflight < q.places {
		q.inflight++
		q.counts.Admitted++
		return Permit{q}, true
	}
	return Permit{}, false
}

// wait queues the caller, q.mu held (and released).
func (q *Queue) wait(ctx context.Context, p Priority, name string) (Permit, error) {
	w, timer, byDeadline, err := q.enqueueLocked(ctx, p, name)
	q.mu.Unlock()
	if err != nil {
		return Permit{}, err
	}

	select {
	case <-w.ready:
		// Decided under the lock before the send.
		return q.outcome(w)
	case <-ctx.Done():
	case <-timer:
	}
	q.mu.Lock()
	if w.state != waiting {
		// Decided while we woke: the send is there.
		<-w.ready
		if w.state == granted && ctx.Err() != nil {
			// The client left holding a place: hand it on.
			q.inflight--
			q.counts.Admitted--
			q.counts.Cancelled++
			q.dispatchLocked()
			q.mu.Unlock()
			q.recycle(w)
			return Permit{}, ctx.Err()
		}
		q.mu.Unlock()
		return q.outcome(w)
	}
	q.removeLocked(w)
	switch {
	case ctx.Err() != nil:
		q.counts.Cancelled++
		err = ctx.Err()
	case byDeadline:
		q.counts.Cancelled++
		err = context.DeadlineExceeded
	default:
		q.counts.Timeout++
		r := q.rate.perSecond(q.clk.Now(), q.completions)
		err = overloaded(retryAfter(expectedWait(q.aheadLocked(p), r)), "no place after waiting %s", q.cfg.QueueTimeout)
	}
	q.mu.Unlock()
	q.recycle(w)
	return Permit{}, err
}

// enqueueLocked queues a waiter of priority p for tenant name, or says
// why not. The waiter's timer fires at the queue timeout, or at ctx's
// deadline (byDeadline) if that is sooner. The timer is set under the
// lock: once a waiter shows in Status, its timer is set (the Fake clock's
// tests rely on it).
func (q *Queue) enqueueLocked(ctx context.Context, p Priority, name string) (w *waiter, timer <-chan time.Time, byDeadline bool, err error) {
	if err := ctx.Err(); err != nil {
		q.counts.Cancelled++
		return nil, nil, false, err
	}
	now := q.clk.Now()
	rate := q.rate.perSecond(now, q.completions) // every slow path keeps the marks fresh
	ahead := q.aheadLocked(p)
	t := q.tenants[name]
	n, mine := len(q.tenants), 0
	if t == nil {
		n++
	} else {
		mine = t.queued
	}
	share := max(1, q.cfg.MaxQueue/n)
	if n > 1 && mine >= share {
		q.counts.RateLimited++
		return nil, nil, false, rateLimited(mine, n, retryAfter(expectedWait(ahead, rate)))
	}
	timeout := q.cfg.QueueTimeout.D()
	if deadline, ok := ctx.Deadline(); ok {
		left := deadline.Sub(now)
		if left <= 0 {
			q.counts.Cancelled++
			return nil, nil, false, context.DeadlineExceeded
		}
		if wait := expectedWait(ahead, rate); wait > left {
			q.counts.Deadline++
			return nil, nil, false, overloaded(retryAfter(wait), "the expected wait for a place (%s) is past the request's deadline (%s)",
				wait.Round(time.Millisecond), left.Round(time.Millisecond))
		}
		if left < timeout {
			timeout, byDeadline = left, true
		}
	}
	if q.queued >= q.cfg.MaxQueue {
		var v *waiter
		if n > 1 {
			v = q.victimLocked(name, share)
		}
		if v == nil {
			q.counts.Full++
			return nil, nil, false, overloaded(retryAfter(expectedWait(ahead, rate)), "the queue is full (%d waiting)", q.queued)
		}
		vt := v.tq.t
		vp := v.tq.prio
		q.removeLocked(v)
		q.counts.RateLimited++
		v.state = refused
		v.err = rateLimited(vt.queued, n, retryAfter(expectedWait(q.aheadLocked(vp), rate)))
		v.ready <- struct{}{}
	}
	if t == nil {
		t = q.addTenantLocked(name)
	}
	w = q.pool.Get().(*waiter)
	q.pushLocked(w, t, p)
	return w, q.clk.After(timeout), byDeadline, nil
}

// outcome returns a decided waiter's permit or error, and recycles it.
func (q *Queue) outcome(w *waiter) (Permit, error) {
	state, err := w.state, w.err
	q.recycle(w)
	if state == granted {
		return Permit{q}, nil
	}
	return Permit{}, err
}

func (q *Queue) recycle(w *waiter) {
	w.state, w.err = waiting, nil
	q.pool.Put(w)
}

// dispatchLocked gives the free places to waiters.
func (q *Queue) dispatchLocked() {
	for q.inflight < q.places && q.queued > 0 {
		w := q.popLocked()
		q.inflight++
		q.counts.Admitted++
		w.state = granted
		w.ready <- struct{}{} // buffered and empty: never blocks
	}
}

// Status returns a snapshot of the queue.
func (q *Queue) Status() Status {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := Status{
		Limit:         q.places,
		LimitEstimate: q.ctl.limit,
		Min:           q.cfg.Limit.Min,
		Max:           q.cfg.Limit.Max,
		InFlight:      q.inflight,
		MaxQueue:      q.cfg.MaxQueue,
		Tenants:       len(q.tenants),
		Floor:         time.Duration(q.ctl.floor),
		Latency:       time.Duration(q.ctl.short),
		Completed:     q.completions,
		Counts:        q.counts,
	}
	for p := range q.levels {
		s.Queued[p] = q.levels[p].n
	}
	return s
}

// expectedWait is how long until ahead waiters and then one more have
// had a place at rate completions a second; 0 when the rate is not known.
func expectedWait(ahead int, rate float64) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(ahead+1) / rate * float64(time.Second))
}

// retryAfter rounds an expected wait up to whole seconds in
// [minRetryAfter, maxRetryAfter].
func retryAfter(wait time.Duration) time.Duration {
	s := time.Duration(math.Ceil(wait.Seconds())) * time.Second
	return min(max(s, minRetryAfter), maxRetryAfter)
}

func overloaded(retry time.Duration, format string, args ...any) *apierror.Error {
	e := apierror.New(http.StatusServiceUnavailable, CodeOverloaded, "The model is overloaded: "+format+"; retry later.", args...)
	e.RetryAfter = retry
	return e
}

func rateLimited(mine, tenants int, retry time.Duration) *apierror.Error {
	e := apierror.New(http.StatusTooManyRequests, CodeRateLimited,
		"Too many requests waiting for this model from this client (%d, its share of the queue with %d clients waiting); retry later.", mine, tenants)
	e.RetryAfter = retry
	return e
}

// rateMeter measures the completion rate on the slow path only: two marks
// (time, completions) at least rateStep apart, the older one the base.
type rateMeter struct {
	t0, t1 time.Time
	n0, n1 uint64
}

const (
	rateStep = time.Second
	// rateStale: marks older than this describe another load; start over.
	rateStale = 5 * time.Second
)

// perSecond returns the completions per second since the older mark, and
// 0 when unknown (under rateStep of history, or nothing completed).
func (r *rateMeter) perSecond(now time.Time, n uint64) float64 {
	if r.t1.IsZero() || now.Sub(r.t1) > rateStale {
		r.t0, r.n0, r.t1, r.n1 = now, n, now, n
		return 0
	}
	if now.Sub(r.t1) >= rateStep {
		r.t0, r.n0, r.t1, r.n1 = r.t1, r.n1, now, n
	}
	span := now.Sub(r.t0)
	if span < rateStep {
		return 0
	}
	return float64(n-r.n0) / span.Seconds()
}
