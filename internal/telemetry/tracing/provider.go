// Package tracing is OpenTelemetry tracing for the request core: a tracer
// provider that exports over OTLP/HTTP (provider.go), and the dispatch.Tracer
// that turns what the core did into spans with the GenAI semantic
// conventions' attributes (spans.go). Off by default; off, nothing of it
// is built, and the core runs none of its code.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/omnigate/omnigate/internal/config"
)

// DefaultEndpoint is where spans go when neither tracing.endpoint nor the
// OTLP environment variables say: a collector on this host.
const DefaultEndpoint = "http://127.0.0.1:4318/v1/traces"

// instrumentation names the tracer, as the instrumentation scope of every
// span.
const instrumentation = "github.com/omnigate/omnigate"

// Options adjust New; the zero value is the production setup.
type Options struct {
	// Processor replaces the batch processor and its OTLP/HTTP exporter:
	// tests pass a tracetest.SpanRecorder to read the spans as they end.
	Processor sdktrace.SpanProcessor
	// Getenv reads the environment (the headers_env variable, and the
	// exporter's OTEL_EXPORTER_OTLP_* ones when deciding on the default
	// endpoint); os.Getenv when nil.
	Getenv func(string) string
}

// Provider owns the tracer provider: its sampler, its batch processor and
// exporter. Shutdown flushes what is still buffered.
type Provider struct {
	tp     *sdktrace.TracerProvider
	tracer *Tracer
}

// New builds the provider of cfg (which must be enabled) for this
// version of the gateway.
func New(cfg config.Tracing, version string, opt Options) (*Provider, error) {
	getenv := opt.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	proc := opt.Processor
	if proc == nil {
		exp, err := newExporter(cfg, getenv)
		if err != nil {
			return nil, err
		}
		proc = sdktrace.NewBatchSpanProcessor(exp)
	}
	// Merged over the default resource (telemetry.sdk.*, and
	// OTEL_RESOURCE_ATTRIBUTES), the configured name winning.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(version)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio()))),
		sdktrace.WithSpanProcessor(proc),
		sdktrace.WithResource(res),
	)
	return &Provider{tp: tp, tracer: &Tracer{tracer: tp.Tracer(instrumentation), prop: propagation.TraceContext{}}}, nil
}

// Tracer is the provider's tracer for the request core.
func (p *Provider) Tracer() *Tracer { return p.tracer }

// Shutdown exports the spans still buffered, within ctx, and stops the
// provider; spans ended afterwards are dropped.
func (p *Provider) Shutdown(ctx context.Context) error { return p.tp.Shutdown(ctx) }

// newExporter is the OTLP/HTTP exporter of cfg. The endpoint is
// tracing.endpoint, else what OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT say (the exporter reads them itself), else
// DefaultEndpoint: plain HTTP on loopback, where the exporter's own
// default would be HTTPS on localhost.
func newExporter(cfg config.Tracing, getenv func(string) string) (sdktrace.SpanExporter, error) {
	var opts []otlptracehttp.Option
	switch {
	case cfg.Endpoint != "":
		opts = append(opts, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	case getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "":
		opts = append(opts, otlptracehttp.WithEndpointURL(DefaultEndpoint))
	}
	if cfg.HeadersEnv != "" {
		v := getenv(cfg.HeadersEnv)
		if v == "" {
			return nil, fmt.Errorf("tracing: environment variable %s (headers_env) is empty", cfg.HeadersEnv)
		}
		h, err := parseHeaders(v)
		if err != nil {
			return nil, fmt.Errorf("tracing: environment variable %s (headers_env): %w", cfg.HeadersEnv, err)
		}
		opts = append(opts, otlptracehttp.WithHeaders(h))
	}
	// New only builds the client: nothing is dialled until the first
	// export, so a collector that is down does not stop the gateway.
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return exp, nil
}

// parseHeaders reads "key=value,key2=value2", the form of
// OTEL_EXPORTER_OTLP_HEADERS: blanks around entries are dropped and
// values may be percent-encoded. Errors never quote a value: it is
// likely a secret.
func parseHeaders(s string) (map[string]string, error) {
	h := map[string]string{}
	for i, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("entry %d is not key=value", i+1)
		}
		v, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("the value of %q is not percent-encoded right", k)
		}
		h[k] = v
	}
	if len(h) == 0 {
		return nil, errors.New("no key=value entry")
	}
	return h, nil
}
