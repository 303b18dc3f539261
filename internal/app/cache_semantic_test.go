package app

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
)

// fakeEmbedder serves /v1/embeddings from a table of texts and their
// vectors (a text it does not know embeds far from every other); mode
// "fail" answers 500, "slow" holds each answer back 10 s.
type fakeEmbedder struct {
	vectors map[string][]float32
	mode    atomic.Value // string
	calls   atomic.Int64
}

func (f *fakeEmbedder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	switch f.mode.Load() {
	case "fail":
		http.Error(w, `{"error":{"message":"down","type":"server_error"}}`, http.StatusInternalServerError)
		return
	case "slow":
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
			return
		}
	}
	var req struct{ Input string }
	json.NewDecoder(r.Body).Decode(&req)
	v, ok := f.vectors[req.Input]
	if !ok {
		v = make([]float32, 4)
		v[len(req.Input)%4] = -1
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"object": "list", "model": "e",
		"data":  []any{map[string]any{"object": "embedding", "index": 0, "embedding": v}},
		"usage": map[string]int{"prompt_tokens": 3, "total_tokens": 3}})
}

// semanticGateway serves model "m" on upstream with the semantic cache,
// its prompts embedded by model "embed" on emb.
func semanticGateway(t *testing.T, upstream string, emb http.Handler) *httptest.Server {
	t.Helper()
	es := httptest.NewServer(emb)
	t.Cleanup(es.Close)
	cfg := &config.Config{Models: []config.Model{
		{Name: "m", Cache: config.Cache{Mode: "semantic", Semantic: config.SemanticCache{Embeddings: "embed", Timeout: config.Duration(200 * time.Millisecond)}},
			Capabilities: config.Capabilities{Input: []string{"text", "image"}},
			Deployments:  []config.Deployment{{Name: "up", URL: upstream + "/v1"}}},
		{Name: "embed", Capabilities: config.Capabilities{Endpoints: []string{"embeddings"}},
			Deployments: []config.Deployment{{Name: "emb", URL: es.URL + "/v1"}}},
	}}
	_, srv := newTestGateway(t, cfg)
	return srv
}

func question(system, text string) string {
	msgs := `{"role":"user","content":` + jsonString(text) + `}`
	if system != "" {
		msgs = `{"role":"system","content":` + jsonString(system) + `},` + msgs
	}
	return `{"model":"m","temperature":0,"max_tokens":20,"messages":[` + msgs + `]}`
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestCacheSemantic: a paraphrase of a kept question gets the kept answer
// (semantic-hit, with its similarity); a question embedded far from it,
// the same text under another system prompt or other parameters, go
// upstream; so does every request while the embeddings fail or time out,
// none of which fails.
func TestCacheSemantic(t *testing.T) {
	up, calls := countedSim(t, 0)
	emb := &fakeEmbedder{vectors: map[string][]float32{
		"What is a gateway?":      {1, 0, 0, 0},
		"What's a gateway?":       {1, 0.1, 0, 0}, // cos 0.995
		"What is not a gateway?":  {1, 0.5, 0, 0}, // cos 0.894
		"Tell me what a proxy is": {0, 0, 1, 0},
	}}
	emb.mode.Store("")
	srv := semanticGateway(t, up.URL, emb)

	resp, first := post(t, srv.URL+"/v1/chat/completions", "application/json", question("", "What is a gateway?"))
	if h := resp.Header.Get("X-Omnigate-Cache"); resp.StatusCode != 200 || h != "miss" {
		t.Fatalf("first question: %d %q", resp.StatusCode, h)
	}
	resp, again := post(t, srv.URL+"/v1/chat/completions", "application/json", question("", "What's a gateway?"))
	got := []string{resp.Header.Get("X-Omnigate-Cache"), resp.Header.Get("X-Omnigate-Cache-Similarity")}
	if d := cmp.Diff([]string{"semantic-hit", "0.9950"}, got); d != "" || string(again) != string(first) || calls.Load() != 1 {
		t.Fatalf("the paraphrase (-want +got):\n%s\nsame answer %v, %d upstream calls", d, string(again) == string(first), calls.Load())
	}
	if h, s := ask(t, srv, strings.Replace(question("", "What's a gateway?"), `{"model":"m",`, `{"model":"m","stream":true,`, 1)); h != "semantic-hit" || !strings.HasSuffix(s, "data: [DONE]\n\n") {
		t.Errorf("the paraphrase, streamed: %q %q", h, s)
	}

	tests := []struct {
		name, body string
		hdr        []string
		want       string
	}{
		{"embedded too far", question("", "What is not a gateway?"), nil, "miss"},
		{"another topic", question("", "Tell me what a proxy is"), nil, "miss"},
		{"another system prompt", question("Answer in French.", "What's a gateway?"), nil, "miss"},
		{"another max_tokens", strings.Replace(question("", "What's a gateway?"), `"max_tokens":20`, `"max_tokens":21`, 1), nil, "miss"},
		{"an image in the question", `{"model":"m","temperature":0,"max_tokens":20,"messages":[{"role":"user","content":[{"type":"text","text":"What's a gateway?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`, nil, "miss"},
		{"no-cache", question("", "What's a gateway?"), []string{"Cache-Control", "no-cache"}, "miss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := calls.Load()
			if h, _ := ask(t, srv, tt.body, tt.hdr...); h != tt.want {
				t.Errorf("X-Omnigate-Cache %q, want %q", h, tt.want)
			}
			if calls.Load() != before+1 {
				t.Errorf("%d upstream calls, want 1", calls.Load()-before)
			}
		})
	}

	for _, mode := range []string{"fail", "slow"} {
		t.Run("embeddings "+mode, func(t *testing.T) {
			emb.mode.Store(mode)
			defer emb.mode.Store("")
			start := time.Now()
			before := calls.Load()
			if h, _ := ask(t, srv, question("", "What's a gateway, "+mode+"?")); h != "miss" || calls.Load() != before+1 {
				t.Errorf("X-Omnigate-Cache %q, %d upstream calls; want a miss that went upstream", h, calls.Load()-before)
			}
			if took := time.Since(start); took > 5*time.Second { // far below the embedder's 10 s, far above the 200 ms timeout
				t.Errorf("the lookup took %v, past the embeddings timeout", took)
			}
		})
	}

	_, b := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		`omnigate_cache_requests_total{model="m",result="semantic_hit"} 2`,
		`omnigate_cache_embedding_errors_total 2`,
		`omnigate_cache_semantic_similarity_count{model="m"} 2`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
