package router

import (
	"net/http"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/request"
)

// autoCatalog is the default config with the small tier taking text and
// images only and a context window of 4096 tokens.
func autoCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cfg := config.Default()
	cfg.Models[0].Capabilities.Input = []string{"text", "image"}
	cfg.Models[0].ContextWindow = 4096
	cfg.ApplyDefaults()
	cat, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestAutoChooses(t *testing.T) {
	one := 1.0
	r, err := New(autoCatalog(t), config.Routing{Auto: config.Auto{
		Names: []string{"auto-support"},
		Rules: []config.Rule{
			{When: map[string]string{"latency": "batch"}, Tier: "large"},
			{When: map[string]string{"tools": ">=2", "json": "true"}, Tier: "large"},
			{When: map[string]string{"prompt_tokens": "<4"}, Tier: "small"},
		},
		Scorer: config.Scorer{Threshold: &one}, // off: the rules or the default decide
	}})
	if err != nil {
		t.Fatal(err)
	}
	chat := func(model, extra, content string) string {
		return `{"model":"` + model + `"` + extra + `,"messages":[{"role":"user","content":` + content + `}]}`
	}
	tools := `,"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}]`
	video := `[{"type":"text","text":"what happens here"},{"type":"video_url","video_url":{"url":"http://x/v.mp4"}}]`
	for _, tc := range []struct {
		name, body string
		h          http.Header
		model, why string
	}{
		{"video: small takes no video", chat("auto", "", video), nil, "qwen3-omni-30b", "constraint:input_modality"},
		{"long prompt past small's window", chat("auto", "", `"`+strings.Repeat("word ", 4000)+`"`), nil, "qwen3-omni-30b", "constraint:context_window"},
		{"max_tokens past small's window", chat("auto", `,"max_tokens":4095`, `"hello there"`), nil, "qwen3-omni-30b", "constraint:context_window"},
		{"batch latency rule", chat("auto", "", `"hello there"`), http.Header{"X-Omnigate-Latency": {"batch"}}, "qwen3-omni-30b", "rule:0"},
		{"every condition of a rule", chat("auto", tools, `"book it"`), nil, "qwen3-omni-30b", "rule:1"},
		{"short prompt rule", chat("auto-support", "", `"hi"`), nil, "qwen3-omni-7b", "rule:2"},
		{"realtime before the scorer", chat("auto", "", `"explain the history of Rome"`), http.Header{"X-Omnigate-Latency": {"realtime"}}, "qwen3-omni-7b", "latency:realtime"},
		{"default", chat("auto", "", `"explain the history of Rome"`), nil, "qwen3-omni-7b", "default"},
		{"a named model is not routed", chat("large", "", `"hi"`), nil, "qwen3-omni-30b", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req request.Request
			if err := request.Parse(request.Chat, []byte(tc.body), &req); err != nil {
				t.Fatal(err)
			}
			chain, why, err := r.Route(&req, []byte(tc.body), tc.h)
			if err != nil {
				t.Fatal(err)
			}
			if chain[0].Model.Name != tc.model || why != tc.why {
				t.Errorf("chose %s (%q), want %s (%q)", chain[0].Model.Name, why, tc.model, tc.why)
			}
		})
	}
}

func TestAutoScorerThreshold(t *testing.T) {
	body := `{"model":"auto","messages":[{"role":"user","content":"Compare Rust and Go step by step and justify which to choose."}]}`
	var req request.Request
	if err := request.Parse(request.Chat, []byte(body), &req); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		threshold float64
		model     string
	}{{0, "qwen3-omni-30b"}, {0.99, "qwen3-omni-7b"}} {
		th := tc.threshold
		r, err := New(testCatalog(t), config.Routing{Auto: config.Auto{Scorer: config.Scorer{Threshold: &th}}})
		if err != nil {
			t.Fatal(err)
		}
		chain, why, _ := r.Route(&req, []byte(body), nil)
		if chain[0].Model.Name != tc.model || !strings.HasPrefix(why, "score:") {
			t.Errorf("threshold %v: %s (%q), want %s by score", th, chain[0].Model.Name, why, tc.model)
		}
	}
}

func TestAutoWithoutTiers(t *testing.T) {
	cfg := config.Default()
	cfg.Models = cfg.Models[:1]
	cfg.Routing.Fallbacks = nil
	cfg.ApplyDefaults()
	cat, _ := catalog.New(cfg)
	r, err := New(cat, config.Routing{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.Route(&request.Request{Model: "auto"}, nil, nil)
	if e := apierror.From(err); e.Status != 404 || e.Param != "model" {
		t.Errorf("auto with one tier: %+v", e)
	}
	if len(r.AutoNames()) != 0 {
		t.Errorf("auto names listed without two tiers: %v", r.AutoNames())
	}
}

func TestRuleFeaturesAreTheRouters(t *testing.T) {
	if strings.Join(config.RuleFeatures, ",") != strings.Join(featureNames[:], ",") {
		t.Errorf("config.RuleFeatures %v != router features %v", config.RuleFeatures, featureNames)
	}
}

func BenchmarkRouteAuto(b *testing.B) {
	cat, _ := catalog.New(config.Default())
	r, err := New(cat, config.Routing{})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"model":"auto","messages":[{"role":"system","content":"You are a careful assistant."},{"role":"user","content":"Compare these two approaches step by step and say which is faster for n = 40, and why."}]}`)
	var req request.Request
	if err := request.Parse(request.Chat, body, &req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Route(&req, body, nil); err != nil {
			b.Fatal(err)
		}
	}
}
