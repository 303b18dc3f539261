package sim

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestResponseFormat(t *testing.T) {
	msgs := `"messages":[{"role":"user","content":"Describe the weather as JSON."}]`
	for _, tc := range []struct {
		name, format, schema string
	}{
		{"json_object", `{"type":"json_object"}`, `{"type":"object"}`},
		{"json_schema", `{"type":"json_schema","json_schema":{"name":"weather","strict":true,"schema":` + weatherSchema + `}}`, weatherSchema},
		{"json_schema without schema", `{"type":"json_schema","json_schema":{"name":"any"}}`, `{"type":"object"}`},
		{"array schema", `{"type":"json_schema","json_schema":{"name":"list","schema":{"type":"array","items":{"type":"integer"},"minItems":3}}}`, `{"type":"array","items":{"type":"integer"},"minItems":3}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
			body := `{` + msgs + `,"response_format":` + tc.format + `}`
			b := bodyOf(t, srv, body)
			if again := bodyOf(t, srv, body); stable(again) != stable(b) {
				t.Errorf("same request, another answer:\n%s\n%s", b, again)
			}
			a := decodeAnswer(t, b)
			content := derefOr(a.Choices[0].Message.Content)
			checkAgainst(t, tc.schema, content)
			if *a.Choices[0].FinishReason != "stop" || a.Usage.CompletionTokens != countTokens(content) {
				t.Errorf("finish %s, %d completion tokens for %d in %s", *a.Choices[0].FinishReason, a.Usage.CompletionTokens, countTokens(content), content)
			}
			streamed, _ := assembleStream(t, bodyOf(t, srv, strings.Replace(body, "{", `{"stream":true,`, 1)))
			s := streamed[0]
			if s.content != content || s.chunks != a.Usage.CompletionTokens || s.chunks < 2 {
				t.Errorf("streamed %q in %d chunks; whole %q in %d tokens", s.content, s.chunks, content, a.Usage.CompletionTokens)
			}
		})
	}
}

func TestResponseFormatTruncated(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	body := `{"messages":[{"role":"user","content":"JSON please"}],"response_format":{"type":"json_object"}%s}`
	full := derefOr(decodeAnswer(t, bodyOf(t, srv, fmt.Sprintf(body, ""))).Choices[0].Message.Content)
	a := decodeAnswer(t, bodyOf(t, srv, fmt.Sprintf(body, `,"max_tokens":6`)))
	cut := derefOr(a.Choices[0].Message.Content)
	if *a.Choices[0].FinishReason != "length" || a.Usage.CompletionTokens != 6 || !strings.HasPrefix(full, cut) || json.Valid([]byte(cut)) {
		t.Errorf("max_tokens 6: finish %s, %d tokens, %q (full %q)", *a.Choices[0].FinishReason, a.Usage.CompletionTokens, cut, full)
	}
}

func TestResponseFormatCompletions(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	resp, b := post(t, srv, "/v1/completions", `{"prompt":"JSON:","max_tokens":200,"response_format":{"type":"json_object"}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	checkAgainst(t, `{"type":"object"}`, decodeAnswer(t, b).Choices[0].Text)
}

func TestResponseFormatErrors(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	for _, tc := range []struct{ name, format, param string }{
		{"no json_schema", `{"type":"json_schema"}`, "response_format.json_schema"},
		{"unknown type", `{"type":"xml"}`, "response_format.type"},
		{"unreadable schema", `{"type":"json_schema","json_schema":{"name":"x","schema":{"type":7}}}`, "response_format.json_schema.schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, srv, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"response_format":`+tc.format+`}`)
			var e struct{ Error struct{ Param string } }
			json.Unmarshal(body, &e)
			if resp.StatusCode != 400 || e.Error.Param != tc.param {
				t.Errorf("%d %s, want 400 on %s", resp.StatusCode, body, tc.param)
			}
		})
	}
	if resp, body := post(t, srv, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"text"}}`); resp.StatusCode != 200 {
		t.Errorf("text: %d %s", resp.StatusCode, body)
	}
}
