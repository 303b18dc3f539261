package answer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/sim"
)

// simAnswer asks the simulator for body on path and returns the answer.
func simAnswer(t *testing.T, eng http.Handler, path, body string) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	eng.ServeHTTP(rec, httptest.NewRequest("POST", path, strings.NewReader(body)))
	if rec.Code != 200 {
		t.Fatalf("sim %d: %s", rec.Code, rec.Body)
	}
	b, _ := io.ReadAll(rec.Body)
	return b
}

// normalised decodes a kept answer for comparison, with the fields that
// differ between two answers of one engine (id, created) blanked.
func normalised(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var a map[string]any
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	delete(a, "id")
	delete(a, "created")
	delete(a, "system_fingerprint")
	for _, c := range a["choices"].([]any) {
		if m, ok := c.(map[string]any)["message"].(map[string]any); ok {
			if au, ok := m["audio"].(map[string]any); ok {
				delete(au, "id")
				delete(au, "expires_at")
			}
		}
	}
	return a
}

// TestAssembleMatchesTheWholeAnswer: a stream assembled is the answer the
// engine gives without streaming (text, tool calls, audio, usage), and a
// replay assembles back to the same answer.
func TestAssembleMatchesTheWholeAnswer(t *testing.T) {
	p, err := sim.LoadProfile("instant")
	if err != nil {
		t.Fatal(err)
	}
	eng := sim.New(p, sim.Options{})
	defer eng.Close()
	h := eng.Handler()
	tests := []struct{ name, path, body string }{
		{"chat text", "/v1/chat/completions", `{"model":"instant","seed":1,"messages":[{"role":"user","content":"tell me about caching"}]}`},
		{"chat n=2", "/v1/chat/completions", `{"model":"instant","seed":1,"n":2,"messages":[{"role":"user","content":"two answers"}]}`},
		{"tool call", "/v1/chat/completions", `{"model":"instant","seed":1,"messages":[{"role":"user","content":"weather in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"required"}`},
		{"audio", "/v1/chat/completions", `{"model":"instant","seed":1,"modalities":["text","audio"],"audio":{"voice":"Chelsie","format":"pcm16"},"messages":[{"role":"user","content":"say hi"}]}`},
		{"completions", "/v1/completions", `{"model":"instant","seed":1,"prompt":"Once upon a time"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			whole := simAnswer(t, h, tt.path, tt.body)
			if info, err := Inspect(whole); err != nil || !info.Complete || !info.HasUsage {
				t.Fatalf("Inspect(whole): %+v, %v", info, err)
			}
			stream := simAnswer(t, h, tt.path, strings.Replace(tt.body, `{"model":"instant",`, `{"model":"instant","stream":true,"stream_options":{"include_usage":true},`, 1))
			assembled, info, err := Assemble(bytes.NewReader(stream), "")
			if err != nil {
				t.Fatalf("Assemble: %v\n%s", err, stream)
			}
			if info.FinishReason == "" || !info.Complete || !info.HasUsage || info.HasLogprobs {
				t.Errorf("info %+v", info)
			}
			if d := cmp.Diff(normalised(t, whole), normalised(t, assembled)); d != "" {
				t.Errorf("assembled stream against the whole answer (-whole +assembled):\n%s", d)
			}
			replayed, err := Replay(assembled, true)
			if err != nil {
				t.Fatal(err)
			}
			again, _, err := Assemble(bytes.NewReader(replayed), "")
			if err != nil {
				t.Fatalf("Assemble(replay): %v\n%s", err, replayed)
			}
			if d := cmp.Diff(normalised(t, assembled), normalised(t, again)); d != "" {
				t.Errorf("replay round trip (-kept +replayed):\n%s", d)
			}
		})
	}
}

// TestReplayShape: the replayed stream is what engines send: a role chunk
// first, the finish chunk with an empty delta, usage only when asked for,
// then [DONE].
func TestReplayShape(t *testing.T) {
	body := `{"id":"chatcmpl-1","object":"chat.completion","created":5,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"héllo wörld"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`
	out, err := Replay([]byte(body), false)
	if err != nil {
		t.Fatal(err)
	}
	want := `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"héllo wörld"},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}

data: [DONE]

`
	if d := cmp.Diff(want, string(out)); d != "" {
		t.Errorf("replay (-want +got):\n%s", d)
	}
	out, _ = Replay([]byte(body), true)
	if !strings.Contains(string(out), `"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`) {
		t.Errorf("no usage chunk:\n%s", out)
	}
	if p := pieces(strings.Repeat("é", 100)); len(p) != 4 || strings.Join(p, "") != strings.Repeat("é", 100) {
		t.Errorf("pieces cut a rune or lost text: %q", p)
	}
}

// TestAssembleReports: what a stream lacks is reported, not guessed.
func TestAssembleReports(t *testing.T) {
	chunk := func(delta, finish string, extra string) string {
		return `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + finish + extra + `}]}` + "\n\n"
	}
	tests := []struct {
		name   string
		stream string
		want   Info
		err    error
	}{
		{"complete", chunk(`{"content":"a"}`, `"stop"`, "") + `data: {"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1}}` + "\n\ndata: [DONE]\n\n",
			Info{FinishReason: "stop", Complete: true, HasUsage: true}, nil},
		{"no usage", chunk(`{"content":"a"}`, `"stop"`, "") + "data: [DONE]\n\n", Info{FinishReason: "stop", Complete: true}, nil},
		{"logprobs", chunk(`{"content":"a"}`, `"stop"`, `,"logprobs":{"content":[]}`) + "data: [DONE]\n\n",
			Info{FinishReason: "stop", Complete: true, HasLogprobs: true}, nil},
		{"no finish_reason", chunk(`{"content":"a"}`, `null`, "") + "data: [DONE]\n\n", Info{}, nil},
		{"cut", chunk(`{"content":"a"}`, `null`, ""), Info{}, ErrIncomplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, info, err := Assemble(strings.NewReader(tt.stream), "")
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if d := cmp.Diff(tt.want, info); d != "" {
				t.Errorf("info (-want +got):\n%s", d)
			}
		})
	}
	var ev *EventError
	if _, _, err := Assemble(strings.NewReader(`data: {"error":{"message":"boom"}}`+"\n\n"), ""); !errors.As(err, &ev) {
		t.Errorf("an error event: %v", err)
	}
	if info, _ := Inspect([]byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"a"},"finish_reason":"length"}]}`)); info.HasUsage || info.FinishReason != "length" {
		t.Errorf("Inspect without usage: %+v", info)
	}
}
