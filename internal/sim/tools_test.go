package sim

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Wire shapes the tests decode answers into.
type (
	wireFunction struct {
		Name      *string `json:"name"`
		Arguments string  `json:"arguments"`
	}
	wireToolCall struct {
		Index    *int         `json:"index"`
		ID       string       `json:"id"`
		Type     string       `json:"type"`
		Function wireFunction `json:"function"`
	}
	wireMessage struct {
		Role      string         `json:"role"`
		Content   *string        `json:"content"`
		ToolCalls []wireToolCall `json:"tool_calls"`
	}
	wireChoice struct {
		Index        int             `json:"index"`
		Message      wireMessage     `json:"message"`
		Delta        wireMessage     `json:"delta"`
		Text         string          `json:"text"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason *string         `json:"finish_reason"`
	}
	wireAnswer struct {
		Choices []wireChoice `json:"choices"`
		Usage   *usage       `json:"usage"`
	}
)

// call is a tool call as a client sees it once assembled.
type call struct{ ID, Name, Args string }

func decodeAnswer(t *testing.T, body []byte) wireAnswer {
	t.Helper()
	var a wireAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return a
}

func callsOf(m wireMessage) []call {
	var out []call
	for _, tc := range m.ToolCalls {
		out = append(out, call{tc.ID, *tc.Function.Name, tc.Function.Arguments})
	}
	return out
}

// assembled is one streamed choice put together: content, tool calls,
// finish reason, and the number of token chunks.
type assembled struct {
	content string
	calls   []call
	finish  string
	chunks  int
}

// assembleStream checks the chunk shapes of a streamed chat answer and puts
// each choice together.
func assembleStream(t *testing.T, body []byte) (map[int]*assembled, *usage) {
	t.Helper()
	events := sseEvents(t, body)
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %s", body)
	}
	out := map[int]*assembled{}
	var u *usage
	for _, ev := range events[:len(events)-1] {
		ch := decodeAnswer(t, []byte(ev))
		if ch.Usage != nil {
			u = ch.Usage
		}
		for _, c := range ch.Choices {
			a := out[c.Index]
			if a == nil {
				a = &assembled{}
				out[c.Index] = a
			}
			if c.FinishReason != nil {
				a.finish = *c.FinishReason
			}
			d := c.Delta
			if d.Content != nil && d.Role == "" {
				a.content += *d.Content
				a.chunks++
			}
			if c.Text != "" {
				a.content += c.Text
				a.chunks++
			}
			for _, tc := range d.ToolCalls {
				a.chunks++
				switch {
				case tc.Index == nil:
					t.Fatalf("tool call delta without index: %s", ev)
				case *tc.Index == len(a.calls): // the opening delta
					if tc.ID == "" || tc.Type != "function" || tc.Function.Name == nil || tc.Function.Arguments != "" {
						t.Errorf("opening delta %s", ev)
					}
					a.calls = append(a.calls, call{ID: tc.ID, Name: *tc.Function.Name})
				case *tc.Index == len(a.calls)-1:
					if tc.ID != "" || tc.Type != "" || tc.Function.Name != nil {
						t.Errorf("argument delta repeats the opening: %s", ev)
					}
					a.calls[*tc.Index].Args += tc.Function.Arguments
				default:
					t.Fatalf("tool call index %d out of order: %s", *tc.Index, ev)
				}
			}
		}
	}
	return out, u
}

var volatile = regexp.MustCompile(`"(id|created)":("[a-z]+-[0-9a-f]+"|[0-9]+)`)

// stable blanks what differs between two answers to one request: the
// response id and the creation time.
func stable(b []byte) string { return volatile.ReplaceAllString(string(b), `"$1":_`) }

const timeSchema = `{"type":"object","properties":{"zone":{"type":"string","enum":["UTC","CET","PST"]}},"required":["zone"]}`

var toolsJSON = `[{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":` + weatherSchema + `}},` +
	`{"type":"function","function":{"name":"get_time","parameters":` + timeSchema + `}}]`

func toolRequest(prompt string, extra ...string) string {
	msgs := fmt.Sprintf(`[{"role":"user","content":%q}]`, prompt)
	if strings.HasPrefix(prompt, "[") {
		msgs = prompt
	}
	return `{"messages":` + msgs + `,"tools":` + toolsJSON + strings.Join(append([]string{""}, extra...), ",") + `}`
}

func TestToolChoice(t *testing.T) {
	afterTool := `[{"role":"user","content":"What is the weather in Rome? get_weather"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":"sunny, 24C"}]`
	for _, tc := range []struct {
		name  string
		body  string
		names []string // nil: a text answer
	}{
		{"required", toolRequest("Hello there.", `"tool_choice":"required"`), []string{"any"}},
		{"named", toolRequest("Use get_weather for Rome.", `"tool_choice":{"type":"function","function":{"name":"get_time"}}`), []string{"get_time"}},
		{"none", toolRequest("Use get_weather for Rome.", `"tool_choice":"none"`), nil},
		{"auto names a tool", toolRequest("Use get_weather for Rome.", `"tool_choice":"auto"`), []string{"get_weather"}},
		{"auto by default", toolRequest("GET_TIME please"), []string{"get_time"}},
		{"auto names two", toolRequest("get_time and then get_weather"), []string{"get_weather", "get_time"}},
		{"auto names two, not parallel", toolRequest("get_time and then get_weather", `"parallel_tool_calls":false`), []string{"get_weather"}},
		{"auto after a tool result", toolRequest(afterTool), nil},
		{"required after a tool result", toolRequest(afterTool, `"tool_choice":"required"`), []string{"any"}},
		{"two choices", toolRequest("get_time", `"n":2`), []string{"get_time"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
			resp, body := post(t, srv, "/v1/chat/completions", tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if _, again := post(t, srv, "/v1/chat/completions", tc.body); stable(again) != stable(body) {
				t.Errorf("same request, another answer:\n%s\n%s", body, again)
			}
			a := decodeAnswer(t, body)
			completion := 0
			for _, c := range a.Choices {
				calls := callsOf(c.Message)
				checkCalls(t, calls, tc.names)
				switch {
				case tc.names == nil && (c.Message.Content == nil || *c.Message.Content == "" || *c.FinishReason != "stop"):
					t.Errorf("text answer: %s", body)
				case tc.names != nil && (c.Message.Content != nil || *c.FinishReason != "tool_calls"):
					t.Errorf("tool-call answer: content %v, finish %s", c.Message.Content, *c.FinishReason)
				}
				completion += countTokens(derefOr(c.Message.Content))
				for _, cl := range calls {
					completion += 1 + countTokens(cl.Args)
				}
			}
			if a.Usage.CompletionTokens != completion {
				t.Errorf("completion_tokens %d, want %d (one per call and the arguments' tokens)", a.Usage.CompletionTokens, completion)
			}

			// Streamed, the same calls arrive in OpenAI's chunk shape.
			_, sbody := post(t, srv, "/v1/chat/completions", strings.Replace(tc.body, "{", `{"stream":true,"stream_options":{"include_usage":true},`, 1))
			streamed, u := assembleStream(t, sbody)
			for _, c := range a.Choices {
				s := streamed[c.Index]
				if diff := cmp.Diff(callsOf(c.Message), s.calls); diff != "" {
					t.Errorf("choice %d streamed calls (-whole +streamed):\n%s", c.Index, diff)
				}
				if s.finish != *c.FinishReason || s.content != derefOr(c.Message.Content) {
					t.Errorf("choice %d streamed finish %q content %q", c.Index, s.finish, s.content)
				}
			}
			if u == nil || u.CompletionTokens != completion {
				t.Errorf("streamed usage %+v, want %d completion tokens", u, completion)
			}
		})
	}
}

func derefOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// checkCalls checks the calls' names (want "any": one call to either tool),
// ids and that the arguments are valid against the tool's schema.
func checkCalls(t *testing.T, calls []call, want []string) {
	t.Helper()
	var names []string
	for _, c := range calls {
		names = append(names, c.Name)
		if !regexp.MustCompile(`^call_[A-Za-z0-9]{24}$`).MatchString(c.ID) {
			t.Errorf("call id %q", c.ID)
		}
		switch c.Name {
		case "get_weather":
			checkAgainst(t, weatherSchema, c.Args)
		case "get_time":
			checkAgainst(t, timeSchema, c.Args)
		}
	}
	if len(want) == 1 && want[0] == "any" && len(names) == 1 {
		return
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("tools called (-want +got):\n%s", diff)
	}
}

func TestToolAutoMajority(t *testing.T) {
	p := mustProfile(t, "instant")
	calls, runs := 0, 400
	for i := range runs {
		body := toolRequest(fmt.Sprintf("Question number %d about the sea.", i))
		decide := func() bool {
			r, err := parseChat([]byte(body), &p)
			if err != nil {
				t.Fatal(err)
			}
			return r.answerFor(choiceSeed(r.prompts[0].hash, nil, nil, 0), p.AnswerTokens, 100).calls != nil
		}
		first := decide()
		if decide() != first {
			t.Fatalf("prompt %d: the decision is not deterministic", i)
		}
		if first {
			calls++
		}
	}
	if frac := float64(calls) / float64(runs); frac < 0.65 || frac > 0.85 {
		t.Errorf("auto called a tool for %.2f of prompts, want about 3/4", frac)
	}
}

func TestMentions(t *testing.T) {
	for _, tc := range []struct {
		text, name string
		want       bool
	}{
		{"please get_weather now", "get_weather", true},
		{"get_weather", "get_weather", true},
		{"(get_weather)", "get_weather", true},
		{"get_weathers", "get_weather", false},
		{"my_get_weather", "get_weather", false},
		{"get-weather", "weather", false},
		{"the weather, get_weather", "get_weather", true},
		{"nothing here", "get_weather", false},
	} {
		t.Run(tc.text+"/"+tc.name, func(t *testing.T) {
			if got := mentions(tc.text, tc.name); got != tc.want {
				t.Errorf("mentions(%q, %q) = %v", tc.text, tc.name, got)
			}
		})
	}
}

func TestToolCallTruncated(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	full := decodeAnswer(t, bodyOf(t, srv, toolRequest("get_weather")))
	whole := callsOf(full.Choices[0].Message)[0]
	for _, limit := range []int{1, 2, 7} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			req := toolRequest("get_weather", fmt.Sprintf(`"max_tokens":%d`, limit))
			a := decodeAnswer(t, bodyOf(t, srv, req))
			got := callsOf(a.Choices[0].Message)
			if len(got) != 1 || *a.Choices[0].FinishReason != "length" || a.Usage.CompletionTokens != limit {
				t.Fatalf("%d calls, finish %s, %d tokens", len(got), *a.Choices[0].FinishReason, a.Usage.CompletionTokens)
			}
			if got[0].ID != whole.ID || !strings.HasPrefix(whole.Args, got[0].Args) || countTokens(got[0].Args) != limit-1 {
				t.Errorf("cut call %+v, whole %+v", got[0], whole)
			}
			streamed, _ := assembleStream(t, bodyOf(t, srv, strings.Replace(req, "{", `{"stream":true,`, 1)))
			if diff := cmp.Diff(got, streamed[0].calls); diff != "" || streamed[0].finish != "length" {
				t.Errorf("streamed (-whole +streamed), finish %s:\n%s", streamed[0].finish, diff)
			}
		})
	}
}

func TestToolPromptTokens(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	plain := decodeAnswer(t, bodyOf(t, srv, `{"messages":[{"role":"user","content":"hi"}]}`))
	with := decodeAnswer(t, bodyOf(t, srv, `{"messages":[{"role":"user","content":"hi"}],"tool_choice":"none","tools":[{"type":"function","function":{"name":"f"}}]}`))
	want := plain.Usage.PromptTokens + toolsPreambleTokens + countTokens(`{"type":"function","function":{"name":"f"}}`)
	if with.Usage.PromptTokens != want {
		t.Errorf("prompt tokens with a tool %d, want %d", with.Usage.PromptTokens, want)
	}
}

func TestToolErrors(t *testing.T) {
	_, srv := startEngine(t, mustProfile(t, "instant"), Options{})
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct{ name, body, param string }{
		{"choice without tools", `{` + msgs + `,"tool_choice":"required"}`, "tool_choice"},
		{"unknown function", toolRequest("hi", `"tool_choice":{"type":"function","function":{"name":"nope"}}`), "tool_choice"},
		{"bad choice", toolRequest("hi", `"tool_choice":"sometimes"`), "tool_choice"},
		{"bad tool type", `{` + msgs + `,"tools":[{"type":"retrieval"}]}`, "tools[0]"},
		{"no name", `{` + msgs + `,"tools":[{"type":"function","function":{}}]}`, "tools[0]"},
		{"unreadable schema", `{` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":5}}}]}`, "tools[0].function.parameters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, srv, "/v1/chat/completions", tc.body)
			var e struct{ Error struct{ Param string } }
			json.Unmarshal(body, &e)
			if resp.StatusCode != 400 || e.Error.Param != tc.param {
				t.Errorf("%d %s, want 400 on %s", resp.StatusCode, body, tc.param)
			}
		})
	}
	// "none" without tools is fine, as in OpenAI's API.
	if resp, body := post(t, srv, "/v1/chat/completions", `{`+msgs+`,"tool_choice":"none"}`); resp.StatusCode != 200 {
		t.Errorf("none without tools: %d %s", resp.StatusCode, body)
	}
}
