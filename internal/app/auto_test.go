package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
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
