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
