// Package balance chooses the deployment (one replica of a model) that
// serves a request: filters drop the ones that cannot take it, a scorer
// ranks the rest, a picker chooses. Live state per deployment (in-flight
// count, circuit breaker, scraped engine metrics) is kept apart from the
// configuration, in a Registry that outlives config reloads.
package balance

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/config"
)

// State is one deployment's live state, shared by every request and every
// config snapshot that uses the deployment.
type State struct {
	inflight atomic.Int64
	tokens   atomic.Int64 // estimated, of the requests in flight
	epoch    atomic.Uint64
	Breaker  Breaker
	// Engine is the last engine metrics scrape (nil until one lands).
	Engine atomic.Pointer[EngineMetrics]
	// last is the last failure the deployment was held to (nil: none).
	last atomic.Pointer[Failed]
	// health is what the active health check says: Unchecked, Up or Down.
	health atomic.Int32
	// busy is until when (Unix nanoseconds) the engine asked not to be
	// sent more: its 429's or 503's Retry-After.
	busy atomic.Int64
	// ttft and perToken are moving averages (float64 bits, seconds; 0:
	// no sample yet) of the time to a stream's first byte and of the
	// time per output token of whole answers.
	ttft, perToken atomic.Uint64
}

// latencyAlpha is the weight of a new sample in the latency averages:
// after 20 samples an old level is down to a tenth.
const latencyAlpha = 0.1

// ObserveFirstByte adds a stream's time to first byte to its average.
func (s *State) ObserveFirstByte(d time.Duration) { ewma(&s.ttft, d.Seconds()) }

// ObservePerToken adds an answer's time per output token (its whole time
// over its completion tokens) to its average.
func (s *State) ObservePerToken(d time.Duration) { ewma(&s.perToken, d.Seconds()) }

// Latencies returns the averages of time to first byte and per token,
// in seconds; 0 for one without samples.
func (s *State) Latencies() (firstByte, perToken float64) {
	return math.Float64frombits(s.ttft.Load()), math.Float64frombits(s.perToken.Load())
}

func ewma(a *atomic.Uint64, v float64) {
	if v <= 0 {
		v = 1e-9 // keep 0 for "no sample"
	}
	for {
		old := a.Load()
		next := v
		if old != 0 {
			next = math.Float64frombits(old)*(1-latencyAlpha) + v*latencyAlpha
		}
		if a.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// Busy keeps the deployment out of the picker until until (a later time
// already set stands).
func (s *State) Busy(until time.Time) {
	n := until.UnixNano()
	for {
		old := s.busy.Load()
		if old >= n || s.busy.CompareAndSwap(old, n) {
			return
		}
	}
}

// BusyFor returns how long the deployment stays busy after now; 0 when
// it is not.
func (s *State) BusyFor(now time.Time) time.Duration {
	n := s.busy.Load()
	if n == 0 {
		return 0
	}
	return max(time.Duration(n-now.UnixNano()), 0)
}

// Health is what a deployment's active health check last concluded.
type Health int32

// Unchecked (no active check), Up, Down (out of rotation).
const (
	Unchecked Health = iota
	Up
	Down
)

// String names the health as the status API does.
func (h Health) String() string {
	switch h {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unchecked"
}

// Health returns the active health check's conclusion.
func (s *State) Health() Health { return Health(s.health.Load()) }

// SetHealth records the active health check's conclusion. Going down
// starts a new epoch: whatever the engine had cached may be gone.
func (s *State) SetHealth(h Health) {
	if old := Health(s.health.Swap(int32(h))); h == Down && old != Down {
		s.epoch.Add(1)
	}
}

// Epoch counts the times the deployment went out of rotation.
func (s *State) Epoch() uint64 { return s.epoch.Load() }

// InRotation reports whether the deployment may be picked: its active
// health check, if any, has not taken it out.
func (s *State) InRotation() bool { return Health(s.health.Load()) != Down }

// Failed is a failure a deployment was held to, and when.
type Failed struct {
	At      time.Time
	Reason  string // the outcome class: 503, unreachable, misconfigured, stream_504…
	Message string // what a client was told: no internal names or addresses
}

// NoteFailure records f as the deployment's last failure. Failures are
// the rare path: the allocation here is not on the common one.
func (s *State) NoteFailure(f Failed) { s.last.Store(&f) }

// LastFailure returns the last failure recorded, nil when none.
func (s *State) LastFailure() *Failed { return s.last.Load() }

// EngineMetrics is what an engine's own /metrics said, and when. An
// engine that does not export a gauge leaves its Has flag false.
type EngineMetrics struct {
	At      time.Time
	Running int     // requests the engine is running (decoding or prefilling)
	Waiting int     // requests queued in the engine
	KVUsage float64 // KV-cache use, 0..1
	HasKV   bool    // the engine exports its KV-cache use
	// PrefixQueries and PrefixHits are the engine's cumulative prefix
	// cache counters (tokens queried, tokens found cached); HasPrefix
	// says whether it exports them.
	PrefixQueries, PrefixHits float64
	HasPrefix                 bool
	// PrefixHitRate is the prefix cache hit rate (0..1) an engine that has
	// no cumulative counters reports itself (SGLang's cache_hit_rate, over
	// its recent batches); HasHitRate says whether it does.
	PrefixHitRate float64
	HasHitRate    bool
	// Preemptions is the engine's cumulative count of requests preempted
	// (vLLM) or retracted (SGLang) for lack of KV-cache room: a sign of
	// memory pressure. HasPreemptions says whether it exports one.
	Preemptions    float64
	HasPreemptions bool
	// Local is the gateway's own in-flight count on the deployment when
	// the scrape landed: the share of Running+Waiting that is its own, so
	// that between scrapes the load is Local's change plus the rest.
	Local int64
}

// HitRate is the engine's prefix cache hit rate: the one it reports, else
// its hits over its queries since it started; false when neither is known.
func (m *EngineMetrics) HitRate() (float64, bool) {
	switch {
	case m.HasHitRate:
		return m.PrefixHitRate, true
	case m.HasPrefix && m.PrefixQueries > 0:
		return m.PrefixHits / m.PrefixQueries, true
	}
	return 0, false
}

// Fresh returns the last scrape when it is younger than staleAfter at
// now, else nil: stale data stops counting.
func (s *State) Fresh(now time.Time, staleAfter time.Duration) *EngineMetrics {
	m := s.Engine.Load()
	if m == nil || now.Sub(m.At) > staleAfter {
		return nil
	}
	return m
}

// InFlight is the number of requests the gateway has open on the deployment.
func (s *State) InFlight() int64 { return s.inflight.Load() }

// InFlightTokens is the tokens those requests may hold in the engine, by
// the gateway's estimate: their prompts and the most they may generate.
func (s *State) InFlightTokens() int64 { return s.tokens.Load() }

// Acquire counts a request of an estimated tokens on the deployment;
// Release, with the same tokens, ends it.
func (s *State) Acquire(tokens int64) {
	s.inflight.Add(1)
	s.tokens.Add(tokens)
}

// Release ends a request counted by Acquire.
func (s *State) Release(tokens int64) {
	s.inflight.Add(-1)
	s.tokens.Add(-tokens)
}

// Registry holds the live state of every deployment by identity (model and
// deployment name), so a config reload that keeps a deployment keeps its
// counters and breaker.
type Registry struct {
	mu sync.Mutex
	m  map[string]*State
}

// Key is a deployment's identity in the registry.
func Key(model, deployment string) string { return model + "/" + deployment }

// State returns the state for key, creating it on first use.
func (r *Registry) State(key string) *State {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.m[key]; ok {
		return s
	}
	if r.m == nil {
		r.m = make(map[string]*State)
	}
	s := new(State)
	r.m[key] = s
	return s
}

// Retain forgets the deployments not in keep (removed by a reload).
func (r *Registry) Retain(keep map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.m {
		if !keep[k] {
			delete(r.m, k)
		}
	}
}

// Deployment is one deployment of a model in a config snapshot: its
// configuration, the backend that sends to it, and its live state.
type Deployment struct {
	Config  config.Deployment
	Backend backend.Backend
	*State
	// ID is a stable hash of the deployment's name, for sticky keys
	// that every gateway replica maps alike.
	ID uint64
}

// NewDeployment returns a deployment of the snapshot being built.
func NewDeployment(cfg config.Deployment, b backend.Backend, s *State) *Deployment {
	return &Deployment{Config: cfg, Backend: b, State: s, ID: xxhash.Sum64String(cfg.Name)}
}

// Load is the deployment's load at now, in requests: the gateway's own
// in flight, exact, plus what the engine's last fresh scrape said it runs
// and queues beyond the gateway's share at the time (another gateway's
// requests, a batch job, direct clients).
func (d *Deployment) Load(now time.Time) float64 { return d.load(d.EngineFresh(now)) }

// EngineFresh is the engine's last scrape while it counts: younger than
// the deployment's metrics.stale_after; nil otherwise.
func (d *Deployment) EngineFresh(now time.Time) *EngineMetrics {
	stale := d.Config.Metrics.StaleAfter.D()
	if stale <= 0 {
		stale = 3 * config.DefaultMetricsInterval
	}
	return d.Fresh(now, stale)
}

func (d *Deployment) load(m *EngineMetrics) float64 {
	local := d.InFlight()
	if m != nil {
		if ext := int64(m.Running+m.Waiting) - m.Local; ext > 0 {
			return float64(local + ext)
		}
	}
	return float64(local)
}

// weight is the configured weight, at least 1.
func (d *Deployment) weight() float64 { return float64(max(d.Config.Weight, 1)) }
