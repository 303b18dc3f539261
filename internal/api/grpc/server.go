// Package grpcapi is the gRPC front end (the omnigate.v1.Omnigate service,
// proto/omnigate/v1): the wire and nothing else. A call's message becomes
// the JSON body the HTTP API takes, parsed and served through the request
// core (internal/dispatch) as an HTTP request is; the answer's JSON is read
// back into the call's answer message, a stream's events one message each
// through the relay the HTTP front end uses (internal/relay). Errors are
// gRPC statuses with the OpenAI error's code, type and parameter in
// google.rpc details.
package grpcapi

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/grpcserver"
	"github.com/omnigate/omnigate/internal/jobs"
	"github.com/omnigate/omnigate/internal/relay"
	"github.com/omnigate/omnigate/internal/request"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// Options configure a Server. Core is required.
type Options struct {
	Core *dispatch.Core
	Log  *slog.Logger // slog.Default when nil
	// MaxBodyBytes bounds a request, as the message received and as the
	// JSON body it becomes (server.max_body_bytes); 32 MiB when 0.
	MaxBodyBytes int64
	// HealthPoll is how often a health Watch looks at the core; 1s when 0.
	HealthPoll time.Duration
	// Jobs serves the job calls; nil: they answer Unimplemented.
	Jobs *jobs.Service
}

// Server is the Omnigate service, with the health service beside it.
type Server struct {
	pb.UnimplementedOmnigateServer
	opt     Options
	ids     request.IDs
	views   sync.Pool // *request.Request
	streams relay.Streams
	health  *health
	models  atomic.Pointer[modelList] // rendered for the current snapshot
}

// New builds the service.
func New(opt Options) *Server {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 32 << 20
	}
	s := &Server{opt: opt, streams: relay.Streams{Core: opt.Core, Log: opt.Log}, health: newHealth(opt.Core, opt.HealthPoll)}
	s.views.New = func() any { return new(request.Request) }
	s.ids.Init()
	return s
}

// maxAnswer bounds an answer read whole (a long audio answer is tens of
// megabytes of base64), and the messages sent.
const maxAnswer = 256 << 20

// apiName names the gRPC API in the access log (its lines' api field).
const apiName = "grpc"

// streamWorkers is how many goroutines serve calls one after another
// (grpcserver.Options.Workers); past them a call gets a goroutine of its own,
// as without. A call runs deep (the core, the upstream client): a fresh
// goroutine grows its stack to that depth on every call, which cost a
// seventh of the gateway's CPU per call, where net/http's goroutine per
// connection grows it once. Idle workers wait in turn, and the collector
// shrinks the stacks of those that wait long: a few dozen keep theirs
// warm under a loaded gateway's calls in flight without holding
// megabytes of stacks (256 held 5 MB more at peak, for no CPU measured).
const streamWorkers = 64

// Flow control windows. Set, they turn off gRPC's window estimation,
// whose pings the client answers (and the server wakes for) about once a
// call: more than a tenth of the CPU of a call. A request is at most
// server.max_body_bytes, and a stream window of 4 MiB takes the largest
// (32 MiB of images) in eight round trips.
const (
	streamWindow = 4 << 20
	connWindow   = 16 << 20
)

// ServerOptions are the gRPC server options the service needs: its
// message size limits, workers that keep their stacks across calls, and
// static windows.
func (s *Server) ServerOptions() grpcserver.Options {
	return grpcserver.Options{
		MaxRecvMsgSize: int(min(s.opt.MaxBodyBytes, 1<<31-1)),
		MaxSendMsgSize: maxAnswer,
		Workers:        streamWorkers,
		StreamWindow:   streamWindow,
		ConnWindow:     connWindow,
		Log:            s.opt.Log,
	}
}

// Registrar is a gRPC server the service registers on.
type Registrar = reflection.GRPCServer

// Register puts the Omnigate service, the health service and server
// reflection on g.
func (s *Server) Register(g Registrar) {
	g.RegisterService(&serviceDesc, s) // pb.RegisterOmnigateServer's, but for ChatCompletion (service.go)
	healthpb.RegisterHealthServer(g, s.health)
	reflection.Register(g)
}

// Drain makes the health service answer NOT_SERVING from now on, for a
// shutdown: balancers stop sending calls while the running ones finish.
func (s *Server) Drain() { s.health.shutdown() }

// ListModels answers the models and aliases the gateway serves, as GET
// /v1/models does.
func (s *Server) ListModels(context.Context, *pb.ListModelsRequest) (*pb.ModelList, error) {
	snap := s.opt.Core.Snapshot()
	if l := s.models.Load(); l != nil && l.snap == snap {
		return l.list, nil
	}
	l := &modelList{snap: snap, list: renderModels(snap, s.opt.Core.Now().Unix())}
	s.models.Store(l)
	return l.list, nil
}

// modelList is the list for one snapshot, rendered once: gRPC only reads
// the message it sends, so every call can send the same one.
type modelList struct {
	snap *dispatch.Snapshot
	list *pb.ModelList
}

func renderModels(snap *dispatch.Snapshot, created int64) *pb.ModelList {
	out := &pb.ModelList{Object: "list"}
	for _, m := range snap.Catalog.Models() {
		o := &pb.Model{Id: m.Name, Object: "model", Created: created, OwnedBy: "omnigate", Tier: m.Tier,
			Aliases: m.Aliases, ContextWindow: int32(m.ContextWindow), InputModalities: m.Input.Names(),
			OutputModalities: m.Output.Names(), MaxTokens: int32(m.Limits.MaxTokens)}
		out.Data = append(out.Data, o)
		for _, a := range m.Aliases {
			out.Data = append(out.Data, &pb.Model{Id: a, Object: "model", Created: created, OwnedBy: "omnigate", Tier: m.Tier,
				AliasOf: m.Name, ContextWindow: o.ContextWindow, InputModalities: o.InputModalities,
				OutputModalities: o.OutputModalities, MaxTokens: o.MaxTokens})
		}
	}
	for _, n := range snap.AutoNames() {
		out.Data = append(out.Data, &pb.Model{Id: n, Object: "model", Created: created, OwnedBy: "omnigate", Tier: "auto"})
	}
	return out
}

var _ pb.OmnigateServer = (*Server)(nil)
