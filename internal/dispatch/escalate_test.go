package dispatch

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestWeigh(t *testing.T) {
	all := &Escalation{Length: true, Refusal: true, InvalidJSON: true, LowLogprob: true, MinLogprob: -1.5}
	answer := func(finish, content, logprobs string) string {
		return `{"choices":[{"index":0,"finish_reason":"` + finish + `","message":{"role":"assistant","content":` + content + `},"logprobs":` + logprobs + `}],` +
			`"usage":{"prompt_tokens":5,"completion_tokens":7}}`
	}
	lp := func(vs ...string) string {
		var parts []string
		for _, v := range vs {
			parts = append(parts, `{"token":"x","logprob":`+v+`}`)
		}
		return `{"content":[` + strings.Join(parts, ",") + `]}`
	}
	for _, tc := range []struct {
		name, body string
		json       bool
		want       string
	}{
		{"good", answer("stop", `"Paris."`, "null"), false, ""},
		{"cut", answer("length", `"Par"`, "null"), false, "length"},
		{"refusal", answer("stop", `"I'm sorry, but I can't help with that."`, "null"), false, "refusal"},
		{"refusal field", `{"choices":[{"finish_reason":"stop","message":{"content":null,"refusal":"no"}}]}`, false, "refusal"},
		{"invalid JSON", answer("stop", `"{\"name\": \"Maria\""`, "null"), true, "invalid_json"},
		{"valid JSON", answer("stop", `" {\"name\": \"Maria\"} "`, "null"), true, ""},
		{"JSON not asked for", answer("stop", `"not json"`, "null"), false, ""},
		{"low logprob", answer("stop", `"maybe"`, lp("-3", "-2.5")), false, "low_logprob"},
		{"confident", answer("stop", `"yes"`, lp("-0.1", "-0.2")), false, ""},
		{"not JSON at all", `<html>`, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Answer{Resp: &http.Response{Body: io.NopCloser(strings.NewReader(tc.body)), Header: http.Header{}}}
			why, u, err := all.weigh(a, tc.json, false)
			if err != nil || why != tc.want {
				t.Errorf("weigh: %q, %v; want %q", why, err, tc.want)
			}
			if b, _ := io.ReadAll(a.Resp.Body); string(b) != tc.body {
				t.Errorf("the body relayed after weighing is %q", b)
			}
			if strings.Contains(tc.body, "usage") && (u.PromptTokens != 5 || u.CompletionTokens != 7) {
				t.Errorf("usage %+v", u)
			}
		})
	}
	a := &Answer{Resp: &http.Response{Body: io.NopCloser(strings.NewReader(answer("stop", `"yes"`, lp("-0.1")))), Header: http.Header{}}}
	all.weigh(a, false, true)
	if b, _ := io.ReadAll(a.Resp.Body); strings.Contains(string(b), `"token"`) || !strings.Contains(string(b), `"logprobs":null`) ||
		a.Resp.Header.Get("Content-Length") != strconv.Itoa(len(b)) {
		t.Errorf("stripped: %s (Content-Length %s)", b, a.Resp.Header.Get("Content-Length"))
	}
}
