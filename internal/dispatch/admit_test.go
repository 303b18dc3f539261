package dispatch

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/admission"
	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/request"
)

// admitOne gives model name an admission queue of one place and a 1 s
// queue timeout.
func (h *harness) admitOne(name string) *admission.Queue {
	q := admission.New(config.Admission{QueueTimeout: config.Duration(time.Second), Limit: config.LimitBounds{Initial: 1, Min: 1, Max: 1}, MaxQueue: 4}, h.clk)
	for _, m := range h.core.Snapshot().Models {
		if m.Name == name {
			m.Admission = q
		}
	}
	return q
}

// hold starts a request and keeps its answer (and its place) until the
// returned function ends it.
func (h *harness) hold(t *testing.T, body string) func() {
	t.Helper()
	var req request.Request
	if err := request.Parse(request.Chat, []byte(body), &req); err != nil {
		t.Fatal(err)
	}
	call := &Call{Req: &req, Body: []byte(body)}
	a, err := h.core.Do(context.Background(), call)
	if err != nil {
		t.Fatal(err)
	}
	return func() { a.Resp.Body.Close(); h.core.Done(call, a, 200, nil) }
}

// waitQueued polls until q has n waiters.
func waitQueued(t *testing.T, q *admission.Queue, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if s := q.Status(); s.Queued[admission.Interactive]+s.Queued[admission.Batch] == n {
			return
		}
	}
	t.Fatalf("%d waiters never queued", n)
}

// TestAdmissionQueueTimeout: a request that finds its model's places
// taken waits; past the queue timeout it falls back, and a model with no
// fallback answers 503 overloaded with a Retry-After.
func TestAdmissionQueueTimeout(t *testing.T) {
	h := newHarness(t, nil)
	q := h.admitOne("small")
	release := h.hold(t, `{"model":"small","messages":[{"role":"user","content":"hi"}]}`)
	done := make(chan error, 1)
	go func() {
		_, err := h.do(t, `{"model":"small","messages":[{"role":"user","content":"hi"}]}`)
		done <- err
	}()
	waitQueued(t, q, 1)
	h.clk.Advance(time.Second)
	err := <-done
	e := apierror.From(err)
	if e.Status != http.StatusServiceUnavailable || e.Code != admission.CodeOverloaded || e.RetryAfter < time.Second {
		t.Errorf("past the queue timeout: %d %s, Retry-After %v; want 503 overloaded with a Retry-After", e.Status, e.Code, e.RetryAfter)
	}
	release()

	// A place freed in time: the waiter is served.
	release = h.hold(t, `{"model":"small","messages":[{"role":"user","content":"hi"}]}`)
	go func() {
		_, err := h.do(t, `{"model":"small","messages":[{"role":"user","content":"hi"}]}`)
		done <- err
	}()
	waitQueued(t, q, 1)
	release()
	if err := <-done; err != nil {
		t.Errorf("a waiter whose place freed: %v", err)
	}
}

// TestInFlightTokens: a deployment counts the tokens its requests may
// hold (prompt and max_tokens) while they run, and none after.
func TestInFlightTokens(t *testing.T) {
	h := newHarness(t, nil)
	release := h.hold(t, `{"model":"small","max_tokens":40,"messages":[{"role":"user","content":"twelve chars"}]}`)
	d := h.core.Snapshot().Models[1].Pool[0]
	if n := d.InFlightTokens(); n != 12/4+40 {
		t.Errorf("in flight: %d tokens, want 43 (12 characters of prompt, 40 to generate)", n)
	}
	release()
	if n, r := d.InFlightTokens(), d.InFlight(); n != 0 || r != 0 {
		t.Errorf("after the answer: %d tokens, %d requests in flight", n, r)
	}
}

func TestAdmissionFallsBack(t *testing.T) {
	h := newHarness(t, nil)
	q := h.admitOne("big")
	release := h.hold(t, chat)
	defer release()
	type result struct {
		a   *Answer
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := h.do(t, chat)
		done <- result{a, err}
	}()
	waitQueued(t, q, 1)
	h.clk.Advance(time.Second)
	r := <-done
	if r.err != nil || r.a.Model.Name != "small" || r.a.FallbackReason != "503" {
		t.Fatalf("a request the big tier could not admit: %+v, %v; want the fallback's answer, reason 503", r.a, r.err)
	}
}

func TestAdmissionPriorityHeader(t *testing.T) {
	h := newHarness(t, nil)
	h.admitOne("small")
	var req request.Request
	body := `{"model":"small","messages":[{"role":"user","content":"hi"}]}`
	request.Parse(request.Chat, []byte(body), &req)
	call := &Call{Req: &req, Body: []byte(body), Header: http.Header{HeaderPriority: {"urgent"}}}
	_, err := h.core.Do(context.Background(), call)
	h.core.Done(call, nil, apierror.From(err).Status, nil)
	e := apierror.From(err)
	if e.Status != 400 || e.Param != HeaderPriority || !strings.Contains(e.Message, "urgent") {
		t.Errorf("a bad priority: %d param %q %q; want 400 naming the header", e.Status, e.Param, e.Message)
	}
}

// TestAdmissionDeadline: the wait never outlasts the client's deadline.
func TestAdmissionDeadline(t *testing.T) {
	h := newHarness(t, nil)
	h.admitOne("small")
	release := h.hold(t, `{"model":"small","messages":[{"role":"user","content":"hi"}]}`)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := h.doCtx(t, ctx, `{"model":"small","messages":[{"role":"user","content":"hi"}]}`)
	if e := apierror.From(err); e.Status != http.StatusGatewayTimeout {
		t.Errorf("deadline passed in the queue: %d %s, want 504", e.Status, e.Code)
	}
}

func TestEngineQueued(t *testing.T) {
	now := time.Unix(100, 0)
	tests := []struct {
		name string
		m    *balance.EngineMetrics
		want bool
	}{
		{"no scrape: unknown, so maybe", nil, true},
		{"stale scrape", &balance.EngineMetrics{At: now.Add(-time.Minute)}, true},
		{"idle", &balance.EngineMetrics{At: now, Running: 3}, false},
		{"waiting for its next step, room in the batch", &balance.EngineMetrics{At: now, Running: 15, Waiting: 1}, false},
		{"waiting, batch full", &balance.EngineMetrics{At: now, Running: 16, Waiting: 2}, true},
		{"waiting, KV cache full", &balance.EngineMetrics{At: now, Running: 4, Waiting: 2, KVUsage: 0.95, HasKV: true}, true},
	}
	for _, tt := range tests {
		d := balance.NewDeployment(config.Deployment{Name: "d", MaxNumSeqs: 16}, nil, new(balance.State))
		if tt.m != nil {
			d.Engine.Store(tt.m)
		}
		if got := engineQueued(d, now); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
