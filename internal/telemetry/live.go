package telemetry

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// LiveState is what the gateway holds at one moment, read when /metrics
// is scraped: plain values, so this package needs none of the packages
// that keep them.
type LiveState struct {
	Models      []ModelState
	Deployments []DeploymentState
	Cache       *CacheState // nil: no cache
}

// CacheState is the answer cache's in-process store and its failures.
type CacheState struct {
	Entries     int
	Bytes       int64
	Evictions   uint64
	StoreErrors uint64 // failed Redis calls, each a miss
	EmbedErrors uint64 // failed embeddings requests of the semantic cache, each a miss
	Vectors     int    // prompts the semantic cache's indexes hold
}

// ModelState is one model's admission queue; a model with admission
// control off has none and is left out.
type ModelState struct {
	Model    string
	Limit    int // places now (the adaptive limit)
	InFlight int // places taken
	// Queued is the waiters by priority (interactive, batch).
	Queued []PriorityDepth
}

// PriorityDepth is the number of waiters of one priority.
type PriorityDepth struct {
	Priority string
	Depth    int
}

// Breaker states as omnigate_breaker_state reports them: ordered by how
// little the deployment is trusted, so max() over a pool reads the worst.
const (
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
)

// DeploymentState is one deployment's live state.
type DeploymentState struct {
	Model, Deployment string
	InFlight          int64 // the gateway's requests on it
	InFlightTokens    int64 // their estimated tokens (prompts and the most they may generate)
	Load              float64
	// Healthy: the deployment may take requests (its active check, if
	// any, keeps it in rotation and its breaker is not open).
	Healthy bool
	Breaker int // BreakerClosed, BreakerHalfOpen or BreakerOpen
	// Engine is the engine's last fresh metrics scrape; nil when there
	// is none (not scraped, failing, or past stale_after).
	Engine *EngineState
	// GPUs are the deployment's GPUs from its DCGM exporter's last fresh
	// scrape; none when it names no exporter or the scrape is stale.
	GPUs []GPUState
}

// EngineState is what an engine's own /metrics said; a field the engine
// does not export is NaN and left out.
type EngineState struct {
	Running, Waiting float64
	KVUsage          float64 // 0..1
	PrefixHitRatio   float64 // 0..1
	// Preemptions is cumulative (vLLM's num_preemptions_total, SGLang's
	// num_retracted_requests_total): it resets when the engine restarts.
	Preemptions float64
}

// GPUState is one GPU as a DCGM exporter said; a field the exporter does
// not export is NaN and left out.
type GPUState struct {
	GPU string // the exporter's gpu label: the device index
	// Memory, in bytes (DCGM reports MiB).
	MemUsed, MemFree, MemReserved float64
	Utilization                   float64 // 0..1 (DCGM reports percent)
	// NVLinkTX and NVLinkRX are bytes per second (DCGM's profiling
	// fields); NVLinkBandwidth is DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL
	// as the exporter reports it.
	NVLinkTX, NVLinkRX, NVLinkBandwidth float64
}

// liveCollector exports a LiveState read at each scrape.
type liveCollector struct {
	read func() LiveState
}

var (
	deploymentLabels = []string{"model", "deployment"}
	gpuLabels        = []string{"model", "deployment", "gpu"}

	descDeploymentInflight = desc("omnigate_deployment_inflight_requests", "The gateway's requests in flight on a deployment.", deploymentLabels)
	descDeploymentTokens   = desc("omnigate_deployment_inflight_tokens", "Tokens the gateway's requests in flight may hold in a deployment's engine, by its estimate (prompts and the most they may generate).", deploymentLabels)
	descDeploymentLoad     = desc("omnigate_deployment_load", "A deployment's load as the balancer counts it, in requests: the gateway's own in flight plus what the engine's last fresh scrape runs and queues beyond them.", deploymentLabels)
	descDeploymentHealthy  = desc("omnigate_deployment_healthy", "1 when a deployment may take requests (its active health check, if any, keeps it in rotation and its breaker is not open), else 0.", deploymentLabels)
	descBreakerState       = desc("omnigate_breaker_state", "A deployment's circuit breaker: 0 closed, 1 half-open, 2 open.", deploymentLabels)

	descQueueDepth     = desc("omnigate_admission_queue_depth", "Requests waiting in a model's admission queue, by priority (interactive, batch).", []string{"model", "priority"})
	descAdmissionLimit = desc("omnigate_admission_limit", "A model's admission limit now: the places the adaptive controller allows.", []string{"model"})
	descAdmissionInUse = desc("omnigate_admission_inflight", "A model's admission places taken.", []string{"model"})

	descCacheEntries      = desc("omnigate_cache_entries", "Answers in the cache's in-process store.", nil)
	descCacheBytes        = desc("omnigate_cache_bytes", "Bytes the cache's in-process store holds (answers, keys, vectors).", nil)
	descCacheEvictions    = desc("omnigate_cache_evictions_total", "Answers the in-process store dropped to stay within its bounds.", nil)
	descCacheErrors       = desc("omnigate_cache_store_errors_total", "Failed calls to the shared (Redis) store; each was a miss, the request went upstream.", nil)
	descCacheVectors      = desc("omnigate_cache_semantic_vectors", "Prompt embeddings the semantic cache indexes (this replica's and those it read from the others' stream).", nil)
	descCacheEmbedErrors  = desc("omnigate_cache_embedding_errors_total", "Embeddings requests of the semantic cache that failed or timed out; each request was a plain miss.", nil)
	descEngineRunning     = desc("omnigate_engine_requests_running", "Requests a deployment's engine runs, from its last fresh metrics scrape (vllm:num_requests_running, sglang:num_running_reqs, llamacpp:requests_processing).", deploymentLabels)
	descEngineWaiting     = desc("omnigate_engine_requests_waiting", "Requests queued in a deployment's engine, from its last fresh metrics scrape (vllm:num_requests_waiting, sglang:num_queue_reqs, llamacpp:requests_deferred).", deploymentLabels)
	descEngineKV          = desc("omnigate_engine_kv_cache_usage_ratio", "KV-cache use of a deployment's engine, 0 to 1, from its last fresh metrics scrape (vllm:kv_cache_usage_perc, sglang:token_usage, llamacpp:kv_cache_usage_ratio).", deploymentLabels)
	descEnginePrefix      = desc("omnigate_engine_prefix_cache_hit_ratio", "Prefix-cache hit ratio of a deployment's engine, 0 to 1: vLLM's hits over queries since it started, SGLang's own recent rate.", deploymentLabels)
	descEnginePreemptions = desc("omnigate_engine_preemptions_total", "Requests a deployment's engine preempted for lack of KV-cache room, as it last reported them (vllm:num_preemptions_total, sglang:num_retracted_requests_total); resets when the engine restarts.", deploymentLabels)

	descGPUUsed      = desc("omnigate_gpu_memory_used_bytes", "Framebuffer memory used on a deployment's GPU (DCGM_FI_DEV_FB_USED, converted from MiB).", gpuLabels)
	descGPUFree      = desc("omnigate_gpu_memory_free_bytes", "Framebuffer memory free on a deployment's GPU (DCGM_FI_DEV_FB_FREE, converted from MiB).", gpuLabels)
	descGPUReserved  = desc("omnigate_gpu_memory_reserved_bytes", "Framebuffer memory the driver reserves on a deployment's GPU (DCGM_FI_DEV_FB_RESERVED, converted from MiB).", gpuLabels)
	descGPUUtil      = desc("omnigate_gpu_utilization_ratio", "A deployment's GPU's utilization, 0 to 1 (DCGM_FI_DEV_GPU_UTIL, converted from percent).", gpuLabels)
	descGPUNVLinkTX  = desc("omnigate_gpu_nvlink_tx_bytes_per_second", "NVLink data a deployment's GPU transmits, headers and payload (DCGM_FI_PROF_NVLINK_TX_BYTES).", gpuLabels)
	descGPUNVLinkRX  = desc("omnigate_gpu_nvlink_rx_bytes_per_second", "NVLink data a deployment's GPU receives, headers and payload (DCGM_FI_PROF_NVLINK_RX_BYTES).", gpuLabels)
	descGPUNVLinkAll = desc("omnigate_gpu_nvlink_bandwidth", "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL of a deployment's GPU as its exporter reports it, unconverted: DCGM's NVLink bandwidth counter over all lanes.", gpuLabels)
)

func desc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Describe sends every family the collector may export.
func (c liveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDeploymentInflight, descDeploymentTokens, descDeploymentLoad, descDeploymentHealthy, descBreakerState,
		descQueueDepth, descAdmissionLimit, descAdmissionInUse,
		descEngineRunning, descEngineWaiting, descEngineKV, descEnginePrefix, descEnginePreemptions,
		descGPUUsed, descGPUFree, descGPUReserved, descGPUUtil, descGPUNVLinkTX, descGPUNVLinkRX, descGPUNVLinkAll,
		descCacheEntries, descCacheBytes, descCacheEvictions, descCacheErrors, descCacheEmbedErrors, descCacheVectors} {
		ch <- d
	}
}

// Collect reads the live state once and exports it.
func (c liveCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.read()
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		if !math.IsNaN(v) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
		}
	}
	if cs := st.Cache; cs != nil {
		gauge(descCacheEntries, float64(cs.Entries))
		gauge(descCacheBytes, float64(cs.Bytes))
		ch <- prometheus.MustNewConstMetric(descCacheEvictions, prometheus.CounterValue, float64(cs.Evictions))
		ch <- prometheus.MustNewConstMetric(descCacheErrors, prometheus.CounterValue, float64(cs.StoreErrors))
		ch <- prometheus.MustNewConstMetric(descCacheEmbedErrors, prometheus.CounterValue, float64(cs.EmbedErrors))
		ch <- prometheus.MustNewConstMetric(descCacheVectors, prometheus.GaugeValue, float64(cs.Vectors))
	}
	for _, m := range st.Models {
		gauge(descAdmissionLimit, float64(m.Limit), m.Model)
		gauge(descAdmissionInUse, float64(m.InFlight), m.Model)
		for _, q := range m.Queued {
			gauge(descQueueDepth, float64(q.Depth), m.Model, q.Priority)
		}
	}
	for _, d := range st.Deployments {
		md := []string{d.Model, d.Deployment}
		gauge(descDeploymentInflight, float64(d.InFlight), md...)
		gauge(descDeploymentTokens, float64(d.InFlightTokens), md...)
		gauge(descDeploymentLoad, d.Load, md...)
		gauge(descDeploymentHealthy, b2f(d.Healthy), md...)
		gauge(descBreakerState, float64(d.Breaker), md...)
		if e := d.Engine; e != nil {
			gauge(descEngineRunning, e.Running, md...)
			gauge(descEngineWaiting, e.Waiting, md...)
			gauge(descEngineKV, e.KVUsage, md...)
			gauge(descEnginePrefix, e.PrefixHitRatio, md...)
			if !math.IsNaN(e.Preemptions) {
				ch <- prometheus.MustNewConstMetric(descEnginePreemptions, prometheus.CounterValue, e.Preemptions, md...)
			}
		}
		for _, g := range d.GPUs {
			gauge(descGPUUsed, g.MemUsed, d.Model, d.Deployment, g.GPU)
			gauge(descGPUFree, g.MemFree, d.Model, d.Deployment, g.GPU)
			gauge(descGPUReserved, g.MemReserved, d.Model, d.Deployment, g.GPU)
			gauge(descGPUUtil, g.Utilization, d.Model, d.Deployment, g.GPU)
			gauge(descGPUNVLinkTX, g.NVLinkTX, d.Model, d.Deployment, g.GPU)
			gauge(descGPUNVLinkRX, g.NVLinkRX, d.Model, d.Deployment, g.GPU)
			gauge(descGPUNVLinkAll, g.NVLinkBandwidth, d.Model, d.Deployment, g.GPU)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Live exports the state read returns at every scrape of /metrics. Call
// it once; read runs on the scraping goroutine and must be safe for
// concurrent use.
func (m *Metrics) Live(read func() LiveState) {
	m.reg.MustRegister(liveCollector{read: read})
}

var _ prometheus.Collector = liveCollector{}
