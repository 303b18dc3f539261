package openai

import (
	"time"

	"github.com/omnigate/omnigate/internal/dispatch"
)

// deploymentObject is one row of GET /admin/deployments: live state only,
// nothing of the deployment's address, keys or upstream names.
type deploymentObject struct {
	Model       string         `json:"model"`
	Deployment  string         `json:"deployment"`
	Kind        string         `json:"kind"`
	Weight      int            `json:"weight"`
	InFlight    int64          `json:"in_flight"`
	Health      string         `json:"health"`
	Breaker     breakerObject  `json:"breaker"`
	LastFailure *failureObject `json:"last_failure"`
	// BusyForS is what is left of the engine's Retry-After, during which
	// it gets no request.
	BusyForS float64 `json:"busy_for_s,omitempty"`
	// Engine is what the engine's own metrics last said; null when they
	// were never scraped.
	Engine *engineObject `json:"engine"`
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
func renderDeployments(ds []dispatch.DeploymentStatus) []byte {
	out := struct {
		Object string             `json:"object"`
		Data   []deploymentObject `json:"data"`
	}{Object: "list", Data: []deploymentObject{}}
	for _, d := range ds {
		o := deploymentObject{Model: d.Model, Deployment: d.Deployment, Kind: d.Kind, Weight: d.Weight, InFlight: d.InFlight, Health: d.Health.String(),
			Breaker: breakerObject{State: d.Breaker.State.String(), Failures: d.Breaker.Failures, RetryInS: d.Breaker.RetryIn.Seconds()}}
		if !d.Breaker.Changed.IsZero() {
			t := d.Breaker.Changed.UTC()
			o.Breaker.Changed = &t
		}
		o.BusyForS = d.BusyFor.Seconds()
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
