package balance

import (
	"sync"
	"sync/atomic"
	"time"
)

// BreakerState is where a deployment's circuit breaker stands.
type BreakerState uint8

// The breaker's states: closed takes traffic; open takes none until its
// cool-down ends; half-open lets one probe request through, whose outcome
// closes or re-opens it.
const (
	Closed BreakerState = iota
	Open
	HalfOpen
)

// String names the state as metrics and the status API do.
func (s BreakerState) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return "closed"
}

// Breaker defaults. Each re-opening after a failed probe doubles the
// cool-down, up to MaxCooldown, so a dead deployment costs one probe per
// cool-down rather than a failure per request.
const (
	FailuresToOpen = 3
	Cooldown       = 5 * time.Second
	MaxCooldown    = time.Minute
)

// Breaker is one deployment's circuit breaker. Consecutive failures open
// it; after the cool-down exactly one request probes the deployment. The
// zero value is closed with the defaults. It is safe for concurrent use;
// while it is closed, admitting requests and counting their outcomes take
// no lock: only the failure that opens it, and what follows, do.
type Breaker struct {
	tripped  atomic.Bool  // open or half-open; false in the zero value
	failures atomic.Int32 // consecutive

	mu        sync.Mutex
	state     BreakerState
	openUntil time.Time
	cooldown  time.Duration // the current one; grows while probes fail
	probing   bool          // a half-open probe is in flight
	changed   time.Time     // when state last changed; zero: never
}

// Ready reports, without side effects, whether a request could be sent at
// now: closed, or past the cool-down with no probe in flight.
func (b *Breaker) Ready(now time.Time) bool {
	if !b.tripped.Load() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true
	case Open:
		return !now.Before(b.openUntil)
	}
	return !b.probing
}

// Ticket is what Begin hands an admitted request, for its End.
type Ticket struct {
	ok    bool
	probe bool // the half-open probe: its outcome decides the state
}

// OK reports whether the request was admitted.
func (t Ticket) OK() bool { return t.ok }

// Begin admits one request at now, taking the probe slot when the breaker
// is half-open (or its cool-down just ended). A ticket that is not OK:
// another request holds the slot, or the breaker is open. Every admitted
// request is followed by exactly one End with its ticket.
func (b *Breaker) Begin(now time.Time) Ticket {
	if !b.tripped.Load() {
		return Ticket{ok: true}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return Ticket{ok: true}
	case Open:
		if now.Before(b.openUntil) {
			return Ticket{}
		}
		b.state, b.changed = HalfOpen, now
	}
	if b.probing {
		return Ticket{}
	}
	b.probing = true
	return Ticket{ok: true, probe: true}
}

// Outcome is what one attempt says about the deployment.
type Outcome uint8

// Outcomes: Success (it answered, even with a client error), Failure (it
// could not be reached, timed out, broke, or said it is unavailable),
// Neutral (nothing learnt: the client left, or the gateway's own limit).
const (
	Neutral Outcome = iota
	Success
	Failure
)

// End records the outcome of a request admitted with t. It returns the
// state before and after, so callers can count transitions.
func (b *Breaker) End(t Ticket, o Outcome, now time.Time) (from, to BreakerState) {
	if !t.probe && !b.tripped.Load() {
		switch o {
		case Success:
			if b.failures.Load() != 0 {
				b.failures.Store(0)
			}
			return Closed, Closed
		case Neutral:
			return Closed, Closed
		}
		if b.failures.Add(1) < FailuresToOpen {
			return Closed, Closed
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	from = b.state
	if t.probe {
		b.probing = false
		switch o {
		case Success:
			b.failures.Store(0)
			b.state, b.cooldown, b.changed = Closed, 0, now
			b.tripped.Store(false)
		case Failure:
			b.cooldown = min(2*b.cooldown, MaxCooldown)
			b.open(now)
		}
		return from, b.state
	}
	// A request admitted before the breaker opened proves little either way.
	if o == Failure && b.state == Closed && b.failures.Load() >= FailuresToOpen {
		b.cooldown = Cooldown
		b.open(now)
	}
	return from, b.state
}

// ProbeNow ends an open breaker's cool-down at now, so the next request
// probes the deployment: its health check saw it answer again.
func (b *Breaker) ProbeNow(now time.Time) {
	if !b.tripped.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open && now.Before(b.openUntil) {
		b.openUntil = now
	}
}

func (b *Breaker) open(now time.Time) {
	if b.cooldown <= 0 {
		b.cooldown = Cooldown
	}
	b.state, b.openUntil, b.changed = Open, now.Add(b.cooldown), now
	b.tripped.Store(true)
}

// State returns the state at now (an open breaker past its cool-down reads
// half-open) and, when open, how long until a probe may go.
func (b *Breaker) State(now time.Time) (BreakerState, time.Duration) {
	if !b.tripped.Load() {
		return Closed, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open {
		if wait := b.openUntil.Sub(now); wait > 0 {
			return Open, wait
		}
		return HalfOpen, 0
	}
	return b.state, 0
}

// BreakerSnapshot is a breaker's state for the status API.
type BreakerSnapshot struct {
	State    BreakerState
	Failures int           // consecutive
	RetryIn  time.Duration // while open: until a probe may go
	Changed  time.Time     // when the state last changed; zero: never
}

// Snapshot reads the breaker at now.
func (b *Breaker) Snapshot(now time.Time) BreakerSnapshot {
	st, wait := b.State(now)
	b.mu.Lock()
	changed := b.changed
	b.mu.Unlock()
	return BreakerSnapshot{State: st, Failures: int(b.failures.Load()), RetryIn: wait, Changed: changed}
}
