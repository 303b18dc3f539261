package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/omnigate/omnigate/internal/embedtest"
)

// semanticConfig serves model m on the simulator with the semantic cache,
// its prompts embedded by model embed on the test embedder at emb; store
// and redisAddr ("" for none) choose where answers are kept.
func semanticConfig(t *testing.T, emb, store, redisAddr string) string {
	t.Helper()
	redis := ""
	if redisAddr != "" {
		redis = fmt.Sprintf("cache:\n  redis: {addr: %q, prefix: %q}\n", redisAddr, "omnigate-e2e-semantic")
	}
	return writeConfig(t, fmt.Sprintf(`
server: {addr: "127.0.0.1:0"}
%smodels:
  - name: m
    cache: {mode: semantic, store: %s, semantic: {embeddings: embed, timeout: 5s}}
    deployments: [{name: sim, kind: sim, profile: instant}]
  - name: embed
    capabilities: {endpoints: [embeddings]}
    deployments: [{name: use-lite, kind: openai, url: %q}]
`, redis, store, emb+"/v1"))
}

// semanticAsk asks gateway base the question text with the official SDK
// and returns the answer's text and its cache headers.
func semanticAsk(t *testing.T, base, text string) (answer, cache, similarity string) {
	t.Helper()
	c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var resp *http.Response
	got, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "m", Temperature: openai.Float(0), MaxTokens: openai.Int(24),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage(text)}}, option.WithResponseInto(&resp))
	if err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	return got.Choices[0].Message.Content, resp.Header.Get("X-Omnigate-Cache"), resp.Header.Get("X-Omnigate-Cache-Similarity")
}

// TestCacheSemantic: a gateway process whose prompts a real sentence
// encoder embeds serves a paraphrase of a kept question the kept answer
// (semantic-hit, with the similarity), and sends a negated question or
// one with another number upstream.
func TestCacheSemantic(t *testing.T) {
	emb := embedtest.Start(t)
	gw := start(t, "serve", "--config", semanticConfig(t, emb, "memory", ""))

	first, h, _ := semanticAsk(t, gw.URL, "What is the capital of France?")
	if h != "miss" {
		t.Fatalf("first question: %q", h)
	}
	again, h, sim := semanticAsk(t, gw.URL, "What's the capital of France?")
	s, _ := strconv.ParseFloat(sim, 64)
	if h != "semantic-hit" || again != first || s < 0.95 || s > 1 {
		t.Fatalf("the paraphrase: %q (similarity %q), same answer %v", h, sim, again == first)
	}
	for _, q := range []string{"What is not the capital of France?", "What is the capital of Germany?"} {
		if _, h, _ := semanticAsk(t, gw.URL, q); h != "miss" {
			t.Errorf("%q: %q, want a miss", q, h)
		}
	}
	semanticAsk(t, gw.URL, "What is 12 times 13?")
	if _, h, sim := semanticAsk(t, gw.URL, "What is 12 times 14?"); h != "miss" {
		t.Errorf("another number: %q (similarity %s), want a miss", h, sim)
	}
}

// TestCacheSemanticSharedInRedis: two gateway processes on one Redis: a
// paraphrase of a question one of them kept hits semantically on the
// other, which learns of the answer from the stream.
func TestCacheSemanticSharedInRedis(t *testing.T) {
	emb := embedtest.Start(t)
	redisAddr, _ := startRedis(t)
	cfg := semanticConfig(t, emb, "redis", redisAddr)
	a := start(t, "serve", "--config", cfg)
	b := start(t, "serve", "--config", cfg)

	first, h, _ := semanticAsk(t, a.URL, "How do I reverse a list in Python?")
	if h != "miss" {
		t.Fatalf("first question: %q", h)
	}
	// The other gateway indexes the answer once it has read the stream
	// (every half second): before, the paraphrase would be its own miss.
	if _, ok := poll(5*time.Second, func() bool { return scrapeMetrics(t, b.URL).sum("omnigate_cache_semantic_vectors", nil) >= 1 }); !ok {
		t.Fatal("the other gateway did not index the kept answer")
	}
	again, h, sim := semanticAsk(t, b.URL, "How can I reverse a list in Python?")
	if h != "semantic-hit" {
		t.Fatalf("the other gateway: %q (similarity %s), not semantic-hit", h, sim)
	}
	if again != first {
		t.Errorf("the other gateway's semantic hit (similarity %s) is another answer:\n%s\n%s", sim, again, first)
	}
}
