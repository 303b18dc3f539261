package balance

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/omnigate/omnigate/internal/config"
)

// Filter reports whether d may take a request at now.
type Filter func(d *Deployment, now time.Time) bool

// Strategy is how a Picker chooses among the deployments that pass its
// filters.
type Strategy int

// Score (the zero value: weighted scorers, then the best or the better
// of two), LeastInflight (the better of two random ones by the
// gateway's own in-flight count per weight), RoundRobin, Random.
const (
	Score Strategy = iota
	LeastInflight
	RoundRobin
	Random
)

// ParseStrategy maps a config strategy name to its Strategy.
func ParseStrategy(s string) Strategy {
	switch s {
	case config.StrategyLeastInflight:
		return LeastInflight
	case config.StrategyRoundRobin:
		return RoundRobin
	case config.StrategyRandom:
		return Random
	}
	return Score
}

// Weights are the weights of the Score strategy's scorers, each of which
// rates a deployment in [0, 1].
type Weights struct {
	Load, KV, Latency, Prefix, Sticky float64
}

// WeightsOf reads a model's balance.weights.
func WeightsOf(w map[string]float64) Weights {
	return Weights{Load: w[config.ScoreLoad], KV: w[config.ScoreKV], Latency: w[config.ScoreLatency],
		Prefix: w[config.ScorePrefix], Sticky: w[config.ScoreSticky]}
}

// DefaultWeights are the zero Picker's.
var DefaultWeights = WeightsOf(config.DefaultWeights)

// Choice is what one pick knows of its request.
type Choice struct {
	Now   time.Time
	Tried *Tried // pool indices already tried; nil: none
	// Prefix holds the chained block hashes of the prompt (PrefixHashes).
	Prefix []uint64
	// Sticky is a hash of the request's sticky key; 0: none.
	Sticky uint64
	// Audio: the request asks for audio out, which only deployments
	// with audio_output give.
	Audio bool
	// Tokens is the request's estimated tokens in the engine (its prompt
	// and the most it may generate), counted on the deployment it is
	// sent to while it runs.
	Tokens int64
}

// Picker chooses a deployment of a model's pool for a request, in three
// steps: filters drop the deployments that cannot take it (out of
// rotation, breaker open, busy after a Retry-After, no audio for an
// audio request, and, while others are not, saturated: as many in
// flight as the engine batches), weighted scorers rate the rest (load,
// KV-cache headroom, latency, prefix affinity, sticky key), and the best
// wins (ties at random) or the better of two random ones. Prefix and
// sticky scores count only for a deployment whose load is within 20%
// of the pool's mean (consistent hashing with bounded loads): affinity
// never piles work on one replica. The zero value uses DefaultWeights.
type Picker struct {
	Strategy   Strategy
	TwoChoices bool
	Weights    Weights
	// Prefix is the model's prefix-affinity index; nil: no affinity.
	Prefix *PrefixIndex
	// Filters replace DefaultFilters when set.
	Filters []Filter
	// Rand returns a number in [0, n); math/rand/v2's IntN when nil.
	Rand func(n int) int

	rr  atomic.Uint64
	log Decisions
	// epochs are the deployments' epochs the prefix index was last
	// right for, by pool index: one that went out of rotation since is
	// forgotten, its engine's cache being likely gone.
	epochs [64]atomic.Uint64
}

// NewPicker returns the picker a model's balance config describes, for
// a pool of n deployments.
func NewPicker(b config.Balance) *Picker {
	p := &Picker{Strategy: ParseStrategy(b.Strategy), TwoChoices: b.Picker == config.PickerTwoChoices, Weights: WeightsOf(b.Weights)}
	if b.Prefix.On() && p.Weights.Prefix > 0 && p.Strategy == Score {
		p.Prefix = NewPrefixIndex(b.Prefix.Entries)
	}
	return p
}

// DefaultFilters are what a Picker without Filters applies.
var DefaultFilters = []Filter{InRotation, BreakerReady, NotBusy}

// InRotation passes deployments the active health check has not taken
// out of rotation.
func InRotation(d *Deployment, _ time.Time) bool { return d.State.InRotation() }

// BreakerReady passes deployments whose breaker would admit a request.
func BreakerReady(d *Deployment, now time.Time) bool { return d.Breaker.Ready(now) }

// NotBusy passes deployments that did not ask, with a Retry-After, to be
// left alone for now.
func NotBusy(d *Deployment, now time.Time) bool { return d.State.BusyFor(now) == 0 }

// candidatePool holds candidate slices for pools of more than 8.
var candidatePool = sync.Pool{New: func() any { s := make([]candidate, 0, 64); return &s }}

// boundedLoad is how far above the pool's mean load a deployment may be
// and still win on affinity.
const boundedLoad = 1.2

// candidate is a deployment that passed the filters, with what its
// scores are computed from.
type candidate struct {
	i         int            // pool index
	load      float64        // per unit of weight
	eng       *EngineMetrics // the last fresh scrape; nil: none
	saturated bool
	score     float64
}

// Pick returns the index in pool of the deployment to use, or -1 when no
// deployment outside c.Tried passes the filters. With prefix affinity on,
// the chosen deployment is recorded as holding c.Prefix.
func (p *Picker) Pick(c *Choice, pool []*Deployment) int {
	n := len(pool)
	// A few candidates on the stack, more from a pool: this frame sits
	// below a stream's parked handler, whose stack must stay small.
	var buf [8]candidate
	cands := buf[:0]
	if n > len(buf) {
		big := candidatePool.Get().(*[]candidate)
		defer candidatePool.Put(big)
		cands = (*big)[:0]
	}
	start := 0
	if n > 1 && p.Strategy != RoundRobin {
		start = p.intN(n)
	}
	now := c.Now // a copy: the filters see no more of c
	unsaturated := 0
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		d := pool[i]
		if c.Tried != nil && c.Tried.Has(i) || !p.pass(d, now, c.Audio) {
			continue
		}
		if p.Strategy != Score { // the others see only the pool
			cands = append(cands, candidate{i: i})
			continue
		}
		if p.Prefix != nil {
			p.forgetRestarted(d, i)
		}
		eng := d.EngineFresh(now)
		load := d.load(eng)
		sat := d.Config.MaxNumSeqs > 0 && load >= float64(d.Config.MaxNumSeqs)
		if !sat {
			unsaturated++
		}
		cands = append(cands, candidate{i: i, load: load / d.weight(), eng: eng, saturated: sat})
	}
	if unsaturated > 0 && unsaturated < len(cands) {
		cands = slices.DeleteFunc(cands, func(x candidate) bool { return x.saturated })
	}
	var i int
	switch {
	case len(cands) == 0:
		return -1
	case len(cands) == 1:
		i = cands[0].i
	case p.Strategy == RoundRobin:
		i = cands[int(p.rr.Add(1)-1)%len(cands)].i
	case p.Strategy == Random:
		i = cands[0].i // the scan began at random
	case p.Strategy == LeastInflight:
		a, b := p.two(cands)
		if float64(pool[b.i].InFlight())/pool[b.i].weight() < float64(pool[a.i].InFlight())/pool[a.i].weight() {
			a = b
		}
		i = a.i
	default:
		i = p.score(c, pool, cands)
	}
	if p.Prefix != nil && len(c.Prefix) > 0 {
		p.Prefix.Insert(c.Prefix, i)
	}
	return i
}

// forgetRestarted clears d (at pool index i) from the prefix index once
// after each time it went out of rotation.
func (p *Picker) forgetRestarted(d *Deployment, i int) {
	e := &p.epochs[i%64]
	if ep := d.Epoch(); e.Load() != ep && e.Swap(ep) != ep {
		p.Prefix.Forget(i)
	}
}

// score rates every candidate and returns the chosen one's pool index.
func (p *Picker) score(c *Choice, pool []*Deployment, cands []candidate) int {
	w := p.Weights
	if w == (Weights{}) {
		w = DefaultWeights
	}
	// The load score is 1/(1 + (load+1)/weight), against the pool's best:
	// the +1 lets weight tell idle deployments apart.
	var sum, minLoad, minFirst, minPer float64
	minLoad = math.Inf(1)
	for _, x := range cands {
		sum += x.load
		minLoad = min(minLoad, x.load+1/pool[x.i].weight())
		if w.Latency > 0 {
			f, t := pool[x.i].Latencies()
			minFirst, minPer = minPositive(minFirst, f), minPositive(minPer, t)
		}
	}
	bound := math.Ceil(boundedLoad * (sum + 1) / float64(len(cands)))
	var matched [64]uint16
	best := 0
	if w.Prefix > 0 && p.Prefix != nil && len(c.Prefix) > 0 && len(pool) <= 64 {
		best = p.Prefix.Match(c.Prefix, len(pool), &matched)
	}
	sticky := -1
	if w.Sticky > 0 && c.Sticky != 0 {
		sticky = rendezvous(c.Sticky, pool, cands)
	}
	for k := range cands {
		x := &cands[k]
		d := pool[x.i]
		s := w.Load * (minLoad + 1) / (x.load + 1/d.weight() + 1)
		if w.KV > 0 {
			s += w.KV * kvHeadroom(x.eng)
		}
		if w.Latency > 0 {
			f, t := d.Latencies()
			s += w.Latency * latencyScore(minFirst, f, minPer, t)
		}
		if x.load+1 <= bound {
			if best > 0 {
				s += w.Prefix * float64(matched[x.i]) / float64(len(c.Prefix))
			}
			if x.i == sticky {
				s += w.Sticky
			}
		}
		x.score = s
	}
	var win candidate
	if p.TwoChoices {
		a, b := p.two(cands)
		win = a
		if b.score > a.score {
			win = b
		}
	} else {
		win = cands[0] // the scan began at random: the first of equals is a random one
		for _, x := range cands[1:] {
			if x.score > win.score {
				win = x
			}
		}
	}
	p.log.note(c.Now.UnixNano(), pool, cands, win.i) // not c.Now itself: c would escape
	return win.i
}

// two returns two different random candidates (of at least two).
func (p *Picker) two(cands []candidate) (candidate, candidate) {
	a := p.intN(len(cands))
	b := p.intN(len(cands) - 1)
	if b >= a {
		b++
	}
	return cands[a], cands[b]
}

// kvHeadroom is the share of the KV cache free by an engine's fresh
// scrape m; 0.5 when unknown.
func kvHeadroom(m *EngineMetrics) float64 {
	if m != nil && m.HasKV {
		return 1 - min(max(m.KVUsage, 0), 1)
	}
	return 0.5
}

// latencyScore rates a deployment's latency averages against the pool's
// best: 1 at the best (or with no samples yet, so a new deployment is
// tried), falling as best/own.
func latencyScore(minFirst, first, minPer, per float64) float64 {
	s, n := 0.0, 0
	if first > 0 && minFirst > 0 {
		s, n = s+minFirst/first, n+1
	}
	if per > 0 && minPer > 0 {
		s, n = s+minPer/per, n+1
	}
	if n == 0 {
		return 1
	}
	return s / float64(n)
}

func minPositive(a, b float64) float64 {
	if b <= 0 || a > 0 && a <= b {
		return a
	}
	return b
}

// rendezvous returns the pool index of the candidate a sticky key sticks to:
// the highest hash of the key and deployment ID (rendezvous hashing), so
// that every gateway replica agrees and a deployment leaving moves only
// its own keys.
func rendezvous(key uint64, pool []*Deployment, cands []candidate) int {
	best, top := -1, uint64(0)
	for _, x := range cands {
		id := pool[x.i].ID
		if id == 0 {
			id = xxhash.Sum64String(pool[x.i].Config.Name)
		}
		if h := chain(key, id); best < 0 || h > top {
			best, top = x.i, h
		}
	}
	return best
}

func (p *Picker) pass(d *Deployment, now time.Time, audio bool) bool {
	if audio && !d.Config.AudioOutput {
		return false
	}
	if p.Filters == nil { // DefaultFilters, called directly
		return d.InRotation() && d.Breaker.Ready(now) && d.BusyFor(now) == 0
	}
	at := time.Unix(0, now.UnixNano()) // not now itself: the Choice would escape into the filters
	for _, f := range p.Filters {
		if !f(d, at) {
			return false
		}
	}
	return true
}

func (p *Picker) intN(n int) int {
	if p.Rand != nil {
		return p.Rand(n)
	}
	return rand.IntN(n)
}

// Recent returns the picker's recent sampled decisions, newest first.
func (p *Picker) Recent() []Decision { return p.log.recent() }

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
