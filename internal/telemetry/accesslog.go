package telemetry

import (
	"context"
	"log/slog"
	"time"
)

// AccessLog writes one structured line per request, at info level (a
// failure the gateway caused, 5xx, at warn). Prompts and answers are in
// it only when the core was told to keep them (logging.bodies).
type AccessLog struct {
	log *slog.Logger
}

// NewAccessLog writes access lines to log.
func NewAccessLog(log *slog.Logger) *AccessLog { return &AccessLog{log: log} }

// Log writes rec's line.
func (l *AccessLog) Log(rec *Record) {
	level := slog.LevelInfo
	if rec.Status >= 500 {
		level = slog.LevelWarn
	}
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs,
		slog.String("request_id", rec.RequestID),
		slog.String("model", rec.Model),
		slog.Int("status", rec.Status),
		slog.Bool("stream", rec.Stream),
		slog.Duration("latency", rec.Total),
	)
	if rec.API != "" {
		attrs = append(attrs, slog.String("api", rec.API))
	}
	if rec.Key != "" {
		attrs = append(attrs, slog.String("key", rec.Key))
	}
	if rec.Served != "" {
		attrs = append(attrs, slog.String("served_by", rec.Served), slog.String("deployment", rec.Deployment),
			slog.Duration("first_byte", rec.FirstByte), slog.Duration("upstream", rec.Upstream))
	}
	if rec.Queued > 0 {
		attrs = append(attrs, slog.Duration("queued", rec.Queued))
	}
	attrs = append(attrs, slog.Duration("overhead", rec.Overhead))
	if rec.HasUsage {
		attrs = append(attrs, slog.Int64("prompt_tokens", rec.PromptTokens), slog.Int64("completion_tokens", rec.CompletionTokens))
	}
	if rec.Attempts > 1 {
		attrs = append(attrs, slog.Int("attempts", rec.Attempts))
	}
	if rec.Retries > 0 {
		attrs = append(attrs, slog.Int("retries", rec.Retries))
	}
	if rec.Hedges > 0 {
		attrs = append(attrs, slog.Int("hedges", rec.Hedges))
	}
	if rec.Continuations > 0 {
		attrs = append(attrs, slog.Int("continuations", rec.Continuations))
	}
	if rec.Fallback != "" {
		attrs = append(attrs, slog.String("fallback", rec.Fallback))
	}
	if rec.Cache != "" {
		attrs = append(attrs, slog.String("cache", rec.Cache))
	}
	if rec.RequestBody != nil {
		attrs = append(attrs, slog.String("request_body", string(rec.RequestBody)), slog.String("answer_body", string(rec.AnswerBody)))
	}
	if rec.Err != nil {
		attrs = append(attrs, slog.String("err", rec.Err.Error()))
	}
	// Straight to the handler: a Logger's methods look up their caller's
	// PC on every line (runtime.Callers), which no handler here reads.
	r := slog.NewRecord(time.Now(), level, "request", 0)
	r.AddAttrs(attrs...)
	_ = l.log.Handler().Handle(ctx, r)
}
