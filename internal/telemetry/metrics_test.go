package telemetry

import (
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// scrape returns the exposition of m.
func scrape(t testing.TB, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(w.Body)
	return string(body)
}

func TestMetricsExposition(t *testing.T) {
	m := New()
	small, large := m.Model("qwen3-omni-7b"), m.Model("qwen3-omni-30b")
	// A stream served by the 7B tier after a wait in its queue.
	m.Finished(small, small, &Record{Model: "qwen3-omni-7b", Served: "qwen3-omni-7b", Deployment: "sim-7b", Status: 200, Stream: true,
		Total: 300 * time.Millisecond, Queued: 20 * time.Millisecond, Admission: true, FirstByte: 40 * time.Millisecond,
		Upstream: 270 * time.Millisecond, Overhead: 80 * time.Microsecond, PerToken: 12 * time.Millisecond,
		HasUsage: true, PromptTokens: 9, CompletionTokens: 21})
	// A slow whole answer.
	m.Finished(small, small, &Record{Served: "qwen3-omni-7b", Deployment: "sim-7b", Status: 200, Total: 3 * time.Second,
		FirstByte: 3 * time.Second, Upstream: 3 * time.Second, Overhead: 30 * time.Microsecond})
	// The 30B tier asked, the 7B tier answered (a fallback).
	m.Finished(large, small, &Record{Served: "qwen3-omni-7b", Deployment: "sim-7b", Status: 200, Total: 400 * time.Millisecond,
		Upstream: 390 * time.Millisecond, Overhead: 60 * time.Microsecond})
	// A 400 the model refused, and a 404 no model was found for.
	m.Finished(small, nil, &Record{Status: 400, Overhead: 20 * time.Microsecond})
	m.Finished(nil, nil, &Record{Status: 404})
	small.Upstream("sim-7b", "200")
	small.Fallback("qwen3-omni-30b")
	small.Clamped("max_tokens")
	small.Hedge()
	large.Breaker("sim-30b", "open")
	body := scrape(t, m)
	for _, want := range []string{
		`model_latency_seconds_bucket{deployment="sim-7b",model_version="qwen3-omni-7b",le="0.1"} 0`,
		`model_latency_seconds_bucket{deployment="sim-7b",model_version="qwen3-omni-7b",le="0.5"} 2`,
		`model_latency_seconds_bucket{deployment="sim-7b",model_version="qwen3-omni-7b",le="2"} 2`,
		`model_latency_seconds_bucket{deployment="sim-7b",model_version="qwen3-omni-7b",le="5"} 3`,
		`model_latency_seconds_count{deployment="sim-7b",model_version="qwen3-omni-7b"} 3`,
		`omnigate_requests_total{code="200",deployment="sim-7b",model="qwen3-omni-7b",stream="true"} 1`,
		`omnigate_requests_total{code="200",deployment="sim-7b",model="qwen3-omni-7b",stream="false"} 1`,
		`omnigate_requests_total{code="200",deployment="sim-7b",model="qwen3-omni-30b",stream="false"} 1`,
		`omnigate_requests_total{code="400",deployment="",model="qwen3-omni-7b",stream="false"} 1`,
		`omnigate_requests_total{code="404",deployment="",model="",stream="false"} 1`,
		`omnigate_time_to_first_token_seconds_bucket{deployment="sim-7b",model="qwen3-omni-7b",le="0.05"} 1`,
		`omnigate_time_to_first_token_seconds_count{deployment="sim-7b",model="qwen3-omni-7b"} 1`, // streams only
		`omnigate_time_per_output_token_seconds_bucket{deployment="sim-7b",model="qwen3-omni-7b",le="0.02"} 1`,
		`omnigate_upstream_latency_seconds_count{deployment="sim-7b",model="qwen3-omni-7b"} 3`,
		`omnigate_queue_wait_seconds_bucket{model="qwen3-omni-7b",le="0.025"} 1`,
		`omnigate_queue_wait_seconds_count{model="qwen3-omni-7b"} 1`, // only the request that reached a queue
		`omnigate_gateway_overhead_seconds_bucket{model="qwen3-omni-7b",le="2.5e-05"} 1`,
		`omnigate_gateway_overhead_seconds_count{model="qwen3-omni-7b"} 3`,
		`omnigate_gateway_overhead_seconds_count{model="qwen3-omni-30b"} 1`,
		`omnigate_tokens_total{deployment="sim-7b",kind="prompt",model="qwen3-omni-7b"} 9`,
		`omnigate_tokens_total{deployment="sim-7b",kind="completion",model="qwen3-omni-7b"} 21`,
		`omnigate_upstream_requests_total{deployment="sim-7b",model="qwen3-omni-7b",outcome="200"} 1`,
		`omnigate_fallbacks_total{from="qwen3-omni-7b",to="qwen3-omni-30b"} 1`,
		`omnigate_clamped_params_total{model="qwen3-omni-7b",param="max_tokens"} 1`,
		`omnigate_hedges_total{model="qwen3-omni-7b"} 1`,
		`omnigate_breaker_transitions_total{deployment="sim-30b",model="qwen3-omni-30b",to="open"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	for _, absent := range []string{
		`model_latency_seconds_count{deployment="",`, // the 400 is no success
		`omnigate_time_to_first_token_seconds_count{deployment="sim-7b",model="qwen3-omni-30b"}`,
		`omnigate_gateway_overhead_seconds_count{model=""}`,
	} {
		if strings.Contains(body, absent) {
			t.Errorf("exposition has %s", absent)
		}
	}
}

func TestLiveExposition(t *testing.T) {
	m := New()
	nan := math.NaN()
	calls := 0
	m.Live(func() LiveState {
		calls++
		return LiveState{
			Models: []ModelState{{Model: "qwen3-omni-7b", Limit: 12, InFlight: 5,
				Queued: []PriorityDepth{{"interactive", 3}, {"batch", 0}}}},
			Deployments: []DeploymentState{
				{Model: "qwen3-omni-7b", Deployment: "gpu-a", InFlight: 5, InFlightTokens: 4100, Load: 7, Healthy: true, Breaker: BreakerClosed,
					Engine: &EngineState{Running: 6, Waiting: 1, KVUsage: 0.43, PrefixHitRatio: 0.5, Preemptions: 7},
					GPUs: []GPUState{{GPU: "0", MemUsed: 77082132480, MemFree: 7815036928, MemReserved: 622854144, Utilization: 0.87,
						NVLinkTX: 1.9e10, NVLinkRX: 1.9e10, NVLinkBandwidth: nan}}},
				{Model: "qwen3-omni-7b", Deployment: "gpu-b", Breaker: BreakerOpen,
					Engine: &EngineState{Running: 0, Waiting: 0, KVUsage: nan, PrefixHitRatio: nan, Preemptions: nan}},
				{Model: "qwen3-omni-30b", Deployment: "sim-30b", Healthy: true, Breaker: BreakerHalfOpen},
			},
		}
	})
	body := scrape(t, m)
	for _, want := range []string{
		`omnigate_admission_limit{model="qwen3-omni-7b"} 12`,
		`omnigate_admission_inflight{model="qwen3-omni-7b"} 5`,
		`omnigate_admission_queue_depth{model="qwen3-omni-7b",priority="interactive"} 3`,
		`omnigate_admission_queue_depth{model="qwen3-omni-7b",priority="batch"} 0`,
		`omnigate_deployment_inflight_requests{deployment="gpu-a",model="qwen3-omni-7b"} 5`,
		`omnigate_deployment_inflight_tokens{deployment="gpu-a",model="qwen3-omni-7b"} 4100`,
		`omnigate_deployment_load{deployment="gpu-a",model="qwen3-omni-7b"} 7`,
		`omnigate_deployment_healthy{deployment="gpu-a",model="qwen3-omni-7b"} 1`,
		`omnigate_deployment_healthy{deployment="gpu-b",model="qwen3-omni-7b"} 0`,
		`omnigate_breaker_state{deployment="gpu-b",model="qwen3-omni-7b"} 2`,
		`omnigate_breaker_state{deployment="sim-30b",model="qwen3-omni-30b"} 1`,
		`omnigate_engine_requests_running{deployment="gpu-a",model="qwen3-omni-7b"} 6`,
		`omnigate_engine_requests_waiting{deployment="gpu-b",model="qwen3-omni-7b"} 0`,
		`omnigate_engine_kv_cache_usage_ratio{deployment="gpu-a",model="qwen3-omni-7b"} 0.43`,
		`omnigate_engine_prefix_cache_hit_ratio{deployment="gpu-a",model="qwen3-omni-7b"} 0.5`,
		"# TYPE omnigate_engine_preemptions_total counter",
		`omnigate_engine_preemptions_total{deployment="gpu-a",model="qwen3-omni-7b"} 7`,
		`omnigate_gpu_memory_used_bytes{deployment="gpu-a",gpu="0",model="qwen3-omni-7b"} 7.708213248e+10`,
		`omnigate_gpu_memory_free_bytes{deployment="gpu-a",gpu="0",model="qwen3-omni-7b"} 7.815036928e+09`,
		`omnigate_gpu_memory_reserved_bytes{deployment="gpu-a",gpu="0",model="qwen3-omni-7b"} 6.22854144e+08`,
		`omnigate_gpu_utilization_ratio{deployment="gpu-a",gpu="0",model="qwen3-omni-7b"} 0.87`,
		`omnigate_gpu_nvlink_tx_bytes_per_second{deployment="gpu-a",gpu="0",model="qwen3-omni-7b"} 1.9e+10`,
		`omnigate_gpu_nvlink_rx_bytes_per_second{deployment="gpu-a",gpu="0",model="qwen3-omni-7b"} 1.9e+10`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	for _, absent := range []string{
		`omnigate_gpu_nvlink_bandwidth{`,                          // NaN: not exported
		`omnigate_engine_kv_cache_usage_ratio{deployment="gpu-b"`, // NaN
		`omnigate_engine_requests_running{deployment="sim-30b"`,   // no fresh scrape
		`omnigate_admission_limit{model="qwen3-omni-30b"}`,        // admission off
	} {
		if strings.Contains(body, absent) {
			t.Errorf("exposition has %s", absent)
		}
	}
	if calls != 1 {
		t.Errorf("the live state was read %d times in one scrape, want 1", calls)
	}
}

// BenchmarkFinished is what the request path spends on metrics per
// request: it must not allocate.
func BenchmarkFinished(b *testing.B) {
	m := New()
	mm := m.Model("qwen3-omni-7b")
	rec := &Record{Model: "qwen3-omni-7b", Served: "qwen3-omni-7b", Deployment: "sim-7b", Status: 200, Stream: true,
		Total: 250 * time.Millisecond, FirstByte: 30 * time.Millisecond, Upstream: 240 * time.Millisecond, Overhead: 40 * time.Microsecond,
		PerToken: 10 * time.Millisecond, Admission: true, HasUsage: true, PromptTokens: 9, CompletionTokens: 20}
	b.ReportAllocs()
	for b.Loop() {
		mm.Inflight.Inc()
		m.Finished(mm, mm, rec)
		mm.Inflight.Dec()
	}
}

// TestFinishedAllocatesNothing keeps BenchmarkFinished's promise.
func TestFinishedAllocatesNothing(t *testing.T) {
	m := New()
	mm := m.Model("m")
	rec := &Record{Served: "m", Deployment: "d", Status: 200, Stream: true, FirstByte: time.Millisecond, PerToken: time.Millisecond,
		Admission: true, HasUsage: true, PromptTokens: 1, CompletionTokens: 2}
	m.Finished(mm, mm, rec) // resolves the handles
	if n := testing.AllocsPerRun(100, func() { m.Finished(mm, mm, rec) }); n != 0 {
		t.Errorf("Finished allocates %.0f times per request, want 0", n)
	}
}
