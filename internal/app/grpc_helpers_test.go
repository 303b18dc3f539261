package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	grpcapi "github.com/omnigate/omnigate/internal/api/grpc"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// engineTap is a simulator engine behind a real loopback listener that
// keeps the bodies it was sent and counts the requests it is serving.
type engineTap struct {
	srv      *httptest.Server
	inflight atomic.Int64
	mu       sync.Mutex
	bodies   []string
}

// tapEngine serves the simulator profile on loopback until the test ends.
func tapEngine(t *testing.T, profile string, faults sim.Faults) *engineTap {
	t.Helper()
	p, err := sim.LoadProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	eng := sim.New(p, sim.Options{ModelName: "upstream/m", Faults: faults})
	t.Cleanup(eng.Close)
	et := &engineTap{}
	h := eng.Handler()
	et.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			et.mu.Lock()
			et.bodies = append(et.bodies, string(b))
			et.mu.Unlock()
			r.Body = io.NopCloser(strings.NewReader(string(b)))
			et.inflight.Add(1)
			defer et.inflight.Add(-1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(et.srv.Close)
	return et
}

// last is the last body the engine was sent.
func (et *engineTap) last() string {
	et.mu.Lock()
	defer et.mu.Unlock()
	if len(et.bodies) == 0 {
		return ""
	}
	return et.bodies[len(et.bodies)-1]
}

// waitIdle waits until the engine serves no request, failing after 10 s.
func (et *engineTap) waitIdle(t *testing.T) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); et.inflight.Load() > 0; {
		if time.Now().After(end) {
			t.Fatalf("the engine still serves %d requests", et.inflight.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// engineConfig is one model "m" (text, image, audio and video in; text
// and audio out; chat, completions and embeddings) on the engine.
func engineConfig(et *engineTap) *config.Config {
	return &config.Config{Models: []config.Model{{
		Name: "m", Aliases: []string{"m-alias"},
		Capabilities: config.Capabilities{Input: []string{"text", "image", "audio", "video"}, Output: []string{"text", "audio"},
			Endpoints: []string{"chat", "completions", "embeddings"}},
		Deployments: []config.Deployment{{Name: "up", Kind: "openai", URL: et.srv.URL + "/v1", UpstreamModel: "upstream/m", AudioOutput: true}},
	}}}
}

// grpcGateway serves cfg over HTTP and gRPC on loopback listeners until
// the test ends, and returns the gateway, its HTTP server and a gRPC
// client of it.
func grpcGateway(t *testing.T, cfg *config.Config) (*Gateway, *httptest.Server, pb.OmnigateClient, *grpc.ClientConn) {
	t.Helper()
	gw, srv := newTestGateway(t, cfg)
	addr, _ := serveGRPCForTest(t, gw)
	conn := dial(t, addr)
	return gw, srv, pb.NewOmnigateClient(conn), conn
}

// serveGRPCForTest serves gw's gRPC API on a loopback listener until the
// test ends and returns its address and the service.
func serveGRPCForTest(t *testing.T, gw *Gateway) (string, *grpcapi.Server) {
	t.Helper()
	gs, api, err := gw.newGRPC(gw.Config().Server)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return ln.Addr().String(), api
}

// dial is a plaintext client of the gRPC server at addr.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// metadataCtx is a context whose calls send the metadata pairs kv.
func metadataCtx(kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), kv...)
}
