package tracing

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/request"
	"github.com/omnigate/omnigate/internal/telemetry"
	"github.com/omnigate/omnigate/internal/telemetry/tracing/otlptest"
)

func TestParseHeaders(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"api-key=secret", map[string]string{"api-key": "secret"}, false},
		{" a = 1 , b=2,", map[string]string{"a": "1", "b": "2"}, false},
		{"Authorization=Basic%20dXNlcjpwYXNz", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, false},
		{"k=v=w", map[string]string{"k": "v=w"}, false},
		{"novalue", nil, true},
		{"=v", nil, true},
		{"k=%zz", nil, true},
		{" , ", nil, true},
	}
	for _, tt := range tests {
		got, err := parseHeaders(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseHeaders(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseHeaders(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// TestExport: spans reach an OTLP/HTTP receiver, from tracing.endpoint or
// from OTEL_EXPORTER_OTLP_ENDPOINT when it is unset, with the headers of
// headers_env and the service's resource; Shutdown flushes them.
func TestExport(t *testing.T) {
	for _, viaEnv := range []bool{false, true} {
		name := "endpoint"
		if viaEnv {
			name = "OTEL_EXPORTER_OTLP_ENDPOINT"
		}
		t.Run(name, func(t *testing.T) {
			col := otlptest.NewCollector(t)
			cfg := config.Tracing{Enabled: true, HeadersEnv: "OMNIGATE_TEST_OTLP_HEADERS", ServiceName: "gw-test"}
			if viaEnv {
				t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL) // the exporter appends /v1/traces
			} else {
				cfg.Endpoint = col.URL + otlptest.Path
			}
			t.Setenv("OMNIGATE_TEST_OTLP_HEADERS", "x-api-key=k1")
			p, err := New(cfg, "v9", Options{})
			if err != nil {
				t.Fatal(err)
			}
			s := p.Tracer().Start(context.Background(), &request.Request{Endpoint: request.Chat, Model: "m", N: 1}, nil)
			s.Attempt(dispatch.Attempt{Model: "m", Deployment: "d", N: 1, Kind: dispatch.AttemptFirst}).End(200, "200", nil)
			s.End(telemetry.Record{Status: 200})
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range col.Spans() {
				names = append(names, s.Name)
				if s.Resource["service.name"] != "gw-test" || s.Resource["service.version"] != "v9" {
					t.Errorf("span %q from resource %v", s.Name, s.Resource)
				}
			}
			if diff := cmp.Diff([]string{"attempt d", "chat m"}, names); diff != "" {
				t.Errorf("spans received (-want +got):\n%s", diff)
			}
			for _, h := range col.Headers() {
				if h.Get("X-Api-Key") != "k1" {
					t.Errorf("export without the headers_env header: %v", h)
				}
			}
		})
	}
}

// TestNewRefuses: a headers_env variable that is empty or not key=value
// stops the start, naming the variable and not its value.
func TestNewRefuses(t *testing.T) {
	for _, v := range []string{"", "secret-without-key"} {
		getenv := func(k string) string {
			if k == "OMNIGATE_TEST_OTLP_HEADERS" {
				return v
			}
			return ""
		}
		_, err := New(config.Tracing{Enabled: true, HeadersEnv: "OMNIGATE_TEST_OTLP_HEADERS"}, "v", Options{Getenv: getenv})
		if err == nil {
			t.Fatalf("headers %q: no error", v)
		}
		if msg := err.Error(); v != "" && strings.Contains(msg, v) || !strings.Contains(msg, "OMNIGATE_TEST_OTLP_HEADERS") {
			t.Errorf("headers %q: error %q", v, msg)
		}
	}
}
