package app

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/telemetry/tracing"
)

// tracingOptions are the tracing options of the gateways built from now
// on: the zero value exports over OTLP/HTTP; tests record the spans in
// memory with them.
var tracingOptions tracing.Options

// flushTimeout bounds the flush of the spans still buffered at Close: a
// collector that is down must not hold up a shutdown.
const flushTimeout = 5 * time.Second

// startTracing builds the tracer of cfg: nil, and no provider, when
// tracing is off, so that the core runs none of it. Export failures are
// logged to log.
func startTracing(cfg config.Tracing, log *slog.Logger) (*tracing.Provider, dispatch.Tracer, error) {
	if !cfg.Enabled {
		return nil, nil, nil
	}
	p, err := tracing.New(cfg, version(), tracingOptions)
	if err != nil {
		return nil, nil, err
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	return p, p.Tracer(), nil
}

// stopTracing flushes and stops p (nil: tracing is off).
func stopTracing(p *tracing.Provider, log *slog.Logger) {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Warn("tracing: flushing the last spans", "err", err)
	}
}
