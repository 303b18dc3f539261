package tracing

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/request"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// The spans' names, besides the request's own ("{gen_ai.operation.name}
// {gen_ai.request.model}", as the GenAI conventions name it: "chat
// qwen3-omni-7b").
const (
	// SpanAdmission is a wait for a place in a model's admission queue.
	SpanAdmission = "admission queue"
	// SpanAttempt, followed by the deployment's name, is one upstream
	// attempt: "attempt gpu-a".
	SpanAttempt = "attempt"
	// SpanCacheLookup is a lookup in the answer cache, a child of the
	// request span like SpanAdmission; its omnigate.cache, and the
	// request span's, say what the cache did.
	SpanCacheLookup = "cache lookup"
)

// The gateway's own attributes; the rest are the semantic conventions'.
const (
	AttrRequestID     = attribute.Key("omnigate.request_id")
	AttrStream        = attribute.Key("omnigate.stream")
	AttrModel         = attribute.Key("omnigate.model") // the public model, after aliases
	AttrDeployment    = attribute.Key("omnigate.deployment")
	AttrAttempts      = attribute.Key("omnigate.attempts")
	AttrRetries       = attribute.Key("omnigate.retries")
	AttrHedges        = attribute.Key("omnigate.hedges")
	AttrContinuations = attribute.Key("omnigate.continuations")
	AttrFallback      = attribute.Key("omnigate.fallback_reason")
	AttrCache         = attribute.Key("omnigate.cache")
	AttrFirstByteMs   = attribute.Key("omnigate.first_byte_ms")
	AttrAttempt       = attribute.Key("omnigate.attempt")      // its number in the request, from 1
	AttrAttemptKind   = attribute.Key("omnigate.attempt.kind") // first, retry, hedge, continuation
	AttrOutcome       = attribute.Key("omnigate.outcome")      // the verdict's outcome class
)

// Tracer is the request core's dispatch.Tracer over an OpenTelemetry
// tracer: the request span is a server span, the child of the client's
// traceparent; attempts are client spans whose context goes upstream.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// Start begins a request's span; see dispatch.Tracer.
func (t *Tracer) Start(ctx context.Context, r *request.Request, h http.Header) dispatch.Span {
	if len(h["Traceparent"]) > 0 {
		ctx = t.prop.Extract(ctx, joined(h))
	}
	op := operation(r.Endpoint)
	name := op.Value.AsString()
	if r.Model != "" {
		name += " " + r.Model
	}
	_, span := t.tracer.Start(ctx, name, serverKind)
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 8)
		attrs = append(attrs, op, semconv.GenAIRequestModel(r.Model), AttrStream.Bool(r.Stream))
		if r.MaxTokens > 0 {
			attrs = append(attrs, semconv.GenAIRequestMaxTokens(r.MaxTokens))
		}
		if r.HasTemperature {
			attrs = append(attrs, semconv.GenAIRequestTemperature(r.Temperature))
		}
		if r.HasTopP {
			attrs = append(attrs, semconv.GenAIRequestTopP(r.TopP))
		}
		if r.N > 1 {
			attrs = append(attrs, semconv.GenAIRequestChoiceCount(r.N))
		}
		span.SetAttributes(attrs...)
	}
	// The children's parent is the span alone, not the request's context:
	// the span keeps nothing of that.
	return &requestSpan{t: t, span: span, parent: trace.ContextWithSpan(context.Background(), span)}
}

// The kinds of span, made once: an option made per span would be an
// allocation each time.
var (
	serverKind   = trace.WithSpanKind(trace.SpanKindServer)
	clientKind   = trace.WithSpanKind(trace.SpanKindClient)
	internalKind = trace.WithSpanKind(trace.SpanKindInternal)
)

// joined is a request's headers as the propagator reads them, several
// fields of one name as one list (W3C: two tracestate fields are one);
// propagation.HeaderCarrier would read the first only.
type joined http.Header

// Get returns the fields named key, joined with commas.
func (h joined) Get(key string) string {
	v := http.Header(h).Values(key)
	if len(v) == 1 {
		return v[0]
	}
	return strings.Join(v, ",")
}

// Set is never called: the propagator only extracts from a request.
func (h joined) Set(key, value string) { http.Header(h).Set(key, value) }

// Keys lists the header names.
func (h joined) Keys() []string { return propagation.HeaderCarrier(h).Keys() }

// operation is the GenAI operation of an endpoint.
func operation(ep request.Endpoint) attribute.KeyValue {
	switch ep {
	case request.Completions:
		return semconv.GenAIOperationNameTextCompletion
	case request.Embeddings:
		return semconv.GenAIOperationNameEmbeddings
	}
	return semconv.GenAIOperationNameChat
}

// requestSpan is a request's span; see dispatch.Span.
type requestSpan struct {
	t      *Tracer
	span   trace.Span
	parent context.Context // of the children: holds span
}

// Queued records a wait for an admission place; see dispatch.Span.
func (s *requestSpan) Queued(model string, start, end time.Time, err error) {
	if !s.span.IsRecording() {
		return // unsampled: unlike an attempt's, its context goes nowhere
	}
	_, span := s.t.tracer.Start(s.parent, SpanAdmission, trace.WithTimestamp(start), internalKind)
	if span.IsRecording() {
		span.SetAttributes(AttrModel.String(model))
		var e *apierror.Error
		if errors.As(err, &e) && e.Code != "" {
			// Refused (queue full, over the client's share); a client
			// that left or a deadline that passed ends it unmarked.
			span.SetAttributes(semconv.ErrorTypeKey.String(e.Code))
			span.SetStatus(codes.Error, e.Code)
		}
	}
	span.End(trace.WithTimestamp(end))
}

// Looked records a cache lookup; see dispatch.Span.
func (s *requestSpan) Looked(model string, start, end time.Time, result string) {
	if !s.span.IsRecording() {
		return
	}
	_, span := s.t.tracer.Start(s.parent, SpanCacheLookup, trace.WithTimestamp(start), internalKind)
	if span.IsRecording() {
		span.SetAttributes(AttrModel.String(model), AttrCache.String(result))
	}
	span.End(trace.WithTimestamp(end))
}

// Attempt begins an upstream attempt's span; see dispatch.Span.
func (s *requestSpan) Attempt(a dispatch.Attempt) dispatch.AttemptSpan {
	_, span := s.t.tracer.Start(s.parent, SpanAttempt+" "+a.Deployment, clientKind)
	if span.IsRecording() {
		span.SetAttributes(AttrModel.String(a.Model), AttrDeployment.String(a.Deployment),
			AttrAttempt.Int(a.N), AttrAttemptKind.String(a.Kind.String()))
	}
	return attemptSpan{span}
}

// End ends the request span with its record; see dispatch.Span.
func (s *requestSpan) End(rec telemetry.Record) {
	span := s.span
	if !span.IsRecording() {
		span.End()
		return
	}
	attrs := make([]attribute.KeyValue, 0, 16)
	attrs = append(attrs, semconv.HTTPResponseStatusCode(rec.Status), AttrRequestID.String(rec.RequestID),
		AttrAttempts.Int(rec.Attempts))
	if rec.Model != "" {
		attrs = append(attrs, AttrModel.String(rec.Model))
	}
	if rec.Served != "" {
		attrs = append(attrs, semconv.GenAIResponseModel(rec.Served), AttrDeployment.String(rec.Deployment),
			AttrFirstByteMs.Float64(float64(rec.FirstByte)/float64(time.Millisecond)))
	}
	if rec.HasUsage {
		attrs = append(attrs, semconv.GenAIUsageInputTokens(int(rec.PromptTokens)), semconv.GenAIUsageOutputTokens(int(rec.CompletionTokens)))
	}
	for _, n := range [...]struct {
		k attribute.Key
		v int
	}{{AttrRetries, rec.Retries}, {AttrHedges, rec.Hedges}, {AttrContinuations, rec.Continuations}} {
		if n.v > 0 {
			attrs = append(attrs, n.k.Int(n.v))
		}
	}
	if rec.Cache != "" {
		attrs = append(attrs, AttrCache.String(rec.Cache))
	}
	if rec.Fallback != "" {
		attrs = append(attrs, AttrFallback.String(rec.Fallback))
	}
	// A server span's error is a 5xx (a 4xx is the client's), or an
	// answer whose relay broke after its status was sent.
	switch {
	case rec.Status >= 500:
		attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(rec.Status)))
		span.SetStatus(codes.Error, http.StatusText(rec.Status))
	case rec.Err != nil && !errors.Is(rec.Err, context.Canceled) && rec.Status != apierror.StatusClientClosed:
		code := "relay"
		if e := (*apierror.Error)(nil); errors.As(rec.Err, &e) && e.Code != "" {
			code = e.Code
		}
		attrs = append(attrs, semconv.ErrorTypeKey.String(code))
		span.SetStatus(codes.Error, code)
	}
	span.SetAttributes(attrs...)
	span.End()
}

// attemptSpan is an upstream attempt's span; see dispatch.AttemptSpan.
type attemptSpan struct{ span trace.Span }

// TraceContext renders the span's context as W3C headers; see
// dispatch.AttemptSpan.
func (s attemptSpan) TraceContext() (traceparent, tracestate string) {
	sc := s.span.SpanContext()
	if !sc.IsValid() {
		return "", ""
	}
	return formatTraceparent(sc), sc.TraceState().String()
}

// formatTraceparent renders "00-{trace id}-{span id}-{flags}" in one
// allocation.
func formatTraceparent(sc trace.SpanContext) string {
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(b[:3], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// End ends the attempt; see dispatch.AttemptSpan. Its error is what
// failed, named by the outcome class: as a client span, a 4xx is one too.
func (s attemptSpan) End(status int, outcome string, err error) {
	if s.span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 3)
		attrs = append(attrs, AttrOutcome.String(outcome))
		if status > 0 {
			attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
		}
		if err != nil || status >= 400 {
			attrs = append(attrs, semconv.ErrorTypeKey.String(outcome))
			s.span.SetStatus(codes.Error, outcome)
		}
		s.span.SetAttributes(attrs...)
	}
	s.span.End()
}

var (
	_ propagation.TextMapCarrier = joined(nil)
	_ dispatch.Tracer            = (*Tracer)(nil)
	_ dispatch.Span              = (*requestSpan)(nil)
	_ dispatch.AttemptSpan       = attemptSpan{}
)
