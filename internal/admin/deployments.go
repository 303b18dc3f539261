package admin

import (
	"time"

	"github.com/omnigate/omnigate/internal/admission"
	"github.com/omnigate/omnigate/internal/dispatch"
)

// deploymentObject is one row of GET /admin/deployments: live state only,
// nothing of the deployment's address, keys or upstream names.
type deploymentObject struct {
	Model      string `json:"model"`
	Deployment string `json:"deployment"`
	Kind       string `json:"kind"`
	Weight     int    `json:"weight"`
	// Quantization and Hardware are the config's labels, when set.
	Quantization string          `json:"quantization,omitempty"`
	Hardware     *hardwareObject `json:"hardware,omitempty"`
	InFlight     int64           `json:"in_flight"`
	// InFlightTokens estimates what they hold in the engine: their
	// prompts (4 characters a token) and the most they may generate.
	InFlightTokens int64          `json:"in_flight_tokens"`
	Health         string         `json:"health"`
	Breaker        breakerObject  `json:"breaker"`
	LastFailure    *failureObject `json:"last_failure"`
	// BusyForS is what is left of the engine's Retry-After, during which
	// it gets no request.
	BusyForS float64 `json:"busy_for_s,omitempty"`
	// Engine is what the engine's own metrics last said; null when they
	// were never scraped.
	Engine *engineObject `json:"engine"`
	// Load is what the balancer counts (in flight plus the engine's
	// queue beyond the gateway's share); the averages are recent times
	// to first byte and per output token, omitted before a sample.
	Load       float64  `json:"load"`
	FirstByteS float64  `json:"avg_first_byte_s,omitempty"`
	PerTokenS  float64  `json:"avg_per_token_s,omitempty"`
	LastScore  *float64 `json:"last_score,omitempty"` // in the model's latest sampled decision
}

// hardwareObject is what one replica of a deployment runs on.
type hardwareObject struct {
	GPU   string `json:"gpu"`
	Count int    `json:"count,omitempty"`
}

// modelStatusObject is one model's admission queue and its recent sampled
// balancing decisions.
type modelStatusObject struct {
	Model     string           `json:"model"`
	Strategy  string           `json:"strategy"`
	Admission *admissionObject `json:"admission"`
	Decisions []decisionObject `json:"recent_decisions"`
	Shadow    *shadowObject    `json:"shadow,omitempty"`
}

// shadowObject is what a model's shadow traffic found since the last
// reload: how often its candidate answered the same.
type shadowObject struct {
	Candidate string  `json:"candidate"`
	Share     float64 `json:"share"`
	Agree     uint64  `json:"agree"`
	Differ    uint64  `json:"differ"`
	Error     uint64  `json:"error"`
	Dropped   uint64  `json:"dropped"`
	// Agreement is agree over agree and differ; omitted before either.
	Agreement *float64 `json:"agreement,omitempty"`
}

// shadowOf is m's shadow traffic as shown; nil when it has none.
func shadowOf(m dispatch.ModelStatus) *shadowObject {
	sh := m.Shadow
	if sh == nil {
		return nil
	}
	o := &shadowObject{Candidate: sh.Candidate, Share: sh.Share, Agree: sh.Agree, Differ: sh.Differ, Error: sh.Error, Dropped: sh.Dropped}
	if n := sh.Agree + sh.Differ; n > 0 {
		a := float64(sh.Agree) / float64(n)
		o.Agreement = &a
	}
	return o
}

type admissionObject struct {
	Limit      int            `json:"limit"`
	Min        int            `json:"min"`
	Max        int            `json:"max"`
	InFlight   int            `json:"in_flight"`
	Queued     map[string]int `json:"queued"`
	MaxQueue   int            `json:"max_queue"`
	FloorS     float64        `json:"latency_floor_s"`
	LatencyS   float64        `json:"latency_s"`
	Admitted   uint64         `json:"admitted"`
	Overloaded uint64         `json:"rejected_overloaded"`
	Limited    uint64         `json:"rejected_rate_limited"`
	Cancelled  uint64         `json:"cancelled"`
}

type decisionObject struct {
	At         time.Time         `json:"at"`
	Chosen     string            `json:"chosen"`
	Candidates []candidateObject `json:"candidates"`
}

type candidateObject struct {
	Deployment string  `json:"deployment"`
	Score      float64 `json:"score"`
	Load       float64 `json:"load"`
}

// engineObject is a deployment's last engine metrics scrape. The KV-cache
// use and prefix cache hit rate are left out when the engine does not
// export them; the hit rate is the engine's own (SGLang) or its hits over
// its queries since it started (vLLM).
type engineObject struct {
	Running       int      `json:"running"`
	Waiting       int      `json:"waiting"`
	KVUsage       *float64 `json:"kv_cache_usage,omitempty"`
	PrefixHitRate *float64 `json:"prefix_cache_hit_rate,omitempty"`
	AgeS          float64  `json:"age_s"`
	Stale         bool     `json:"stale"` // past stale_after: the balancer no longer counts it
}

type breakerObject struct {
	State    string     `json:"state"`
	Failures int        `json:"consecutive_failures"`
	RetryInS float64    `json:"retry_in_s,omitempty"`
	Changed  *time.Time `json:"changed_at"`
}

type failureObject struct {
	At      time.Time `json:"at"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
}

// renderDeployments is the body of GET /admin/deployments.
func renderDeployments(ds []dispatch.DeploymentStatus, ms []dispatch.ModelStatus) []byte {
	out := struct {
		Object string              `json:"object"`
		Data   []deploymentObject  `json:"data"`
		Models []modelStatusObject `json:"models"`
	}{Object: "list", Data: []deploymentObject{}, Models: []modelStatusObject{}}
	scores := map[[2]string]float64{}
	for _, m := range ms {
		o := modelStatusObject{Model: m.Model, Strategy: m.Strategy, Decisions: []decisionObject{}}
		o.Shadow = shadowOf(m)
		if a := m.Admission; a != nil {
			o.Admission = &admissionObject{Limit: a.Limit, Min: a.Min, Max: a.Max, InFlight: a.InFlight,
				Queued: map[string]int{"interactive": a.Queued[admission.Interactive], "batch": a.Queued[admission.Batch]}, MaxQueue: a.MaxQueue,
				FloorS: a.Floor.Seconds(), LatencyS: a.Latency.Seconds(), Admitted: a.Admitted,
				Overloaded: a.Full + a.Timeout + a.Deadline, Limited: a.RateLimited, Cancelled: a.Cancelled}
		}
		for k, d := range m.Decisions {
			do := decisionObject{At: d.At.UTC(), Chosen: d.Chosen}
			for _, c := range d.Candidates {
				do.Candidates = append(do.Candidates, candidateObject{Deployment: c.Deployment, Score: c.Score, Load: c.Load})
				if k == 0 {
					scores[[2]string{m.Model, c.Deployment}] = c.Score
				}
			}
			o.Decisions = append(o.Decisions, do)
		}
		out.Models = append(out.Models, o)
	}
	for _, d := range ds {
		o := deploymentObject{Model: d.Model, Deployment: d.Deployment, Kind: d.Kind, Weight: d.Weight, InFlight: d.InFlight, InFlightTokens: d.InFlightTokens, Health: d.Health.String(),
			Breaker: breakerObject{State: d.Breaker.State.String(), Failures: d.Breaker.Failures, RetryInS: d.Breaker.RetryIn.Seconds()}}
		if !d.Breaker.Changed.IsZero() {
			t := d.Breaker.Changed.UTC()
			o.Breaker.Changed = &t
		}
		o.BusyForS = d.BusyFor.Seconds()
		o.Quantization = d.Quantization
		if h := d.Hardware; h.GPU != "" {
			o.Hardware = &hardwareObject{GPU: h.GPU, Count: h.Count}
		}
		o.Load, o.FirstByteS, o.PerTokenS = d.Load, d.FirstByte.Seconds(), d.PerToken.Seconds()
		if sc, ok := scores[[2]string{d.Model, d.Deployment}]; ok {
			o.LastScore = &sc
		}
		if e := d.Engine; e != nil {
			o.Engine = &engineObject{Running: e.Running, Waiting: e.Waiting, AgeS: max(d.EngineAge.Seconds(), 0), Stale: d.EngineStale}
			if kv := e.KVUsage; e.HasKV {
				o.Engine.KVUsage = &kv
			}
			if r, ok := e.HitRate(); ok {
				o.Engine.PrefixHitRate = &r
			}
		}
		if f := d.LastFailure; f != nil {
			o.LastFailure = &failureObject{At: f.At.UTC(), Reason: f.Reason, Message: f.Message}
		}
		out.Data = append(out.Data, o)
	}
	return mustJSON(out)
}
