package app

import (
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/admission"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/enginemetrics"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// observability is what /metrics reads beyond the request path's
// handles: the deployments' last DCGM scrapes, kept by identity across
// reloads like the registry's state, and the connections the scrapes
// share. The zero value is ready.
type observability struct {
	gpus enginemetrics.GPUStore
	once sync.Once
	rt   http.RoundTripper
}

// transport is the DCGM scrapes' connection pool: its own, never an
// engine's (an exporter is another server), and no proxy (it is on the
// cluster's network, as the engines are).
func (o *observability) transport() http.RoundTripper {
	o.once.Do(func() {
		o.rt = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     time.Minute,
		}
	})
	return o.rt
}

// startGPUScrapes starts scraping the DCGM exporters snap's deployments
// name, and returns what stops it: none when no deployment names one. A
// deployment whose exporter URL the getter refuses (validation already
// checked it) is left unscraped rather than failing the whole config.
func (g *Gateway) startGPUScrapes(snap *dispatch.Snapshot) []func() {
	var targets []enginemetrics.GPUTarget
	for _, m := range snap.Models {
		for _, d := range m.Pool {
			gc := d.Config.GPUMetrics
			if !gc.On() {
				continue
			}
			get, err := gpuGetter(d.Config.Name, gc.URL, g.obs.transport())
			if err != nil {
				g.log.Warn("gpu_metrics not scraped", "model", m.Name, "deployment", d.Config.Name, "err", err)
				continue
			}
			targets = append(targets, enginemetrics.GPUTarget{Model: m.Name, Deployment: d.Config.Name,
				Key: balance.Key(m.Name, d.Config.Name), Get: get.Get, Config: gc})
		}
	}
	if len(targets) == 0 {
		return nil
	}
	return []func(){enginemetrics.StartGPU(targets, &g.obs.gpus, clock.Real{}, g.log).Stop}
}

// gpuGetter GETs an exporter's metrics page, raw: a URL without a path
// means dcgm-exporter's /metrics. No engine header or key goes with it.
func gpuGetter(name, raw string, rt http.RoundTripper) (*backend.Getter, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	path := u.EscapedPath()
	if path == "" || path == "/" {
		path = "/metrics"
	}
	return backend.NewGetter(config.Deployment{Name: name, URL: u.Scheme + "://" + u.Host}, rt, path, metricsAccept)
}

// liveState reads what the gateway holds now, for a scrape of /metrics.
func (g *Gateway) liveState() telemetry.LiveState {
	var st telemetry.LiveState
	for _, m := range g.core.Models() {
		a := m.Admission
		if a == nil {
			continue
		}
		ms := telemetry.ModelState{Model: m.Model, Limit: a.Limit, InFlight: a.InFlight}
		for p, n := range a.Queued {
			ms.Queued = append(ms.Queued, telemetry.PriorityDepth{Priority: admission.Priority(p).String(), Depth: n})
		}
		st.Models = append(st.Models, ms)
	}
	if g.answers != nil {
		ms := g.answers.Memory().Stats()
		st.Cache = &telemetry.CacheState{Entries: ms.Entries, Bytes: ms.Bytes, Evictions: ms.Evictions, StoreErrors: g.answers.Errors(),
			EmbedErrors: g.answers.EmbedErrors(), Vectors: g.answers.SemanticVectors()}
	}
	now := time.Now() // the GPU scrapes' clock
	for _, d := range g.core.Deployments() {
		ds := telemetry.DeploymentState{Model: d.Model, Deployment: d.Deployment, InFlight: d.InFlight, InFlightTokens: d.InFlightTokens,
			Load: d.Load, Healthy: d.Health != balance.Down && d.Breaker.State != balance.Open, Breaker: breakerState(d.Breaker.State)}
		if e := d.Engine; e != nil && !d.EngineStale {
			ds.Engine = engineState(e)
		}
		if gp := g.obs.gpus.Fresh(balance.Key(d.Model, d.Deployment), now); gp != nil {
			for _, x := range gp.List {
				ds.GPUs = append(ds.GPUs, telemetry.GPUState{GPU: x.ID, MemUsed: x.MemUsed, MemFree: x.MemFree, MemReserved: x.MemReserved,
					Utilization: x.Utilization, NVLinkTX: x.NVLinkTX, NVLinkRX: x.NVLinkRX, NVLinkBandwidth: x.NVLinkBandwidth})
			}
		}
		st.Deployments = append(st.Deployments, ds)
	}
	return st
}

// breakerState orders a breaker's state by how little it trusts the
// deployment, as omnigate_breaker_state reports it.
func breakerState(s balance.BreakerState) int {
	switch s {
	case balance.Open:
		return telemetry.BreakerOpen
	case balance.HalfOpen:
		return telemetry.BreakerHalfOpen
	}
	return telemetry.BreakerClosed
}

// engineState is an engine scrape with what the engine does not export
// as NaN.
func engineState(e *balance.EngineMetrics) *telemetry.EngineState {
	nan := math.NaN()
	s := &telemetry.EngineState{Running: float64(e.Running), Waiting: float64(e.Waiting), KVUsage: nan, PrefixHitRatio: nan, Preemptions: nan}
	if e.HasKV {
		s.KVUsage = e.KVUsage
	}
	if r, ok := e.HitRate(); ok {
		s.PrefixHitRatio = r
	}
	if e.HasPreemptions {
		s.Preemptions = e.Preemptions
	}
	return s
}

// metricsLine says where GET /metrics is served: on the admin listener
// (adminURL, "" when it is off) and on the API's when onAPI.
func metricsLine(adminURL, apiURL string, onAPI bool) string {
	var at []string
	if adminURL != "" {
		at = append(at, adminURL+"/metrics")
	}
	if onAPI {
		at = append(at, apiURL+"/metrics")
	}
	if len(at) == 0 {
		return "metrics not served (the admin listener is off and server.metrics_on_api is false)"
	}
	return "metrics on " + strings.Join(at, " and ")
}
