package app

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/config"
)

const benchAnswer = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}}`

const benchRequest = `{"model":"m","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}],"max_tokens":64,"temperature":0.7}`

// BenchmarkProxyPath measures the whole gateway handler (read, parse,
// validate, route, pick, forward over a real loopback connection, relay,
// metrics) without the client-side HTTP server cost: the handler is called
// directly with a recorder.
func BenchmarkProxyPath(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, benchAnswer)
	}))
	defer up.Close()
	gw := benchGateway(b, up.URL)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(benchRequest))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkStreamRelay measures relaying a 20-chunk SSE answer through the
// gateway handler; ns/op is per stream.
func BenchmarkStreamRelay(b *testing.B) {
	var stream strings.Builder
	for i := range 20 {
		stream.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok` + string(rune('a'+i)) + `"},"finish_reason":null}]}` + "\n\n")
	}
	stream.WriteString("data: [DONE]\n\n")
	events := stream.String()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for ev := range strings.SplitAfterSeq(events, "\n\n") {
			io.WriteString(w, ev)
			f.Flush()
		}
	}))
	defer up.Close()
	gw := benchGateway(b, up.URL)
	body := strings.Replace(benchRequest, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, req)
		if w.Code != 200 || !strings.HasSuffix(w.Body.String(), "data: [DONE]\n\n") {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// benchGateway builds a gateway whose one model "m" is deployed on upstream.
func benchGateway(b *testing.B, upstream string) *Gateway {
	b.Helper()
	cfg := &config.Config{Models: []config.Model{{Name: "m",
		Deployments: []config.Deployment{{Name: "up", Kind: "openai", URL: upstream + "/v1"}}}}}
	cfg.ApplyDefaults()
	gw, err := NewGateway(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(gw.Close)
	return gw
}
