package grpcapi

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/omnigate/omnigate/internal/dispatch"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// health is the standard gRPC health service, answered from the request
// core as /readyz is: SERVING while every model has a deployment it can
// use, NOT_SERVING otherwise and once the server drains for shutdown. It
// knows the server as a whole ("") and the omnigate.v1.Omnigate service,
// which share one status. Check and List read the core at each call; Watch
// looks again every poll and says when the status changed.
type health struct {
	healthpb.UnimplementedHealthServer
	core  *dispatch.Core
	poll  time.Duration
	once  sync.Once
	drain chan struct{} // closed when the server drains
}

func newHealth(core *dispatch.Core, poll time.Duration) *health {
	if poll <= 0 {
		poll = time.Second
	}
	return &health{core: core, poll: poll, drain: make(chan struct{})}
}

// services are the names the health service knows.
var services = []string{"", pb.Omnigate_ServiceDesc.ServiceName}

func known(service string) bool {
	for _, s := range services {
		if s == service {
			return true
		}
	}
	return false
}

// status is the serving status now.
func (h *health) status() healthpb.HealthCheckResponse_ServingStatus {
	select {
	case <-h.drain:
		return healthpb.HealthCheckResponse_NOT_SERVING
	default:
	}
	if len(h.core.Unready()) > 0 {
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	return healthpb.HealthCheckResponse_SERVING
}

// shutdown makes every service NOT_SERVING for good: load balancers stop
// sending new calls while the ones running finish.
func (h *health) shutdown() { h.once.Do(func() { close(h.drain) }) }

// Check answers the status of one service.
func (h *health) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if !known(req.GetService()) {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: h.status()}, nil
}

// List answers the status of every service.
func (h *health) List(context.Context, *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	st := h.status()
	out := &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{}}
	for _, s := range services {
		out.Statuses[s] = &healthpb.HealthCheckResponse{Status: st}
	}
	return out, nil
}

// Watch sends the status of one service now and whenever it changes
// (SERVICE_UNKNOWN, once, for a service it does not know).
func (h *health) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	if !known(req.GetService()) {
		return stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVICE_UNKNOWN})
	}
	t := time.NewTicker(h.poll)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	drain := h.drain
	for {
		if st := h.status(); st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case <-t.C:
		case <-drain:
			drain = nil // said at once, and for good
		}
	}
}

var _ healthpb.HealthServer = (*health)(nil)
