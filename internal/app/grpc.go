package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	grpcapi "github.com/omnigate/omnigate/internal/api/grpc"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/grpcserver"
	"github.com/omnigate/omnigate/internal/relay"
)

// newGRPC builds the gRPC server of the gateway's API (the omnigate.v1
// service, health, reflection), over TLS when server.grpc_tls names a
// certificate (read again when its files change).
func (g *Gateway) newGRPC(sc config.Server) (*grpcserver.Server, *grpcapi.Server, error) {
	api := grpcapi.New(grpcapi.Options{Core: g.core, Log: g.log, MaxBodyBytes: sc.MaxBodyBytes, Jobs: g.jobs})
	opts := api.ServerOptions()
	tlsConf, err := g.listenerTLS("server.grpc_tls", sc.GRPCTLS, grpcProtos)
	if err != nil {
		return nil, nil, err
	}
	opts.TLS = tlsConf
	opts.Handled = g.metrics.GRPCHandled
	gs := grpcserver.New(opts)
	api.Register(gs)
	return gs, api, nil
}

// serveGRPC starts the gRPC listener at sc.GRPCAddr ("off": none) and
// prints its address. When ctx ends, or stop is called, it stops
// gracefully: new calls are refused and the health service says
// NOT_SERVING at once, the running ones have the shutdown grace to end,
// then the streams still open are told the gateway is shutting down and
// the rest are cut. stop waits for that.
func (g *Gateway) serveGRPC(ctx context.Context, sc config.Server, stdout io.Writer) (stop func(), err error) {
	if sc.GRPCAddr == config.GRPCOff {
		return func() {}, nil
	}
	gs, api, err := g.newGRPC(sc)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", sc.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	go gs.Serve(ln)
	fmt.Fprintf(stdout, "omnigate: gRPC on %s%s\n", ln.Addr(), tlsMark(sc.GRPCTLS))
	g.log.Info("gRPC listener", "addr", ln.Addr().String(), "tls", sc.GRPCTLS.On(), "mtls", sc.GRPCTLS.Mutual())

	quit, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
		case <-quit:
		}
		g.stopGRPC(gs, api, sc.ShutdownGrace.D())
	}()
	return func() { once.Do(func() { close(quit) }); <-done }, nil
}

// stopGRPC stops gs within grace (GracefulStop, then Stop).
func (g *Gateway) stopGRPC(gs *grpcserver.Server, api *grpcapi.Server, grace time.Duration) {
	api.Drain()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
		return
	case <-time.After(grace):
	}
	g.log.Warn("grace period over; ending the gRPC calls still running")
	gs.CancelCalls(relay.ErrShutdown) // streams tell their clients why
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
	}
	gs.Stop()
	<-stopped
}
