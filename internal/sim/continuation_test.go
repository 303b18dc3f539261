package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// chatTurn is what a client assembles from one chat answer.
type chatTurn struct {
	text   string
	chunks []string // streamed: each token chunk's content, in order
	finish string
	usage  usage
}

// streamChunk is the wire shape of a chat stream event the tests read.
type streamChunk struct {
	Choices []struct {
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

// parseTurn reads a 200 chat answer, whole or streamed (with usage).
func parseTurn(t *testing.T, status int, body []byte, stream bool) chatTurn {
	t.Helper()
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var turn chatTurn
	if !stream {
		a := decodeAnswer(t, body)
		turn.text, turn.usage = *a.Choices[0].Message.Content, *a.Usage
		turn.finish = *a.Choices[0].FinishReason
		return turn
	}
	events := sseEvents(t, body)
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %s", body)
	}
	for _, ev := range events[:len(events)-1] {
		var ch streamChunk
		if err := json.Unmarshal([]byte(ev), &ch); err != nil {
			t.Fatalf("%v: %s", err, ev)
		}
		if ch.Usage != nil {
			turn.usage = *ch.Usage
		}
		for _, c := range ch.Choices {
			switch {
			case c.FinishReason != nil:
				turn.finish = *c.FinishReason
			case c.Delta.Role == "" && c.Delta.Content != nil:
				turn.chunks = append(turn.chunks, *c.Delta.Content)
				turn.text += *c.Delta.Content
			}
		}
	}
	return turn
}

// askChat sends a chat request straight to the engine's handler.
func askChat(t *testing.T, h http.Handler, body map[string]any) chatTurn {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(b)))
	stream, _ := body["stream"].(bool)
	return parseTurn(t, rec.Code, rec.Body.Bytes(), stream)
}

// continued is body, continuing prefix as the final assistant message the
// way the gateway asks: the original messages, the prefix appended,
// continue_final_message true, add_generation_prompt false, max_tokens
// reduced by the tokens delivered (when it was set).
func continued(body map[string]any, prefix string, delivered int) map[string]any {
	out := map[string]any{}
	for k, v := range body {
		out[k] = v
	}
	msgs := append([]any(nil), body["messages"].([]any)...)
	out["messages"] = append(msgs, map[string]any{"role": "assistant", "content": prefix})
	out["continue_final_message"] = true
	out["add_generation_prompt"] = false
	if n, ok := body["max_tokens"].(int); ok {
		out["max_tokens"] = n - delivered
	}
	return out
}

// user is a user message of text.
func user(text string) map[string]any { return map[string]any{"role": "user", "content": text} }

// continuationCases are the requests the continuation tests cut: plain,
// seeded, greedy, capped, with stop strings (given as token spans of the
// uncapped answer's chunks, so they are sure to occur), JSON, and a
// conversation with tools whose answer is text.
var continuationCases = []struct {
	name  string
	body  map[string]any
	stops func(chunks []string) []string
}{
	{name: "plain", body: map[string]any{"messages": []any{user("Tell me about the sea.")}}},
	{name: "seeded", body: map[string]any{"messages": []any{user("A story, please.")}, "seed": 7, "temperature": 0.8}},
	{name: "greedy", body: map[string]any{"messages": []any{user("A story, please.")}, "temperature": 0.0}},
	{name: "length", body: map[string]any{"messages": []any{user("Tell me about the sea.")}, "max_tokens": 9}},
	{name: "length 1", body: map[string]any{"messages": []any{user("Tell me about the sea.")}, "max_tokens": 1}},
	{name: "stop word", body: map[string]any{"messages": []any{user("Tell me about rivers.")}},
		stops: func(c []string) []string { return []string{"@@", strings.TrimSpace(c[4])} }},
	{name: "stop full stop", body: map[string]any{"messages": []any{user("Tell me about rivers.")}},
		stops: func([]string) []string { return []string{"."} }},
	{name: "stop across tokens", body: map[string]any{"messages": []any{user("Tell me about lakes.")}},
		stops: func(c []string) []string { s, _ := spanStop(c); return []string{s} }},
	{name: "stop and length", body: map[string]any{"messages": []any{user("Tell me about lakes.")}, "max_tokens": 12},
		stops: func(c []string) []string { s, _ := spanStop(c); return []string{s} }},
	{name: "json", body: map[string]any{"messages": []any{user("Facts as JSON.")}, "response_format": map[string]any{"type": "json_object"}}},
	{name: "json length", body: map[string]any{"messages": []any{user("Facts as JSON.")}, "response_format": map[string]any{"type": "json_object"}, "max_tokens": 12}},
	{name: "conversation with tools", body: map[string]any{
		"messages": []any{
			map[string]any{"role": "system", "content": "Be brief."},
			user("What is the weather in Paris?"),
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"id": "call_1", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": `{"city":"Paris"}`}}}},
			map[string]any{"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
		},
		"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}},
	}},
}

// For every byte offset of every case's answer, streamed and whole: the
// delivered text plus its continuation is the uncut answer, with its
// finish_reason, and the tokens add up.
func TestContinueEveryCut(t *testing.T) {
	e := New(mustProfile(t, "instant"), Options{})
	defer e.Close()
	h := e.Handler()
	for _, tc := range continuationCases {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.stops != nil {
				base := askChat(t, h, with(body, "stream", true, "max_tokens", nil))
				body = with(body, "stop", tc.stops(base.chunks))
			}
			uncut := askChat(t, h, with(body, "stream", true, "stream_options", map[string]any{"include_usage": true}))
			if whole := askChat(t, h, body); whole.text != uncut.text || whole.finish != uncut.finish {
				t.Fatalf("stream and whole differ: %q %s, %q %s", uncut.text, uncut.finish, whole.text, whole.finish)
			}
			for p := 0; p <= len(uncut.text); p++ {
				k := delivered(uncut.chunks, p) // the chunks a client that got p bytes was billed for
				if n, ok := body["max_tokens"].(int); ok && k == n {
					continue // every token delivered: nothing is left to ask for
				}
				req := continued(body, uncut.text[:p], k)
				for _, stream := range []bool{false, true} {
					r := req
					if stream {
						r = with(req, "stream", true, "stream_options", map[string]any{"include_usage": true})
					}
					got := askChat(t, h, r)
					checkContinuation(t, fmt.Sprintf("cut %d stream %v", p, stream), uncut, got, p, k)
					if stream {
						checkChunks(t, p, uncut.chunks, got.chunks)
					}
				}
			}
		})
	}
}

// spliced is what a client holds after splicing a continuation onto the
// text delivered before the cut.
type spliced struct {
	Text, Finish string
	Completion   int // tokens billed: those delivered plus the continuation's
	Prompt       int // the continuation's prompt tokens
	Total        int // the continuation's total_tokens
}

// checkContinuation compares a continuation after p bytes (k tokens) with
// the uncut answer: the spliced text and finish_reason are the uncut ones,
// the billed tokens add up, and the delivered text counts as prompt.
func checkContinuation(t *testing.T, at string, uncut, got chatTurn, p, k int) {
	t.Helper()
	prefix := uncut.text[:p]
	want := spliced{Text: uncut.text, Finish: uncut.finish, Completion: uncut.usage.CompletionTokens,
		Prompt: uncut.usage.PromptTokens + countTokens(prefix)}
	want.Total = want.Prompt + want.Completion - k
	have := spliced{Text: prefix + got.text, Finish: got.finish, Completion: k + got.usage.CompletionTokens,
		Prompt: got.usage.PromptTokens, Total: got.usage.TotalTokens}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("%s (%q + %q) (-want +got):\n%s", at, prefix, got.text, diff)
	}
}

// checkChunks checks that a continuation streams the uncut answer's tokens
// from the cut on: the rest of the token cut inside, then the others.
func checkChunks(t *testing.T, p int, uncut, got []string) {
	t.Helper()
	k := delivered(uncut, p)
	want := append([]string(nil), uncut[k:]...)
	if len(want) > 0 {
		want[0] = want[0][p-len(strings.Join(uncut[:k], "")):]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cut %d: chunks (-want +got):\n%s", p, diff)
	}
}

// with is a copy of body with the given keys set (a nil value deletes).
func with(body map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range body {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// The gateway's failover over real HTTP, through the scheduler: a stream
// cut after some chunks (X-Sim-Cut-After), then the same request with the
// delivered text as the final assistant message and max_tokens reduced by
// the chunks delivered, streamed and whole; the spliced answer is the
// uncut one. A cut after the last token, before the finish chunk, leaves
// nothing to generate but the finish_reason.
func TestContinueAfterCutStream(t *testing.T) {
	p := mustProfile(t, "instant")
	p.DecodeBase = 50 * time.Microsecond
	_, srv := startEngine(t, p, Options{})
	for _, body := range []map[string]any{
		{"messages": []any{user("Tell me about the mountains.")}, "max_tokens": 20},
		{"messages": []any{user("Tell me about the hills.")}},
	} {
		body = with(body, "stream", true, "stream_options", map[string]any{"include_usage": true})
		raw, _ := json.Marshal(body)
		resp, b := post(t, srv, "/v1/chat/completions", string(raw))
		uncut := parseTurn(t, resp.StatusCode, b, true)
		// Event 1 is the role chunk; a cut after m events delivers m-1 tokens.
		for m := 1; m <= len(uncut.chunks)+1; m++ {
			prefix, k := cutStream(t, srv, string(raw), m)
			if k != m-1 || prefix != strings.Join(uncut.chunks[:k], "") {
				t.Fatalf("cut after %d events: %d chunks %q", m, k, prefix)
			}
			if k == body["max_tokens"] {
				continue // every token delivered: nothing is left to ask for
			}
			for _, stream := range []bool{true, false} {
				req := with(continued(body, prefix, k), "stream", stream)
				if !stream {
					req = with(req, "stream_options", nil)
				}
				cb, _ := json.Marshal(req)
				resp, b := post(t, srv, "/v1/chat/completions", string(cb))
				got := parseTurn(t, resp.StatusCode, b, stream)
				checkContinuation(t, fmt.Sprintf("%s: cut after %d events, stream %v", raw, m, stream), uncut, got, len(prefix), k)
			}
		}
	}
}

// cutStream sends a streamed request cut after m events and returns the
// content its token chunks delivered and how many there were.
func cutStream(t *testing.T, srv *httptest.Server, body string, m int) (string, int) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set(HeaderCutAfter, fmt.Sprint(m))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body) // ends with an error: the cut
	var prefix strings.Builder
	k := 0
	for _, ev := range sseEvents(t, buf.Bytes()) {
		var ch streamChunk
		if err := json.Unmarshal([]byte(ev), &ch); err != nil {
			t.Fatalf("%v: %s", err, ev)
		}
		for _, c := range ch.Choices {
			if c.Delta.Role == "" && c.Delta.Content != nil {
				prefix.WriteString(*c.Delta.Content)
				k++
			}
		}
	}
	return prefix.String(), k
}

// spanStop is a stop string that begins inside token i of an answer's
// chunks, two bytes in, and ends in token i+1, at its first occurrence in
// the text; i is at least 3.
func spanStop(chunks []string) (string, int) {
	text := strings.Join(chunks, "")
	for i := 3; i+1 < len(chunks); i++ {
		if len(chunks[i]) < 4 || len(chunks[i+1]) < 3 {
			continue
		}
		stop := chunks[i][2:] + chunks[i+1][:2]
		if strings.Index(text, stop) == len(strings.Join(chunks[:i], ""))+2 {
			return stop, i
		}
	}
	return "", -1
}

func TestDelivered(t *testing.T) {
	tokens := []string{"Hello", " world", ",", "", ""}
	for _, tc := range []struct {
		p, want int
	}{
		{0, 0}, {3, 0}, {5, 1}, {6, 1}, {10, 1}, {11, 2}, {12, 3},
	} {
		if got := delivered(tokens, tc.p); got != tc.want {
			t.Errorf("delivered(%q, %d) = %d, want %d", tokens, tc.p, got, tc.want)
		}
	}
}

// A stop string beginning inside a token, at the cut, is read as the end
// of the uncut answer (what a stream cut between chunks delivers), even
// when the uncut answer's cap had hidden it.
func TestContinueAmbiguousStop(t *testing.T) {
	e := New(mustProfile(t, "instant"), Options{})
	defer e.Close()
	h := e.Handler()
	body := map[string]any{"messages": []any{user("Tell me about lakes.")}}
	base := askChat(t, h, with(body, "stream", true))
	stop, i := spanStop(base.chunks)
	if i < 0 {
		t.Fatalf("no stop to place in %q", base.chunks)
	}
	cut := strings.Index(base.text, stop) // inside token i

	// Stopped: the stop cuts token i short; that token was delivered.
	stopped := askChat(t, h, with(body, "stop", []string{stop}, "stream", true))
	if len(stopped.text) != cut || stopped.usage.CompletionTokens != 0 && len(stopped.chunks) != i+2 {
		t.Fatalf("stopped answer %q %q, want it to end at byte %d after %d chunks", stopped.text, stopped.chunks, cut, i+2)
	}
	got := askChat(t, h, continued(with(body, "stop", []string{stop}), stopped.text, i+1))
	if got.text != "" || got.finish != "stop" || got.usage.CompletionTokens != 1 {
		t.Errorf("after a stop: %q %s %+v", got.text, got.finish, got.usage)
	}
	// Capped at i+1 tokens, the same stop did not match; cut at its start,
	// the continuation still reads the stop.
	capped := with(body, "stop", []string{stop}, "max_tokens", i+1)
	got = askChat(t, h, continued(capped, base.text[:cut], i))
	if got.text != "" || got.finish != "stop" {
		t.Errorf("capped: %q %s, want the stop's reading", got.text, got.finish)
	}
}

// A text that is not the seeded answer's prefix is continued too:
// deterministically, joined to the text.
func TestContinueForeignText(t *testing.T) {
	e := New(mustProfile(t, "instant"), Options{})
	defer e.Close()
	h := e.Handler()
	body := map[string]any{"messages": []any{user("Tell me about the sea.")}}
	for _, tc := range []struct {
		prefix string
		first  func(string) bool // what the continuation starts with
	}{
		{"Once upon a time", func(s string) bool { return s[0] == ' ' && 'a' <= s[1] && s[1] <= 'z' }},
		{"It was dark. ", func(s string) bool { return 'A' <= s[0] && s[0] <= 'Z' }},
		{"It was dark.", func(s string) bool { return s[0] == ' ' && 'A' <= s[1] && s[1] <= 'Z' }},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			a := askChat(t, h, continued(body, tc.prefix, 0))
			b := askChat(t, h, continued(body, tc.prefix, 0))
			if a.text == "" || !tc.first(a.text) || a.finish != "stop" {
				t.Errorf("continuation %q (%s)", a.text, a.finish)
			}
			if a.text != b.text || a.usage.CompletionTokens != countTokens(a.text) {
				t.Errorf("not deterministic or miscounted: %q %q %+v", a.text, b.text, a.usage)
			}
			if a.usage.PromptTokens != tokensForAssistant+tokensPerMessage+countTokens("Tell me about the sea.")+countTokens(tc.prefix) {
				t.Errorf("prompt tokens %d", a.usage.PromptTokens)
			}
		})
	}
}

func TestContinueValidation(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	asst := `{"role":"assistant","content":"Hello"}`
	weather := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]`
	for _, tc := range []struct {
		name, body string
		param      string
		msg        string
	}{
		{"both true", `{"messages":[{"role":"user","content":"hi"},` + asst + `],"continue_final_message":true,"add_generation_prompt":true}`,
			"add_generation_prompt", "Cannot set both `continue_final_message` and `add_generation_prompt` to True."},
		{"generation prompt left on", `{"messages":[{"role":"user","content":"hi"},` + asst + `],"continue_final_message":true}`,
			"add_generation_prompt", "defaults to true"},
		{"last is user", `{"messages":[{"role":"user","content":"hi"}],"continue_final_message":true,"add_generation_prompt":false}`,
			"continue_final_message", "the last message is not from the assistant"},
		{"n 2", `{"messages":[{"role":"user","content":"hi"},` + asst + `],"continue_final_message":true,"add_generation_prompt":false,"n":2}`,
			"n", "n must be 1"},
		{"audio", `{"messages":[{"role":"user","content":"hi"},` + asst + `],"continue_final_message":true,"add_generation_prompt":false,"modalities":["text","audio"],"audio":{"voice":"a","format":"wav"}}`,
			"continue_final_message", "audio"},
		{"tool call answer", `{"messages":[{"role":"user","content":"hi"},` + asst + `],"continue_final_message":true,"add_generation_prompt":false,` + weather + `,"tool_choice":"required"}`,
			"continue_final_message", "tool call"},
		{"final tool calls", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"x","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}],"continue_final_message":true,"add_generation_prompt":false}`,
			"continue_final_message", "tool_calls"},
		{"image part", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"http://x/a.png"}}]}],"continue_final_message":true,"add_generation_prompt":false}`,
			"messages[1].content[0]", "text only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, srv, "/v1/chat/completions", tc.body)
			var v struct {
				Error struct{ Message, Param string }
			}
			json.Unmarshal(body, &v)
			if resp.StatusCode != 400 || v.Error.Param != tc.param || !strings.Contains(v.Error.Message, tc.msg) {
				t.Errorf("%d %s, want 400 param %s and %q", resp.StatusCode, body, tc.param, tc.msg)
			}
		})
	}
}

// Without continue_final_message, add_generation_prompt false only drops
// the generation prompt's tokens; text parts of a final message continue
// joined with newlines.
func TestGenerationPromptTokens(t *testing.T) {
	e := New(mustProfile(t, "instant"), Options{})
	defer e.Close()
	h := e.Handler()
	body := map[string]any{"messages": []any{user("hi")}}
	on, off := askChat(t, h, body), askChat(t, h, with(body, "add_generation_prompt", false))
	if on.usage.PromptTokens-off.usage.PromptTokens != tokensForAssistant || on.text != off.text {
		t.Errorf("with the generation prompt %+v, without %+v", on.usage, off.usage)
	}
	parts := []any{map[string]any{"type": "text", "text": "Hello"}, map[string]any{"type": "text", "text": "there"}}
	a := askChat(t, h, continued(body, "", 0))
	msgs := append([]any(nil), body["messages"].([]any)...)
	b := askChat(t, h, with(continued(body, "", 0), "messages", append(msgs, map[string]any{"role": "assistant", "content": parts})))
	c := askChat(t, h, continued(body, "Hello\nthere", 0))
	if a.text != on.text || b.text != c.text || b.usage != c.usage {
		t.Errorf("empty prefix %q (uncut %q); parts %q %+v, string %q %+v", a.text, on.text, b.text, b.usage, c.text, c.usage)
	}
}
