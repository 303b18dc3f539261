package enginemetrics

import (
	"errors"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/sim"
)

var at = time.Unix(1_750_000_000, 0)

func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file string
		want balance.EngineMetrics
	}{
		{"vllm_v1_dp2.txt", balance.EngineMetrics{At: at, Running: 8, Waiting: 2, KVUsage: 0.4375, HasKV: true,
			PrefixQueries: 2e6, PrefixHits: 1e6, HasPrefix: true, Preemptions: 7, HasPreemptions: true}},
		{"vllm_v0.txt", balance.EngineMetrics{At: at, Running: 4, Waiting: 1, KVUsage: 0.8125, HasKV: true,
			PrefixQueries: 51200, PrefixHits: 12800, HasPrefix: true}},
		{"sglang_dp2.txt", balance.EngineMetrics{At: at, Running: 21, Waiting: 4, KVUsage: 0.31, HasKV: true,
			PrefixHitRate: 0.56, HasHitRate: true}},
		{"llamacpp.txt", balance.EngineMetrics{At: at, Running: 2, Waiting: 1, KVUsage: 0.0869140625, HasKV: true}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := Parse(f, at)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got, cmp.Comparer(approx)); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

// approx compares floats to a relative 1e-9: sums of decimal fractions.
func approx(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*max(1, math.Abs(a), math.Abs(b))
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		name string
		body string
		want balance.EngineMetrics
	}{
		{"no labels, CRLF, tabs", "vllm:num_requests_running 3\r\nvllm:num_requests_waiting\t2\r\n",
			balance.EngineMetrics{At: at, Running: 3, Waiting: 2}},
		{"timestamps", "vllm:num_requests_running{engine=\"0\"} 3 1750000000000\nvllm:num_requests_waiting 1e1 1750000000000\n",
			balance.EngineMetrics{At: at, Running: 3, Waiting: 10}},
		{"exponents and signs", "vllm:num_requests_running +2.5E+01\nvllm:kv_cache_usage_perc 5e-1\n",
			balance.EngineMetrics{At: at, Running: 25, KVUsage: 0.5, HasKV: true}},
		{"NaN and Inf skipped", "vllm:num_requests_running{engine=\"0\"} NaN\nvllm:num_requests_running{engine=\"1\"} 4\n" +
			"vllm:kv_cache_usage_perc{engine=\"0\"} +Inf\nvllm:kv_cache_usage_perc{engine=\"1\"} 0.25\nvllm:num_requests_waiting -Inf\n",
			balance.EngineMetrics{At: at, Running: 4, KVUsage: 0.25, HasKV: true}},
		{"malformed lines skipped", strings.Join([]string{
			"vllm:num_requests_running{engine=\"0\" 7",    // unclosed labels
			"vllm:num_requests_running{engine=\"0} 7",     // unclosed quote
			"vllm:num_requests_running",                   // no value
			"vllm:num_requests_running{} seven",           // not a number
			"vllm:num_requests_running 7 soon",            // not a timestamp
			"{} 7",                                        // no name
			"vllm:num_requests_running{engine=\"1\"} 3",   // the one good line
			"vllm:num_requests_running{x=\"a\\\\\"} 2",    // an escaped backslash closes the quote
			"vllm:num_requests_waiting{x=\"\\\"}\\n\"} 5", // an escaped quote and brace inside the value
			"  # indented comment vllm:num_requests_running 9",
		}, "\n"), balance.EngineMetrics{At: at, Running: 5, Waiting: 5}},
		{"current KV name over the legacy one", "vllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc 0.3\n",
			balance.EngineMetrics{At: at, KVUsage: 0.3, HasKV: true}},
		{"names are case-sensitive", "vllm:num_requests_running 1\nVLLM:num_requests_waiting 9\n",
			balance.EngineMetrics{At: at, Running: 1}},
		{"prefix counters need both", "vllm:prefix_cache_queries_total 100\nvllm:num_requests_running 0\n",
			balance.EngineMetrics{At: at}},
		{"ratio clamped", "sglang:token_usage 1.02\nsglang:cache_hit_rate -0.1\n",
			balance.EngineMetrics{At: at, KVUsage: 1, HasKV: true, HasHitRate: true}},
		{"no trailing newline", "llamacpp:requests_processing 1", balance.EngineMetrics{At: at, Running: 1}},
		{"SGLang's retractions are its preemptions, summed over dp ranks",
			"sglang:num_running_reqs 1\nsglang:num_retracted_requests_total{dp_rank=\"0\"} 3\nsglang:num_retracted_requests_total{dp_rank=\"1\"} 2\nsglang:num_retracted_reqs 9\n",
			balance.EngineMetrics{At: at, Running: 1, Preemptions: 5, HasPreemptions: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBytes([]byte(tt.body), at)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	node, err := os.ReadFile(filepath.Join("testdata", "node_exporter.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body string
		want error // nil: any error
	}{
		{"empty", "", ErrNoMetrics},
		{"comments only", "# HELP vllm:num_requests_running Number of requests.\n# TYPE vllm:num_requests_running gauge\n", ErrNoMetrics},
		{"another exporter", string(node), ErrNoMetrics},
		{"an HTML page", "<html><body>vllm:num_requests_running</body></html>", ErrNoMetrics},
		{"only NaN", "vllm:num_requests_running NaN\n", ErrNoMetrics},
		{"only preemptions", "vllm:num_preemptions_total 3\n", ErrNoMetrics},
		{"too long", "vllm:num_requests_running 1\n" + strings.Repeat("# padding\n", MaxBody/10+1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.body), at)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
}

// TestParseSimulator: the simulator's /metrics, as its Prometheus
// registry writes it, reads as vLLM's.
func TestParseSimulator(t *testing.T) {
	p, err := sim.LoadProfile("instant")
	if err != nil {
		t.Fatal(err)
	}
	eng := sim.New(p, sim.Options{ModelName: "m"})
	defer eng.Close()
	rec := httptest.NewRecorder()
	eng.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	got, err := Parse(rec.Body, at)
	if err != nil {
		t.Fatalf("%v in\n%s", err, rec.Body)
	}
	if want := (balance.EngineMetrics{At: at, HasKV: true, HasPrefix: true, HasPreemptions: true}); got != want {
		t.Errorf("idle simulator: %+v, want %+v", got, want)
	}
}

func TestHitRate(t *testing.T) {
	tests := []struct {
		name string
		m    balance.EngineMetrics
		want float64
		ok   bool
	}{
		{"reported", balance.EngineMetrics{PrefixHitRate: 0.4, HasHitRate: true, PrefixQueries: 10, PrefixHits: 1, HasPrefix: true}, 0.4, true},
		{"from counters", balance.EngineMetrics{PrefixQueries: 200, PrefixHits: 50, HasPrefix: true}, 0.25, true},
		{"no queries yet", balance.EngineMetrics{HasPrefix: true}, 0, false},
		{"unknown", balance.EngineMetrics{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.m.HitRate()
			if got != tt.want || ok != tt.ok {
				t.Errorf("HitRate() = %v, %v, want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func BenchmarkParseVLLM(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "vllm_v1_dp2.txt"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseBytes(body, at); err != nil {
			b.Fatal(err)
		}
	}
}
