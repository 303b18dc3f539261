package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/request"
	"github.com/omnigate/omnigate/internal/resilience"
	"github.com/omnigate/omnigate/internal/router"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// fakeBackend answers from a script, one result per call (the last one
// repeats), and records what it was sent.
type fakeBackend struct {
	mu     sync.Mutex
	script []func() (*http.Response, error)
	sent   []string // bodies, with the model span spliced as a real backend would not: as sent
}

func (f *fakeBackend) Do(ctx context.Context, r *backend.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, string(r.Body))
	step := f.script[min(len(f.sent), len(f.script))-1]
	return step()
}

func (f *fakeBackend) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

func ok() (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"ok":true}`))}, nil
}

func fails(err error) func() (*http.Response, error) {
	return func() (*http.Response, error) { return nil, err }
}

var (
	errDial    = &apierror.Error{Status: 502, Type: apierror.TypeServer, Code: "upstream_unavailable", Err: &backend.DialError{Err: errors.New("connection refused")}}
	errTimeout = &apierror.Error{Status: 504, Type: apierror.TypeTimeout, Code: "upstream_timeout", Err: &backend.TimeoutError{Phase: backend.PhaseFirstToken, Limit: time.Second}}
	err503     = &apierror.Error{Status: 503, Type: apierror.TypeUnavailable, Upstream: true, Message: "busy"}
	err400     = &apierror.Error{Status: 400, Type: apierror.TypeInvalidRequest, Upstream: true, Message: "bad"}
	errLocal   = &apierror.Error{Status: 503, Code: "gateway_overloaded", Err: &backend.LocalError{Err: errors.New("too many open files")}}
)

// harness is a core over two models, "big" (deployments b1, b2; falls
// back to "small") and "small" (s1), on a fake clock, with a picker that
// always tries the pool in order.
type harness struct {
	core     *Core
	clk      *clock.Fake
	backends map[string]*fakeBackend
	registry *balance.Registry
	metrics  *telemetry.Metrics
	deadline time.Duration // > 0: each call's, from now (real time)
}

// inOrder picks the first untried deployment that passes the filters, so
// tests know which one is tried next.
type inOrder struct{}

func (inOrder) Pick(c *balance.Choice, pool []*balance.Deployment) int {
	for i, d := range pool {
		if !c.Tried.Has(i) && d.Breaker.Ready(c.Now) {
			return i
		}
	}
	return -1
}

func testConfig() *config.Config {
	cfg := &config.Config{
		Models: []config.Model{
			// Attempts as many as deployments: each is tried once, with no
			// backoff round (TestRetryRounds covers those).
			{Name: "big", Limits: config.Limits{MaxTokens: 4096, OnViolation: "clamp"}, Retry: config.Retry{Attempts: 2},
				Deployments: []config.Deployment{{Name: "b1", Kind: "openai", URL: "http://b1/v1"}, {Name: "b2", Kind: "openai", URL: "http://b2/v1"}}},
			{Name: "small", ContextWindow: 100, Limits: config.Limits{MaxTokens: 50}, Retry: config.Retry{Attempts: 1},
				Deployments: []config.Deployment{{Name: "s1", Kind: "openai", URL: "http://s1/v1"}}},
		},
		Routing: config.Routing{Fallbacks: map[string][]config.Fallback{"big": {{Model: "small"}}}},
	}
	cfg.ApplyDefaults()
	return cfg
}

func newHarness(t *testing.T, scripts map[string][]func() (*http.Response, error)) *harness {
	t.Helper()
	h := &harness{clk: clock.NewFake(time.Unix(1_000, 0)), backends: map[string]*fakeBackend{},
		registry: &balance.Registry{}, metrics: telemetry.New()}
	h.core = New(h.snapshot(t, testConfig(), scripts), Options{Metrics: h.metrics, Clock: h.clk, Picker: inOrder{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return h
}

func (h *harness) snapshot(t *testing.T, cfg *config.Config, scripts map[string][]func() (*http.Response, error)) *Snapshot {
	t.Helper()
	cat, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(cat, cfg.Routing)
	if err != nil {
		t.Fatal(err)
	}
	snap := &Snapshot{Catalog: cat, Router: rt}
	for _, cm := range cat.Models() {
		m := &Model{Model: cm, Metrics: h.metrics.Model(cm.Name)}
		for _, d := range cm.Deployments {
			script := scripts[d.Name]
			if script == nil {
				script = []func() (*http.Response, error){ok}
			}
			fb := &fakeBackend{script: script}
			h.backends[d.Name] = fb
			m.Pool = append(m.Pool, &balance.Deployment{Config: d, Backend: fb, State: h.registry.State(balance.Key(cm.Name, d.Name))})
		}
		snap.Models = append(snap.Models, m)
	}
	return snap
}

// do runs one request through the core and ends it as a relay would.
func (h *harness) do(t *testing.T, body string) (*Answer, error) {
	t.Helper()
	ctx := context.Background()
	return h.doCtx(t, ctx, body)
}

func (h *harness) doCtx(t *testing.T, ctx context.Context, body string) (*Answer, error) {
	t.Helper()
	var req request.Request
	if err := request.Parse(request.Chat, []byte(body), &req); err != nil {
		t.Fatal(err)
	}
	call := &Call{Req: &req, Body: []byte(body), RequestID: "t"}
	if h.deadline > 0 {
		call.Deadline = time.Now().Add(h.deadline)
	}
	a, err := h.core.Do(ctx, call)
	status := 200
	var seen *Answer // a goes back to the core at Done
	if err != nil {
		status = apierror.From(err).Status
	} else {
		a.Resp.Body.Close()
		seen = &Answer{Resp: a.Resp, Model: a.Model, Deployment: a.Deployment, Clamped: a.Clamped, FallbackReason: a.FallbackReason}
	}
	h.core.Done(call, a, status, nil)
	return seen, err
}

const chat = `{"model":"big","messages":[{"role":"user","content":"hi"}]}`

func TestDefaultsAndClampsReachTheBackend(t *testing.T) {
	h := newHarness(t, nil)
	a, err := h.do(t, chat)
	if err != nil {
		t.Fatal(err)
	}
	if a.Model.Name != "big" || a.Deployment.Config.Name != "b1" || a.Clamped != "" {
		t.Errorf("answer from %s/%s, clamped %q", a.Model.Name, a.Deployment.Config.Name, a.Clamped)
	}
	a, err = h.do(t, `{"model":"big","messages":[{"role":"user","content":"hi"}],"max_tokens":9000,"temperature":0.5}`)
	if err != nil {
		t.Fatal(err)
	}
	if a.Clamped != "max_tokens=4096" {
		t.Errorf("Clamped = %q", a.Clamped)
	}
	a, err = h.do(t, `{"model":"big","max_tokens":null,"messages":[{"role":"user","content":"hi"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"max_tokens":4096,"model":"big","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"big","messages":[{"role":"user","content":"hi"}],"max_tokens":4096,"temperature":0.5}`,
	}
	got := h.backends["b1"].sent
	if diff := cmp.Diff(want, got[:2]); diff != "" {
		t.Errorf("bodies sent (-want +got):\n%s", diff)
	}
	// A null limit is replaced where it stands: the engine never sees two.
	var m map[string]any
	if err := json.Unmarshal([]byte(got[2]), &m); err != nil || m["max_tokens"] != 4096.0 || strings.Count(got[2], "max_tokens") != 1 {
		t.Errorf("null max_tokens: sent %s", got[2])
	}
}

func TestRetriesAnotherDeploymentThenOpensTheBreaker(t *testing.T) {
	h := newHarness(t, map[string][]func() (*http.Response, error){"b1": {fails(errDial)}})
	for i := range balance.FailuresToOpen {
		a, err := h.do(t, chat)
		if err != nil || a.Deployment.Config.Name != "b2" {
			t.Fatalf("request %d: %v, want an answer from b2 after b1 failed", i, err)
		}
	}
	if n := h.backends["b1"].calls(); n != balance.FailuresToOpen {
		t.Fatalf("b1 called %d times", n)
	}
	// b1's breaker is open: it is not asked until the cool-down ends.
	h.do(t, chat)
	if n := h.backends["b1"].calls(); n != balance.FailuresToOpen {
		t.Fatalf("b1 asked while its breaker is open (%d calls)", n)
	}
	h.clk.Advance(balance.Cooldown)
	h.backends["b1"].script = []func() (*http.Response, error){ok}
	a, err := h.do(t, chat)
	if err != nil || a.Deployment.Config.Name != "b1" {
		t.Fatalf("after the cool-down: %v from %v, want b1's probe to answer", err, a)
	}
	if st, _ := a.Deployment.Breaker.State(h.clk.Now()); st != balance.Closed {
		t.Errorf("breaker %v after a successful probe", st)
	}
}

// TestFailuresThatCountAgainstADeployment: timeouts, upstream 503s and cut
// streams open the breaker; client errors, 429s, the client leaving and the
// gateway's own limits do not.
func TestFailuresThatCountAgainstADeployment(t *testing.T) {
	tooMany := &apierror.Error{Status: 429, Type: apierror.TypeRateLimit, Upstream: true}
	tests := []struct {
		name  string
		err   error
		opens bool
		retry bool
	}{
		{"dial", errDial, true, true},
		{"first-token timeout", errTimeout, true, true},
		{"upstream 503", err503, true, true},
		{"upstream 500", &apierror.Error{Status: 500, Upstream: true}, true, true},
		{"upstream 501", &apierror.Error{Status: 501, Upstream: true}, true, false},
		{"connection reset", &apierror.Error{Status: 502, Err: &backend.ConnError{Err: errors.New("reset")}}, true, true},
		{"misconfigured", &apierror.Error{Status: 502, Code: "deployment_misconfigured", Err: &backend.MisconfiguredError{Deployment: "b1", Status: 401}}, true, true},
		{"upstream 400", err400, false, false},
		{"upstream 429", tooMany, false, true},
		{"gateway out of files", errLocal, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, map[string][]func() (*http.Response, error){"b1": {fails(tt.err)}})
			for range balance.FailuresToOpen {
				h.do(t, chat)
			}
			b1 := h.core.Snapshot().Models[0].Pool[0]
			st, _ := b1.Breaker.State(h.clk.Now())
			if (st == balance.Open) != tt.opens {
				t.Errorf("breaker %v after %d × %v", st, balance.FailuresToOpen, tt.err)
			}
			if got := h.backends["b2"].calls() > 0; got != tt.retry {
				t.Errorf("retried on b2: %v, want %v", got, tt.retry)
			}
			if b1.InFlight() != 0 || h.core.Snapshot().Models[0].Pool[1].InFlight() != 0 {
				t.Error("in-flight count leaked")
			}
		})
	}
}

func TestCutStreamCountsAgainstTheDeployment(t *testing.T) {
	h := newHarness(t, nil)
	cut := &apierror.Error{Status: 504, Err: &backend.TimeoutError{Phase: backend.PhaseIdle, Limit: time.Second}}
	for range balance.FailuresToOpen {
		var req request.Request
		body := `{"model":"big","stream":true,"messages":[{"role":"user","content":"hi"}]}`
		if err := request.Parse(request.Chat, []byte(body), &req); err != nil {
			t.Fatal(err)
		}
		call := &Call{Req: &req, Body: []byte(body)}
		a, err := h.core.Do(context.Background(), call)
		if err != nil || a.Deployment.Config.Name != "b1" {
			t.Fatalf("Do: %v", err)
		}
		h.core.Done(call, a, http.StatusBadGateway, cut)
	}
	if st, _ := h.core.Snapshot().Models[0].Pool[0].Breaker.State(h.clk.Now()); st != balance.Open {
		t.Errorf("breaker %v after three cut streams", st)
	}
	// A client that leaves mid-stream says nothing about the deployment.
	h2 := newHarness(t, nil)
	for range balance.FailuresToOpen {
		var req request.Request
		if err := request.Parse(request.Chat, []byte(chat), &req); err != nil {
			t.Fatal(err)
		}
		call := &Call{Req: &req, Body: []byte(chat)}
		a, _ := h2.core.Do(context.Background(), call)
		h2.core.Done(call, a, apierror.StatusClientClosed, nil)
	}
	if st, _ := h2.core.Snapshot().Models[0].Pool[0].Breaker.State(h2.clk.Now()); st != balance.Closed {
		t.Errorf("breaker %v after clients left", st)
	}
}

func TestFallsBackToTheNextModel(t *testing.T) {
	h := newHarness(t, map[string][]func() (*http.Response, error){"b1": {fails(err503)}, "b2": {fails(errDial)}})
	a, err := h.do(t, chat)
	if err != nil || a.Model.Name != "small" {
		t.Fatalf("got %v, %v; want the fallback small to answer", a, err)
	}
	if a.FallbackReason != "unreachable" { // b2's dial error was big's last
		t.Errorf("FallbackReason %q", a.FallbackReason)
	}
	// The fallback applies its own limits: its ceiling is the default.
	if got := h.backends["s1"].sent[0]; !strings.HasPrefix(got, `{"max_tokens":50,`) {
		t.Errorf("fallback sent %s", got)
	}
	// A request the fallback cannot take (over its context window) is not
	// sent there; the first model's last error is the answer.
	long := `{"model":"big","messages":[{"role":"user","content":"` + strings.Repeat("word ", 400) + `"}]}`
	_, err = h.do(t, long)
	if e := apierror.From(err); e.Status != 502 {
		t.Errorf("long prompt: %v, want b2's 502", err)
	}
	if n := h.backends["s1"].calls(); n != 1 {
		t.Errorf("small called %d times, want once", n)
	}
}

func TestNoRetryAfterAClientError(t *testing.T) {
	h := newHarness(t, map[string][]func() (*http.Response, error){"b1": {fails(err400)}})
	_, err := h.do(t, chat)
	if e := apierror.From(err); e.Status != 400 || e.Message != "bad" {
		t.Errorf("got %v, want the engine's 400", err)
	}
	if h.backends["b2"].calls()+h.backends["s1"].calls() != 0 {
		t.Error("a client error was retried")
	}
}

func TestClientGoneIsNeutral(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	canceled := &apierror.Error{Status: apierror.StatusClientClosed, Err: context.Canceled}
	h := newHarness(t, map[string][]func() (*http.Response, error){"b1": {fails(canceled)}})
	for range balance.FailuresToOpen + 1 {
		h.doCtx(t, ctx, chat)
	}
	if st, _ := h.core.Snapshot().Models[0].Pool[0].Breaker.State(h.clk.Now()); st != balance.Closed {
		t.Errorf("breaker %v: a client leaving counted against the deployment", st)
	}
	if h.backends["b2"].calls() != 0 {
		t.Error("retried for a client that left")
	}
}

func TestNoDeploymentSaysWhenToComeBack(t *testing.T) {
	h := newHarness(t, map[string][]func() (*http.Response, error){"s1": {fails(errDial)}})
	req := `{"model":"small","messages":[{"role":"user","content":"hi"}]}`
	for range balance.FailuresToOpen {
		h.do(t, req)
	}
	h.clk.Advance(2 * time.Second)
	_, err := h.do(t, req)
	e := apierror.From(err)
	if e.Status != 503 || e.Code != "no_deployment" || e.RetryAfter != balance.Cooldown-2*time.Second {
		t.Errorf("got %d %s, Retry-After %v", e.Status, e.Code, e.RetryAfter)
	}
}

func TestUnknownModelAndUnservedEndpoint(t *testing.T) {
	h := newHarness(t, nil)
	var req request.Request
	body := `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`
	if err := request.Parse(request.Chat, []byte(body), &req); err != nil {
		t.Fatal(err)
	}
	_, err := h.core.Do(context.Background(), &Call{Req: &req, Body: []byte(body)})
	if e := apierror.From(err); e.Status != 404 || e.Param != "model" {
		t.Errorf("unknown model: %v", err)
	}
	body = `{"model":"big","input":"hi"}`
	if err := request.Parse(request.Embeddings, []byte(body), &req); err != nil {
		t.Fatal(err)
	}
	_, err = h.core.Do(context.Background(), &Call{Req: &req, Body: []byte(body)})
	if e := apierror.From(err); e.Status != 400 || e.Param != "model" || !strings.Contains(e.Message, "/v1/embeddings") {
		t.Errorf("unserved endpoint: %v", err)
	}
}

// TestSwapKeepsLiveState: a new snapshot with the same deployments sees
// the breakers and counts of the old one.
func TestSwapKeepsLiveState(t *testing.T) {
	h := newHarness(t, map[string][]func() (*http.Response, error){"b1": {fails(errDial)}})
	for range balance.FailuresToOpen {
		h.do(t, chat)
	}
	old := h.core.Swap(h.snapshot(t, testConfig(), nil))
	if old == h.core.Snapshot() {
		t.Fatal("Swap did not install the new snapshot")
	}
	h.do(t, chat)
	if n := h.backends["b1"].calls(); n != 0 {
		t.Errorf("the new snapshot's b1 was asked %d times while its breaker is open", n)
	}
}

func BenchmarkDo(b *testing.B) {
	h := &harness{clk: clock.NewFake(time.Unix(1, 0)), backends: map[string]*fakeBackend{}, registry: &balance.Registry{}, metrics: telemetry.New()}
	t := &testing.T{}
	h.core = New(h.snapshot(t, testConfig(), nil), Options{Metrics: h.metrics, Clock: clock.Real{}})
	body := []byte(`{"model":"big","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)
	var req request.Request
	if err := request.Parse(request.Chat, body, &req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		call := Call{Req: &req, Body: body}
		a, err := h.core.Do(context.Background(), &call)
		if err != nil {
			b.Fatal(err)
		}
		h.core.Done(&call, a, 200, nil)
	}
}

// soloHarness is a core over one model "solo" with one deployment "s",
// retried per retry, with a budget of ratio and floor min.
func soloHarness(t *testing.T, retry config.Retry, ratio float64, min int, script ...func() (*http.Response, error)) *harness {
	t.Helper()
	cfg := &config.Config{Models: []config.Model{{Name: "solo", Retry: retry,
		Deployments: []config.Deployment{{Name: "s", Kind: "openai", URL: "http://s/v1"}}}}}
	cfg.ApplyDefaults()
	h := &harness{clk: clock.NewFake(time.Unix(1_000, 0)), backends: map[string]*fakeBackend{},
		registry: &balance.Registry{}, metrics: telemetry.New()}
	snap := h.snapshot(t, cfg, map[string][]func() (*http.Response, error){"s": script})
	snap.Models[0].Budget = resilience.NewBudget(ratio, min)
	h.core = New(snap, Options{Metrics: h.metrics, Clock: h.clk, Picker: inOrder{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return h
}

// driven runs one request while moving the fake clock past every wait.
func (h *harness) driven(t *testing.T, body string) (*Answer, error, time.Duration) {
	t.Helper()
	start := h.clk.Now()
	type result struct {
		a   *Answer
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := h.do(t, body)
		done <- result{a, err}
	}()
	for {
		select {
		case r := <-done:
			return r.a, r.err, h.clk.Now().Sub(start)
		case <-time.After(time.Millisecond):
			h.clk.AdvanceToNext()
		}
	}
}

const soloChat = `{"model":"solo","messages":[{"role":"user","content":"hi"}]}`

// TestRetryRounds: with one deployment, a retryable failure is tried again
// after a backoff, up to the attempts; a non-retryable one is not.
func TestRetryRounds(t *testing.T) {
	retry := config.Retry{Attempts: 3, Backoff: config.Duration(100 * time.Millisecond), MaxBackoff: config.Duration(time.Second)}
	h := soloHarness(t, retry, 1, 100, fails(err503), fails(errDial), ok)
	a, err, waited := h.driven(t, soloChat)
	if err != nil || a == nil {
		t.Fatalf("third attempt should answer: %v", err)
	}
	if n := h.backends["s"].calls(); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	if waited >= 100*time.Millisecond+200*time.Millisecond {
		t.Errorf("waited %v: more than the two backoffs' bounds (100 + 200 ms)", waited)
	}
	h = soloHarness(t, retry, 1, 100, fails(err503))
	if _, err, _ := h.driven(t, soloChat); apierror.From(err).Status != 503 {
		t.Errorf("after 3 attempts: %v, want the last 503", err)
	}
	if n := h.backends["s"].calls(); n != 3 {
		t.Errorf("%d attempts of a deployment that always fails, want 3", n)
	}
	h = soloHarness(t, retry, 1, 100, fails(err400))
	if _, err, _ := h.driven(t, soloChat); apierror.From(err).Status != 400 || h.backends["s"].calls() != 1 {
		t.Errorf("a client error was retried: %v, %d calls", err, h.backends["s"].calls())
	}
}

// TestRetryAfter: a 429 is tried again after the engine's Retry-After when
// it is within max_backoff and the client's deadline; a longer one goes
// back to the client at once, with its Retry-After.
func TestRetryAfter(t *testing.T) {
	retry := config.Retry{Attempts: 3, Backoff: config.Duration(time.Millisecond), MaxBackoff: config.Duration(2 * time.Second)}
	busy := func(after time.Duration) error {
		return &apierror.Error{Status: 429, Type: apierror.TypeRateLimit, Upstream: true, RetryAfter: after}
	}
	tests := []struct {
		name     string
		after    time.Duration
		deadline time.Duration // 0: none
		calls    int
		answered bool
		waited   time.Duration // at least
	}{
		{"short: waited out", time.Second, 0, 2, true, time.Second},
		{"past max_backoff: to the client", 5 * time.Second, 0, 1, false, 0},
		{"past the deadline: to the client", time.Second, 500 * time.Millisecond, 1, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := soloHarness(t, retry, 1, 100, fails(busy(tt.after)), ok)
			h.deadline = tt.deadline
			a, err, waited := h.driven(t, soloChat)
			if got := a != nil; got != tt.answered {
				t.Fatalf("answered %v, want %v (err %v)", got, tt.answered, err)
			}
			if !tt.answered && apierror.From(err).RetryAfter != tt.after {
				t.Errorf("err %v: want the engine's 429 with its Retry-After %v", err, tt.after)
			}
			if n := h.backends["s"].calls(); n != tt.calls {
				t.Errorf("%d attempts, want %d", n, tt.calls)
			}
			if waited < tt.waited {
				t.Errorf("waited %v, want at least %v", waited, tt.waited)
			}
		})
	}
}

// TestRetryBudget: a model failing every request gets at most about
// (1 + ratio) times the clients' requests, whatever the attempts.
func TestRetryBudget(t *testing.T) {
	retry := config.Retry{Attempts: 5, Backoff: config.Duration(time.Millisecond), MaxBackoff: config.Duration(time.Millisecond)}
	h := soloHarness(t, retry, 0.2, 2, fails(err503))
	const requests = 50
	for range requests {
		h.driven(t, soloChat)
		// The breaker would stop the flood by itself: close it again so
		// the budget alone is what is measured.
		h.core.Snapshot().Models[0].Pool[0].Breaker = balance.Breaker{}
	}
	calls := h.backends["s"].calls()
	if max := requests + requests*2/10 + 2; calls > max {
		t.Errorf("%d upstream attempts for %d requests, want at most %d (budget 20 %% + 2)", calls, requests, max)
	}
	if calls <= requests {
		t.Errorf("%d attempts for %d requests: the budget allowed no retry at all", calls, requests)
	}
}

// classHarness is newHarness with the fallbacks replaced.
func classHarness(t *testing.T, fallbacks map[string][]config.Fallback, scripts map[string][]func() (*http.Response, error)) *harness {
	t.Helper()
	cfg := testConfig()
	cfg.Routing.Fallbacks = fallbacks
	h := &harness{clk: clock.NewFake(time.Unix(1_000, 0)), backends: map[string]*fakeBackend{},
		registry: &balance.Registry{}, metrics: telemetry.New()}
	h.core = New(h.snapshot(t, cfg, scripts), Options{Metrics: h.metrics, Clock: h.clk, Picker: inOrder{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return h
}

var errOOM = &apierror.Error{Status: 503, Type: apierror.TypeUnavailable, Code: backend.CodeOutOfMemory, Upstream: true,
	Err: &backend.OverloadError{Cause: errors.New("CUDA out of memory")}}

// TestFallbackByClass: a fallback listed for some error classes is tried
// for those only.
func TestFallbackByClass(t *testing.T) {
	long := `{"model":"small","messages":[{"role":"user","content":"` + strings.Repeat("many words ", 200) + `"}]}`
	smallChat := `{"model":"small","messages":[{"role":"user","content":"hi"}]}`
	on := func(from, to string, classes ...string) map[string][]config.Fallback {
		return map[string][]config.Fallback{from: {{Model: to, On: classes}}}
	}
	tests := []struct {
		name       string
		fallbacks  map[string][]config.Fallback
		scripts    map[string][]func() (*http.Response, error)
		body       string
		answeredBy string // "": the client gets an error
		reason     string
	}{
		{"a long prompt moves to the larger window", on("small", "big", "context_length"), nil, long, "big", "context_length"},
		{"not when unavailable", on("small", "big", "context_length"), map[string][]func() (*http.Response, error){"s1": {fails(err503)}}, smallChat, "", ""},
		{"overloaded", on("big", "small", "overloaded"), map[string][]func() (*http.Response, error){"b1": {fails(errOOM)}, "b2": {fails(errOOM)}}, chat, "small", "out_of_memory"},
		{"not on a timeout", on("big", "small", "overloaded"), map[string][]func() (*http.Response, error){"b1": {fails(errTimeout)}, "b2": {fails(errTimeout)}}, chat, "", ""},
		{"every class when none listed", on("big", "small"), map[string][]func() (*http.Response, error){"b1": {fails(errTimeout)}, "b2": {fails(errTimeout)}}, chat, "small", "504"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := classHarness(t, tt.fallbacks, tt.scripts)
			a, err := h.do(t, tt.body)
			if tt.answeredBy == "" {
				if err == nil {
					t.Fatalf("answered by %s, want the error", a.Model.Name)
				}
				return
			}
			if err != nil {
				t.Fatalf("err %v, want an answer from %s", err, tt.answeredBy)
			}
			if a.Model.Name != tt.answeredBy || a.FallbackReason != tt.reason {
				t.Errorf("answered by %s (reason %q), want %s (reason %q)", a.Model.Name, a.FallbackReason, tt.answeredBy, tt.reason)
			}
		})
	}
}

// TestShrinkOnOutOfMemory: a model that clamps, whose engines all ran out
// of memory and that no fallback takes over from, is tried once more with
// half the max_tokens, and the answer says so.
func TestShrinkOnOutOfMemory(t *testing.T) {
	h := classHarness(t, nil, map[string][]func() (*http.Response, error){"b1": {fails(errOOM), ok}, "b2": {fails(errOOM)}})
	a, err := h.do(t, chat)
	if err != nil {
		t.Fatalf("err %v, want the shrunk answer", err)
	}
	if want := "max_tokens=2048 (out_of_memory)"; a.Clamped != want {
		t.Errorf("X-Omnigate-Clamped %q, want %q", a.Clamped, want)
	}
	b1 := h.backends["b1"]
	if len(b1.sent) != 2 || !strings.Contains(b1.sent[1], `"max_tokens":2048`) || !strings.Contains(b1.sent[0], `"max_tokens":4096`) {
		t.Errorf("b1 was sent %q", b1.sent)
	}
	// A model that rejects rather than clamps is not shrunk.
	h = classHarness(t, nil, map[string][]func() (*http.Response, error){"s1": {fails(errOOM), ok}})
	if _, err := h.do(t, `{"model":"small","messages":[{"role":"user","content":"hi"}]}`); apierror.From(err).Code != backend.CodeOutOfMemory {
		t.Errorf("err %v, want the engine's out-of-memory error", err)
	}
	if n := h.backends["s1"].calls(); n != 1 {
		t.Errorf("%d attempts on a model that rejects, want 1", n)
	}
}

// TestBusyDeploymentIsLeftAlone: a deployment that answered 429 with a
// Retry-After gets no request until then; the others take them.
func TestBusyDeploymentIsLeftAlone(t *testing.T) {
	busy := &apierror.Error{Status: 429, Type: apierror.TypeRateLimit, Upstream: true, RetryAfter: 2 * time.Second}
	h := newHarness(t, map[string][]func() (*http.Response, error){"b1": {fails(busy)}})
	h.core.picker = &balance.Picker{} // the real filters, NotBusy among them
	for range 20 {
		if _, err := h.do(t, chat); err != nil {
			t.Fatalf("a request failed with a deployment free: %v", err)
		}
	}
	if n := h.backends["b1"].calls(); n > 1 {
		t.Errorf("the busy deployment got %d requests in its Retry-After, want at most the one that made it busy", n)
	}
	h.clk.Advance(2 * time.Second)
	for range 20 {
		h.do(t, chat)
	}
	if n := h.backends["b1"].calls(); n < 2 {
		t.Errorf("the deployment got no request after its Retry-After (%d in all)", n)
	}
}

// TestEveryDeploymentBusy: with every deployment busy after its 429, the
// client hears that the model is rate limited (not down), with when to
// come back, a rate_limited fallback takes over, and rounds that could
// send nothing count no retry.
func TestEveryDeploymentBusy(t *testing.T) {
	busy := &apierror.Error{Status: 429, Type: apierror.TypeRateLimit, Upstream: true, RetryAfter: 30 * time.Second}
	scripts := map[string][]func() (*http.Response, error){"b1": {fails(busy)}, "b2": {fails(busy)}}
	h := classHarness(t, nil, scripts)
	h.core.picker = &balance.Picker{}
	h.do(t, chat) // both answer 429 and turn busy
	_, err := h.do(t, chat)
	if e := apierror.From(err); e.Status != 429 || e.Code != "rate_limited" || e.RetryAfter <= 0 {
		t.Errorf("every deployment busy: %v (status %d, Retry-After %v), want 429 rate_limited with a Retry-After", err, e.Status, e.RetryAfter)
	}
	if n := h.backends["b1"].calls() + h.backends["b2"].calls(); n != 2 {
		t.Errorf("%d attempts on busy deployments, want the 2 that made them busy", n)
	}

	h = classHarness(t, map[string][]config.Fallback{"big": {{Model: "small", On: []string{"rate_limited"}}}}, scripts)
	h.core.picker = &balance.Picker{}
	for range 3 {
		if a, err := h.do(t, chat); err != nil || a.Model.Name != "small" {
			t.Fatalf("answer %+v, err %v: want the rate_limited fallback", a, err)
		}
	}
}
