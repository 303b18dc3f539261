package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/omnigate/omnigate/internal/config"
)

// TestSDKAuto: model "auto" through the official SDK, whole and
// streamed, on the default config: the tier follows the request, the
// answer's model field names it, X-Omnigate-Route says why.
func TestSDKAuto(t *testing.T) {
	srv := startDefault(t)
	c := sdkClient(srv)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name, prompt string
		opts         []option.RequestOption
		model, why   string
	}{
		{"greeting", "Hi there!", nil, "qwen3-omni-7b", "score:"},
		{"analysis", "Compare PostgreSQL and MongoDB step by step: the trade-offs, the pros and cons, and justify which to choose for a payments system.", nil, "qwen3-omni-30b", "score:"},
		{"realtime", "Compare PostgreSQL and MongoDB step by step: the trade-offs, and justify the choice.",
			[]option.RequestOption{option.WithHeader("X-Omnigate-Latency", "realtime")}, "qwen3-omni-7b", "latency:realtime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			opts := append([]option.RequestOption{option.WithResponseInto(&resp)}, tc.opts...)
			params := openai.ChatCompletionNewParams{Model: "auto", MaxTokens: openai.Int(8),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(tc.prompt)}}
			res, err := c.Chat.Completions.New(ctx, params, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if res.Model != tc.model || !strings.HasPrefix(resp.Header.Get("X-Omnigate-Route"), tc.why) {
				t.Errorf("whole: model %q, X-Omnigate-Route %q; want %s, %s…", res.Model, resp.Header.Get("X-Omnigate-Route"), tc.model, tc.why)
			}
			stream := c.Chat.Completions.NewStreaming(ctx, params, opts...)
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				acc.AddChunk(stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if acc.Model != tc.model || !strings.HasPrefix(resp.Header.Get("X-Omnigate-Route"), tc.why) {
				t.Errorf("stream: model %q, X-Omnigate-Route %q", acc.Model, resp.Header.Get("X-Omnigate-Route"))
			}
		})
	}
	m, err := c.Models.Get(ctx, "auto")
	if err != nil || m.ID != "auto" {
		t.Errorf("models/auto: %+v %v", m, err)
	}
}

// TestEscalation: with escalate on length and low_logprob, a small-tier
// answer cut by max_tokens is answered by the large tier instead; the
// client gets that one answer, and logprobs only when it asked for them.
func TestEscalation(t *testing.T) {
	cfg := config.Default()
	floor := -100.0 // the simulator's logprobs are all above: only length escalates
	cfg.Routing.Auto.Escalate = config.Escalate{On: []string{"length", "low_logprob"}, MinLogprob: &floor}
	gw, srv := newTestGateway(t, cfg)
	c := sdkClient(srv)
	ctx := context.Background()
	ask := func(maxTokens int64, logprobs bool) (*openai.ChatCompletion, *http.Response) {
		t.Helper()
		var resp *http.Response
		p := openai.ChatCompletionNewParams{Model: "auto", MaxTokens: openai.Int(maxTokens),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")}}
		if logprobs {
			p.Logprobs = openai.Bool(true)
		}
		res, err := c.Chat.Completions.New(ctx, p, option.WithResponseInto(&resp), option.WithHeader("Cache-Control", "no-cache"))
		if err != nil {
			t.Fatal(err)
		}
		return res, resp
	}
	res, resp := ask(3, false) // cut at 3 tokens: weak
	esc := resp.Header.Get("X-Omnigate-Escalated")
	if res.Model != "qwen3-omni-30b" || !strings.HasPrefix(esc, "qwen3-omni-7b; reason=length; prompt_tokens=") || !strings.Contains(esc, "completion_tokens=3") {
		t.Errorf("cut answer: model %s, X-Omnigate-Escalated %q", res.Model, esc)
	}
	res, resp = ask(400, false) // whole: kept, the logprobs asked for the test removed
	if res.Model != "qwen3-omni-7b" || resp.Header.Get("X-Omnigate-Escalated") != "" || len(res.Choices[0].Logprobs.Content) != 0 {
		t.Errorf("whole answer: model %s, escalated %q, %d logprobs", res.Model, resp.Header.Get("X-Omnigate-Escalated"), len(res.Choices[0].Logprobs.Content))
	}
	res, _ = ask(400, true) // asked for: kept
	if res.Model != "qwen3-omni-7b" || len(res.Choices[0].Logprobs.Content) == 0 {
		t.Errorf("logprobs asked for: model %s, %d logprobs", res.Model, len(res.Choices[0].Logprobs.Content))
	}
	mfs := families(t, gw)
	if v, ok := value(mfs, "omnigate_escalations_total", map[string]string{"from": "qwen3-omni-7b", "to": "qwen3-omni-30b", "reason": "length"}); !ok || v != 1 {
		t.Errorf("omnigate_escalations_total = %v (%v)", v, ok)
	}
	// The escalated small answer's 3 tokens count for its deployment,
	// beside the two whole answers'.
	want := 3 + 2*float64(len(res.Choices[0].Logprobs.Content))
	if v, _ := value(mfs, "omnigate_tokens_total", map[string]string{"model": "qwen3-omni-7b", "deployment": "sim-7b", "kind": "completion"}); v != want {
		t.Errorf("the small tier's completion tokens = %v, want %v", v, want)
	}
}
