package dispatch

import (
	"strings"
	"testing"
)

func TestUsageTap(t *testing.T) {
	final := `data: {"id":"c","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}` + "\n\ndata: [DONE]\n\n"
	whole := `{"id":"c","choices":[{"message":{"content":"a \"usage\": {\"prompt_tokens\":99} in text"}}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`
	tests := []struct {
		name   string
		answer string
		want   Usage
		seen   bool
	}{
		{"stream final chunk", `data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}` + "\n\n" + final, Usage{12, 34}, true},
		{"whole answer", whole, Usage{5, 7}, true},
		{"no usage", `{"id":"c","choices":[]}`, Usage{}, false},
		{"usage null", `{"id":"c","usage":null}`, Usage{}, false},
	}
	for _, tt := range tests {
		// Every split of the answer into two pieces, and byte by byte.
		for cut := 0; cut <= len(tt.answer); cut++ {
			var tap usageTap
			tap.Write([]byte(tt.answer[:cut]))
			tap.Write([]byte(tt.answer[cut:]))
			if u, ok := tap.usage(); ok != tt.seen || u != tt.want {
				t.Fatalf("%s, cut at %d: %+v %v, want %+v %v", tt.name, cut, u, ok, tt.want, tt.seen)
			}
		}
		var tap usageTap
		for _, c := range strings.Split(tt.answer, "") {
			tap.Write([]byte(c))
		}
		if u, ok := tap.usage(); ok != tt.seen || u != tt.want {
			t.Errorf("%s, byte by byte: %+v %v", tt.name, u, ok)
		}
	}
}

// TestMalformedEvents: an event whose data is neither JSON nor [DONE] is
// noticed, wherever the pieces split; a JSON answer never is.
func TestMalformedEvents(t *testing.T) {
	ok := "data: {\"choices\":[{\"delta\":{\"content\":\"data: not a line\"}}]}\n\ndata: [DONE]\n\n"
	tests := []struct {
		name, answer string
		malformed    bool
	}{
		{"chunks and [DONE]", ok, false},
		{"a JSON answer", `{"choices":[{"message":{"content":"x\ndata: y"}}]}`, false},
		{"a traceback", "data: {\"a\":1}\n\ndata: Traceback (most recent call last)\n\n", true},
		{"first event", "data: oops\n\n", true},
		{"no space", "data:{\"a\":1}\n\ndata:[DONE]\n\n", false},
	}
	for _, tt := range tests {
		for _, size := range []int{1 << 20, 40} {
			var u usageTap
			for s := tt.answer; len(s) > 0; {
				n := min(size, len(s))
				u.Write([]byte(s[:n]))
				s = s[n:]
			}
			// Split pieces may hide a line (no false alarm, maybe a miss).
			if u.malformed != tt.malformed && (size > len(tt.answer) || u.malformed) {
				t.Errorf("%s in pieces of %d: malformed %v, want %v", tt.name, size, u.malformed, tt.malformed)
			}
		}
	}
}
