package request

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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

// TestEdit: after Request.Edit the view describes the new body exactly as
// a re-parse does, for renames, clamps and insertions.
func TestEdit(t *testing.T) {
	tests := []struct {
		name, body string
		edits      func(r *Request, body []byte) []Edit
	}{
		{"rename", chat(`"max_tokens":100,"temperature":0.5,"stream":true,"n":2`), func(r *Request, _ []byte) []Edit {
			return []Edit{{Span: r.ModelSpan, Value: []byte(`"Qwen/Qwen2.5-Omni-7B"`)}}
		}},
		{"rename escaped", `{"model":"a\"b","messages":[{"role":"user","content":"hi"}],"top_p":1}`, func(r *Request, _ []byte) []Edit {
			return []Edit{{Span: r.ModelSpan, Value: []byte(`"x\"\n☃\u2028"`)}}
		}},
		{"shorter, after other values", `{"temperature":1,"model":"a-very-long-model-name","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`,
			func(r *Request, _ []byte) []Edit { return []Edit{{Span: r.ModelSpan, Value: []byte(`"m"`)}} }},
		{"clamp and rename", chat(`"max_tokens":100000,"temperature":9,"stream":true,"stream_options":{"include_usage":true}`), func(r *Request, _ []byte) []Edit {
			return []Edit{{Span: r.MaxTokensSpan, Value: []byte("4096")}, {Span: r.TemperatureSpan, Value: []byte("2")}, {Span: r.ModelSpan, Value: []byte(`"big"`)}}
		}},
		{"insert first", chat(`"n":3`), func(r *Request, body []byte) []Edit {
			return []Edit{Insert(body, "seed", []byte("7"))}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if err := Parse(Chat, []byte(tt.body), &r); err != nil {
				t.Fatal(err)
			}
			edits := tt.edits(&r, []byte(tt.body))
			want := Splice([]byte(tt.body), edits...)
			out := r.Edit([]byte(tt.body), edits...)
			if diff := cmp.Diff(string(want), string(out)); diff != "" {
				t.Errorf("Edit and Splice differ (-splice +edit):\n%s", diff)
			}
			if !json.Valid(out) {
				t.Fatalf("Edit gave invalid JSON %s", out)
			}
			var r2 Request
			if err := Parse(Chat, out, &r2); err != nil {
				t.Fatal(err)
			}
			r.Model, r.Temperature, r.MaxTokens = r2.Model, r2.Temperature, r2.MaxTokens // values are the caller's to set
			if diff := cmp.Diff(r2, r); diff != "" {
				t.Errorf("edited view differs from a re-parse (-reparse +edited):\n%s", diff)
			}
		})
	}
	for _, bad := range []func(r *Request) Edit{
		func(r *Request) Edit {
			return Edit{Span: [2]int{r.ModelSpan[0] + 1, r.ModelSpan[1]}, Value: []byte("x")}
		},
		func(r *Request) Edit {
			return Edit{Span: [2]int{r.ModelSpan[0], r.ModelSpan[1] + 1}, Value: []byte("x")}
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("an edit cutting into a recorded value did not panic")
				}
			}()
			var r Request
			body := []byte(chat(""))
			if err := Parse(Chat, body, &r); err != nil {
				t.Fatal(err)
			}
			r.Edit(body, bad(&r))
		}()
	}
}

// TestSetMaxTokens: a value that was sent is replaced in place under the
// client's name; a missing one is inserted; the view stays exact.
func TestSetMaxTokens(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"absent", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
			`{"max_tokens":64,"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"sent", `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":9000}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":64}`},
		{"leading space", " \n{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
			" \n{\"max_tokens\":64,\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"},
		// null is replaced where it stands: no second key for engines that keep the last
		{"null", `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":null}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":64}`},
		{"null, other name", `{"max_completion_tokens": null ,"model":"m","messages":[{"role":"user","content":"hi"}]}`,
			`{"max_completion_tokens": 64 ,"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"escaped name", `{"model":"m","messages":[{"role":"user","content":"hi"}],"max\u005ftokens":null}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"max\u005ftokens":64}`},
		{"non-canonical", `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1e5}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":64}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if err := Parse(Chat, []byte(tt.body), &r); err != nil {
				t.Fatal(err)
			}
			out := r.SetMaxTokens([]byte(tt.body), 64)
			if diff := cmp.Diff(tt.want, string(out)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			var r2 Request
			if err := Parse(Chat, out, &r2); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(r2, r); diff != "" {
				t.Errorf("view differs from a re-parse (-reparse +edited):\n%s", diff)
			}
		})
	}
}

// TestNormalize: integers written 10.0 or 1e1 are forwarded as plain
// integers, and the view describes the result as a re-parse does.
func TestNormalize(t *testing.T) {
	tests := []struct {
		name     string
		ep       Endpoint
		body     string
		want     string
		wantVals []IntValue // NonCanonical, spans as literals' offsets in body
	}{
		{"none", Chat, chat(`"max_tokens":100,"n":2,"seed":-1`), chat(`"max_tokens":100,"n":2,"seed":-1`), nil},
		{"chat", Chat, chat(`"max_tokens":1e2,"temperature":1.0,"n":2.0,"seed":-3E+1,"logprobs":true,"top_logprobs":2.000`),
			chat(`"max_tokens":100,"temperature":1.0,"n":2,"seed":-30,"logprobs":true,"top_logprobs":2`),
			[]IntValue{{Value: 100}, {Value: 2}, {Value: -30}, {Value: 2}}},
		{"seed at the bound", Chat, chat(`"seed":9223372036854775807.0`), chat(`"seed":9223372036854775807`), []IntValue{{Value: 1<<63 - 1}}},
		{"completions", Completions, `{"model":"m","prompt":[1,2],"max_tokens":16.0,"logprobs":5e0,"best_of":2.0}`,
			`{"model":"m","prompt":[1,2],"max_tokens":16,"logprobs":5,"best_of":2}`, []IntValue{{Value: 16}, {Value: 5}, {Value: 2}}},
		{"embeddings", Embeddings, `{"model":"m","input":"a","dimensions":2.56e2}`, `{"model":"m","input":"a","dimensions":256}`, []IntValue{{Value: 256}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if err := Parse(tt.ep, []byte(tt.body), &r); err != nil {
				t.Fatal(err)
			}
			got := r.NonCanonical[:r.NumNonCanonical]
			for i := range tt.wantVals {
				if i < len(got) {
					tt.wantVals[i].Span = got[i].Span
					if lit := tt.body[got[i].Span[0]:got[i].Span[1]]; !strings.ContainsAny(lit, ".eE") {
						t.Errorf("NonCanonical[%d] is at %q", i, lit)
					}
				}
			}
			if diff := cmp.Diff(tt.wantVals, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("NonCanonical (-want +got):\n%s", diff)
			}
			out := r.Normalize([]byte(tt.body))
			if diff := cmp.Diff(tt.want, string(out)); diff != "" {
				t.Errorf("Normalize (-want +got):\n%s", diff)
			}
			var r2 Request
			if err := Parse(tt.ep, out, &r2); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(r2, r); diff != "" {
				t.Errorf("view differs from a re-parse (-reparse +normalized):\n%s", diff)
			}
		})
	}
	var r Request
	body := []byte(chat(`"max_tokens":100`))
	if err := Parse(Chat, body, &r); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(10, func() { r.Normalize(body) }); n != 0 {
		t.Errorf("Normalize of a plain body allocates %v times", n)
	}
}

// TestEditSupersedesNonCanonical: an edit that rewrites a non-canonical
// value (a clamp) takes it off the list, so Normalize cannot undo it.
func TestEditSupersedesNonCanonical(t *testing.T) {
	body := []byte(chat(`"n":4.0,"max_tokens":1e5`))
	var r Request
	if err := Parse(Chat, body, &r); err != nil {
		t.Fatal(err)
	}
	out := r.Edit(body, Edit{Span: r.MaxTokensSpan, Value: []byte("4096")})
	out = r.Normalize(out)
	if diff := cmp.Diff(chat(`"n":4,"max_tokens":4096`), string(out)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
