package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func sampleRecord() *Record {
	return &Record{RequestID: "og-1-2", Model: "qwen3-omni-7b", Served: "qwen3-omni-7b", Deployment: "sim-7b", Status: 200, Stream: true,
		Total: 250 * time.Millisecond, FirstByte: 9 * time.Millisecond, Upstream: 249 * time.Millisecond, Overhead: 6 * time.Microsecond,
		HasUsage: true, PromptTokens: 10, CompletionTokens: 29, Attempts: 2, Retries: 1}
}

// TestAccessLogFields: the line has the record's fields, the optional
// ones only when set.
func TestAccessLogFields(t *testing.T) {
	var buf bytes.Buffer
	l := NewAccessLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	rec := sampleRecord()
	rec.Err = errors.New("cut")
	rec.API = "grpc"
	l.Log(rec)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	delete(got, "time")
	want := map[string]any{"level": "INFO", "msg": "request", "request_id": "og-1-2", "api": "grpc", "model": "qwen3-omni-7b", "status": 200.0, "stream": true,
		"latency": 2.5e8, "served_by": "qwen3-omni-7b", "deployment": "sim-7b", "first_byte": 9e6, "upstream": 2.49e8, "overhead": 6000.0,
		"prompt_tokens": 10.0, "completion_tokens": 29.0, "attempts": 2.0, "retries": 1.0, "err": "cut"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("access line (-want +got):\n%s", d)
	}
}

// BenchmarkAccessLog: one access line, text and JSON, to io.Discard.
func BenchmarkAccessLog(b *testing.B) {
	for _, h := range []struct {
		name string
		h    slog.Handler
	}{{"text", slog.NewTextHandler(io.Discard, nil)}, {"json", slog.NewJSONHandler(io.Discard, nil)}} {
		b.Run(h.name, func(b *testing.B) {
			l := NewAccessLog(slog.New(h.h))
			rec := sampleRecord()
			b.ReportAllocs()
			for b.Loop() {
				l.Log(rec)
			}
		})
	}
}
