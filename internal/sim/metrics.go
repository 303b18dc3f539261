package sim

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's vLLM-compatible Prometheus series, on a registry
// of its own so several engines can live in one process.
type metrics struct {
	reg         *prometheus.Registry
	running     prometheus.Gauge
	waiting     prometheus.Gauge
	kvUsage     prometheus.Gauge
	gpuCache    prometheus.Gauge // the pre-V1 name of kvUsage, still scraped by older routers
	preemptions prometheus.Counter
	prompt      prometheus.Counter
	generation  prometheus.Counter
	pcQueries   prometheus.Counter
	pcHits      prometheus.Counter
	ttft        prometheus.Histogram
	e2e         prometheus.Histogram
	success     *prometheus.CounterVec
	aborted     prometheus.Counter
}

// vLLM's bucket boundaries, so dashboards built for vLLM read the same.
var (
	ttftBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	e2eBuckets  = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
)

func newMetrics(model string) *metrics {
	l := prometheus.Labels{"model_name": model}
	m := &metrics{
		reg:         prometheus.NewRegistry(),
		running:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "vllm:num_requests_running", Help: "Number of requests in model execution batches.", ConstLabels: l}),
		waiting:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "vllm:num_requests_waiting", Help: "Number of requests waiting to be processed.", ConstLabels: l}),
		kvUsage:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "vllm:kv_cache_usage_perc", Help: "KV-cache usage. 1 means 100 percent usage.", ConstLabels: l}),
		gpuCache:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "vllm:gpu_cache_usage_perc", Help: "GPU KV-cache usage. 1 means 100 percent usage (legacy name).", ConstLabels: l}),
		preemptions: prometheus.NewCounter(prometheus.CounterOpts{Name: "vllm:num_preemptions_total", Help: "Cumulative number of preemptions from the engine.", ConstLabels: l}),
		prompt:      prometheus.NewCounter(prometheus.CounterOpts{Name: "vllm:prompt_tokens_total", Help: "Number of prefill tokens processed.", ConstLabels: l}),
		generation:  prometheus.NewCounter(prometheus.CounterOpts{Name: "vllm:generation_tokens_total", Help: "Number of generation tokens processed.", ConstLabels: l}),
		pcQueries:   prometheus.NewCounter(prometheus.CounterOpts{Name: "vllm:prefix_cache_queries_total", Help: "Prefix cache queries, in terms of number of queried tokens.", ConstLabels: l}),
		pcHits:      prometheus.NewCounter(prometheus.CounterOpts{Name: "vllm:prefix_cache_hits_total", Help: "Prefix cache hits, in terms of number of cached tokens.", ConstLabels: l}),
		ttft:        prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vllm:time_to_first_token_seconds", Help: "Histogram of time to first token in seconds.", ConstLabels: l, Buckets: ttftBuckets}),
		e2e:         prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vllm:e2e_request_latency_seconds", Help: "Histogram of end to end request latency in seconds.", ConstLabels: l, Buckets: e2eBuckets}),
		success:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vllm:request_success_total", Help: "Count of successfully processed requests.", ConstLabels: l}, []string{"finished_reason"}),
		aborted:     prometheus.NewCounter(prometheus.CounterOpts{Name: "sim_requests_aborted_total", Help: "Sequences freed because their client went away (simulator only).", ConstLabels: l}),
	}
	m.reg.MustRegister(m.running, m.waiting, m.kvUsage, m.gpuCache, m.preemptions, m.prompt, m.generation, m.pcQueries, m.pcHits, m.ttft, m.e2e, m.success, m.aborted)
	return m
}

func (m *metrics) setKVUsage(v float64) {
	m.kvUsage.Set(v)
	m.gpuCache.Set(v)
}
