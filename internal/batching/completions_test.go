package batching

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

func cmplReq(body string) *backend.Request {
	return &backend.Request{Endpoint: "completions", Body: []byte(body), PublicModel: "emb", RequestID: "r"}
}

// completion is the parts of a completions answer the tests compare.
type completion struct {
	ID, Object, Model string
	Choices           []json.RawMessage
	Usage             struct {
		Prompt     int `json:"prompt_tokens"`
		Completion int `json:"completion_tokens"`
		Total      int `json:"total_tokens"`
	}
}

func parseCompletion(t *testing.T, o outcome) completion {
	t.Helper()
	var c completion
	if o.err != nil || o.status != 200 {
		t.Fatalf("answer %+v", o)
	}
	if err := json.Unmarshal([]byte(o.body), &c); err != nil {
		t.Fatalf("%v: %s", err, o.body)
	}
	return c
}

func directCompletions(t *testing.T, u *upstream, bodies []string) []completion {
	t.Helper()
	out := make([]completion, len(bodies))
	for i, body := range bodies {
		out[i] = parseCompletion(t, do(u.be, context.Background(), cmplReq(body)))
	}
	u.reset()
	return out
}

func TestCompletionsMatchDirect(t *testing.T) {
	prompts := []string{
		`"Once upon a time"`,
		`["a tokenizer test", "second, input!"]`,
		`"naïve café — 東京 ok"`,
		`["line\nbreak \"quoted\" \u00e9", "x"]`,
		`"internationalization"`,
		`["one", "two", "three"]`,
		`"!!!"`,
	}
	for _, tt := range []struct {
		name, params string
		n            int
	}{
		{"default", `"model":"emb"`, 1},
		{"max_tokens", `"model":"emb","max_tokens":5`, 1},
		{"n=2", `"model":"emb","max_tokens":4,"n":2`, 2},
		{"sampled", `"model":"emb","temperature":0.8,"seed":7,"n":3,"user":"u1"`, 3},
		{"stop", `"model":"emb","max_tokens":12,"stop":["e"]`, 1},
		{"guards off", `"model":"emb","echo":false,"logprobs":null,"suffix":null,"best_of":null,"n":null`, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, "instant")
			var bodies []string
			for i, p := range prompts {
				if i%2 == 0 { // prompt first and last: spans move
					bodies = append(bodies, `{"prompt":`+p+`,`+tt.params+`}`)
				} else {
					bodies = append(bodies, `{`+tt.params+`,"prompt":`+p+`}`)
				}
			}
			want := directCompletions(t, u, bodies)
			clk := clock.NewFake(time.Unix(0, 0))
			b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
			got := runBatchedDo(t, b, clk, requests(cmplReq, bodies), len(bodies))
			ids := map[string]bool{}
			for i, o := range got {
				c := parseCompletion(t, o)
				ids[c.ID] = true
				if c.Object != "text_completion" || c.Model != "emb" {
					t.Errorf("%s: object %q, model %q", bodies[i], c.Object, c.Model)
				}
				// Each prompt's own choices, as a direct call gives them
				// (index k·n + j included): the engine seeds by prompt.
				if diff := cmp.Diff(want[i].Choices, c.Choices, cmp.Transformer("string", func(m json.RawMessage) string { return string(m) })); diff != "" {
					t.Errorf("%s: choices differ from a direct call's (-want +got):\n%s", bodies[i], diff)
				}
				if c.Usage != want[i].Usage {
					t.Errorf("%s: usage %+v, want %+v", bodies[i], c.Usage, want[i].Usage)
				}
				n := 1
				if strings.HasPrefix(prompts[i], "[") {
					var xs []string
					json.Unmarshal([]byte(prompts[i]), &xs)
					n = len(xs)
				}
				if len(c.Choices) != n*tt.n {
					t.Errorf("%s: %d choices, want %d", bodies[i], len(c.Choices), n*tt.n)
				}
				for k, ch := range c.Choices {
					var v struct{ Index int }
					json.Unmarshal(ch, &v)
					if v.Index != k {
						t.Errorf("%s: choice %d has index %d", bodies[i], k, v.Index)
					}
				}
			}
			// Two batches: each key's own (prompt first, prompt last).
			if in := u.reset(); len(in) != 2 || len(ids) != 2 {
				t.Errorf("upstream saw %d calls (prompts %v), members %d answer ids, want 2 and 2", len(in), in, len(ids))
			}
		})
	}
}

func TestCompletionsPassThrough(t *testing.T) {
	stream := cmplReq(`{"model":"emb","prompt":"a","stream":true}`)
	stream.Stream = true
	checkPassThrough(t, 4, []passCase{
		{"stream", stream},
		{"token ids", cmplReq(`{"model":"emb","prompt":[1,2,3]}`)},
		{"token arrays", cmplReq(`{"model":"emb","prompt":[[1,2],[3]]}`)},
		{"echo", cmplReq(`{"model":"emb","prompt":"a","echo":true}`)},
		{"best_of", cmplReq(`{"model":"emb","prompt":"a","best_of":2}`)},
		{"logprobs", cmplReq(`{"model":"emb","prompt":"a","logprobs":1}`)},
		{"logprobs 0", cmplReq(`{"model":"emb","prompt":"a","logprobs":0}`)},
		{"suffix", cmplReq(`{"model":"emb","prompt":"a","suffix":"b"}`)},
		{"n 0", cmplReq(`{"model":"emb","prompt":"a","n":0}`)},
		{"n string", cmplReq(`{"model":"emb","prompt":"a","n":"2"}`)},
		{"two n", cmplReq(`{"model":"emb","prompt":"a","n":2,"n":null}`)},
		{"two prompts", cmplReq(`{"model":"emb","prompt":"a","prompt":"b"}`)},
		{"not json", cmplReq(`{"model":"emb","prompt":"a"`)},
		{"too many prompts", cmplReq(`{"model":"emb","prompt":["a","b","c","d"]}`)},
	})
}

func TestParseCompletionRequest(t *testing.T) {
	for _, tt := range []struct {
		body    string
		ok      bool
		prompts int
		n       int
	}{
		{`{"prompt":"a"}`, true, 1, 1},
		{`{"prompt":["a","b"],"n":3}`, true, 2, 3},
		{`{"prompt":"a","n":null,"echo":false,"logprobs":null,"best_of":null,"suffix":null}`, true, 1, 1},
		{`{"prompt":"a","echo":false,"echo":true}`, false, 0, 0},
		{`{"prompt":"a","echo":null,"echo":null}`, false, 0, 0}, // a repeat, as everywhere
		{`{"prompt":"a","n":1.5}`, false, 0, 0},
		{`{"prompt":null}`, false, 0, 0},
		{`{"prompt":[]}`, false, 0, 0},
		{`{"n":2}`, false, 0, 0},
	} {
		t.Run(tt.body, func(t *testing.T) {
			in, ok := parseRequest(cmplReq(tt.body), 8)
			if ok != tt.ok || ok && (len(in.items) != tt.prompts || in.n != tt.n) {
				t.Errorf("ok %v, %d prompts, n %d; want %v, %d, %d", ok, len(in.items), in.n, tt.ok, tt.prompts, tt.n)
			}
		})
	}
	if _, ok := parseRequest(&backend.Request{Endpoint: "chat/completions", Body: []byte(`{"prompt":"a"}`)}, 8); ok {
		t.Error("chat completions are batched")
	}
}

func TestCompletionKeysDoNotMerge(t *testing.T) {
	u := newUpstream(t, "instant")
	bodies := []string{
		`{"model":"emb","prompt":"a","max_tokens":3}`,
		`{"model":"emb","prompt":"b","max_tokens":3}`,
		`{"model":"emb","prompt":"c","max_tokens":4}`,
		`{"model":"emb","prompt":"d","max_tokens":3,"n":2}`,
		`{"model":"emb","prompt":"e","max_tokens":3,"temperature":0.5}`,
		`{"model":"emb","prompt":"f","max_tokens":3,"seed":1}`,
		`{"model":"emb","prompt":"g","max_tokens":3,"user":"other"}`,
		`{"model":"emb","prompt":"h","max_tokens":3,"stop":"."}`,
	}
	want := directCompletions(t, u, bodies)
	clk := clock.NewFake(time.Unix(0, 0))
	b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
	// An embeddings request of the same model and bytes around its input
	// is another key too.
	rs := append(requests(cmplReq, bodies), embReq(`{"model":"emb","input":"i","max_tokens":3}`))
	got := runBatchedDo(t, b, clk, rs, len(rs))
	for i := range want {
		c := parseCompletion(t, got[i])
		if diff := cmp.Diff(want[i].Choices, c.Choices, cmp.Transformer("string", func(m json.RawMessage) string { return string(m) })); diff != "" || c.Usage != want[i].Usage {
			t.Errorf("%s: choices (-want +got):\n%s\nusage %+v, want %+v", bodies[i], diff, c.Usage, want[i].Usage)
		}
	}
	// a and b merge; the others are alone in their batches.
	if in := u.reset(); len(in) != 8 {
		t.Errorf("upstream saw %d calls (prompts %v), want 8", len(in), in)
	}
}

func TestCompletionUsageOfAnotherTokenizer(t *testing.T) {
	// An engine whose counts are not the estimate: each part is
	// proportional, and they sum to its totals.
	hello, abcd := `{"model":"emb","prompt":"hello"}`, `{"model":"emb","prompt":["a b c d","e f g h"]}`
	ch := func(i int, text string) string {
		return `{"index":` + strconv.Itoa(i) + `,"text":` + strconv.Quote(text) + `,"logprobs":null,"finish_reason":"length"}`
	}
	for _, tt := range []struct {
		name, usage string
		want        [2]string // the members' usage
	}{
		// prompt 1:8 estimated tokens, completion 3:2 ("one two three"
		// against "" and "x y"), total the two parts.
		{"total is the sum", `{"prompt_tokens":1001,"total_tokens":1051,"completion_tokens":50}`,
			[2]string{`{"prompt_tokens":111,"total_tokens":141,"completion_tokens":30}`, `{"prompt_tokens":890,"total_tokens":910,"completion_tokens":20}`}},
		// total not the sum: split by both weights, 4:10.
		{"total is not the sum", `{"prompt_tokens":1001,"total_tokens":2000,"completion_tokens":50}`,
			[2]string{`{"prompt_tokens":111,"total_tokens":571,"completion_tokens":30}`, `{"prompt_tokens":890,"total_tokens":1429,"completion_tokens":20}`}},
		{"no usage", `null`, [2]string{`null`, `null`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, "instant")
			answers := map[string]string{"hello": "one two three", "a b c d": "", "e f g h": "x y"}
			u.setHook(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
				var req struct{ Prompt []string }
				json.Unmarshal(body, &req) // in the order the members joined
				var choices []string
				for i := len(req.Prompt) - 1; i >= 0; i-- { // out of order, as an engine may answer
					choices = append(choices, ch(i, answers[req.Prompt[i]]))
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"id":"cmpl-1","object":"text_completion","created":7,"model":"emb","choices":[`+
					strings.Join(choices, ",")+`],"usage":`+tt.usage+`,"system_fingerprint":"fp"}`)
				return true
			})
			clk := clock.NewFake(time.Unix(0, 0))
			b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
			got := runBatchedDo(t, b, clk, requests(cmplReq, []string{hello, abcd}), 2)
			want := []string{
				`{"id":"cmpl-1","object":"text_completion","created":7,"model":"emb","choices":[` + ch(0, "one two three") + `],"usage":` + tt.want[0] + `,"system_fingerprint":"fp"}`,
				`{"id":"cmpl-1","object":"text_completion","created":7,"model":"emb","choices":[` + ch(0, "") + `,` + ch(1, "x y") + `],"usage":` + tt.want[1] + `,"system_fingerprint":"fp"}`,
			}
			for i := range want {
				if got[i].err != nil || got[i].body != want[i] {
					t.Errorf("member %d: %v\n%s\nwant\n%s", i, got[i].err, got[i].body, want[i])
				}
			}
		})
	}
}

func TestCompletionErrors(t *testing.T) {
	t.Run("choices mismatch", func(t *testing.T) {
		u := newUpstream(t, "instant")
		u.setHook(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
			w.Header().Set("Content-Type", "application/json")
			// Two choices for two prompts of n=2: n ignored.
			io.WriteString(w, `{"object":"text_completion","choices":[{"index":0,"text":"a"},{"index":1,"text":"b"}]}`)
			return true
		})
		clk := clock.NewFake(time.Unix(0, 0))
		b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
		bodies := []string{`{"model":"emb","prompt":"a","n":2}`, `{"model":"emb","prompt":"b","n":2}`}
		for i, o := range runBatchedDo(t, b, clk, requests(cmplReq, bodies), 2) {
			var ae *apierror.Error
			if !errors.As(o.err, &ae) || ae.Status != 502 || ae.Code != backend.CodeInvalidResponse {
				t.Errorf("member %d: got %+v, want a 502 %s", i, o, backend.CodeInvalidResponse)
			}
		}
	})
	t.Run("one prompt too long", func(t *testing.T) {
		u := newUpstream(t, "instant")
		long := `"` + strings.Repeat("! ", 40000) + `"` // past max_model_len
		bodies := []string{`{"model":"emb","prompt":"a"}`, `{"model":"emb","prompt":` + long + `}`, `{"model":"emb","prompt":["b","c"]}`}
		want := directCompletions(t, u, []string{bodies[0], bodies[2]})
		clk := clock.NewFake(time.Unix(0, 0))
		b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
		got := runBatchedDo(t, b, clk, requests(cmplReq, bodies), len(bodies))
		for j, i := range []int{0, 2} {
			if c := parseCompletion(t, got[i]); !cmp.Equal(c.Choices, want[j].Choices, cmp.Transformer("string", func(m json.RawMessage) string { return string(m) })) || c.Usage != want[j].Usage {
				t.Errorf("member %d: got %s", i, got[i].body)
			}
		}
		var ae *apierror.Error
		if !errors.As(got[1].err, &ae) || ae.Status != 400 {
			t.Errorf("the long prompt: got %+v, want a 400", got[1])
		}
		if n := u.calls.Load(); n != 4 { // the merged call, then each alone
			t.Errorf("upstream calls %d, want 4", n)
		}
	})
}
