package sim

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The out-of-memory answers of every dialect, exactly (see oom.go): the
// gateway classifies them by status and body.
func TestOOMAnswers(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	vllmEvent := `data: {"error":{"message":"EngineCore encountered an issue. See stack trace (above) for the root cause.","type":"InternalServerError","param":null,"code":500}}` + "\n\n"
	legacyEvent := `data: {"error":{"object":"error","message":"EngineCore encountered an issue. See stack trace (above) for the root cause.","type":"BadRequestError","param":null,"code":400}}` + "\n\n"
	llama := `{"error":{"code":500,"message":"Context size has been exceeded.","type":"server_error"}}` + "\n"
	ollama := `{"error":"llama runner process has terminated: cudaMalloc failed: out of memory"}` + "\n"
	studio := `{"error":{"message":"An internal error has occured, please try again later or contact service support.","type":"server_error","param":null,"code":"InternalError"},"request_id":"ID"}` + "\n"
	type reply struct {
		Status      int
		ContentType string
		Body        string
	}
	for _, tc := range []struct {
		dialect string
		stream  bool
		want    reply
	}{
		{DialectVLLM, false, reply{500, "", ""}},
		{DialectVLLM, true, reply{200, "text/event-stream", vllmEvent + "data: [DONE]\n\n"}},
		{DialectVLLMLegacy, false, reply{500, "", ""}},
		{DialectVLLMLegacy, true, reply{200, "text/event-stream", legacyEvent + "data: [DONE]\n\n"}},
		{DialectLlamaCpp, false, reply{500, "application/json", llama}},
		{DialectLlamaCpp, true, reply{500, "application/json", llama}},
		{DialectOllama, false, reply{500, "application/json", ollama}},
		{DialectOllama, true, reply{500, "application/json", ollama}},
		{DialectModelStudio, false, reply{500, "application/json", studio}},
		{DialectModelStudio, true, reply{500, "application/json", studio}},
	} {
		name := tc.dialect
		if tc.stream {
			name += " stream"
		}
		t.Run(name, func(t *testing.T) {
			body := chatHi
			if tc.stream {
				body = `{"messages":[{"role":"user","content":"hi"}],"stream":true}`
			}
			resp, b := post(t, srv, "/v1/chat/completions", body, HeaderOOM, "1", HeaderErrorDialect, tc.dialect)
			got := reply{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
			if i := strings.Index(got.Body, `"request_id":"chatcmpl-`); i >= 0 {
				got.Body = got.Body[:i] + `"request_id":"ID"}` + "\n"
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// A request that can never fit the KV cache is told so in words a
// classifier knows: vLLM's own about the KV cache, llama.cpp's context
// overflow (its KV cache is its context).
func TestKVOverflowAnswers(t *testing.T) {
	p := mustProfile(t, "instant")
	p.KVCacheTokens = 16
	_, srv := startEngine(t, p, Options{})
	body := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":10}`
	msg := "This request needs 19 KV-cache tokens (9 in the messages, 10 generated), which is larger than the maximum number of tokens that can be stored in KV cache (16)."
	for _, tc := range []struct {
		dialect, want string
	}{
		{DialectVLLM, `{"error":{"message":"` + msg + `","type":"BadRequestError","param":null,"code":400}}`},
		{DialectVLLMLegacy, `{"object":"error","message":"` + msg + `","type":"BadRequestError","param":null,"code":400}`},
		{DialectLlamaCpp, `{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9,"n_ctx":16}}`},
		{DialectOllama, `{"error":"` + msg + `"}`},
	} {
		t.Run(tc.dialect, func(t *testing.T) {
			resp, b := post(t, srv, "/v1/chat/completions", body, HeaderErrorDialect, tc.dialect)
			if resp.StatusCode != 400 {
				t.Errorf("status %d", resp.StatusCode)
			}
			if diff := cmp.Diff(tc.want+"\n", string(b)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
