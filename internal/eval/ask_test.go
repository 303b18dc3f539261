package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/sim"
)

// engine serves a simulator engine of the instant profile as the model
// "m", quantized as label says.
func engine(t *testing.T, label string) *httptest.Server {
	t.Helper()
	p, err := sim.LoadProfile("instant")
	if err != nil {
		t.Fatal(err)
	}
	eng := sim.New(p, sim.Options{ModelName: "m", Quantization: sim.QuantizationFor(label)})
	srv := httptest.NewServer(eng.Handler())
	t.Cleanup(func() { srv.Close(); eng.Close() })
	return srv
}

// prompts makes n items without references.
func prompts(t *testing.T, n int) []Item {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id": "q%d", "prompt": "question number %d", "max_tokens": 12}`+"\n", i, i)
	}
	items, err := ReadItems(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// TestAskQuantizedEngine: an int4 engine against the full-precision one,
// straight to the engines: the full one's answers as references, the
// int4 one agrees on about 92 % and its logprobs are lower by its shift.
func TestAskQuantizedEngine(t *testing.T) {
	full, int4 := engine(t, "bf16"), engine(t, "awq-int4")
	items := prompts(t, 200)
	ctx := context.Background()
	base := Ask(ctx, Target{Name: "full", Model: "m", URL: full.URL}, items, Options{})
	for i, a := range base.Answers {
		if a.Error != "" || a.Text == "" || a.MeanLogprob == nil {
			t.Fatalf("item %d: %+v", i, a)
		}
		items[i].Reference = a.Text
	}
	runs := []Run{
		Ask(ctx, Target{Name: "full", Model: "m", URL: full.URL}, items, Options{Concurrency: 3}),
		Ask(ctx, Target{Name: "int4", Model: "m", URL: int4.URL}, items, Options{Concurrency: 5}),
	}
	r := Summarize(items, runs)
	q := sim.QuantizationFor("awq-int4")
	b, v := r.Targets[0], r.Targets[1]
	if b.Errors != 0 || v.Errors != 0 || *b.Accuracy != 1 || b.Agreement != nil || b.LogprobDiff != nil {
		t.Errorf("baseline: %+v", b)
	}
	if math.Abs(*v.Accuracy-(1-q.Divergence)) > 0.06 || *v.Agreement != *v.Accuracy || v.Compared != len(items) {
		t.Errorf("int4: accuracy %v, agreement %v over %d, want about %v", *v.Accuracy, *v.Agreement, v.Compared, 1-q.Divergence)
	}
	if v.LogprobItems != v.Correct || math.Abs(*v.LogprobDiff+q.LogprobShift) > 1e-6 {
		t.Errorf("int4: logprob difference %v over %d items, want %v over %d", *v.LogprobDiff, v.LogprobItems, -q.LogprobShift, v.Correct)
	}
	if b.PromptTokens == 0 || b.PromptTokens != v.PromptTokens || b.CompletionTokens == 0 {
		t.Errorf("tokens: %d/%d and %d/%d", b.PromptTokens, b.CompletionTokens, v.PromptTokens, v.CompletionTokens)
	}
	if b.Latency.P50 <= 0 || b.Latency.P90 < b.Latency.P50 || b.Latency.Mean <= 0 {
		t.Errorf("latency: %+v", b.Latency)
	}
}

// TestAskDropsLogprobs: a model that refuses logprobs with a 400 naming
// them is asked again without, once for the whole run, and the report
// says so and leaves its logprob difference empty.
func TestAskDropsLogprobs(t *testing.T) {
	var refused, asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Error(err)
		}
		asked.Add(1)
		if _, ok := body["logprobs"]; ok {
			refused.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"message":"logprobs are not supported by this model","type":"invalid_request_error","param":"logprobs","code":"unsupported_parameter"}}`)
			return
		}
		if body["temperature"] != 0.0 || body["max_tokens"] != 12.0 || body["model"] != "plain" {
			t.Errorf("body %v", body)
		}
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"same"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	}))
	defer srv.Close()
	items := prompts(t, 40)
	ctx := context.Background()
	lp := engine(t, "bf16")
	runs := []Run{
		Ask(ctx, Target{Name: "sim", Model: "m", URL: lp.URL}, items, Options{}),
		Ask(ctx, Target{Name: "plain", Model: "plain", URL: srv.URL}, items, Options{Concurrency: 4}),
	}
	if n := refused.Load(); n < 1 || n > 4 {
		t.Errorf("%d requests refused, want 1 to 4 (the ones in flight when the first came back)", n)
	}
	if asked.Load() != refused.Load()+int32(len(items)) {
		t.Errorf("%d requests for %d items, %d refused", asked.Load(), len(items), refused.Load())
	}
	r := Summarize(items, runs)
	p := r.Targets[1]
	if p.Errors != 0 || p.LogprobDiff != nil || p.PromptTokens != 3*int64(len(items)) {
		t.Errorf("plain: %+v", p)
	}
	want := []string{"logprobs dropped: the gateway refused them (logprobs are not supported by this model), so no logprob difference involves this target"}
	if diff := cmp.Diff(want, p.Notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
}

// TestAskErrors: failed requests are counted, not fatal, and the first
// one is shown; a refusal that does not name logprobs is an error.
func TestAskErrors(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k1" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"message":"no key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
			return
		}
		switch n.Add(1) % 3 {
		case 0:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"message":"max_tokens is too large","type":"invalid_request_error","param":"max_tokens","code":null}}`)
		case 1:
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "upstream fell over")
		default:
			io.WriteString(w, `{"choices":[{"message":{"content":"ok"}}]}`)
		}
	}))
	defer srv.Close()
	items := prompts(t, 9)
	run := Ask(context.Background(), Target{Name: "flaky", Model: "m", URL: srv.URL, APIKey: "k1"}, items, Options{Concurrency: 1})
	r := Summarize(items, []Run{run})
	if got := r.Targets[0]; got.Errors != 6 || got.FirstError != "q0: 502: upstream fell over" || len(got.Notes) != 0 {
		t.Errorf("report %+v", got)
	}
	if a := run.Answers[2]; a.Error != "400: max_tokens is too large" {
		t.Errorf("item 2: %+v", a)
	}
	run = Ask(context.Background(), Target{Name: "nokey", Model: "m", URL: srv.URL}, items[:1], Options{})
	if a := run.Answers[0]; a.Error != "401: no key" {
		t.Errorf("without a key: %+v", a)
	}
	run = Ask(context.Background(), Target{Name: "slow", Model: "m", URL: "http://127.0.0.1:1"}, items[:1], Options{Timeout: time.Second})
	if a := run.Answers[0]; a.Error == "" {
		t.Errorf("nothing listening: %+v", a)
	}
}

// TestSummarize pins the arithmetic on hand-made runs: agreement over
// the items both answered, the logprob difference over the items
// answered the same with logprobs, accuracy over every referenced item.
func TestSummarize(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	yes, no := true, false
	items := []Item{{ID: "a", Reference: "x"}, {ID: "b", Reference: "y"}, {ID: "c"}, {ID: "d", Reference: "w"}, {ID: "e"}}
	base := Run{Target: "base", Answers: []Answer{
		{ID: "a", Text: "X", Correct: &yes, MeanLogprob: f(-0.5), Latency: 10 * time.Millisecond, PromptTokens: 5, CompletionTokens: 2},
		{ID: "b", Text: "z", Correct: &no, MeanLogprob: f(-0.2), Latency: 20 * time.Millisecond},
		{ID: "c", Text: "q", Latency: 30 * time.Millisecond},
		{ID: "d", Error: "500: boom"},
		{ID: "e", Text: "same", MeanLogprob: f(-1), Latency: 40 * time.Millisecond},
	}}
	other := Run{Target: "other", Answers: []Answer{
		{ID: "a", Text: "x.", Correct: &yes, MeanLogprob: f(-0.7), Latency: 5 * time.Millisecond},
		{ID: "b", Text: "y", Correct: &yes, MeanLogprob: f(-0.1), Latency: 5 * time.Millisecond},
		{ID: "c", Error: "429: slow down"},
		{ID: "d", Text: "w", Correct: &yes, Latency: 5 * time.Millisecond},
		{ID: "e", Text: "Same", Latency: 5 * time.Millisecond},
	}}
	got := Summarize(items, []Run{base, other})
	lpOther, lpBase := -0.7, -0.5
	want := &Report{Items: 5, WithReference: 3, Baseline: "base", Targets: []TargetReport{
		{Target: "base", Items: 5, Errors: 1, Correct: 1, Accuracy: f(1.0 / 3),
			Latency: Latency{P50: 20, P90: 40, Mean: 25}, PromptTokens: 5, CompletionTokens: 2, FirstError: "d: 500: boom"},
		{Target: "other", Items: 5, Errors: 1, Correct: 3, Accuracy: f(1),
			Compared: 3, Agreement: f(2.0 / 3), LogprobItems: 1, LogprobDiff: f(lpOther - lpBase), // float arithmetic, as computed
			Latency: Latency{P50: 5, P90: 5, Mean: 5}, FirstError: "c: 429: slow down"},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}
