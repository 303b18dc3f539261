package balance

import (
	"math/rand/v2"
	"time"
)

// Filter reports whether d may take a request at now.
type Filter func(d *Deployment, now time.Time) bool

// Scorer rates d from 0 (worst) to 1 (best).
type Scorer func(d *Deployment) float64

// Weighted is a scorer and its weight in the total score.
type Weighted struct {
	Score  Scorer
	Weight float64
}

// Picker chooses a deployment in three steps: every filter must pass, the
// weighted scorers rate the survivors, and of two random survivors the
// better rated wins (two choices, so a burst does not all land on the one
// that looked best a moment ago). The zero value filters on the breaker
// and scores on load.
type Picker struct {
	Filters []Filter
	Scorers []Weighted
	// Rand returns a number in [0, n); math/rand/v2's IntN when nil.
	Rand func(n int) int
}

// DefaultFilters and DefaultScorers are what the zero Picker uses.
var (
	DefaultFilters = []Filter{InRotation, BreakerReady, NotBusy}
	DefaultScorers = []Weighted{{Score: LeastLoaded, Weight: 1}}
)

// InRotation passes deployments the active health check has not taken
// out of rotation.
func InRotation(d *Deployment, _ time.Time) bool { return d.State.InRotation() }

// BreakerReady passes deployments whose breaker would admit a request.
func BreakerReady(d *Deployment, now time.Time) bool { return d.Breaker.Ready(now) }

// NotBusy passes deployments that did not ask, with a Retry-After, to be
// left alone for now.
func NotBusy(d *Deployment, now time.Time) bool { return d.State.BusyFor(now) == 0 }

// LeastLoaded scores by requests in flight per unit of weight: an idle
// deployment of weight w scores w/(w+1), and each request lowers it.
func LeastLoaded(d *Deployment) float64 {
	w := d.weight()
	return 1 / (1 + float64(d.InFlight()+1)/w)
}

// Pick returns the index in pool of the deployment to use, or -1 when no
// deployment outside tried passes the filters.
func (p *Picker) Pick(now time.Time, pool []*Deployment, tried *Tried) int {
	a, b, n := -1, -1, 0
	start := 0
	if len(pool) > 1 {
		start = p.intN(len(pool))
	}
	for k := range pool {
		i := (start + k) % len(pool)
		if tried.Has(i) || !p.pass(pool[i], now) {
			continue
		}
		n++
		switch {
		case a < 0:
			a = i
		case b < 0:
			b = i
		case p.intN(n-1) == 0:
			b = i // reservoir-sample the second, so every survivor can be chosen
		}
	}
	if b < 0 {
		return a
	}
	if p.score(pool[b]) > p.score(pool[a]) {
		return b
	}
	return a
}

func (p *Picker) pass(d *Deployment, now time.Time) bool {
	fs := p.Filters
	if fs == nil {
		fs = DefaultFilters
	}
	for _, f := range fs {
		if !f(d, now) {
			return false
		}
	}
	return true
}

func (p *Picker) score(d *Deployment) float64 {
	ss := p.Scorers
	if ss == nil {
		ss = DefaultScorers
	}
	var total float64
	for _, s := range ss {
		total += s.Weight * s.Score(d)
	}
	return total
}

func (p *Picker) intN(n int) int {
	if p.Rand != nil {
		return p.Rand(n)
	}
	return rand.IntN(n)
}

// Tried is the set of pool indices a request has already tried. The zero
// value is empty; pools of up to 64 deployments need no allocation.
type Tried struct {
	low  uint64
	high map[int]bool
}

// Add marks index i tried.
func (t *Tried) Add(i int) {
	if i < 64 {
		t.low |= 1 << uint(i)
		return
	}
	if t.high == nil {
		t.high = make(map[int]bool)
	}
	t.high[i] = true
}

// Has reports whether index i was tried.
func (t *Tried) Has(i int) bool {
	if i < 64 {
		return t.low&(1<<uint(i)) != 0
	}
	return t.high[i]
}

// UpAgain is how long until the first deployment in pool may take a
// request again (its breaker open, or busy after a Retry-After): 0 when
// one can now.
func UpAgain(pool []*Deployment, now time.Time) time.Duration {
	var first time.Duration
	for _, d := range pool {
		st, wait := d.Breaker.State(now)
		if st != Open {
			wait = 0
		}
		wait = max(wait, d.State.BusyFor(now))
		if wait == 0 {
			return 0
		}
		if first == 0 || wait < first {
			first = wait
		}
	}
	return first
}

// Usable reports whether any deployment in pool takes traffic at now: in
// rotation, and its breaker not open (a half-open one counts: it is being
// probed).
func Usable(pool []*Deployment, now time.Time) bool {
	for _, d := range pool {
		if st, _ := d.Breaker.State(now); st != Open && d.InRotation() {
			return true
		}
	}
	return false
}
