// Package balance chooses a replica (deployment) for a model: filter out the
// ones that are down, then pick the least loaded relative to its weight
// (power of two random choices, so a burst does not all land on one replica).
package balance

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/config"
)

// Endpoint is one deployment's live state. Its config is immutable; the
// counters are shared by every request that uses it.
type Endpoint struct {
	Config  config.Deployment
	Backend backend.Backend

	inflight  atomic.Int64
	failures  atomic.Int32 // consecutive connection-level failures
	downUntil atomic.Int64 // unix nanos; 0 when up
}

// Passive health: this many consecutive connection failures mark an endpoint
// down for DownFor, after which one request may probe it again.
const (
	FailuresToDown = 3
	DownFor        = 5 * time.Second
)

// NewEndpoint wraps a backend with live state.
func NewEndpoint(d config.Deployment, b backend.Backend) *Endpoint {
	return &Endpoint{Config: d, Backend: b}
}

// Available reports whether the endpoint may take requests at now.
func (e *Endpoint) Available(now time.Time) bool {
	until := e.downUntil.Load()
	return until == 0 || now.UnixNano() >= until
}

// InFlight is the number of requests the gateway has open on the endpoint.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Acquire counts a request on the endpoint; Release ends it.
func (e *Endpoint) Acquire() { e.inflight.Add(1) }

// Release ends a request counted by Acquire.
func (e *Endpoint) Release() { e.inflight.Add(-1) }

// Record feeds the outcome of an attempt into passive health: ok false means
// the endpoint could not be reached (dial error, reset, 502/503 from a proxy).
func (e *Endpoint) Record(ok bool, now time.Time) {
	if ok {
		if e.failures.Load() != 0 {
			e.failures.Store(0)
		}
		if e.downUntil.Load() != 0 {
			e.downUntil.Store(0)
		}
		return
	}
	if e.failures.Add(1) >= FailuresToDown {
		e.downUntil.Store(now.Add(DownFor).UnixNano())
	}
}

// Pool is the set of endpoints serving one model.
type Pool struct {
	Endpoints []*Endpoint
}

// Pick returns the endpoint to use, or nil when none is available. It skips
// the endpoints in exclude (already tried by this request).
func (p *Pool) Pick(now time.Time, exclude []*Endpoint) *Endpoint {
	eps := p.Endpoints
	if len(eps) == 1 {
		e := eps[0]
		if e.Available(now) && !contains(exclude, e) {
			return e
		}
		return nil
	}
	// Two random candidates among the available ones; the less loaded per
	// unit of weight wins.
	var a, b *Endpoint
	n := 0
	start := rand.IntN(len(eps))
	for i := range eps {
		e := eps[(start+i)%len(eps)]
		if !e.Available(now) || contains(exclude, e) {
			continue
		}
		n++
		switch {
		case a == nil:
			a = e
		case b == nil:
			b = e
		default:
			// reservoir-sample the second candidate so every endpoint can be chosen
			if rand.IntN(n-1) == 0 {
				b = e
			}
		}
	}
	if b == nil {
		return a
	}
	if load(b) < load(a) {
		return b
	}
	return a
}

func load(e *Endpoint) float64 {
	w := e.Config.Weight
	if w < 1 {
		w = 1
	}
	return float64(e.inflight.Load()+1) / float64(w)
}

// UpAgain is how long until the first endpoint marked down may take
// requests again: 0 when one is available now.
func (p *Pool) UpAgain(now time.Time) time.Duration {
	var first int64
	for _, e := range p.Endpoints {
		until := e.downUntil.Load()
		if until == 0 || now.UnixNano() >= until {
			return 0
		}
		if first == 0 || until < first {
			first = until
		}
	}
	if first == 0 {
		return 0
	}
	return time.Duration(first - now.UnixNano())
}

// Usable reports whether any endpoint is available at now.
func (p *Pool) Usable(now time.Time) bool {
	for _, e := range p.Endpoints {
		if e.Available(now) {
			return true
		}
	}
	return false
}

func contains(s []*Endpoint, e *Endpoint) bool {
	for _, x := range s {
		if x == e {
			return true
		}
	}
	return false
}
