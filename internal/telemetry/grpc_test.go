package telemetry

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
)

func TestGRPCHandled(t *testing.T) {
	m := New()
	m.GRPCHandled("/omnigate.v1.Omnigate/ChatCompletion", codes.OK)
	m.GRPCHandled("/omnigate.v1.Omnigate/ChatCompletion", codes.OK)
	m.GRPCHandled("/omnigate.v1.Omnigate/ChatCompletion", codes.InvalidArgument)
	m.GRPCHandled("/grpc.health.v1.Health/Check", codes.Code(99)) // no such code: Unknown
	for _, c := range []struct {
		method, code string
		want         float64
	}{
		{"omnigate.v1.Omnigate/ChatCompletion", "OK", 2},
		{"omnigate.v1.Omnigate/ChatCompletion", "InvalidArgument", 1},
		{"omnigate.v1.Omnigate/ChatCompletion", "Unavailable", 0},
		{"grpc.health.v1.Health/Check", "Unknown", 1},
	} {
		var out dto.Metric
		if err := m.grpc.calls.WithLabelValues(c.method, c.code).Write(&out); err != nil {
			t.Fatal(err)
		}
		if got := out.GetCounter().GetValue(); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.method, c.code, got, c.want)
		}
	}
}

// BenchmarkGRPCHandled is what counting a call costs.
func BenchmarkGRPCHandled(b *testing.B) {
	m := New()
	for b.Loop() {
		m.GRPCHandled("/omnigate.v1.Omnigate/ChatCompletion", codes.OK)
	}
}
