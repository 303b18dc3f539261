package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
)

// newTestGateway is startGateway that also hands back the gateway, for
// its live state.
func newTestGateway(t *testing.T, cfg *config.Config) (*Gateway, *httptest.Server) {
	t.Helper()
	cfg.ApplyDefaults()
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatalf("config: %v", p)
	}
	gw, err := NewGateway(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); gw.Close() })
	return gw, srv
}

// adminServer serves gw's admin API on a listener of its own, as serve
// does, and returns its URL.
func adminServer(t *testing.T, gw *Gateway) string {
	t.Helper()
	srv := httptest.NewServer(gw.Admin())
	t.Cleanup(srv.Close)
	return srv.URL
}

// engineRow is what the tests read of /admin/deployments' engine object.
type engineRow struct {
	Deployment string `json:"deployment"`
	Engine     *struct {
		Running       int      `json:"running"`
		Waiting       int      `json:"waiting"`
		KVUsage       *float64 `json:"kv_cache_usage"`
		PrefixHitRate *float64 `json:"prefix_cache_hit_rate"`
		AgeS          float64  `json:"age_s"`
		Stale         bool     `json:"stale"`
	} `json:"engine"`
}

func engineRows(t *testing.T, base string) []engineRow {
	t.Helper()
	_, b := get(t, base+"/admin/deployments")
	var out struct{ Data []engineRow }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return out.Data
}

// TestEngineMetricsSeeOtherTraffic: a replica loaded by traffic that does
// not pass through the gateway shows that load in its state, scraped from
// the engine's /metrics, and in /admin/deployments.
func TestEngineMetricsSeeOtherTraffic(t *testing.T) {
	p, err := sim.LoadProfile("qwen3-omni-7b")
	if err != nil {
		t.Fatal(err)
	}
	p.DecodeBase, p.AnswerTokens = 50*time.Millisecond, [2]int{400, 400} // 20 s answers
	eng := sim.New(p, sim.Options{ModelName: "m"})
	t.Cleanup(eng.Close)
	up := httptest.NewServer(eng.Handler())
	t.Cleanup(up.Close)
	gw, _ := newTestGateway(t, &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{{
		Name: "gpu-1", Kind: config.KindOpenAI, URL: up.URL + "/v1", Dialect: config.DialectVLLM,
		Metrics: config.EngineMetrics{Interval: config.Duration(50 * time.Millisecond), Timeout: config.Duration(40 * time.Millisecond)},
	}}}}})
	admin := adminServer(t, gw)
	if rows := engineRows(t, admin); len(rows) != 1 || rows[0].Deployment != "gpu-1" {
		t.Fatalf("rows %+v", rows)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 3
	for range n { // straight to the engine, past the gateway
		req, _ := http.NewRequestWithContext(ctx, "POST", up.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"a long story"}]}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := up.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream: %d %v", resp.StatusCode, err)
		}
	}

	st := gw.registry.State(balance.Key("m", "gpu-1"))
	var m *balance.EngineMetrics
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if m = st.Engine.Load(); m != nil && m.Running >= n {
			break
		}
	}
	if m == nil || m.Running < n || !m.HasKV || m.KVUsage <= 0 || m.Local != 0 {
		t.Fatalf("engine metrics %+v, want %d running, some KV cache used, none of it the gateway's", m, n)
	}
	rows := engineRows(t, admin)
	if e := rows[0].Engine; e == nil || e.Running < n || e.KVUsage == nil || *e.KVUsage <= 0 || e.Stale || e.AgeS > 5 {
		t.Errorf("/admin/deployments engine %+v, want %d running, the KV use, fresh", e, n)
	}
}

// TestEngineMetricsOfTheSimulator: an in-process simulator is scraped
// through its handler, and its deployment takes its profile's batch
// limit.
func TestEngineMetricsOfTheSimulator(t *testing.T) {
	gw, _ := newTestGateway(t, &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{
		{Name: "sim-1", Profile: "qwen3-omni-7b"},
		{Name: "sim-2", Profile: "qwen3-omni-7b", MaxNumSeqs: 8},
		{Name: "sim-3", Profile: "instant", Metrics: config.EngineMetrics{Enabled: new(false)}},
	}}}})
	pool := gw.core.Snapshot().Models[0].Pool
	for i, want := range []int{64, 8, 1024} {
		if got := pool[i].Config.MaxNumSeqs; got != want {
			t.Errorf("%s: max_num_seqs %d, want %d", pool[i].Config.Name, got, want)
		}
	}
	for end := time.Now().Add(10 * time.Second); pool[0].Engine.Load() == nil || pool[1].Engine.Load() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the simulators were not scraped within 10 s")
		}
	}
	if m := pool[0].Engine.Load(); m.Running != 0 || !m.HasKV {
		t.Errorf("idle simulator: %+v", m)
	}
	rows := engineRows(t, adminServer(t, gw))
	if e := rows[0].Engine; e == nil || e.KVUsage == nil || e.PrefixHitRate != nil || e.Stale {
		t.Errorf("sim-1 engine %+v", e)
	}
	if rows[2].Engine != nil {
		t.Errorf("sim-3, not scraped, shows engine %+v", rows[2].Engine)
	}
}
