package telemetry

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// grpcCodes is how many gRPC status codes there are (OK to Unauthenticated).
const grpcCodes = 17

// grpcMetrics counts gRPC calls by method and status code, each method's
// series resolved once.
type grpcMetrics struct {
	calls   *prometheus.CounterVec // {method, code}
	mu      sync.RWMutex
	methods map[string]*[grpcCodes]prometheus.Counter
}

func newGRPCMetrics(reg *prometheus.Registry) *grpcMetrics {
	g := &grpcMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_grpc_calls_total",
			Help: "gRPC calls ended, by method (service/method, as omnigate.v1.Omnigate/ChatCompletion) and status code (OK, InvalidArgument, ...). Calls to methods the server does not serve are not counted.",
		}, []string{"method", "code"}),
		methods: map[string]*[grpcCodes]prometheus.Counter{},
	}
	reg.MustRegister(g.calls)
	return g
}

// GRPCHandled counts a gRPC call to fullMethod ("/service/method") that
// ended with code.
func (m *Metrics) GRPCHandled(fullMethod string, code codes.Code) {
	if int(code) >= grpcCodes {
		code = codes.Unknown
	}
	g := m.grpc
	g.mu.RLock()
	cs := g.methods[fullMethod]
	g.mu.RUnlock()
	if cs == nil {
		cs = new([grpcCodes]prometheus.Counter)
		name := strings.TrimPrefix(fullMethod, "/")
		for c := range cs {
			cs[c] = g.calls.WithLabelValues(name, codes.Code(c).String())
		}
		g.mu.Lock()
		if have := g.methods[fullMethod]; have != nil {
			cs = have
		} else {
			g.methods[fullMethod] = cs
		}
		g.mu.Unlock()
	}
	cs[code].Inc()
}
