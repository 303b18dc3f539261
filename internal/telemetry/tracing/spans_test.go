package tracing

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/request"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// recorded builds a provider whose spans a recorder keeps as they end.
func recorded(t *testing.T, ratio float64) (*Tracer, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	p, err := New(config.Tracing{Enabled: true, SampleRatio: &ratio, ServiceName: "omnigate"}, "test", Options{Processor: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p.Tracer(), rec
}

// attrs renders a span's attributes as strings.
func attrs(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func chatView() *request.Request {
	return &request.Request{Endpoint: request.Chat, Model: "small", MaxTokens: 64, Temperature: 0.7, HasTemperature: true, N: 1}
}

// TestTraceContext: the request span is the child of a valid client
// traceparent (its tracestate kept), a root span otherwise, and an
// attempt's trace context names the attempt's span. An unsampled client
// trace records nothing but still goes upstream, unsampled.
func TestTraceContext(t *testing.T) {
	const (
		clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		clientSpan  = "00f067aa0ba902b7"
		state       = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
	)
	tests := []struct {
		name          string
		header        http.Header
		ratio         float64
		wantParent    string // the request span's parent span id; "": a root
		wantTrace     string // "": a new one
		wantState     string
		wantFlags     string
		wantRecording bool
	}{
		{"no traceparent", http.Header{}, 1, "", "", "", "01", true},
		{"sampled client trace", http.Header{"Traceparent": {"00-" + clientTrace + "-" + clientSpan + "-01"}, "Tracestate": {state}},
			1, clientSpan, clientTrace, state, "01", true},
		{"sampled client trace kept at ratio 0", http.Header{"Traceparent": {"00-" + clientTrace + "-" + clientSpan + "-01"}},
			0, clientSpan, clientTrace, "", "01", true},
		{"unsampled client trace", http.Header{"Traceparent": {"00-" + clientTrace + "-" + clientSpan + "-00"}},
			1, clientSpan, clientTrace, "", "00", false},
		{"tracestate in two fields", http.Header{"Traceparent": {"00-" + clientTrace + "-" + clientSpan + "-01"}, "Tracestate": {"rojo=1", "congo=2"}},
			1, clientSpan, clientTrace, "rojo=1,congo=2", "01", true},
		{"malformed traceparent", http.Header{"Traceparent": {"00-xyz"}, "Tracestate": {state}}, 1, "", "", "", "01", true},
		{"root at ratio 0", http.Header{}, 0, "", "", "", "00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, rec := recorded(t, tt.ratio)
			s := tr.Start(context.Background(), chatView(), tt.header)
			a := s.Attempt(dispatch.Attempt{Model: "small", Deployment: "gpu-a", N: 1, Kind: dispatch.AttemptFirst})
			parent, st := a.TraceContext()
			a.End(200, "200", nil)
			s.End(telemetry.Record{Status: 200})

			sc, err := parseTraceparent(parent)
			if err != nil {
				t.Fatalf("attempt traceparent %q: %v", parent, err)
			}
			if tt.wantTrace != "" && sc.TraceID().String() != tt.wantTrace {
				t.Errorf("attempt trace %s, want the client's %s", sc.TraceID(), tt.wantTrace)
			}
			if got := parent[len(parent)-2:]; got != tt.wantFlags {
				t.Errorf("attempt flags %s, want %s", got, tt.wantFlags)
			}
			if st != tt.wantState {
				t.Errorf("attempt tracestate %q, want %q", st, tt.wantState)
			}
			ended := rec.Ended()
			if !tt.wantRecording {
				if len(ended) != 0 {
					t.Errorf("%d spans recorded, want none", len(ended))
				}
				return
			}
			if len(ended) != 2 {
				t.Fatalf("%d spans recorded, want the attempt and the request", len(ended))
			}
			att, req := ended[0], ended[1]
			if got := req.Parent().SpanID(); tt.wantParent == "" && got.IsValid() || tt.wantParent != "" && got.String() != tt.wantParent {
				t.Errorf("request span's parent %s, want %q", got, tt.wantParent)
			}
			if req.SpanContext().TraceID() != sc.TraceID() || att.SpanContext().SpanID() != sc.SpanID() {
				t.Errorf("attempt traceparent %s is not the attempt span %s/%s", parent, att.SpanContext().TraceID(), att.SpanContext().SpanID())
			}
			if att.Parent().SpanID() != req.SpanContext().SpanID() {
				t.Error("the attempt span is not the request span's child")
			}
		})
	}
}

// parseTraceparent reads a traceparent with the SDK's propagator.
func parseTraceparent(v string) (trace.SpanContext, error) {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(http.Header{"Traceparent": {v}}))
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return sc, errors.New("not a valid traceparent")
	}
	return sc, nil
}

// TestFormatTraceparent: the attempt's traceparent is what the SDK's own
// propagator writes.
func TestFormatTraceparent(t *testing.T) {
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3, 0xab}, SpanID: trace.SpanID{0xff, 9}, TraceFlags: flags})
		h := http.Header{}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(h))
		if got, want := formatTraceparent(sc), h.Get("Traceparent"); got != want {
			t.Errorf("formatTraceparent = %q, the propagator writes %q", got, want)
		}
	}
}

// TestRequestSpan: the request span's name, kind and attributes, at its
// start and from its record; its status is an error on a 5xx or a broken
// relay only.
func TestRequestSpan(t *testing.T) {
	base := map[string]string{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "small", "gen_ai.request.max_tokens": "64",
		"gen_ai.request.temperature": "0.7", "omnigate.stream": "false", "omnigate.request_id": "r1",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name       string
		rec        telemetry.Record
		want       map[string]string
		wantStatus codes.Code
	}{
		{"answered", telemetry.Record{RequestID: "r1", Model: "qwen3-omni-7b", Served: "qwen3-omni-7b", Deployment: "gpu-a", Status: 200,
			FirstByte: 1500 * time.Microsecond, HasUsage: true, PromptTokens: 9, CompletionTokens: 7, Attempts: 2, Retries: 1},
			with("http.response.status_code", "200", "omnigate.model", "qwen3-omni-7b", "gen_ai.response.model", "qwen3-omni-7b",
				"omnigate.deployment", "gpu-a", "omnigate.first_byte_ms", "1.5", "gen_ai.usage.input_tokens", "9",
				"gen_ai.usage.output_tokens", "7", "omnigate.attempts", "2", "omnigate.retries", "1"), codes.Unset},
		{"fallback", telemetry.Record{RequestID: "r1", Model: "qwen3-omni-30b", Served: "qwen3-omni-7b", Deployment: "sim-7b", Status: 200,
			Attempts: 2, Fallback: "503"},
			with("http.response.status_code", "200", "omnigate.model", "qwen3-omni-30b", "gen_ai.response.model", "qwen3-omni-7b",
				"omnigate.deployment", "sim-7b", "omnigate.first_byte_ms", "0", "omnigate.attempts", "2", "omnigate.fallback_reason", "503"), codes.Unset},
		{"client error", telemetry.Record{RequestID: "r1", Status: 400},
			with("http.response.status_code", "400", "omnigate.attempts", "0"), codes.Unset},
		{"no deployment", telemetry.Record{RequestID: "r1", Model: "qwen3-omni-7b", Status: 503, Attempts: 3, Retries: 2},
			with("http.response.status_code", "503", "omnigate.model", "qwen3-omni-7b", "omnigate.attempts", "3", "omnigate.retries", "2",
				"error.type", "503"), codes.Error},
		{"stream cut", telemetry.Record{RequestID: "r1", Model: "m", Served: "m", Deployment: "d", Status: 200, Attempts: 1,
			Err: dispatch.ErrStreamIncomplete},
			with("http.response.status_code", "200", "omnigate.model", "m", "gen_ai.response.model", "m", "omnigate.deployment", "d",
				"omnigate.first_byte_ms", "0", "omnigate.attempts", "1", "error.type", "upstream_stream_error"), codes.Error},
		{"client left", telemetry.Record{RequestID: "r1", Model: "m", Served: "m", Deployment: "d", Status: apierror.StatusClientClosed,
			Attempts: 1, Err: context.Canceled},
			with("http.response.status_code", "499", "omnigate.model", "m", "gen_ai.response.model", "m", "omnigate.deployment", "d",
				"omnigate.first_byte_ms", "0", "omnigate.attempts", "1"), codes.Unset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, rec := recorded(t, 1)
			tr.Start(context.Background(), chatView(), nil).End(tt.rec)
			ended := rec.Ended()
			if len(ended) != 1 {
				t.Fatalf("%d spans, want 1", len(ended))
			}
			s := ended[0]
			if s.Name() != "chat small" || s.SpanKind() != trace.SpanKindServer {
				t.Errorf("span %q of kind %v, want \"chat small\", server", s.Name(), s.SpanKind())
			}
			if diff := cmp.Diff(tt.want, attrs(s.Attributes())); diff != "" {
				t.Errorf("attributes (-want +got):\n%s", diff)
			}
			if s.Status().Code != tt.wantStatus {
				t.Errorf("status %v, want %v", s.Status(), tt.wantStatus)
			}
		})
	}
}

// TestOperationNames: each endpoint names its GenAI operation, and the
// span is named after it and the model asked for.
func TestOperationNames(t *testing.T) {
	tests := []struct {
		ep    request.Endpoint
		model string
		want  string
	}{
		{request.Chat, "qwen3-omni-7b", "chat qwen3-omni-7b"},
		{request.Completions, "large", "text_completion large"},
		{request.Embeddings, "e5", "embeddings e5"},
		{request.Chat, "", "chat"},
	}
	for _, tt := range tests {
		tr, rec := recorded(t, 1)
		tr.Start(context.Background(), &request.Request{Endpoint: tt.ep, Model: tt.model, N: 1}, nil).End(telemetry.Record{Status: 200})
		if got := rec.Ended()[0].Name(); got != tt.want {
			t.Errorf("%v %q: span %q, want %q", tt.ep, tt.model, got, tt.want)
		}
	}
}

// TestChildSpans: the admission wait keeps the core's times and names a
// refusal; an attempt is a client span with its kind, number and outcome,
// an error when it failed.
func TestChildSpans(t *testing.T) {
	tr, rec := recorded(t, 1)
	s := tr.Start(context.Background(), chatView(), nil)
	t0 := time.Now().Add(-time.Second)
	s.Queued("small", t0, t0.Add(250*time.Millisecond), &apierror.Error{Status: 503, Code: "queue_full"})
	a := s.Attempt(dispatch.Attempt{Model: "small", Deployment: "gpu-a", N: 1, Kind: dispatch.AttemptFirst})
	a.End(503, "503", &apierror.Error{Status: 503, Upstream: true})
	a = s.Attempt(dispatch.Attempt{Model: "small", Deployment: "gpu-b", N: 2, Kind: dispatch.AttemptRetry})
	a.End(200, "200", nil)
	s.End(telemetry.Record{Status: 200})

	type span struct {
		Name   string
		Kind   trace.SpanKind
		Attrs  map[string]string
		Status codes.Code
	}
	var got []span
	for _, e := range rec.Ended() {
		got = append(got, span{e.Name(), e.SpanKind(), attrs(e.Attributes()), e.Status().Code})
	}
	want := []span{
		{"admission queue", trace.SpanKindInternal, map[string]string{"omnigate.model": "small", "error.type": "queue_full"}, codes.Error},
		{"attempt gpu-a", trace.SpanKindClient, map[string]string{"omnigate.model": "small", "omnigate.deployment": "gpu-a", "omnigate.attempt": "1",
			"omnigate.attempt.kind": "first", "omnigate.outcome": "503", "http.response.status_code": "503", "error.type": "503"}, codes.Error},
		{"attempt gpu-b", trace.SpanKindClient, map[string]string{"omnigate.model": "small", "omnigate.deployment": "gpu-b", "omnigate.attempt": "2",
			"omnigate.attempt.kind": "retry", "omnigate.outcome": "200", "http.response.status_code": "200"}, codes.Unset},
	}
	if diff := cmp.Diff(want, got[:3]); diff != "" {
		t.Errorf("child spans (-want +got):\n%s", diff)
	}
	q := rec.Ended()[0]
	if !q.StartTime().Equal(t0) || q.EndTime().Sub(q.StartTime()) != 250*time.Millisecond {
		t.Errorf("admission span %v–%v, want the core's times", q.StartTime(), q.EndTime())
	}
}

// BenchmarkRequestSpans is what tracing adds to one request, alone: a
// request span with its admission and attempt children, the attempt's
// trace context rendered, all ended into a batch processor whose exporter
// drops them, sampled and not.
func BenchmarkRequestSpans(b *testing.B) {
	for _, ratio := range []float64{1, 0} {
		name := "sampled"
		if ratio == 0 {
			name = "unsampled"
		}
		b.Run(name, func(b *testing.B) {
			p, err := New(config.Tracing{Enabled: true, SampleRatio: &ratio, ServiceName: "omnigate"}, "bench",
				Options{Processor: sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter())})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Shutdown(context.Background())
			tr, view := p.Tracer(), chatView()
			rec := telemetry.Record{RequestID: "r1", Model: "small", Served: "small", Deployment: "gpu-a", Status: 200,
				HasUsage: true, PromptTokens: 9, CompletionTokens: 7, Attempts: 1}
			b.ReportAllocs()
			for b.Loop() {
				s := tr.Start(context.Background(), view, nil)
				now := time.Now()
				s.Queued("small", now, now, nil)
				a := s.Attempt(dispatch.Attempt{Model: "small", Deployment: "gpu-a", N: 1, Kind: dispatch.AttemptFirst})
				a.TraceContext()
				a.End(200, "200", nil)
				s.End(rec)
			}
		})
	}
}
