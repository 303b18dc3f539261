// Package telemetry holds omnigate's Prometheus metrics, its access log
// and the Record of what one request did.
//
// Two kinds of metric live here. What requests do (latencies, counts,
// tokens) is recorded as they end, into handles resolved once: per model
// at startup, per (model, deployment) and per request label set on first
// use, in small caches, so the request path does no label lookup and no
// allocation. What the gateway holds (in-flight counts, breakers, queues,
// the engines' and GPUs' last scrapes) is read from its live state when
// /metrics is scraped (live.go), and costs requests nothing.
//
// Every label value comes from the configuration (model and deployment
// names, API key names, the GPUs an exporter reports), the key store (the
// names of the keys made at run time) or a small closed set (HTTP
// statuses, outcome classes, kinds): never a request id, a key or a
// client's value, so the number of series stays bounded.
package telemetry

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The histograms' buckets, in seconds. docs/metrics.md lists the same.
var (
	// LatencyBuckets are model_latency_seconds': coarse, and fixed,
	// since dashboards and alerts elsewhere are written against them.
	LatencyBuckets = []float64{0.1, 0.5, 1, 2, 5}
	// WaitBuckets span the gateway's waits and the engines' answers: from
	// a few milliseconds (a small tier's first token, no queue) to two
	// minutes (a large tier's long answer), about ×2 apart. Time to first
	// token, upstream time and admission queue wait use them.
	WaitBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120}
	// PerTokenBuckets cover a stream's time per output token: a fast
	// engine decodes in a millisecond or two, a loaded large tier in a
	// few hundred.
	PerTokenBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1}
	// OverheadBuckets cover the gateway's own time on a request: tens of
	// microseconds when all is well, up to 100 ms when something (GC, a
	// starved CPU, a huge body) is not.
	OverheadBuckets = []float64{0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1}
)

// Metrics is the gateway's metric set, on its own registry.
type Metrics struct {
	reg   *prometheus.Registry
	jobs  *jobMetrics
	route *routeMetrics
	keys  *keyMetrics
	tls   *prometheus.CounterVec // {config, result}
	grpc  *grpcMetrics

	latency   *prometheus.HistogramVec // {model_version, deployment}
	ttft      *prometheus.HistogramVec // {model, deployment}
	perToken  *prometheus.HistogramVec // {model, deployment}
	upstreamT *prometheus.HistogramVec // {model, deployment}
	queueWait *prometheus.HistogramVec // {model}
	overhead  *prometheus.HistogramVec // {model}

	requests   *prometheus.CounterVec   // {model, deployment, code, stream}
	cache      *prometheus.CounterVec   // {model, result}
	similarity *prometheus.HistogramVec // {model}
	tokens     *prometheus.CounterVec   // {model, deployment, kind}
	upstream   *prometheus.CounterVec
	inflight   *prometheus.GaugeVec
	fallbacks  *prometheus.CounterVec
	clamped    *prometheus.CounterVec
	retries    *prometheus.CounterVec
	hedges     *prometheus.CounterVec
	continued  *prometheus.CounterVec
	shed       *prometheus.CounterVec
	breakers   *prometheus.CounterVec

	mu    sync.RWMutex
	byKey map[reqKey]prometheus.Counter
}

// New registers the metric set, with Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "model_latency_seconds",
			Help:    "Time from request received to response complete, of successful requests (status below 400), per model that answered (model_version) and its deployment.",
			Buckets: LatencyBuckets,
		}, []string{"model_version", "deployment"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "omnigate_time_to_first_token_seconds",
			Help:    "Streams' time from the answering attempt's send to its first event, per model that answered and deployment.",
			Buckets: WaitBuckets,
		}, []string{"model", "deployment"}),
		perToken: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "omnigate_time_per_output_token_seconds",
			Help:    "Streams' time per output token after the first, per model that answered and deployment.",
			Buckets: PerTokenBuckets,
		}, []string{"model", "deployment"}),
		upstreamT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "omnigate_upstream_latency_seconds",
			Help:    "Time answered requests spent in upstream attempts (failed ones and the answer's relay included), per model that answered and deployment.",
			Buckets: WaitBuckets,
		}, []string{"model", "deployment"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "omnigate_queue_wait_seconds",
			Help:    "Time requests that reached an admission queue waited for a place, per requested model.",
			Buckets: WaitBuckets,
		}, []string{"model"}),
		overhead: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "omnigate_gateway_overhead_seconds",
			Help:    "The gateway's own time on a request (parsing, routing, validating, picking, marshalling: all but queue waits, backoffs and upstream time), per requested model.",
			Buckets: OverheadBuckets,
		}, []string{"model"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_requests_total",
			Help: "Client requests by requested model (\"\" when routing failed), answering deployment (\"\" when none answered), HTTP status and whether they streamed.",
		}, []string{"model", "deployment", "code", "stream"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_tokens_total",
			Help: "Tokens in answers' usage, by the model that answered, its deployment and kind (prompt, completion).",
		}, []string{"model", "deployment", "kind"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_upstream_requests_total",
			Help: "Upstream attempts by model, deployment and outcome (HTTP status or error class).",
		}, []string{"model", "deployment", "outcome"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "omnigate_inflight_requests",
			Help: "Requests being served, per requested model.",
		}, []string{"model"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_fallbacks_total",
			Help: "Attempts sent to a fallback model, by requested model and fallback.",
		}, []string{"from", "to"}),
		clamped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_clamped_params_total",
			Help: "Parameters clamped to a model's limits, by model and parameter.",
		}, []string{"model", "param"}),
		retries:   perModel("omnigate_retries_total", "Attempts sent again after a retryable failure, by model."),
		hedges:    perModel("omnigate_hedges_total", "Second attempts sent because the first had not started answering in time, by model."),
		continued: perModel("omnigate_continuations_total", "Streams cut by their upstream and continued on another deployment, by model."),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_admission_rejected_total",
			Help: "Requests the admission queue turned away, by model and reason (overloaded, rate_limited).",
		}, []string{"model", "reason"}),
		breakers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_breaker_transitions_total",
			Help: "Circuit breaker changes, by model, deployment and the state entered (closed, half_open, open).",
		}, []string{"model", "deployment", "to"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_cache_requests_total",
			Help: "Requests to models with a cache, by requested model and what the cache did: hit, semantic_hit (the answer of a similar enough earlier prompt), miss (sent upstream), coalesced (shared the answer of the same request in flight), bypass (Cache-Control), uncacheable (sampled, no seed).",
		}, []string{"model", "result"}),
		similarity: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "omnigate_cache_semantic_similarity",
			Help:    "Cosine similarity of each semantic hit to the earlier prompt whose answer it got, per requested model.",
			Buckets: SimilarityBuckets,
		}, []string{"model"}),
		byKey: make(map[reqKey]prometheus.Counter),
	}
	m.reg.MustRegister(m.latency, m.ttft, m.perToken, m.upstreamT, m.queueWait, m.overhead,
		m.requests, m.tokens, m.upstream, m.inflight, m.fallbacks, m.clamped, m.retries, m.hedges, m.continued, m.shed, m.breakers, m.cache, m.similarity,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.jobs = newJobMetrics(m.reg)
	m.route = newRouteMetrics(m.reg)
	m.keys = newKeyMetrics(m.reg)
	m.tls = newTLSMetrics(m.reg)
	m.grpc = newGRPCMetrics(m.reg)
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
	mm := &ModelMetrics{m: m, name: name, Inflight: m.inflight.WithLabelValues(name),
		queueWait: m.queueWait.WithLabelValues(name), overhead: m.overhead.WithLabelValues(name),
		retries: m.retries.WithLabelValues(name), hedges: m.hedges.WithLabelValues(name),
		continued: m.continued.WithLabelValues(name), deps: make(map[string]*deploymentMetrics)}
	for i, r := range CacheResults {
		mm.cache[i] = m.cache.WithLabelValues(name, r)
	}
	return mm
}

// SimilarityBuckets are omnigate_cache_semantic_similarity's buckets: the
// range thresholds are chosen in, finely.
var SimilarityBuckets = []float64{0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1}

// CacheResults are the values of omnigate_cache_requests_total's result
// label, the Record's Cache field (where a semantic hit is written as in
// its X-Omnigate-Cache header, "semantic-hit").
var CacheResults = [...]string{"hit", "semantic_hit", "miss", "coalesced", "bypass", "uncacheable"}

// cacheResult returns the counter of result r; nil for an unknown one.
func (mm *ModelMetrics) cacheResult(r string) prometheus.Counter {
	if r == "semantic-hit" {
		r = "semantic_hit" // a label value is one word
	}
	for i, x := range CacheResults {
		if x == r {
			return mm.cache[i]
		}
	}
	return nil
}

// ModelMetrics are one model's pre-resolved metric handles.
type ModelMetrics struct {
	m        *Metrics
	name     string
	Inflight prometheus.Gauge

	queueWait, overhead prometheus.Observer
	retries             prometheus.Counter
	hedges              prometheus.Counter
	continued           prometheus.Counter
	cache               [len(CacheResults)]prometheus.Counter

	mu   sync.RWMutex
	deps map[string]*deploymentMetrics // by deployment name, resolved on first use
}

// Retry counts one attempt sent again.
func (mm *ModelMetrics) Retry() { mm.retries.Inc() }

// Hedge counts one hedged attempt.
func (mm *ModelMetrics) Hedge() { mm.hedges.Inc() }

// Rejected counts one request the admission queue turned away.
func (mm *ModelMetrics) Rejected(reason string) { mm.m.shed.WithLabelValues(mm.name, reason).Inc() }

// Continued counts one stream continued on another deployment.
func (mm *ModelMetrics) Continued() { mm.continued.Inc() }

// Upstream counts one upstream attempt; outcome is a status code or an error class.
func (mm *ModelMetrics) Upstream(deployment, outcome string) {
	mm.m.upstream.WithLabelValues(mm.name, deployment, outcome).Inc()
}

// Fallback counts an attempt sent to fallback model to instead of this one.
func (mm *ModelMetrics) Fallback(to string) { mm.m.fallbacks.WithLabelValues(mm.name, to).Inc() }

// Clamped counts a parameter clamped to this model's limits.
func (mm *ModelMetrics) Clamped(param string) { mm.m.clamped.WithLabelValues(mm.name, param).Inc() }

// Breaker counts a change of a deployment's circuit breaker to state to
// (closed, half_open, open). Changes are rare: the label lookup is fine.
func (mm *ModelMetrics) Breaker(deployment, to string) {
	mm.m.breakers.WithLabelValues(mm.name, deployment, to).Inc()
}
