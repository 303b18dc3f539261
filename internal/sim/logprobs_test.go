package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type (
	wireTopLogprob struct {
		Token   string  `json:"token"`
		Logprob float64 `json:"logprob"`
		Bytes   []int   `json:"bytes"`
	}
	wireTokenLogprob struct {
		Token       string           `json:"token"`
		Logprob     float64          `json:"logprob"`
		Bytes       []int            `json:"bytes"`
		TopLogprobs []wireTopLogprob `json:"top_logprobs"`
	}
	wireChatLogprobs struct {
		Content []wireTokenLogprob `json:"content"`
	}
	wireCompletionLogprobs struct {
		Tokens        []string             `json:"tokens"`
		TokenLogprobs []float64            `json:"token_logprobs"`
		TopLogprobs   []map[string]float64 `json:"top_logprobs"`
		TextOffset    []int                `json:"text_offset"`
	}
)

// checkTop checks one position: the bytes spell the token, logprobs are at
// most 0, the sampled token is the most likely and comes first, the
// alternatives are distinct and the probabilities sum to at most 1.
func checkTop(t *testing.T, e wireTokenLogprob, k int) {
	t.Helper()
	if diff := cmp.Diff(bytesOf(e.Token), e.Bytes); diff != "" {
		t.Errorf("bytes of %q (-want +got):\n%s", e.Token, diff)
	}
	if e.Logprob > 0 || len(e.TopLogprobs) != k {
		t.Errorf("%q: logprob %g, %d alternatives, want %d", e.Token, e.Logprob, len(e.TopLogprobs), k)
	}
	if k > 0 && (e.TopLogprobs[0].Token != e.Token || e.TopLogprobs[0].Logprob != e.Logprob) {
		t.Errorf("%q: the first alternative is %+v", e.Token, e.TopLogprobs[0])
	}
	seen, sum := map[string]bool{}, 0.0
	for j, a := range e.TopLogprobs {
		if a.Logprob > e.Logprob || seen[a.Token] || j > 0 && a.Logprob > e.TopLogprobs[j-1].Logprob {
			t.Errorf("%q: alternative %d %+v", e.Token, j, a)
		}
		if diff := cmp.Diff(bytesOf(a.Token), a.Bytes); diff != "" {
			t.Errorf("bytes of %q (-want +got):\n%s", a.Token, diff)
		}
		seen[a.Token] = true
		sum += math.Exp(a.Logprob)
	}
	if sum > 1+1e-9 {
		t.Errorf("%q: probabilities sum to %g", e.Token, sum)
	}
}

func bytesOf(s string) []int {
	out := []int{}
	for i := 0; i < len(s); i++ {
		out = append(out, int(s[i]))
	}
	return out
}

func TestChatLogprobs(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	for _, tc := range []struct {
		name  string
		extra string
		k     int
	}{
		{"logprobs only", `"logprobs":true`, 0},
		{"top 1", `"logprobs":true,"top_logprobs":1`, 1},
		{"top 5", `"logprobs":true,"top_logprobs":5`, 5},
		{"top 20", `"logprobs":true,"top_logprobs":20`, 20},
		{"json", `"logprobs":true,"top_logprobs":2,"response_format":{"type":"json_object"}`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"messages":[{"role":"user","content":"Tell me about logprobs."}],` + tc.extra + `}`
			b := bodyOf(t, srv, body)
			if again := bodyOf(t, srv, body); stable(again) != stable(b) {
				t.Errorf("same request, another answer:\n%s\n%s", b, again)
			}
			a := decodeAnswer(t, b)
			var lp wireChatLogprobs
			if err := json.Unmarshal(a.Choices[0].Logprobs, &lp); err != nil {
				t.Fatalf("%v: %s", err, a.Choices[0].Logprobs)
			}
			var text strings.Builder
			for _, e := range lp.Content {
				text.WriteString(e.Token)
				checkTop(t, e, tc.k)
			}
			if len(lp.Content) != a.Usage.CompletionTokens || text.String() != derefOr(a.Choices[0].Message.Content) {
				t.Errorf("%d entries spelling %q for %d tokens of %q", len(lp.Content), text.String(), a.Usage.CompletionTokens, derefOr(a.Choices[0].Message.Content))
			}

			// Streamed: each token's chunk carries that token's entry.
			events := sseEvents(t, bodyOf(t, srv, strings.Replace(body, "{", `{"stream":true,`, 1)))
			var got []wireTokenLogprob
			for _, ev := range events[:len(events)-1] {
				c := decodeAnswer(t, []byte(ev)).Choices[0]
				d := c.Delta
				if string(c.Logprobs) == "null" {
					if d.Role == "" && d.Content != nil {
						t.Errorf("content chunk without logprobs: %s", ev)
					}
					continue
				}
				var one wireChatLogprobs
				if err := json.Unmarshal(c.Logprobs, &one); err != nil || len(one.Content) != 1 || one.Content[0].Token != derefOr(d.Content) {
					t.Errorf("chunk logprobs %s (%v)", ev, err)
				}
				got = append(got, one.Content...)
			}
			if diff := cmp.Diff(lp.Content, got); diff != "" {
				t.Errorf("streamed logprobs (-whole +streamed):\n%s", diff)
			}
		})
	}
}

func TestLogprobsNotRequested(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	for _, body := range []string{
		`{"messages":[{"role":"user","content":"hi"}]}`,
		`{"messages":[{"role":"user","content":"hi"}],"logprobs":false}`,
		toolRequest("get_time", `"logprobs":true,"top_logprobs":3`), // tool calls carry no content logprobs
	} {
		t.Run(body, func(t *testing.T) {
			if lp := decodeAnswer(t, bodyOf(t, srv, body)).Choices[0].Logprobs; string(lp) != "null" {
				t.Errorf("logprobs %s", lp)
			}
			sb := bodyOf(t, srv, strings.Replace(body, "{", `{"stream":true,`, 1))
			if strings.Contains(string(sb), `"logprobs":{`) {
				t.Errorf("stream carries logprobs: %s", sb)
			}
		})
	}
}

func TestCompletionLogprobs(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	for _, k := range []int{0, 1, 3, 5} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			body := fmt.Sprintf(`{"prompt":"Once upon a time","max_tokens":12,"logprobs":%d}`, k)
			resp, b := post(t, srv, "/v1/completions", body)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			c := decodeAnswer(t, b).Choices[0]
			var lp wireCompletionLogprobs
			if err := json.Unmarshal(c.Logprobs, &lp); err != nil {
				t.Fatalf("%v: %s", err, c.Logprobs)
			}
			if strings.Join(lp.Tokens, "") != c.Text || len(lp.Tokens) != 12 || len(lp.TokenLogprobs) != 12 || len(lp.TopLogprobs) != 12 || len(lp.TextOffset) != 12 {
				t.Fatalf("logprobs %s for %q", c.Logprobs, c.Text)
			}
			off := 0
			for i, tok := range lp.Tokens {
				top := lp.TopLogprobs[i]
				if lp.TextOffset[i] != off || lp.TokenLogprobs[i] > 0 || len(top) != max(k, 1) || top[tok] != lp.TokenLogprobs[i] {
					t.Errorf("token %d %q: offset %d (want %d), logprob %g, top %v", i, tok, lp.TextOffset[i], off, lp.TokenLogprobs[i], top)
				}
				for alt, v := range top {
					if v > lp.TokenLogprobs[i] {
						t.Errorf("token %d %q: alternative %q more likely (%g)", i, tok, alt, v)
					}
				}
				off += len(tok)
			}

			_, sb := post(t, srv, "/v1/completions", strings.Replace(body, "{", `{"stream":true,`, 1))
			events := sseEvents(t, sb)
			var got wireCompletionLogprobs
			for _, ev := range events[:len(events)-1] {
				c := decodeAnswer(t, []byte(ev)).Choices[0]
				if string(c.Logprobs) == "null" {
					continue
				}
				var one wireCompletionLogprobs
				if err := json.Unmarshal(c.Logprobs, &one); err != nil || len(one.Tokens) != 1 || one.Tokens[0] != c.Text {
					t.Errorf("chunk logprobs %s (%v)", ev, err)
				}
				got.Tokens = append(got.Tokens, one.Tokens...)
				got.TokenLogprobs = append(got.TokenLogprobs, one.TokenLogprobs...)
				got.TopLogprobs = append(got.TopLogprobs, one.TopLogprobs...)
				got.TextOffset = append(got.TextOffset, one.TextOffset...)
			}
			if diff := cmp.Diff(lp, got); diff != "" {
				t.Errorf("streamed logprobs (-whole +streamed):\n%s", diff)
			}
		})
	}
}

func TestLogprobsErrors(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	for _, tc := range []struct{ name, path, body, param string }{
		{"top too many", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":21}`, "top_logprobs"},
		{"top negative", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":-1}`, "top_logprobs"},
		{"top without logprobs", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"top_logprobs":2}`, "top_logprobs"},
		{"completions too many", "/v1/completions", `{"prompt":"hi","logprobs":6}`, "logprobs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, srv, tc.path, tc.body)
			var e struct{ Error struct{ Param string } }
			json.Unmarshal(body, &e)
			if resp.StatusCode != 400 || e.Error.Param != tc.param {
				t.Errorf("%d %s, want 400 on %s", resp.StatusCode, body, tc.param)
			}
		})
	}
}
