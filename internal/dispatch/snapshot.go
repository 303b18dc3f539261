package dispatch

import (
	"sync/atomic"
	"time"

	"github.com/omnigate/omnigate/internal/cache"

	"github.com/omnigate/omnigate/internal/admission"
	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/quota"
	"github.com/omnigate/omnigate/internal/resilience"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// Snapshot is one configuration, compiled: the catalog, the router and a
// runtime object per model. It is immutable once built; a reload builds a
// new one and Core.Swap installs it. Live state is not here: each
// deployment's State comes from the Registry, shared across snapshots.
type Snapshot struct {
	Catalog *catalog.Catalog
	Router  Router
	// Models holds one runtime object per model, by catalog.Model.Index.
	Models []*Model
	// Closers release what the snapshot's backends hold (embedded
	// simulators), once no request uses them.
	Closers []func()
	// Cache is the answer cache the models' policies use: live state,
	// kept across snapshots by whoever builds them. nil: none.
	Cache *cache.Cache
	// Escalate is automatic routing's escalation; nil: off.
	Escalate *Escalation
	// Auth is the API keys in force: live state, kept across snapshots
	// by whoever builds them (a key store changes it between reloads).
	// nil: none, anyone may call.
	Auth *auth.Directory
	// Limits holds the keys to their rate limits and budgets: live
	// state, kept across snapshots by whoever builds them. nil: no key
	// is limited.
	Limits *quota.Limiter

	inUse atomic.Int64 // calls between Do and Done on this snapshot
}

// InUse counts the calls being served with this snapshot: a replaced
// snapshot is closed once it reaches 0.
func (s *Snapshot) InUse() int64 { return s.inUse.Load() }

// Model is one model's runtime object: its catalog entry, its deployments
// and its metric handles, together.
type Model struct {
	*catalog.Model
	Pool    []*balance.Deployment
	Metrics *telemetry.ModelMetrics
	// Picker chooses among Pool; nil: a zero balance.Picker.
	Picker *balance.Picker
	// Admission is the model's queue: live state, kept across snapshots
	// by whoever builds them. nil: no admission control.
	Admission *admission.Queue
	// Budget is the model's retry budget: live state, kept across
	// snapshots by whoever builds them. nil: no budget.
	Budget *resilience.Budget
	// Shadow is the model's shadow traffic; nil: none.
	Shadow *Shadow

	// firstByte is the recent time to first byte, for hedge.percentile.
	firstByte resilience.Latencies
}

// AutoNames returns the names that route automatically between tiers,
// sorted, for the model listings; none when the router has no two tiers.
func (s *Snapshot) AutoNames() []string {
	if r, ok := s.Router.(interface{ AutoNames() []string }); ok {
		return r.AutoNames()
	}
	return nil
}

// Model returns the runtime object of a catalog model of this snapshot.
func (s *Snapshot) Model(m *catalog.Model) *Model { return s.Models[m.Index] }

// Close runs the closers.
func (s *Snapshot) Close() {
	for _, c := range s.Closers {
		c()
	}
}

// Unready lists the models of the current snapshot that no deployment can
// serve now (each out of rotation or its breaker open), for readiness
// checks.
func (c *Core) Unready() []string {
	now := c.clock.Now()
	var down []string
	for _, m := range c.Snapshot().Models {
		if !balance.Usable(m.Pool, now) {
			down = append(down, m.Name)
		}
	}
	return down
}

// DeploymentStatus is one deployment's live state, as the status API
// shows it.
type DeploymentStatus struct {
	Model, Deployment, Kind string
	Weight                  int
	// Quantization and Hardware are the deployment's config labels.
	Quantization   string
	Hardware       config.DeploymentHardware
	InFlight       int64
	InFlightTokens int64 // estimated: prompts and the most they may generate
	Health         balance.Health
	Breaker        balance.BreakerSnapshot
	LastFailure    *balance.Failed
	BusyFor        time.Duration // left of the engine's Retry-After
	// Engine is the last engine metrics scrape (nil: none yet), EngineAge
	// its age, EngineStale whether it is past the deployment's stale_after
	// and no longer counts.
	Engine      *balance.EngineMetrics
	EngineAge   time.Duration
	EngineStale bool
	// Load is what the balancer counts: in flight plus the engine's own
	// queue beyond the gateway's share. FirstByte and PerToken are the
	// recent averages (0: no sample yet).
	Load                float64
	FirstByte, PerToken time.Duration
}

// ModelStatus is one model's admission queue and recent picks, as the
// status API shows them.
type ModelStatus struct {
	Model     string
	Strategy  string
	Admission *admission.Status // nil: admission is off
	Decisions []balance.Decision
	Shadow    *ShadowStatus // nil: no shadow traffic
}

// Models reports every model of the current snapshot, in config order.
func (c *Core) Models() []ModelStatus {
	var out []ModelStatus
	for _, m := range c.Snapshot().Models {
		st := ModelStatus{Model: m.Name, Strategy: m.Balance.Strategy}
		if m.Admission != nil {
			a := m.Admission.Status()
			st.Admission = &a
		}
		if m.Picker != nil {
			st.Decisions = m.Picker.Recent()
		}
		if m.Shadow != nil {
			sh := m.Shadow.Status()
			st.Shadow = &sh
		}
		out = append(out, st)
	}
	return out
}

// Deployments reports every deployment of the current snapshot, in config
// order.
func (c *Core) Deployments() []DeploymentStatus {
	now := c.clock.Now()
	var out []DeploymentStatus
	for _, m := range c.Snapshot().Models {
		for _, d := range m.Pool {
			st := DeploymentStatus{Model: m.Name, Deployment: d.Config.Name, Kind: d.Config.Kind,
				Weight: max(d.Config.Weight, 1), InFlight: d.InFlight(), InFlightTokens: d.InFlightTokens(), Health: d.Health(), Breaker: d.Breaker.Snapshot(now), LastFailure: d.LastFailure(),
				BusyFor: d.BusyFor(now), Quantization: d.Config.Quantization, Hardware: d.Config.Hardware}
			first, per := d.Latencies()
			st.Load, st.FirstByte, st.PerToken = d.Load(now), seconds(first), seconds(per)
			if e := d.Engine.Load(); e != nil {
				st.Engine, st.EngineAge = e, now.Sub(e.At)
				st.EngineStale = d.EngineFresh(now) == nil
			}
			out = append(out, st)
		}
	}
	return out
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
