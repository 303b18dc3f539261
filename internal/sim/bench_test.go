package sim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkInstant measures the zero-latency path the load harness uses as
// a bare upstream: one request through the handler, no network.
func BenchmarkInstant(b *testing.B) {
	for _, tc := range []struct{ name, body string }{
		{"chat", `{"model":"instant","messages":[{"role":"user","content":"Benchmark me a short answer, please."}]}`},
		{"chat-stream", `{"model":"instant","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Benchmark me a short answer, please."}]}`},
		{"chat-tools", `{"model":"instant","tool_choice":"required","messages":[{"role":"user","content":"Benchmark me a short answer, please."}],"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"},"n":{"type":"integer"}},"required":["q"]}}}]}`},
		{"chat-logprobs-stream", `{"model":"instant","stream":true,"logprobs":true,"top_logprobs":5,"messages":[{"role":"user","content":"Benchmark me a short answer, please."}]}`},
		{"embeddings", `{"model":"instant","input":"Benchmark me"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := New(mustProfile(b, "instant"), Options{})
			defer e.Close()
			h := e.Handler()
			path := "/v1/chat/completions"
			if tc.name == "embeddings" {
				path = "/v1/embeddings"
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(tc.body)))
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
				io.Discard.Write(w.Body.Bytes())
			}
		})
	}
}
