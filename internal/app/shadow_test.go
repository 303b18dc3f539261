package app

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
)

// TestShadowTraffic: every answered request of the bf16 model is asked
// again of its int4 variant, off the request path; about as many answers
// differ as the variant's divergence says, streamed or whole, and the
// clients get only the bf16 model's answers.
func TestShadowTraffic(t *testing.T) {
	cfg := &config.Config{Models: []config.Model{
		{Name: "qwen3-omni-7b", Shadow: config.Shadow{Model: "int4", Share: 1, MaxInFlight: 64},
			Deployments: []config.Deployment{{Name: "sim-bf16", Kind: "sim", Profile: "instant", Quantization: "bf16"}}},
		{Name: "qwen3-omni-7b-awq", Aliases: []string{"int4"},
			Deployments: []config.Deployment{{Name: "sim-int4", Kind: "sim", Profile: "instant", Quantization: "awq-int4"}}},
	}}
	gw, srv := newTestGateway(t, cfg)
	const n = 400
	for i := range n {
		stream := ""
		if i%4 == 0 {
			stream = `"stream":true,`
		}
		resp, b := postH(t, srv.URL+"/v1/chat/completions",
			fmt.Sprintf(`{"model":"qwen3-omni-7b",%s"temperature":0,"max_tokens":16,"messages":[{"role":"user","content":"question %d"}]}`, stream, i), nil)
		if resp.StatusCode != 200 || resp.Header.Get("X-Omnigate-Model") != "qwen3-omni-7b" {
			t.Fatalf("request %d: %d %s %s", i, resp.StatusCode, resp.Header.Get("X-Omnigate-Model"), b)
		}
	}
	results := func() map[string]float64 {
		out := map[string]float64{}
		for _, r := range []string{"agree", "differ", "error", "dropped"} {
			out[r], _ = value(families(t, gw), "omnigate_shadow_requests_total", map[string]string{"model": "qwen3-omni-7b", "candidate": "qwen3-omni-7b-awq", "result": r})
		}
		return out
	}
	var got map[string]float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = results(); got["agree"]+got["differ"]+got["error"]+got["dropped"] == n {
			break
		}
	}
	if got["error"] != 0 || got["dropped"] != 0 || got["agree"]+got["differ"] != n {
		t.Fatalf("shadow results %v, want %d compared", got, n)
	}
	want := sim.QuantizationFor("awq-int4").Divergence
	if share := got["differ"] / n; math.Abs(share-want) > 0.04 {
		t.Errorf("%v of %d answers differ (%.3f), want about %.2f", got["differ"], n, share, want)
	}
	mfs := families(t, gw)
	whole, _ := value(mfs, "omnigate_requests_total", map[string]string{"model": "qwen3-omni-7b-awq", "code": "200", "stream": "false"})
	streamed, _ := value(mfs, "omnigate_requests_total", map[string]string{"model": "qwen3-omni-7b-awq", "code": "200", "stream": "true"})
	if whole != 3*n/4 || streamed != n/4 {
		t.Errorf("the candidate served %v whole and %v streamed requests, want %d and %d", whole, streamed, 3*n/4, n/4)
	}
	t.Logf("shadow: %v", got)
	// The admin API says the same, with the agreement.
	rec := httptest.NewRecorder()
	gw.Admin().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/deployments", nil))
	var st struct {
		Models []struct {
			Model  string
			Shadow *struct {
				Candidate     string
				Agree, Differ float64
				Agreement     float64
			}
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if sh := st.Models[0].Shadow; sh == nil || sh.Candidate != "qwen3-omni-7b-awq" || sh.Agree != got["agree"] || sh.Differ != got["differ"] ||
		math.Abs(sh.Agreement-got["agree"]/n) > 1e-9 {
		t.Errorf("/admin/deployments shadow: %+v, want %v", sh, got)
	}
	if st.Models[1].Shadow != nil {
		t.Errorf("the candidate has shadow traffic of its own: %+v", st.Models[1].Shadow)
	}
}

// TestShadowBounded: past max_inflight, a request is not mirrored (and
// is counted as dropped); the client never waits for its shadow: the
// one mirrored request (to a 30B profile, seconds long) is still running
// when all five clients have their answers.
func TestShadowBounded(t *testing.T) {
	cfg := &config.Config{Models: []config.Model{
		{Name: "m", Shadow: config.Shadow{Model: "slow", Share: 1, MaxInFlight: 1},
			Deployments: []config.Deployment{{Name: "fast", Kind: "sim", Profile: "instant"}}},
		{Name: "slow", Deployments: []config.Deployment{{Name: "slow", Kind: "sim", Profile: "qwen3-omni-30b"}}},
	}}
	gw, srv := newTestGateway(t, cfg)
	for i := range 5 {
		resp, _ := postH(t, srv.URL+"/v1/chat/completions", fmt.Sprintf(`{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"q%d"}]}`, i), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	mfs := families(t, gw)
	if v, _ := value(mfs, "omnigate_inflight_requests", map[string]string{"model": "slow"}); v != 1 {
		t.Errorf("the candidate has %v requests in flight once the clients are answered; want the one mirrored", v)
	}
	if v, _ := value(mfs, "omnigate_shadow_requests_total", map[string]string{"model": "m", "candidate": "slow", "result": "dropped"}); v != 4 {
		t.Errorf("dropped %v mirrored requests of 5 with one slot; want 4", v)
	}
}
