package telemetry

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMetricsExposition(t *testing.T) {
	m := New()
	mm := m.Model("qwen3-omni-7b")
	mm.Latency.Observe(0.3)
	mm.Latency.Observe(3)
	mm.Request(200)
	mm.Request(200)
	mm.Request(400)
	mm.Upstream("sim-7b", "200")
	mm.Fallback("qwen3-omni-30b")
	mm.Clamped("max_tokens")
	mm.Hedge()
	m.Request("", 404)
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(w.Body)
	for _, want := range []string{
		`model_latency_seconds_bucket{model_version="qwen3-omni-7b",le="0.1"} 0`,
		`model_latency_seconds_bucket{model_version="qwen3-omni-7b",le="0.5"} 1`,
		`model_latency_seconds_bucket{model_version="qwen3-omni-7b",le="2"} 1`,
		`model_latency_seconds_bucket{model_version="qwen3-omni-7b",le="5"} 2`,
		`model_latency_seconds_count{model_version="qwen3-omni-7b"} 2`,
		`omnigate_requests_total{code="200",model="qwen3-omni-7b"} 2`,
		`omnigate_requests_total{code="400",model="qwen3-omni-7b"} 1`,
		`omnigate_requests_total{code="404",model=""} 1`,
		`omnigate_upstream_requests_total{deployment="sim-7b",model="qwen3-omni-7b",outcome="200"} 1`,
		`omnigate_fallbacks_total{from="qwen3-omni-7b",to="qwen3-omni-30b"} 1`,
		`omnigate_clamped_params_total{model="qwen3-omni-7b",param="max_tokens"} 1`,
		`omnigate_hedges_total{model="qwen3-omni-7b"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

// BenchmarkRecord is what the hot path spends on metrics per request.
func BenchmarkRecord(b *testing.B) {
	mm := New().Model("qwen3-omni-7b")
	b.ReportAllocs()
	for b.Loop() {
		mm.Inflight.Inc()
		mm.Request(200)
		mm.Latency.Observe(0.25)
		mm.Inflight.Dec()
	}
}
