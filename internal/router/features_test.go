package router

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/request"
)

func extract(t *testing.T, body string, h http.Header) Features {
	t.Helper()
	var r request.Request
	if err := request.Parse(request.Chat, []byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return Extract(&r, []byte(body), h)
}

func TestExtract(t *testing.T) {
	user := func(s string) string {
		return `{"model":"auto","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":` + s + `}]}`
	}
	for _, tc := range []struct {
		name string
		body string
		h    http.Header
		want Features
	}{
		{"chit-chat", user(`"Hi there, how are you?"`), nil, Features{PromptTokens: 10, Turns: 2}},
		{"code", user(`"Fix this bug:\n` + "```" + `go\nfunc f() {\n\treturn x;\n}\n` + "```" + `"`), nil,
			Features{PromptTokens: 18, Turns: 2, Code: 7}}, // ``` twice, func, return, bug, { and ; at line ends
		{"maths", user(`"Solve the equation 3*x + 4 = 19 and compute 12/4."`), nil, Features{PromptTokens: 17, Turns: 2, Math: 5}}, // solve, equation, compute, = and / between digits
		{"reasoning", user(`"Compare the two designs step by step and explain why one is better."`), nil,
			Features{PromptTokens: 21, Turns: 2, Reasoning: 5}}, // compare, step by step, explain why, why, design
		{"language", user(`"Объясни, пожалуйста"`), nil, Features{PromptTokens: 9, Turns: 2, NonASCII: 1}},
		{"media and tools", `{"model":"auto","max_tokens":300,"response_format":{"type":"json_object"},"messages":[{"role":"user","content":[` +
			`{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"http://x/a.png"}},` +
			`{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}],"tools":[{"type":"function","function":{"name":"f"}}]}`,
			http.Header{"X-Omnigate-Latency": {"realtime"}},
			Features{PromptTokens: 15, Turns: 1, Images: 1, Audios: 1, Tools: 1, JSONOut: true, MaxTokens: 300, Latency: Realtime}},
		{"batch priority", user(`"x"`), http.Header{"X-Omnigate-Priority": {"batch"}}, Features{PromptTokens: 5, Turns: 2, Latency: Batch}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, extract(t, tc.body, tc.h)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func BenchmarkExtract(b *testing.B) {
	body := []byte(`{"model":"auto","messages":[{"role":"system","content":"You are a careful assistant."},{"role":"user","content":"` +
		`Compare these two approaches step by step. First, the recursive one: func fib(n int) int { if n < 2 { return n }; return fib(n-1) + fib(n-2) } ` +
		`and second the iterative one. Which is faster for n = 40, and why? Give the complexity of each."}]}`)
	var r request.Request
	if err := request.Parse(request.Chat, body, &r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		Extract(&r, body, nil)
	}
}
