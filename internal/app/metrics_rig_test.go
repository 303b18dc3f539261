package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
)

// dcgmFixture is a dcgm-exporter page (see the file's header for where
// its shape comes from).
var dcgmFixture = filepath.Join("..", "enginemetrics", "testdata", "dcgm_exporter.txt")

// dcgmExporter serves the fixture at /metrics on loopback, as
// dcgm-exporter would on :9400; fail makes it answer 503.
func dcgmExporter(t *testing.T) (srv *httptest.Server, fail *atomic.Bool) {
	t.Helper()
	page, err := os.ReadFile(dcgmFixture)
	if err != nil {
		t.Fatal(err)
	}
	fail = new(atomic.Bool)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() || r.URL.Path != "/metrics" {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(page)
	}))
	t.Cleanup(srv.Close)
	return srv, fail
}

// fastScrapes are engine metrics settings that make tests wait less.
func fastScrapes() config.EngineMetrics {
	return config.EngineMetrics{Interval: config.Duration(100 * time.Millisecond), Timeout: config.Duration(100 * time.Millisecond)}
}

// vllmDeployment is a deployment of model on a simulated vLLM engine
// reached over loopback; headers are sent with every request (the
// simulator's X-Sim-* fault headers).
func vllmDeployment(t *testing.T, name, model string, headers map[string]string) config.Deployment {
	srv := httptest.NewServer(simEngine(t, "qwen3-omni-7b", model))
	t.Cleanup(srv.Close)
	return config.Deployment{Name: name, Kind: config.KindOpenAI, URL: srv.URL + "/v1", Dialect: config.DialectVLLM,
		UpstreamModel: model, Headers: headers, Metrics: fastScrapes()}
}

// richConfig is a gateway whose traffic (richTraffic) gives every metric
// family samples: two tiers, the large one always failing and falling
// back to the small one, one of whose two deployments cuts every stream
// (continued on the other) and reports its GPUs through a DCGM exporter;
// a hedged model with one slow deployment and an admission limit of one;
// a model with a failing deployment that is retried on the other.
func richConfig(t *testing.T, dcgm string) *config.Config {
	rr := config.Balance{Strategy: config.StrategyRoundRobin}
	one := config.Admission{Limit: config.LimitBounds{Initial: 1, Min: 1, Max: 1}, MaxQueue: 1, QueueTimeout: config.Duration(5 * time.Millisecond)}
	small1 := vllmDeployment(t, "small-1", "qwen3-omni-7b", nil)
	small1.GPUMetrics = config.GPUMetrics{URL: dcgm + "/metrics", GPUs: []string{"0", "1"},
		Interval: config.Duration(100 * time.Millisecond), Timeout: config.Duration(100 * time.Millisecond)}
	return &config.Config{
		Models: []config.Model{
			{Name: "qwen3-omni-7b", Tier: config.TierSmall, Balance: rr,
				Limits: config.Limits{MaxTokens: 64, OnViolation: config.OnViolationClamp},
				Deployments: []config.Deployment{small1,
					vllmDeployment(t, "small-2", "qwen3-omni-7b", map[string]string{sim.HeaderCutAfter: "2"})}},
			{Name: "qwen3-omni-30b", Tier: config.TierLarge,
				Deployments: []config.Deployment{vllmDeployment(t, "large-1", "qwen3-omni-30b", map[string]string{sim.HeaderFail: "503"})}},
			{Name: "hedged", Balance: rr, Hedge: config.Hedge{After: config.Duration(20 * time.Millisecond)}, Admission: one,
				Deployments: []config.Deployment{
					vllmDeployment(t, "hedge-slow", "hedged", map[string]string{sim.HeaderSlow: "150ms"}),
					vllmDeployment(t, "hedge-fast", "hedged", nil)}},
			{Name: "retried", Balance: rr,
				Deployments: []config.Deployment{
					vllmDeployment(t, "retry-bad", "retried", map[string]string{sim.HeaderFail: "503"}),
					vllmDeployment(t, "retry-good", "retried", nil)}},
		},
		Routing: config.Routing{Fallbacks: map[string][]config.Fallback{"qwen3-omni-30b": {{Model: "qwen3-omni-7b"}}}},
	}
}

// chatBody is a chat request for model; extra is spliced in as more
// fields ("" for none).
func chatBody(model, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"model":%q,"max_tokens":8,"messages":[{"role":"user","content":"Say hello to the metrics."}]%s}`, model, extra)
}

// richTraffic sends richConfig's gateway its traffic: whole answers and
// streams, clamps, a 400, a 404, fallbacks, hedges, retries and an
// overloaded queue. Each client value it sends (request ids, users, API
// keys, sticky keys) is new, and returned, so tests can check none of
// them became a label.
func richTraffic(t *testing.T, url string) (clientValues []string) {
	t.Helper()
	var mu sync.Mutex // the last burst sends from several goroutines
	n := 0
	next := func() (id, user, key string) {
		mu.Lock()
		defer mu.Unlock()
		n++
		id, user, key = fmt.Sprintf("req-%d-%d", time.Now().UnixNano(), n), fmt.Sprintf("user-%d", n), fmt.Sprintf("sk-secret-%d", n)
		clientValues = append(clientValues, id, user, key)
		return id, user, key
	}
	do := func(path, body string, want ...int) {
		t.Helper()
		id, user, key := next()
		body = strings.Replace(body, `"messages"`, fmt.Sprintf(`"user":%q,"messages"`, user), 1)
		resp, b := send(t, "POST", url+path, body, "Content-Type", "application/json", "X-Request-Id", id,
			"Authorization", "Bearer "+key, "X-Sticky-Key", key)
		for _, w := range want {
			if resp.StatusCode == w {
				return
			}
		}
		t.Errorf("POST %s %s: %d %s, want %v", path, body, resp.StatusCode, b, want)
	}
	const chat = "/v1/chat/completions"
	stream := `"stream":true,"stream_options":{"include_usage":true}`
	for range 4 { // round robin: both deployments of each model, twice
		do(chat, chatBody("qwen3-omni-7b", ""), 200)
		do(chat, chatBody("qwen3-omni-7b", stream), 200) // cut on small-2, continued on small-1
		do(chat, chatBody("qwen3-omni-30b", ""), 200)    // 503 from large-1, answered by the fallback
		do(chat, chatBody("hedged", ""), 200)            // hedged when hedge-slow is asked first
		do(chat, chatBody("retried", stream), 200)       // retried when retry-bad is asked first
	}
	do(chat, strings.Replace(chatBody("qwen3-omni-7b", ""), `"max_tokens":8`, `"max_tokens":100000`, 1), 200) // clamped
	do("/v1/embeddings", `{"model":"qwen3-omni-7b","input":"x"}`, 400)                                        // not served
	do(chat, chatBody("no-such-model", ""), 404)
	do(chat, `{"model":`, 400)
	// Six at once at a queue of one place and one waiter: some are
	// turned away.
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() { do(chat, chatBody("hedged", ""), 200, 503) })
	}
	wg.Wait()
	return clientValues
}

// scrapeText GETs the gateway's /metrics.
func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// families gathers the gateway's metric families by name.
func families(t *testing.T, gw *Gateway) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := gw.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// omnigateFamilies is every family the gateway exports of its own (the Go
// runtime's and the process's aside), as docs/metrics.md lists them.
var omnigateFamilies = []string{
	"model_latency_seconds",
	"omnigate_time_to_first_token_seconds", "omnigate_time_per_output_token_seconds", "omnigate_queue_wait_seconds",
	"omnigate_upstream_latency_seconds", "omnigate_gateway_overhead_seconds",
	"omnigate_requests_total", "omnigate_tokens_total", "omnigate_upstream_requests_total",
	"omnigate_retries_total", "omnigate_hedges_total", "omnigate_continuations_total", "omnigate_fallbacks_total",
	"omnigate_clamped_params_total", "omnigate_admission_rejected_total", "omnigate_breaker_transitions_total",
	"omnigate_inflight_requests",
	"omnigate_deployment_inflight_requests", "omnigate_deployment_inflight_tokens", "omnigate_deployment_load",
	"omnigate_deployment_healthy", "omnigate_breaker_state",
	"omnigate_admission_queue_depth", "omnigate_admission_limit", "omnigate_admission_inflight",
	"omnigate_engine_requests_running", "omnigate_engine_requests_waiting", "omnigate_engine_kv_cache_usage_ratio",
	"omnigate_engine_prefix_cache_hit_ratio", "omnigate_engine_preemptions_total",
	"omnigate_gpu_memory_used_bytes", "omnigate_gpu_memory_free_bytes", "omnigate_gpu_memory_reserved_bytes",
	"omnigate_gpu_utilization_ratio", "omnigate_gpu_nvlink_tx_bytes_per_second", "omnigate_gpu_nvlink_rx_bytes_per_second",
	"omnigate_gpu_nvlink_bandwidth",
}

// richGateway serves richConfig, sends it richTraffic and waits (10 s at
// most) until every family has a sample: the scrape-time ones need a
// fresh engine and DCGM scrape after the traffic. It returns the gateway,
// its server and the client values sent.
func richGateway(t *testing.T) (*Gateway, *httptest.Server, []string) {
	t.Helper()
	dcgm, _ := dcgmExporter(t)
	gw, srv := newTestGateway(t, richConfig(t, dcgm.URL))
	sent := richTraffic(t, srv.URL)
	var missing []string
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mfs := families(t, gw)
		missing = missing[:0]
		for _, name := range omnigateFamilies {
			if mf := mfs[name]; mf == nil || len(mf.GetMetric()) == 0 {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(end) {
			break
		}
	}
	if len(missing) > 0 {
		t.Fatalf("after the traffic, no samples of %v", missing)
	}
	return gw, srv, sent
}

// promtool returns the path of Prometheus's promtool, skipping the test
// when it is not installed, unless CI is set (CI installs it: .ci/run).
func promtool(t *testing.T) string {
	t.Helper()
	return needBinary(t, "promtool")
}

// needBinary returns the path of the named program, skipping the test
// when it is missing, failing it instead when CI is set.
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run installs it (apt-get install prometheus)", name)
		}
		t.Skipf("%s is not installed (apt-get install prometheus); CI runs this test", name)
	}
	return p
}
