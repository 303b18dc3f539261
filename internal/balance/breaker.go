package balance

import (
	"sync"
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
// the common case (closed, success) takes the lock only to read.
type Breaker struct {
	mu        sync.Mutex
	state     BreakerState
	failures  int
	openUntil time.Time
	cooldown  time.Duration // the current one; grows while probes fail
	probing   bool          // a half-open probe is in flight
}

// Ready reports, without side effects, whether a request could be sent at
// now: closed, or past the cool-down with no probe in flight.
func (b *Breaker) Ready(now time.Time) bool {
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

// Begin admits one request at now, taking the probe slot when the breaker
// is half-open (or its cool-down just ended). false: another request won
// the slot, or the breaker is open. Every admitted request is followed by
// exactly one End.
func (b *Breaker) Begin(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true
	case Open:
		if now.Before(b.openUntil) {
			return false
		}
		b.state = HalfOpen
	}
	if b.probing {
		return false
	}
	b.probing = true
	return true
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

// End records the outcome of a request admitted by Begin. It returns the
// state before and after, so callers can count transitions.
func (b *Breaker) End(o Outcome, now time.Time) (from, to BreakerState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	from = b.state
	probe := b.state == HalfOpen && b.probing
	if probe {
		b.probing = false
	}
	switch o {
	case Success:
		b.failures = 0
		if probe { // a late answer from before the breaker opened proves less
			b.state, b.cooldown = Closed, 0
		}
	case Failure:
		b.failures++
		switch {
		case probe:
			b.cooldown = min(2*b.cooldown, MaxCooldown)
			b.open(now)
		case b.state == Closed && b.failures >= FailuresToOpen:
			b.cooldown = Cooldown
			b.open(now)
		}
	}
	return from, b.state
}

func (b *Breaker) open(now time.Time) {
	if b.cooldown <= 0 {
		b.cooldown = Cooldown
	}
	b.state, b.openUntil = Open, now.Add(b.cooldown)
}

// State returns the state at now (an open breaker past its cool-down reads
// half-open) and, when open, how long until a probe may go.
func (b *Breaker) State(now time.Time) (BreakerState, time.Duration) {
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
