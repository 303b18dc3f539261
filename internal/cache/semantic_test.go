package cache

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// chatReq is a chat request whose last user turn is content (JSON).
func chatReq(content string) string {
	return `{"model":"m","temperature":0,"max_tokens":50,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":` + content + `}]}`
}

func semKey(t *testing.T, body string) (Key, string, bool) {
	t.Helper()
	return SemanticKey("m", "", []byte(body))
}

// TestSemanticKeyText: what the semantic cache embeds, and what it does
// not cache at all.
func TestSemanticKeyText(t *testing.T) {
	type out struct {
		Text string
		OK   bool
	}
	tests := []struct {
		name, body string
		want       out
	}{
		{"string content", chatReq(`"What is 2+2?"`), out{"What is 2+2?", true}},
		{"escapes decoded", chatReq(`"What is 2+2\u003f"`), out{"What is 2+2?", true}},
		{"text parts joined", chatReq(`[{"type":"text","text":"Hello."},{"type":"text","text":"What is 2+2?"}]`), out{"Hello.\nWhat is 2+2?", true}},
		{"an image part", chatReq(`[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]`), out{}},
		{"an audio part", chatReq(`[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}},{"type":"text","text":"Transcribe."}]`), out{}},
		{"a text part with more in it", chatReq(`[{"type":"text","text":"Hi","cache_control":{"type":"ephemeral"}}]`), out{}},
		{"empty text", chatReq(`"  "`), out{}},
		{"null content", chatReq(`null`), out{}},
		{"too long", chatReq(`"` + strings.Repeat("a", MaxSemanticText+1) + `"`), out{}},
		{"last message is the assistant's", `{"temperature":0,"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hel"}]}`, out{}},
		{"last message is a tool result", `{"temperature":0,"messages":[{"role":"user","content":"Weather?"},{"role":"tool","tool_call_id":"1","content":"sunny"}]}`, out{}},
		{"no messages", `{"temperature":0,"messages":[]}`, out{}},
		{"a completions prompt", `{"model":"m","temperature":0,"prompt":"What is 2+2?"}`, out{}},
		{"an embeddings input", `{"model":"m","input":"What is 2+2?"}`, out{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, text, ok := semKey(t, tt.body)
			if diff := cmp.Diff(tt.want, out{text, ok}); diff != "" {
				t.Errorf("SemanticKey (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSemanticKeyScope: the scope leaves out the last user turn's content
// and nothing else that changes an answer.
func TestSemanticKeyScope(t *testing.T) {
	base := chatReq(`"What is 2+2?"`)
	tests := []struct {
		name  string
		body  string
		other string
		model string // "" → "m"
		scope string
		same  bool
	}{
		{name: "another question", other: chatReq(`"What is 3+3?"`), same: true},
		{name: "string and text parts", other: chatReq(`[{"type":"text","text":"What is 2+2?"}]`), same: true},
		{name: "what MakeKey ignores", other: strings.Replace(base, `{"model":"m",`, `{"model":"alias","stream":true,"user":"u","metadata":{"a":"b"},`, 1), same: true},
		{name: "key order and spacing", other: `{ "messages" : [{"content":"Be brief.","role":"system"},{"content":"Why?","role":"user"}], "max_tokens":5e1, "temperature":0.0 }`, same: true},
		{name: "another system prompt", other: strings.Replace(base, "Be brief.", "Be verbose.", 1)},
		{name: "no system prompt", other: `{"model":"m","temperature":0,"max_tokens":50,"messages":[{"role":"user","content":"What is 2+2?"}]}`},
		{name: "an earlier turn", other: strings.Replace(base, `{"role":"user"`, `{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},{"role":"user"`, 1)},
		{name: "another max_tokens", other: strings.Replace(base, `"max_tokens":50`, `"max_tokens":51`, 1)},
		{name: "another temperature", other: strings.Replace(base, `"temperature":0`, `"temperature":0.5,"seed":1`, 1)},
		{name: "tools", other: strings.Replace(base, `"max_tokens":50`, `"max_tokens":50,"tools":[{"type":"function","function":{"name":"f"}}]`, 1)},
		{name: "response_format", other: strings.Replace(base, `"max_tokens":50`, `"max_tokens":50,"response_format":{"type":"json_object"}`, 1)},
		{name: "a name on the last turn", other: strings.Replace(base, `{"role":"user"`, `{"role":"user","name":"ann"`, 1)},
		{name: "another model", other: base, model: "m2"},
		{name: "another scope", other: base, scope: "key:Bearer x"},
	}
	k0, _, ok := semKey(t, base)
	if !ok {
		t.Fatal("the base request is not semantically cacheable")
	}
	exact, _, _ := MakeKey("m", "", []byte(base))
	if k0 == exact {
		t.Fatal("the semantic scope equals the exact key")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model := tt.model
			if model == "" {
				model = "m"
			}
			k, _, ok := SemanticKey(model, tt.scope, []byte(tt.other))
			if !ok {
				t.Fatalf("not semantically cacheable: %s", tt.other)
			}
			if got := k == k0; got != tt.same {
				t.Errorf("same scope %v, want %v:\n%s\n%s", got, tt.same, base, tt.other)
			}
		})
	}
}
