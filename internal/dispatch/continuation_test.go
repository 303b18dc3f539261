package dispatch

import (
	"io"
	"strings"
	"testing"
)

// TestRecord: what a continuable stream records of the events relayed,
// however they are split into pieces.
func TestRecord(t *testing.T) {
	const (
		role    = `data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n"
		hello   = `data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}` + "\n\n"
		quoted  = `data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{"content":"lo \"x\""},"finish_reason":null}]}` + "\n\n"
		tool    = `data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1"}]},"finish_reason":null}]}` + "\n\n"
		finish  = `data: {"id":"chatcmpl-7","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
		done    = "data: [DONE]\n\n"
		comment = ": ping\n\n"
	)
	tests := []struct {
		name                string
		stream              string
		text                string
		tokens              int
		finish, done, stuck bool
	}{
		{"text", role + hello + quoted, `Hello \"x\"`, 2, false, false, false},
		{"finished", role + hello + finish, "Hel", 1, true, false, false},
		{"done", role + hello + finish + done, "Hel", 1, true, true, false},
		{"tool call", role + tool, "", 0, false, false, true},
		{"comments are nothing", comment + role + comment + hello, "Hel", 1, false, false, false},
	}
	for _, tt := range tests {
		for _, size := range []int{1, 7, 1 << 20} {
			var u usageTap
			r := record{usage: &u}
			for s := tt.stream; len(s) > 0; {
				n := min(size, len(s))
				r.Write([]byte(s[:n]))
				s = s[n:]
			}
			if string(r.id) != "chatcmpl-7" || string(r.text) != tt.text || r.tokens != tt.tokens ||
				r.finish != tt.finish || r.done != tt.done || r.stuck != tt.stuck {
				t.Errorf("%s in pieces of %d: id %q text %q tokens %d finish %v done %v stuck %v", tt.name, size,
					r.id, r.text, r.tokens, r.finish, r.done, r.stuck)
			}
		}
	}
}

// TestSplicer: a continuation's stream carries on the client's: its id,
// no role chunk of its own, usage moved from prompt to completion.
func TestSplicer(t *testing.T) {
	cont := `data: {"id":"chatcmpl-9","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n" +
		`data: {"id":"chatcmpl-9","choices":[{"index":0,"delta":{"content":"world"},"finish_reason":null}]}` + "\n\n" +
		`data: {"id":"chatcmpl-9","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}` + "\n\n" +
		"data: [DONE]\n\n"
	rec := &record{id: []byte("chatcmpl-7"), tokens: 2}
	out, err := io.ReadAll(newSplicer(io.NopCloser(strings.NewReader(cont)), rec, false))
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{`"id":"chatcmpl-7"`, `"content":"world"`, `"prompt_tokens":10`, `"completion_tokens":3`, `"total_tokens":13`, "data: [DONE]\n\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("spliced stream lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "chatcmpl-9") || strings.Contains(got, `"role"`) {
		t.Errorf("the continuation's own id or role got through:\n%s", got)
	}
	// usageOnly: the client had the whole answer; only its usage is new.
	out, _ = io.ReadAll(newSplicer(io.NopCloser(strings.NewReader(cont)), rec, true))
	if got := string(out); strings.Contains(got, "world") || !strings.Contains(got, `"completion_tokens":2`) || !strings.Contains(got, "[DONE]") {
		t.Errorf("usage only:\n%s", got)
	}
}
