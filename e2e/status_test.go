package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// deploymentRow is what the test reads of GET /admin/deployments.
type deploymentRow struct {
	Model      string `json:"model"`
	Deployment string `json:"deployment"`
	InFlight   int64  `json:"in_flight"`
	Health     string `json:"health"`
	Breaker    struct {
		State    string     `json:"state"`
		Failures int        `json:"consecutive_failures"`
		Changed  *time.Time `json:"changed_at"`
	} `json:"breaker"`
	LastFailure *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"last_failure"`
	Engine *struct {
		Running int      `json:"running"`
		KVUsage *float64 `json:"kv_cache_usage"`
		AgeS    float64  `json:"age_s"`
		Stale   bool     `json:"stale"`
	} `json:"engine"`
}

func deployments(t *testing.T, base string) map[string]deploymentRow {
	t.Helper()
	rows := map[string]deploymentRow{}
	for _, r := range deploymentRows(t, base) {
		rows[r.Deployment] = r
	}
	return rows
}

// TestDeploymentStatus: GET /admin/deployments shows a killed engine's
// breaker opening, with its last failure and when the state changed, its
// last engine metrics going stale, and never its address.
func TestDeploymentStatus(t *testing.T) {
	large := start(t, "sim", "--profile", "instant", "--model", "qwen3-omni-30b", "--addr", "127.0.0.1:0")
	small := start(t, "sim", "--profile", "instant", "--model", "qwen3-omni-7b", "--addr", "127.0.0.1:0")
	// No active check here: the breaker alone must take large-1 out.
	gw := start(t, "serve", "--config", writeConfig(t, `
server: {addr: "127.0.0.1:0"}
models:
  - name: qwen3-omni-30b
    deployments: [{name: large-1, kind: openai, url: "`+large.URL+`/v1", dialect: vllm, health_check: {enabled: false},
                   metrics: {interval: 100ms, timeout: 100ms}}]
  - name: qwen3-omni-7b
    deployments: [{name: small-1, kind: openai, url: "`+small.URL+`/v1", dialect: vllm, health_check: {enabled: false},
                   metrics: {interval: 100ms, timeout: 100ms}}]
routing:
  fallbacks: {qwen3-omni-30b: [qwen3-omni-7b]}
`))

	rows := deployments(t, gw.Admin)
	if len(rows) != 2 || rows["large-1"].Breaker.State != "closed" || rows["large-1"].LastFailure != nil || rows["large-1"].Breaker.Changed != nil {
		t.Fatalf("at start: %+v", rows)
	}
	scraped := func(name string, stale bool) func() bool {
		return func() bool {
			e := deployments(t, gw.Admin)[name].Engine
			return e != nil && e.KVUsage != nil && e.Stale == stale
		}
	}
	waitFor(t, "both engines scraped", scraped("large-1", false))
	waitFor(t, "both engines scraped", scraped("small-1", false))
	large.cmd.Process.Kill()
	large.cmd.Wait()
	waitFor(t, "large-1's engine metrics stale", scraped("large-1", true))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 { // each fails on large-1 and falls back to the small tier
		resp, err := chat(ctx, gw.URL, `{"model":"qwen3-omni-30b","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("fallback answered %d", resp.StatusCode)
		}
	}
	r := deployments(t, gw.Admin)["large-1"]
	if r.Breaker.State != "open" || r.Breaker.Changed == nil || r.LastFailure == nil || r.LastFailure.Reason != "unreachable" {
		t.Fatalf("after the engine died: %+v (last failure %+v)", r, r.LastFailure)
	}
	resp, _ := http.Get(gw.Admin + "/admin/deployments")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	api, err := http.Get(gw.URL + "/admin/deployments")
	if err != nil {
		t.Fatal(err)
	}
	api.Body.Close()
	if api.StatusCode != 404 {
		t.Errorf("the API listener answers /admin/deployments with %d, want 404: it serves no admin path", api.StatusCode)
	}
	if host := strings.TrimPrefix(large.URL, "http://"); strings.Contains(string(b), host) {
		t.Errorf("the status shows the engine's address %s: %s", host, b)
	}
	if s := deployments(t, gw.Admin)["small-1"]; s.Breaker.State != "closed" || s.InFlight != 0 || s.Engine == nil || s.Engine.Stale {
		t.Errorf("small-1: %+v (engine %+v)", s, s.Engine)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

// TestActiveHealthCheck: a killed engine leaves rotation and /readyz
// within its check interval, with no request sent to it, and comes back by
// itself once it answers again on the same address.
func TestActiveHealthCheck(t *testing.T) {
	addr := freeAddr(t)
	engine := start(t, "sim", "--profile", "instant", "--model", "m", "--addr", addr)
	cfg := writeConfig(t, `
server: {addr: "127.0.0.1:0"}
models:
  - name: m
    deployments:
      - {name: d1, kind: openai, url: "http://`+addr+`/v1", dialect: vllm,
         health_check: {interval: 100ms, timeout: 100ms}}
`)
	gw := start(t, "serve", "--config", cfg)
	ready := func() int {
		resp, err := http.Get(gw.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitUntil := func(what string, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s: not within 10 s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitUntil("up at start", func() bool { return deployments(t, gw.Admin)["d1"].Health == "up" && ready() == 200 })

	engine.cmd.Process.Kill()
	engine.cmd.Wait()
	took := waitUntil("out of rotation", func() bool { return ready() == 503 })
	if r := deployments(t, gw.Admin)["d1"]; r.Health != "down" || r.Breaker.State != "closed" {
		t.Errorf("after the kill: %+v; want health down with no request having failed", r)
	}
	t.Logf("out of rotation %v after the kill (interval 100 ms)", took.Round(time.Millisecond))

	start(t, "sim", "--profile", "instant", "--model", "m", "--addr", addr)
	waitUntil("back in rotation", func() bool { return ready() == 200 })
	resp, err := chat(context.Background(), gw.URL, `{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the engine came back: %d", resp.StatusCode)
	}
	// The gateway's log, read once it has stopped writing it.
	gw.cmd.Process.Kill()
	gw.cmd.Wait()
	if log := gw.stderr.String(); !strings.Contains(log, "deployment out of rotation") || !strings.Contains(log, "deployment back in rotation") {
		t.Errorf("state changes not logged:\n%s", log)
	}
}

// TestShutdownGraceEndsStreamsWithAnError: a stream still open when the
// shutdown grace runs out ends with an error event, never with a clean
// end that looks complete.
func TestShutdownGraceEndsStreamsWithAnError(t *testing.T) {
	cfg := writeConfig(t, `
server: {addr: "127.0.0.1:0", shutdown_grace: 200ms}
models:
  - name: m
    limits: {max_tokens: 8192}
    deployments: [{name: d, kind: sim, profile: qwen3-omni-30b}]
`)
	gw := start(t, "serve", "--config", cfg)
	rest, _ := streamThroughSIGTERM(t, gw, `{"model":"m","stream":true,"max_tokens":8000,"messages":[{"role":"user","content":"a very long story"}]}`)
	if strings.Contains(rest, "[DONE]") || !strings.Contains(rest, `"code":"gateway_shutting_down"`) {
		t.Errorf("a stream cut by the shutdown ended with %q", tail(rest, 300))
	}
	gw.cmd.Wait()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
