package openai

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplice(t *testing.T) {
	body := []byte(`{"a":1,"b":"xy","c":[true]}`)
	tests := []struct {
		name  string
		edits []Edit
		want  string
	}{
		{"none", nil, `{"a":1,"b":"xy","c":[true]}`},
		{"one", []Edit{{Span: [2]int{5, 6}, Value: []byte(`22`)}}, `{"a":22,"b":"xy","c":[true]}`},
		{"any order", []Edit{{Span: [2]int{21, 25}, Value: []byte(`false`)}, {Span: [2]int{11, 15}, Value: []byte(`"z"`)}, {Span: [2]int{5, 6}, Value: []byte(`3`)}},
			`{"a":3,"b":"z","c":[false]}`},
		{"insert", []Edit{{Span: [2]int{21, 21}, Value: []byte(`1,`)}}, `{"a":1,"b":"xy","c":[1,true]}`},
		{"many", []Edit{{[2]int{0, 1}, []byte("{")}, {[2]int{1, 2}, []byte(`"`)}, {[2]int{2, 3}, []byte("A")}, {[2]int{3, 4}, []byte(`"`)},
			{[2]int{4, 5}, []byte(":")}, {[2]int{5, 6}, []byte("0")}, {[2]int{6, 7}, []byte(",")}, {[2]int{7, 8}, []byte(`"`)}, {[2]int{8, 9}, []byte("B")}},
			`{"A":0,"B":"xy","c":[true]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Splice(body, tt.edits...)
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if string(body) != `{"a":1,"b":"xy","c":[true]}` {
				t.Fatalf("body modified")
			}
		})
	}
	for _, bad := range [][]Edit{{{Span: [2]int{1, 6}}, {Span: [2]int{5, 8}}}, {{Span: [2]int{5, 99}}}, {{Span: [2]int{6, 5}}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Splice(%v) did not panic", bad)
				}
			}()
			Splice(body, bad...)
		}()
	}
}

func TestSetModel(t *testing.T) {
	tests := []struct {
		name, body, model string
	}{
		{"replace", chat(`"max_tokens":100,"temperature":0.5,"stream":true,"n":2`), "Qwen/Qwen2.5-Omni-7B"},
		{"replace escaped", `{"model":"a\"b","messages":[{"role":"user","content":"hi"}],"top_p":1}`, "x\"\n☃\u2028"},
		{"shorter", `{"temperature":1,"model":"a-very-long-model-name","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, "m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if err := Parse(Chat, []byte(tt.body), &r); err != nil {
				t.Fatal(err)
			}
			out := SetModel([]byte(tt.body), &r, tt.model)
			var got, want map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("SetModel gave invalid JSON %s: %v", out, err)
			}
			_ = json.Unmarshal([]byte(tt.body), &want)
			want["model"] = tt.model
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// r's spans describe the new body: re-parsing gives the same view.
			var r2 Request
			if err := Parse(Chat, out, &r2); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(r2, r); diff != "" {
				t.Errorf("updated Request differs from a re-parse (-reparse +updated):\n%s", diff)
			}
		})
	}
}

func TestAddField(t *testing.T) {
	tests := []struct{ body, key, value, want string }{
		{`{"a":1}`, "stream", `true`, `{"stream":true,"a":1}`},
		{" \n{ }", "stream", `true`, " \n{\"stream\":true }"},
		{`{}`, `k"`, `[1]`, `{"k\"":[1]}`},
	}
	for _, tt := range tests {
		got := string(AddField([]byte(tt.body), tt.key, []byte(tt.value)))
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("AddField(%q) (-want +got):\n%s", tt.body, diff)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("AddField(%q) = %q, not JSON", tt.body, got)
		}
	}
	// Adding a missing model keeps the Request's spans right.
	body := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":7}`
	var r Request
	if err := Parse(Chat, []byte(body), &r); err == nil {
		t.Fatal("model-less body accepted")
	}
	r.MaxTokensSpan = [2]int{len(body) - 2, len(body) - 1}
	out := SetModel([]byte(body), &r, "m")
	if got := string(out[r.ModelSpan[0]:r.ModelSpan[1]]); got != `"m"` {
		t.Errorf("ModelSpan → %q", got)
	}
	if got := string(out[r.MaxTokensSpan[0]:r.MaxTokensSpan[1]]); got != `7` {
		t.Errorf("MaxTokensSpan → %q", got)
	}
}
