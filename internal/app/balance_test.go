package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
)

// TestBalanceStatus: each answer names the replica that served it, and
// GET /admin/deployments shows the model's admission queue, its recent
// picks with their scores, and each replica's load and latencies.
func TestBalanceStatus(t *testing.T) {
	a, b := simServer(t, sim.Faults{}), simServer(t, sim.Faults{})
	g, gw := newTestGateway(t, &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{
		{Name: "a", URL: a.URL + "/v1", Dialect: "vllm", Metrics: config.EngineMetrics{Interval: config.Duration(50 * time.Millisecond)}},
		{Name: "b", URL: b.URL + "/v1", Dialect: "vllm", Metrics: config.EngineMetrics{Interval: config.Duration(50 * time.Millisecond)}}}}}})
	served := map[string]int{}
	for k := range 6 {
		// Streams time the first byte; whole answers (and streams with
		// their usage) the time per token.
		resp := mustPost(t, gw.URL+"/v1/chat/completions", fmt.Sprintf(`{"model":"m","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, k < 4))
		drainBody(resp)
		served[resp.Header.Get("X-Omnigate-Deployment")]++
		time.Sleep(260 * time.Millisecond) // one sampled decision each
	}
	if served["a"]+served["b"] != 6 {
		t.Fatalf("X-Omnigate-Deployment named %v; want a or b on every answer", served)
	}
	resp, err := http.Get(adminServer(t, g) + "/admin/deployments")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Data []struct {
			Deployment string   `json:"deployment"`
			Load       *float64 `json:"load"`
			FirstByteS float64  `json:"avg_first_byte_s"`
			PerTokenS  float64  `json:"avg_per_token_s"`
			LastScore  *float64 `json:"last_score"`
			Engine     *struct {
				Running int `json:"running"`
			} `json:"engine"`
		} `json:"data"`
		Models []struct {
			Model     string `json:"model"`
			Strategy  string `json:"strategy"`
			Admission *struct {
				Limit    int            `json:"limit"`
				Max      int            `json:"max"`
				Admitted int            `json:"admitted"`
				Queued   map[string]int `json:"queued"`
			} `json:"admission"`
			Decisions []struct {
				Chosen     string `json:"chosen"`
				Candidates []struct {
					Deployment string  `json:"deployment"`
					Score      float64 `json:"score"`
				} `json:"candidates"`
			} `json:"recent_decisions"`
		} `json:"models"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Models) != 1 || st.Models[0].Strategy != "score" {
		t.Fatalf("models: %+v", st.Models)
	}
	m := st.Models[0]
	if a := m.Admission; a == nil || a.Limit < 1 || a.Max != 512 || a.Admitted != 6 || a.Queued["interactive"] != 0 {
		t.Errorf("admission: %+v; want a limit, max 512 (two engines of vLLM's default 256), 6 admitted, none queued", a)
	}
	if len(m.Decisions) < 2 || len(m.Decisions[0].Candidates) != 2 || m.Decisions[0].Chosen == "" {
		t.Errorf("recent decisions: %+v; want several, each scoring both replicas", m.Decisions)
	}
	var first, per bool
	for _, d := range st.Data {
		if d.Load == nil || d.LastScore == nil || d.Engine == nil {
			t.Errorf("deployment %s: load %v, last score %v, engine %v", d.Deployment, d.Load, d.LastScore, d.Engine)
		}
		first, per = first || d.FirstByteS > 0, per || d.PerTokenS > 0
	}
	if !first || !per {
		t.Errorf("no replica shows an average time to first byte (%v) or per token (%v)", first, per)
	}
}

func drainBody(resp *http.Response) {
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
