package sim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/clock"
)

// timedChat sends one chat request to an engine on a fake clock, driving
// the clock, and returns the virtual time it took and the answer's usage.
func timedChat(t *testing.T, p Profile, body string, header ...string) (time.Duration, usage) {
	t.Helper()
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	_, srv := startEngine(t, p, Options{Clock: clk})
	done := make(chan struct{})
	go drive(clk, done)
	start := clk.Now()
	resp, b := post(t, srv, "/v1/chat/completions", body, header...)
	took := clk.Now().Sub(start)
	close(done)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var r struct{ Usage usage }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return took, r.Usage
}

func TestEndToEndLatencyFake(t *testing.T) {
	short := `{"messages":[{"role":"user","content":"What is the capital of France? Answer in one sentence."}]}`
	for _, tc := range []struct {
		profile  string
		min, max time.Duration
	}{
		{"qwen3-omni-7b", 0, 500 * time.Millisecond},
		{"qwen3-omni-30b", 2 * time.Second, 3 * time.Second},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			p := mustProfile(t, tc.profile)
			took, u := timedChat(t, p, short)
			if took <= tc.min || took >= tc.max {
				t.Errorf("took %v for %d tokens, want within (%v, %v)", took, u.CompletionTokens, tc.min, tc.max)
			}
			// The virtual time is exactly the modelled one: a prefill step, then decodes.
			want := p.DecodeBase + p.DecodePerSeq + time.Duration(u.PromptTokens)*p.PrefillPerToken +
				time.Duration(u.CompletionTokens-1)*(p.DecodeBase+p.DecodePerSeq)
			if took != want {
				t.Errorf("took %v, model says %v", took, want)
			}
		})
	}
}

func TestSlowTokens(t *testing.T) {
	p := mustProfile(t, "qwen3-omni-7b")
	body := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":10}`
	base, _ := timedChat(t, p, body)
	slow, u := timedChat(t, p, body, HeaderSlow, "50ms")
	// Each token is held back 50ms before it is written; the engine keeps
	// producing meanwhile, so the answer takes at least tokens x 50ms.
	if want := time.Duration(u.CompletionTokens) * 50 * time.Millisecond; slow < want || slow <= base {
		t.Errorf("with slow 50ms: %v (without: %v), want at least %v", slow, base, want)
	}
	// On the zero-latency profile the delay is all there is.
	inst, u := timedChat(t, mustProfile(t, "instant"), body, HeaderSlow, "50ms")
	if want := time.Duration(u.CompletionTokens) * 50 * time.Millisecond; inst != want {
		t.Errorf("instant with slow 50ms took %v, want %v", inst, want)
	}
}

// A client that goes away mid-stream frees its sequence and its KV.
func TestDisconnectFreesSequence(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	_, srv := startEngine(t, mustProfile(t, "qwen3-omni-30b"), Options{Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions", strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`))
	type result struct {
		resp *http.Response
		err  error
	}
	started := make(chan result, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		started <- result{resp, err}
	}()
	waitWaiter(clk) // the prefill step
	clk.AdvanceToNext()
	r := <-started // headers come with the first token
	if r.err != nil {
		t.Fatal(r.err)
	}
	resp := r.resp
	buf := make([]byte, 256)
	if _, err := io.ReadAtLeast(resp.Body, buf, 1); err != nil { // the stream has started
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	waitMetric(t, srv, `sim_requests_aborted_total{model_name="qwen3-omni-30b"} 1`)
	waitMetric(t, srv, `vllm:num_requests_running{model_name="qwen3-omni-30b"} 0`)
	waitMetric(t, srv, `vllm:kv_cache_usage_perc{model_name="qwen3-omni-30b"} 0`)
}

// waitWaiter blocks until something waits on the fake clock.
func waitWaiter(clk *clock.Fake) {
	for {
		changed := clk.Changed()
		if clk.Waiters() > 0 {
			return
		}
		<-changed
	}
}

// Close fails what is in flight: a 503 before the stream starts, an error
// event after.
func TestCloseFailsInFlight(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0)) // never advanced: requests stay in the engine
	e, srv := startEngine(t, mustProfile(t, "qwen3-omni-7b"), Options{Clock: clk})
	type result struct {
		status int
		body   string
	}
	results := make(chan result, 1)
	go func() {
		resp, b := post(t, srv, "/v1/chat/completions", chatHi)
		results <- result{resp.StatusCode, string(b)}
	}()
	waitWaiter(clk) // the scheduler is running its step
	e.Close()
	r := <-results
	if r.status != 503 || !strings.Contains(r.body, "shutting down") {
		t.Errorf("in-flight request after Close: %d %s", r.status, r.body)
	}
	if resp, _ := post(t, srv, "/v1/chat/completions", chatHi); resp.StatusCode != 503 {
		t.Errorf("request after Close: %d", resp.StatusCode)
	}
}

func TestPreemptionMetricOverHTTP(t *testing.T) {
	p := mustProfile(t, "qwen3-omni-7b")
	p.KVCacheTokens = 256 // 16 blocks: four ~19-token prompts growing by 50 need 20
	p.AnswerTokens = [2]int{50, 50}
	clk := clock.NewFake(time.Unix(0, 0))
	_, srv := startEngine(t, p, Options{Clock: clk})
	// Hold the clock until all four requests are queued, so they batch.
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			resp, b := post(t, srv, "/v1/chat/completions", `{"messages":[{"role":"user","content":"question number `+strings.Repeat("x", i+1)+` with some more words to fill"}]}`)
			if resp.StatusCode != 200 {
				errs <- &httpStatusError{resp.StatusCode, string(b)}
				return
			}
			errs <- nil
		}()
	}
	// The first request is in the step the clock holds; the rest queue.
	waitMetric(t, srv, `vllm:num_requests_waiting{model_name="qwen3-omni-7b"} 3`)
	done := make(chan struct{})
	go drive(clk, done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(done)
	m := get(t, srv, "/metrics")
	if strings.Contains(m, `vllm:num_preemptions_total{model_name="qwen3-omni-7b"} 0`) {
		t.Errorf("no preemption:\n%s", m)
	}
}

type httpStatusError struct {
	status int
	body   string
}

func (e *httpStatusError) Error() string { return http.StatusText(e.status) + ": " + e.body }

// Close mid-stream ends the stream with an error event, as vLLM does.
func TestCloseMidStream(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	e, srv := startEngine(t, mustProfile(t, "qwen3-omni-7b"), Options{Clock: clk})
	got := make(chan string, 1)
	go func() {
		resp, b := post(t, srv, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`)
		got <- resp.Header.Get("Content-Type") + "\n" + string(b)
	}()
	waitWaiter(clk)
	clk.AdvanceToNext() // first token: the stream starts
	waitWaiter(clk)     // the next step is under way
	e.Close()
	body := <-got
	if !strings.HasPrefix(body, "text/event-stream\n") || !strings.Contains(body, `"content":`) ||
		!strings.Contains(body, `data: {"error":{"message":"the engine is shutting down"`) || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Errorf("stream cut by Close:\n%s", body)
	}
}
