package app

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/omnigate/omnigate/internal/config"
)

// startDefault serves the built-in default config (both tiers on the
// simulator) on a real loopback listener.
func startDefault(t *testing.T) *httptest.Server {
	t.Helper()
	return startGateway(t, config.Default())
}

// startGateway applies defaults, validates cfg and serves it on a real
// loopback listener until the test ends.
func startGateway(t *testing.T, cfg *config.Config) *httptest.Server {
	t.Helper()
	_, srv := newTestGateway(t, cfg)
	return srv
}

func sdkClient(srv *httptest.Server) openai.Client {
	return openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

func TestSDKListModels(t *testing.T) {
	srv := startDefault(t)
	c := sdkClient(srv)
	page, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	for _, want := range []string{"qwen3-omni-7b", "qwen3-omni-30b", "small", "large"} {
		if !strings.Contains(strings.Join(ids, ","), want) {
			t.Errorf("models list %v lacks %q", ids, want)
		}
	}
	m, err := c.Models.Get(context.Background(), "large")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "large" {
		t.Errorf("get large: id %q", m.ID)
	}
}

// TestSDKChatBothTiers switches tiers by changing only the model field.
func TestSDKChatBothTiers(t *testing.T) {
	srv := startDefault(t)
	c := sdkClient(srv)
	for _, model := range []string{"qwen3-omni-7b", "qwen3-omni-30b", "small"} {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			params := openai.ChatCompletionNewParams{
				Model:     model,
				Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello in five words.")},
				MaxTokens: openai.Int(16),
			}
			res, err := c.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Choices) != 1 || res.Choices[0].Message.Content == "" {
				t.Fatalf("no answer: %+v", res)
			}
			if res.Usage.CompletionTokens < 1 || res.Usage.CompletionTokens > 16 || res.Usage.TotalTokens != res.Usage.PromptTokens+res.Usage.CompletionTokens {
				t.Errorf("usage %+v", res.Usage)
			}

			stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model: model, Messages: params.Messages, MaxTokens: openai.Int(16),
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
			})
			var acc openai.ChatCompletionAccumulator
			chunks := 0
			for stream.Next() {
				acc.AddChunk(stream.Current())
				chunks++
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if chunks < 3 || acc.Choices[0].Message.Content == "" {
				t.Fatalf("stream: %d chunks, content %q", chunks, acc.Choices[0].Message.Content)
			}
			if acc.Usage.CompletionTokens < 1 {
				t.Errorf("stream usage missing: %+v", acc.Usage)
			}
			// Deterministic simulator: the same request gives the same text either way.
			if got, want := acc.Choices[0].Message.Content, res.Choices[0].Message.Content; got != want {
				t.Errorf("stream text %q != non-stream text %q", got, want)
			}
		})
	}
}

func TestSDKErrors(t *testing.T) {
	srv := startDefault(t)
	c := sdkClient(srv)
	tests := []struct {
		name   string
		params openai.ChatCompletionNewParams
		status int
		typ    string
		param  string
	}{
		{"unknown model", openai.ChatCompletionNewParams{Model: "gpt-9", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}},
			404, "not_found_error", "model"},
		{"max_tokens over 30b ceiling", openai.ChatCompletionNewParams{Model: "qwen3-omni-30b", MaxTokens: openai.Int(5000), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}},
			400, "invalid_request_error", "max_tokens"},
		{"temperature out of range", openai.ChatCompletionNewParams{Model: "small", Temperature: openai.Float(3), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}},
			400, "invalid_request_error", "temperature"},
		{"empty messages", openai.ChatCompletionNewParams{Model: "small", Messages: []openai.ChatCompletionMessageParamUnion{}},
			400, "invalid_request_error", "messages"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Chat.Completions.New(context.Background(), tc.params)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("want *openai.Error, got %v", err)
			}
			if apiErr.StatusCode != tc.status || apiErr.Type != tc.typ || apiErr.Param != tc.param || apiErr.Message == "" {
				t.Errorf("got status %d type %q param %q message %q; want %d %q %q", apiErr.StatusCode, apiErr.Type, apiErr.Param, apiErr.Message, tc.status, tc.typ, tc.param)
			}
		})
	}
}

func TestHealthAndReady(t *testing.T) {
	srv := startDefault(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
}
