// Package telemetry holds omnigate's Prometheus metrics. The per-model
// latency and in-flight series are resolved once per model, and request
// counters once per (model, status) in a small cache; the rarer series
// (upstream outcomes, fallbacks, clamps) are looked up by label values.
package telemetry

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// LatencyBuckets are the model_latency_seconds buckets, in seconds.
var LatencyBuckets = []float64{0.1, 0.5, 1, 2, 5}

// Metrics is the gateway's metric set, on its own registry.
type Metrics struct {
	reg       *prometheus.Registry
	latency   *prometheus.HistogramVec
	requests  *prometheus.CounterVec
	upstream  *prometheus.CounterVec
	inflight  *prometheus.GaugeVec
	fallbacks *prometheus.CounterVec
	clamped   *prometheus.CounterVec
	tokens    *prometheus.CounterVec
	retries   *prometheus.CounterVec
	hedges    *prometheus.CounterVec
	continued *prometheus.CounterVec
	shed      *prometheus.CounterVec

	mu    sync.RWMutex
	byKey map[reqKey]prometheus.Counter
}

type reqKey struct {
	model string
	code  int
}

// New registers the metric set, with Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "model_latency_seconds",
			Help:    "Time from request received to response complete, per public model version.",
			Buckets: LatencyBuckets,
		}, []string{"model_version"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_requests_total",
			Help: "Client requests by public model and HTTP status.",
		}, []string{"model", "code"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_upstream_requests_total",
			Help: "Upstream attempts by model, deployment and outcome (HTTP status or error class).",
		}, []string{"model", "deployment", "outcome"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "omnigate_inflight_requests",
			Help: "Requests being served, per public model.",
		}, []string{"model"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_fallbacks_total",
			Help: "Attempts sent to a fallback model, by requested model and fallback.",
		}, []string{"from", "to"}),
		clamped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_clamped_params_total",
			Help: "Parameters clamped to a model's limits, by model and parameter.",
		}, []string{"model", "param"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_tokens_total",
			Help: "Tokens in answers' usage, by the model that answered and kind (prompt, completion).",
		}, []string{"model", "kind"}),
		retries:   perModel("omnigate_retries_total", "Attempts sent again after a retryable failure, by model."),
		hedges:    perModel("omnigate_hedges_total", "Second attempts sent because the first had not started answering in time, by model."),
		continued: perModel("omnigate_continuations_total", "Streams cut by their upstream and continued on another deployment, by model."),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_admission_rejected_total",
			Help: "Requests the admission queue turned away, by model and reason (overloaded, rate_limited).",
		}, []string{"model", "reason"}),
		byKey: make(map[reqKey]prometheus.Counter),
	}
	m.reg.MustRegister(m.latency, m.requests, m.upstream, m.inflight, m.fallbacks, m.clamped, m.tokens, m.retries, m.hedges, m.continued, m.shed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// perModel is a counter with a model label.
func perModel(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"model"})
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry returns the registry, for other packages' collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Model returns the per-model handles, resolved once at startup.
func (m *Metrics) Model(name string) *ModelMetrics {
	return &ModelMetrics{m: m, name: name, Latency: m.latency.WithLabelValues(name), Inflight: m.inflight.WithLabelValues(name),
		prompt: m.tokens.WithLabelValues(name, "prompt"), completion: m.tokens.WithLabelValues(name, "completion"),
		retries: m.retries.WithLabelValues(name), hedges: m.hedges.WithLabelValues(name),
		continued: m.continued.WithLabelValues(name)}
}

// ModelMetrics are one model's pre-resolved metric handles.
type ModelMetrics struct {
	m        *Metrics
	name     string
	Latency  prometheus.Observer
	Inflight prometheus.Gauge

	prompt, completion prometheus.Counter
	retries            prometheus.Counter
	hedges             prometheus.Counter
	continued          prometheus.Counter
}

// Retry counts one attempt sent again.
func (mm *ModelMetrics) Retry() { mm.retries.Inc() }

// Hedge counts one hedged attempt.
func (mm *ModelMetrics) Hedge() { mm.hedges.Inc() }

// Rejected counts one request the admission queue turned away.
func (mm *ModelMetrics) Rejected(reason string) { mm.m.shed.WithLabelValues(mm.name, reason).Inc() }

// Continued counts one stream continued on another deployment.
func (mm *ModelMetrics) Continued() { mm.continued.Inc() }

// Tokens counts the usage of one answer.
func (mm *ModelMetrics) Tokens(prompt, completion int64) {
	if prompt > 0 {
		mm.prompt.Add(float64(prompt))
	}
	if completion > 0 {
		mm.completion.Add(float64(completion))
	}
}

// Request counts one finished client request with its status.
func (mm *ModelMetrics) Request(code int) {
	mm.m.request(mm.name, code)
}

// Upstream counts one upstream attempt; outcome is a status code or an error class.
func (mm *ModelMetrics) Upstream(deployment, outcome string) {
	mm.m.upstream.WithLabelValues(mm.name, deployment, outcome).Inc()
}

// Fallback counts an attempt sent to fallback model to instead of this one.
func (mm *ModelMetrics) Fallback(to string) { mm.m.fallbacks.WithLabelValues(mm.name, to).Inc() }

// Clamped counts a parameter clamped to this model's limits.
func (mm *ModelMetrics) Clamped(param string) { mm.m.clamped.WithLabelValues(mm.name, param).Inc() }

// Finished records one finished request: asked is the metric handles of
// the model it was routed to first (nil when routing failed), served
// those of the model that answered (nil when none did).
func (m *Metrics) Finished(asked, served *ModelMetrics, rec *Record) {
	if asked == nil {
		m.request("", rec.Status)
		return
	}
	asked.Request(rec.Status)
	if rec.Status < 400 {
		asked.Latency.Observe(rec.Total.Seconds())
	}
	if served != nil && rec.HasUsage {
		served.Tokens(rec.PromptTokens, rec.CompletionTokens)
	}
}

// Request counts a request that has no model (unknown model, bad JSON).
func (m *Metrics) Request(model string, code int) { m.request(model, code) }

func (m *Metrics) request(model string, code int) {
	k := reqKey{model, code}
	m.mu.RLock()
	c, ok := m.byKey[k]
	m.mu.RUnlock()
	if !ok {
		m.mu.Lock()
		if c, ok = m.byKey[k]; !ok {
			c = m.requests.WithLabelValues(model, strconv.Itoa(code))
			m.byKey[k] = c
		}
		m.mu.Unlock()
	}
	c.Inc()
}
