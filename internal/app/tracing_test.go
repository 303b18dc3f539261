package app

import (
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
	"github.com/omnigate/omnigate/internal/telemetry/tracing"
	"github.com/omnigate/omnigate/internal/telemetry/tracing/otlptest"
)

// The client's trace context in these tests.
const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
	clientParent  = "00-" + clientTraceID + "-" + clientSpanID + "-01"
	clientState   = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

// tracedGateway serves cfg with tracing on, its spans recorded in memory
// as they end.
func tracedGateway(t *testing.T, cfg *config.Config) (*httptest.Server, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tracingOptions = tracing.Options{Processor: rec}
	defer func() { tracingOptions = tracing.Options{} }()
	cfg.Tracing.Enabled = true
	_, srv := newTestGateway(t, cfg)
	return srv, rec
}

// seenHeaders is what an upstream was sent of the trace context.
type seenHeaders struct{ Parent, State string }

// traceUpstream serves h and records the trace context of each request.
type traceUpstream struct {
	mu   sync.Mutex
	seen []seenHeaders
}

func (u *traceUpstream) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, seenHeaders{r.Header.Get("Traceparent"), r.Header.Get("Tracestate")})
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (u *traceUpstream) got() []seenHeaders {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// postTraced sends a chat body to the gateway with header h, reads the answer
// whole, and checks it is a 200.
func postTraced(t *testing.T, gw *httptest.Server, body string, h http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", gw.URL+"/v1/chat/completions", strings.NewReader(body))
	if h != nil {
		req.Header = h.Clone()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
}

// spansOf waits until rec holds a request span and n spans in all (the
// request span ends at Done, after the client has its answer; a hedge's
// loser, when it comes back), then returns them by start time.
func spansOf(t *testing.T, rec *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ended := rec.Ended()
		if len(ended) >= n && slices.ContainsFunc(ended, func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind() == trace.SpanKindServer }) {
			slices.SortStableFunc(ended, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
			return ended
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spans ended, want %d with the request's", len(ended), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// spanView is what the tests compare of a span.
type spanView struct {
	Name   string
	Kind   trace.SpanKind
	Parent string // the parent's name among the spans; "" for none of them
	Attrs  map[string]string
	Error  bool
}

// views renders spans with the attributes of keys.
func views(spans []sdktrace.ReadOnlySpan, keys ...string) []spanView {
	names := map[trace.SpanID]string{}
	for _, s := range spans {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	var out []spanView
	for _, s := range spans {
		v := spanView{Name: s.Name(), Kind: s.SpanKind(), Parent: names[s.Parent().SpanID()], Attrs: map[string]string{},
			Error: s.Status().Code == codes.Error}
		for _, kv := range s.Attributes() {
			if slices.Contains(keys, string(kv.Key)) {
				v.Attrs[string(kv.Key)] = kv.Value.Emit()
			}
		}
		out = append(out, v)
	}
	return out
}

// TestTracingRequest: a request through the gateway is a server span in
// the client's trace, named and described by the GenAI conventions, with
// the upstream attempt as its child (no admission span: it did not wait); the
// upstream is sent the attempt span's context and the client's
// tracestate.
func TestTracingRequest(t *testing.T) {
	tests := []struct {
		name     string
		upstream http.Handler
		body     string
		usage    map[string]string
	}{
		{"chat", jsonUpstream(), benchRequest, map[string]string{"gen_ai.usage.input_tokens": "9", "gen_ai.usage.output_tokens": "7"}},
		{"stream", streamUpstream(), benchStreamRequest, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var up traceUpstream
			srv := httptest.NewServer(up.wrap(tt.upstream))
			defer srv.Close()
			gw, rec := tracedGateway(t, &config.Config{Models: []config.Model{{Name: "m",
				Deployments: []config.Deployment{{Name: "up", URL: srv.URL + "/v1", UpstreamModel: "Qwen/Qwen2.5-Omni-7B"}}}}})
			postTraced(t, gw, tt.body, http.Header{"Traceparent": {clientParent}, "Tracestate": {clientState}})

			spans := spansOf(t, rec, 2)
			stream := "false"
			if tt.name == "stream" {
				stream = "true"
			}
			reqAttrs := map[string]string{"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.request.max_tokens": "64",
				"gen_ai.request.temperature": "0.7", "gen_ai.response.model": "m", "http.response.status_code": "200",
				"omnigate.model": "m", "omnigate.deployment": "up", "omnigate.attempts": "1", "omnigate.stream": stream}
			for k, v := range tt.usage {
				reqAttrs[k] = v
			}
			want := []spanView{
				{Name: "chat m", Kind: trace.SpanKindServer, Attrs: reqAttrs},
				{Name: "attempt up", Kind: trace.SpanKindClient, Parent: "chat m", Attrs: map[string]string{
					"omnigate.model": "m", "omnigate.deployment": "up", "omnigate.attempt": "1", "omnigate.attempt.kind": "first",
					"omnigate.outcome": "200", "http.response.status_code": "200"}},
			}
			keys := []string{"gen_ai.operation.name", "gen_ai.request.model", "gen_ai.request.max_tokens", "gen_ai.request.temperature",
				"gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "http.response.status_code",
				"omnigate.model", "omnigate.deployment", "omnigate.attempts", "omnigate.attempt", "omnigate.attempt.kind",
				"omnigate.outcome", "omnigate.stream", "omnigate.retries"}
			if diff := cmp.Diff(want, views(spans, keys...)); diff != "" {
				t.Errorf("spans (-want +got):\n%s", diff)
			}
			req, att := spans[0], spans[1]
			if req.SpanContext().TraceID().String() != clientTraceID || req.Parent().SpanID().String() != clientSpanID {
				t.Errorf("request span %s, parent %s: not in the client's trace", req.SpanContext().TraceID(), req.Parent().SpanID())
			}
			wantUp := []seenHeaders{{"00-" + clientTraceID + "-" + att.SpanContext().SpanID().String() + "-01", clientState}}
			if diff := cmp.Diff(wantUp, up.got()); diff != "" {
				t.Errorf("upstream saw (-want +got):\n%s", diff)
			}
		})
	}
}

// failing answers every request 503.
func failing() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"message":"loading","type":"server_error","code":503}}`)
	})
}

// attemptKeys are the attributes compared on attempt spans.
var attemptKeys = []string{"omnigate.deployment", "omnigate.attempt", "omnigate.attempt.kind", "omnigate.outcome",
	"http.response.status_code", "omnigate.attempts", "omnigate.retries", "omnigate.hedges", "omnigate.continuations"}

// TestTracingRetry: a deployment that fails and the one the request is
// retried on are two attempt spans, the failed one an error; each
// upstream was sent its own attempt's span as the parent.
func TestTracingRetry(t *testing.T) {
	var bad, good traceUpstream
	b := httptest.NewServer(bad.wrap(failing()))
	g := httptest.NewServer(good.wrap(jsonUpstream()))
	t.Cleanup(func() { b.Close(); g.Close() })
	gw, rec := tracedGateway(t, &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{
		{Name: "bad", URL: b.URL + "/v1", Weight: 1000}, // weighted so that the first attempt goes there
		{Name: "good", URL: g.URL + "/v1", Weight: 1}}}}})
	postTraced(t, gw, benchRequest, nil)

	spans := spansOf(t, rec, 3)
	want := []spanView{
		{Name: "chat m", Kind: trace.SpanKindServer, Attrs: map[string]string{"http.response.status_code": "200", "omnigate.deployment": "good",
			"omnigate.attempts": "2", "omnigate.retries": "1"}},
		{Name: "attempt bad", Kind: trace.SpanKindClient, Parent: "chat m", Error: true, Attrs: map[string]string{"omnigate.deployment": "bad",
			"omnigate.attempt": "1", "omnigate.attempt.kind": "first", "omnigate.outcome": "503", "http.response.status_code": "503"}},
		{Name: "attempt good", Kind: trace.SpanKindClient, Parent: "chat m", Attrs: map[string]string{"omnigate.deployment": "good",
			"omnigate.attempt": "2", "omnigate.attempt.kind": "retry", "omnigate.outcome": "200", "http.response.status_code": "200"}},
	}
	if diff := cmp.Diff(want, views(spans, attemptKeys...)); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	trace := spans[0].SpanContext().TraceID().String()
	for i, u := range []*traceUpstream{&bad, &good} {
		want := []seenHeaders{{Parent: "00-" + trace + "-" + spans[1+i].SpanContext().SpanID().String() + "-01"}}
		if diff := cmp.Diff(want, u.got()); diff != "" {
			t.Errorf("%s upstream saw (-want +got):\n%s", spans[1+i].Name(), diff)
		}
	}
}

// TestTracingHedge: a first attempt slower than hedge.after and its hedge
// are two attempt spans; the hedge answers, the first ends as the
// hedge's loser.
func TestTracingHedge(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select { // until the gateway cancels it
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	fast := httptest.NewServer(jsonUpstream())
	t.Cleanup(func() { fast.Close(); slow.Close() })
	gw, rec := tracedGateway(t, &config.Config{Models: []config.Model{{Name: "m", Hedge: config.Hedge{After: config.Duration(50 * time.Millisecond)},
		Deployments: []config.Deployment{
			{Name: "slow", URL: slow.URL + "/v1", Weight: 1000},
			{Name: "fast", URL: fast.URL + "/v1", Weight: 1}}}}})
	postTraced(t, gw, benchRequest, nil)

	spans := spansOf(t, rec, 3)
	want := []spanView{
		{Name: "chat m", Kind: trace.SpanKindServer, Attrs: map[string]string{"http.response.status_code": "200", "omnigate.deployment": "fast",
			"omnigate.attempts": "2", "omnigate.hedges": "1"}},
		{Name: "attempt slow", Kind: trace.SpanKindClient, Parent: "chat m", Attrs: map[string]string{"omnigate.deployment": "slow",
			"omnigate.attempt": "1", "omnigate.attempt.kind": "first", "omnigate.outcome": "hedge_lost"}},
		{Name: "attempt fast", Kind: trace.SpanKindClient, Parent: "chat m", Attrs: map[string]string{"omnigate.deployment": "fast",
			"omnigate.attempt": "2", "omnigate.attempt.kind": "hedge", "omnigate.outcome": "200", "http.response.status_code": "200"}},
	}
	if diff := cmp.Diff(want, views(spans, attemptKeys...)); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}

// TestTracingContinuation: a stream cut mid-answer and its continuation
// on another replica are two attempt spans, the cut one an error.
func TestTracingContinuation(t *testing.T) {
	cutter := simServer(t, sim.Faults{CutAfter: 2})
	whole := simServer(t, sim.Faults{})
	gw, rec := tracedGateway(t, &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{
		{Name: "cutter", URL: cutter.URL + "/v1", Dialect: "vllm", Weight: 1000},
		{Name: "whole", URL: whole.URL + "/v1", Dialect: "vllm", Weight: 1}}}}})
	postTraced(t, gw, `{"model":"m","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"Tell me about gateways"}]}`, nil)

	spans := spansOf(t, rec, 3)
	got := views(spans, attemptKeys...)
	if o := got[1].Attrs["omnigate.outcome"]; !strings.HasPrefix(o, "stream_") {
		t.Errorf("the cut attempt's outcome %q, want a stream_ one", o)
	}
	delete(got[1].Attrs, "omnigate.outcome")
	want := []spanView{
		{Name: "chat m", Kind: trace.SpanKindServer, Attrs: map[string]string{"http.response.status_code": "200", "omnigate.deployment": "whole",
			"omnigate.attempts": "2", "omnigate.continuations": "1"}},
		{Name: "attempt cutter", Kind: trace.SpanKindClient, Parent: "chat m", Error: true, Attrs: map[string]string{"omnigate.deployment": "cutter",
			"omnigate.attempt": "1", "omnigate.attempt.kind": "first", "http.response.status_code": "200"}},
		{Name: "attempt whole", Kind: trace.SpanKindClient, Parent: "chat m", Attrs: map[string]string{"omnigate.deployment": "whole",
			"omnigate.attempt": "2", "omnigate.attempt.kind": "continuation", "omnigate.outcome": "200", "http.response.status_code": "200"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}

// TestTracingQueued: a request that waits for an admission place has an
// admission span covering the wait.
func TestTracingQueued(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		jsonUpstream().ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	one := 1
	gw, rec := tracedGateway(t, &config.Config{Models: []config.Model{{Name: "m",
		Admission:   config.Admission{Limit: config.LimitBounds{Initial: one, Min: one, Max: one}},
		Deployments: []config.Deployment{{Name: "up", URL: slow.URL + "/v1"}}}}})
	done := make(chan struct{})
	go func() { postTraced(t, gw, benchRequest, nil); close(done) }()
	time.Sleep(50 * time.Millisecond) // the first holds the only place
	go func() { time.Sleep(100 * time.Millisecond); close(release) }()
	postTraced(t, gw, benchRequest, nil)
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for {
		var queued []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == "admission queue" {
				queued = append(queued, s)
			}
		}
		if len(queued) == 1 {
			if d := queued[0].EndTime().Sub(queued[0].StartTime()); d < 50*time.Millisecond {
				t.Errorf("the admission span lasted %v, shorter than the wait", d)
			}
			return
		}
		if len(queued) > 1 || time.Now().After(deadline) {
			t.Fatalf("%d admission spans, want 1 (the request that waited)", len(queued))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTracingOffTransparent: with tracing off, the client's traceparent
// and tracestate reach the upstream unchanged, and none is made up when
// the client sent none.
func TestTracingOffTransparent(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   seenHeaders
	}{
		{"none", nil, seenHeaders{}},
		{"traceparent", http.Header{"Traceparent": {clientParent}}, seenHeaders{Parent: clientParent}},
		{"both", http.Header{"Traceparent": {clientParent}, "Tracestate": {clientState}}, seenHeaders{clientParent, clientState}},
		{"tracestate in two fields", http.Header{"Traceparent": {clientParent}, "Tracestate": {"rojo=1", "congo=2"}},
			seenHeaders{clientParent, "rojo=1,congo=2"}},
	}
	var up traceUpstream
	srv := httptest.NewServer(up.wrap(jsonUpstream()))
	defer srv.Close()
	_, gw := newTestGateway(t, &config.Config{Models: []config.Model{{Name: "m",
		Deployments: []config.Deployment{{Name: "up", URL: srv.URL + "/v1"}}}}})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			postTraced(t, gw, benchRequest, tt.header)
			if got := up.got(); len(got) != i+1 || got[i] != tt.want {
				t.Errorf("upstream saw %+v, want %+v last", got, tt.want)
			}
		})
	}
}

// TestTracingExport: spans leave a real gateway through the OTLP/HTTP
// exporter: a receiver on loopback decodes them, flushed by Close.
func TestTracingExport(t *testing.T) {
	col := otlptest.NewCollector(t)
	cfg := &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{{Name: "sim", Kind: "sim", Profile: "instant"}}}},
		Tracing: config.Tracing{Enabled: true, Endpoint: col.URL + otlptest.Path}}
	cfg.ApplyDefaults()
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatalf("config: %v", p)
	}
	gw, err := NewGateway(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	postTraced(t, srv, `{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`, http.Header{"Traceparent": {clientParent}})
	srv.Close() // every request done: its spans ended
	gw.Close()

	var got []string
	for _, s := range col.Spans() {
		got = append(got, s.Name)
		if s.Resource["service.name"] != "omnigate" || s.Resource["service.version"] == "" {
			t.Errorf("span %q from resource %v", s.Name, s.Resource)
		}
		if tid := hex.EncodeToString(s.TraceId); tid != clientTraceID {
			t.Errorf("span %q in trace %s, want the client's", s.Name, tid)
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"attempt sim", "chat m"}, got); diff != "" {
		t.Errorf("spans received (-want +got):\n%s", diff)
	}
}

// BenchmarkTracing measures the request path with tracing off and on,
// side by side: on and sampled, its spans go to a batch processor whose
// exporter drops them (the in-request cost), or over OTLP/HTTP to a
// receiver on loopback (the export's encoding and sending included, with
// the receiver's decoding besides); on at sample_ratio 0, only the trace
// context is made and sent upstream.
func BenchmarkTracing(b *testing.B) {
	ratio0, ratio1 := 0.0, 1.0
	for _, body := range []struct {
		name     string
		upstream http.Handler
		body     string
	}{{"chat", jsonUpstream(), benchRequest}, {"stream", streamUpstream(), benchStreamRequest}} {
		for _, mode := range []struct {
			name  string
			ratio *float64
			otlp  bool
		}{{"off", nil, false}, {"on-unsampled", &ratio0, false}, {"on", &ratio1, false}, {"on-otlp", &ratio1, true}} {
			b.Run(body.name+"/"+mode.name, func(b *testing.B) {
				up := httptest.NewServer(body.upstream)
				defer up.Close()
				var tc config.Tracing
				if mode.ratio != nil {
					tc = config.Tracing{Enabled: true, SampleRatio: mode.ratio}
					if mode.otlp {
						tc.Endpoint = otlptest.NewCollector(b).URL + otlptest.Path
					} else {
						tracingOptions = tracing.Options{Processor: sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter())}
					}
				}
				gw := benchGatewayTraced(b, up.URL, "", tc)
				tracingOptions = tracing.Options{}
				b.ReportAllocs()
				for b.Loop() {
					serveOnce(b, gw, body.body)
				}
			})
		}
	}
}
