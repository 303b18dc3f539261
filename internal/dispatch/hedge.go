package dispatch

import (
	"context"
	"net/http"
	"time"

	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/balance"
)

// attempt is one upstream attempt of a hedged request: where it went,
// its breaker ticket, its own context, and, once done, its outcome.
type attempt struct {
	d      *balance.Deployment
	ticket balance.Ticket
	ctx    context.Context
	cancel context.CancelFunc
	resp   *http.Response
	err    error
	// traced is a traced attempt's own request and span; nil: the call is
	// not traced, and the attempt sends the hedge's request. A pointer:
	// send's frame holds attempts, and is on every request's stack.
	traced *tracedAttempt
}

// tracedAttempt is what a traced attempt has of its own: its request (the
// trace context differs from the other attempt's) and its span.
type tracedAttempt struct {
	req  *backend.Request
	span AttemptSpan
}

// span is a's span; nil: not traced.
func (a *attempt) span() AttemptSpan {
	if a.traced == nil {
		return nil
	}
	return a.traced.span
}

// hedged is hedge for send, in the pieces send keeps: the attempt begun
// on d with ticket (span: its span, nil when not traced), and the one that
// answered or failed last. Out of line: send's frame is on the stack of
// every request while it waits for its upstream, and it then holds no
// attempt.
//
//go:noinline
func (c *Core) hedged(ctx context.Context, call *Call, m *Model, req *backend.Request, d *balance.Deployment, ticket balance.Ticket,
	span AttemptSpan, ch *balance.Choice, attempts int) (*http.Response, error, *balance.Deployment, balance.Ticket, context.CancelFunc, AttemptSpan, int) {
	first := attempt{d: d, ticket: ticket}
	if span != nil {
		first.traced = &tracedAttempt{req: req, span: span}
	}
	r, attempts := c.hedge(ctx, call, m, req, first, ch, attempts)
	return r.resp, r.err, r.d, r.ticket, r.cancel, r.span(), attempts
}

// hedge runs first (begun and acquired by send) and, when it has not
// answered within the model's hedge.after and another deployment outside
// tried can take it within the retry budget, a second attempt there. The
// first to answer wins; the other is cancelled, and its outcome says
// nothing against its deployment. A failure while the other still runs
// waits for the other; the last failure is returned for send to judge.
// attempts is send's count, with the hedge added.
func (c *Core) hedge(ctx context.Context, call *Call, m *Model, req *backend.Request, first attempt, ch *balance.Choice, attempts int) (attempt, int) {
	done := make(chan attempt, 2)
	run := func(a attempt) attempt {
		a.ctx, a.cancel = context.WithCancel(ctx)
		r := req
		if a.traced != nil {
			r = a.traced.req
		}
		go func(a attempt) {
			a.resp, a.err = a.d.Backend.Do(a.ctx, r)
			done <- a
		}(a)
		return a
	}
	start := c.clock.Now()
	running := []attempt{run(first)}
	timer := c.clock.After(hedgeWait(m))
	for {
		select {
		case <-timer:
			timer = nil
			if second, ok := c.second(call, m, req, ch, attempts); ok {
				attempts++
				m.Metrics.Hedge()
				running = append(running, run(second))
			}
		case a := <-done:
			running = without(running, a.d)
			switch {
			case a.err == nil:
				if m.Hedge.Percentile > 0 {
					m.firstByte.Observe(c.clock.Now().Sub(start))
				}
				for _, r := range running {
					r.cancel()
					go c.discard(m, done, ch.Tokens)
				}
				return a, attempts
			case len(running) > 0:
				a.cancel()
				c.end(ctx, m, a.d, a.ticket, ch.Tokens, a.err, a.span()) // the other may still answer
			default:
				a.cancel()
				return a, attempts
			}
		}
	}
}

// hedgeWait is how long a first attempt of m runs alone: hedge.after, or
// the recent time to first byte at hedge.percentile when longer.
func hedgeWait(m *Model) time.Duration {
	wait := m.Hedge.After.D()
	if m.Hedge.Percentile > 0 {
		if p, ok := m.firstByte.Percentile(m.Hedge.Percentile); ok && p > wait {
			wait = p
		}
	}
	return wait
}

// second begins the hedge of call's req: a deployment outside tried that
// can take it, within m's attempts (counted first: a second begun and not
// sent would hold its deployment) and its retry budget.
func (c *Core) second(call *Call, m *Model, req *backend.Request, ch *balance.Choice, attempts int) (attempt, bool) {
	if attempts >= m.Retry.Attempts {
		return attempt{}, false
	}
	now := c.clock.Now()
	ch.Now = now
	i := c.pick(m, ch)
	if i < 0 || !c.retryAllowed(m, now) {
		return attempt{}, false
	}
	ch.Tried.Add(i)
	d := m.Pool[i]
	t := d.Breaker.Begin(now)
	if !t.OK() {
		return attempt{}, false
	}
	d.Acquire(ch.Tokens)
	a := attempt{d: d, ticket: t}
	if call.st.span != nil { // a trace context of its own
		r := *req
		a.traced = &tracedAttempt{req: &r}
		a.traced.span = traceAttempt(call, &r, m, d, 0, true, false)
	}
	return a, true
}

// discard ends the cancelled loser of a hedge when it comes back: its
// answer, if it had one, is closed, and its outcome is neutral.
func (c *Core) discard(m *Model, done <-chan attempt, tokens int64) {
	a := <-done
	status := 0
	if a.resp != nil {
		status = a.resp.StatusCode
		a.resp.Body.Close()
	}
	c.end(a.ctx, m, a.d, a.ticket, tokens, context.Canceled, nil)
	if s := a.span(); s != nil {
		s.End(status, "hedge_lost", nil)
	}
}

// without returns running less the attempt on d.
func without(running []attempt, d *balance.Deployment) []attempt {
	for i, r := range running {
		if r.d == d {
			return append(running[:i], running[i+1:]...)
		}
	}
	return running
}
