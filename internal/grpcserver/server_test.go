package grpcserver

// End-to-end tests of the transport: grpc-go's own client, over a loopback
// listener, calls grpc-go's interop TestService (implemented here), the
// health service and server reflection, all hosted on a Server. The raw
// HTTP/2 tests (raw_test.go) talk to it frame by frame.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"

	"github.com/omnigate/omnigate/internal/certs/certstest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// TestMain fails the package when a goroutine outlives the tests: every
// test stops its servers and closes its clients, so the transport's
// readers, writers and workers must all have ended.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait of the tests: none should come near it.
const waitFor = 10 * time.Second

// testServer is the interop TestService: UnaryCall echoes the request's
// payload (or answers ResponseSize bytes of pattern), the streaming calls
// answer pattern payloads of the sizes asked for, and a ResponseStatus
// asked for ends the call with it. A test changes a method by setting
// its function.
type testServer struct {
	testpb.UnimplementedTestServiceServer
	unary  func(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error)
	output func(*testpb.StreamingOutputCallRequest, testpb.TestService_StreamingOutputCallServer) error
	input  func(testpb.TestService_StreamingInputCallServer) error
	duplex func(testpb.TestService_FullDuplexCallServer) error
}

func (s *testServer) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	return &testpb.Empty{}, nil
}

func (s *testServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if s.unary != nil {
		return s.unary(ctx, req)
	}
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	body := req.GetPayload().GetBody()
	if n := req.GetResponseSize(); n > 0 {
		body = pattern(int(n), 0)
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: body}}, nil
}

func (s *testServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	if s.output != nil {
		return s.output(req, stream)
	}
	for i, p := range req.GetResponseParameters() {
		if err := stream.Send(outMsg(pattern(int(p.GetSize()), i))); err != nil {
			return err
		}
	}
	return echoStatus(req.GetResponseStatus())
}

func (s *testServer) StreamingInputCall(stream testpb.TestService_StreamingInputCallServer) error {
	if s.input != nil {
		return s.input(stream)
	}
	return sumInput(stream)
}

func sumInput(stream testpb.TestService_StreamingInputCallServer) error {
	total := 0
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(req.GetPayload().GetBody())
	}
}

func (s *testServer) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	if s.duplex != nil {
		return s.duplex(stream)
	}
	seq := 0
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := echoStatus(req.GetResponseStatus()); err != nil {
			return err
		}
		for _, p := range req.GetResponseParameters() {
			if err := stream.Send(outMsg(pattern(int(p.GetSize()), seq))); err != nil {
				return err
			}
			seq++
		}
	}
}

func (s *testServer) HalfDuplexCall(stream testpb.TestService_HalfDuplexCallServer) error {
	var reqs []*testpb.StreamingOutputCallRequest
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		reqs = append(reqs, req)
	}
	seq := 0
	for _, req := range reqs {
		for _, p := range req.GetResponseParameters() {
			if err := stream.Send(outMsg(pattern(int(p.GetSize()), seq))); err != nil {
				return err
			}
			seq++
		}
	}
	return nil
}

func echoStatus(s *testpb.EchoStatus) error {
	if s.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(s.GetCode()), s.GetMessage())
}

// pattern is n bytes that tell their place: seed in the first four, then
// bytes that depend on seed and position.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed*13 + i>>9)
	}
	if n >= 4 {
		binary.BigEndian.PutUint32(b, uint32(seed))
	}
	return b
}

// randBytes is n pseudo-random bytes, the same for the same seed.
func randBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	mrand.NewChaCha8([32]byte{seed, 'g', 'r', 'p', 'c'}).Read(b)
	return b
}

func outMsg(body []byte) *testpb.StreamingOutputCallResponse {
	return &testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}
}

func simple(body []byte) *testpb.SimpleRequest {
	return &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}}
}

// atSize is a request of n bytes encoded.
func atSize(t *testing.T, n int) *testpb.SimpleRequest {
	for body := n; body >= 0; body-- {
		if req := simple(make([]byte, body)); proto.Size(req) == n {
			return req
		}
	}
	t.Fatalf("no request of %d bytes", n)
	return nil
}

func sizes(ns ...int) []*testpb.ResponseParameters {
	ps := make([]*testpb.ResponseParameters, len(ns))
	for i, n := range ns {
		ps[i] = &testpb.ResponseParameters{Size: int32(n)}
	}
	return ps
}

// checkBytes reports where got differs from want, without printing
// megabytes.
func checkBytes(t *testing.T, what string, got, want []byte) bool {
	t.Helper()
	if bytes.Equal(got, want) {
		return true
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
	return false
}

// checkStatus reports err's status unless it has code (and msg, unless
// empty).
func checkStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	s, ok := status.FromError(err)
	if !ok {
		t.Errorf("%s: error %v is not a status", what, err)
		return
	}
	if s.Code() != code || (msg != "" && s.Message() != msg) {
		t.Errorf("%s: status %v %q, want %v %q", what, s.Code(), s.Message(), code, msg)
	}
}

// env is a Server serving on a loopback listener.
type env struct {
	srv      *Server
	addr     string
	done     chan struct{}
	serveErr error
}

// startServer serves a Server made with opt, and register's services,
// until the test ends.
func startServer(t *testing.T, opt Options, register func(*Server)) *env {
	t.Helper()
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	srv := New(opt)
	if register != nil {
		register(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		e.serveErr = srv.Serve(ln)
		close(e.done)
	}()
	t.Cleanup(func() {
		srv.Stop()
		if err := e.wait(); !errors.Is(err, ErrServerStopped) {
			t.Errorf("Serve returned %v, want ErrServerStopped", err)
		}
	})
	return e
}

func startTestServer(t *testing.T, opt Options, ts *testServer) *env {
	t.Helper()
	return startServer(t, opt, func(s *Server) { testpb.RegisterTestServiceServer(s, ts) })
}

// wait waits for Serve to return, and returns its error.
func (e *env) wait() error {
	select {
	case <-e.done:
		return e.serveErr
	case <-time.After(waitFor):
		return errors.New("Serve did not return")
	}
}

// dial is a grpc-go client of the server (plaintext unless opts say
// otherwise), closed when the test ends; before it closes, the server
// must have forgotten every call the test made.
func (e *env) dial(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	cc, err := grpc.NewClient("passthrough:///"+e.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	t.Cleanup(func() { e.checkNoStreams(t) })
	return cc
}

func (e *env) client(t *testing.T, opts ...grpc.DialOption) testpb.TestServiceClient {
	t.Helper()
	return testpb.NewTestServiceClient(e.dial(t, opts...))
}

// openStreams counts the calls the server's connections hold.
func (e *env) openStreams() int {
	s := e.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		c.smu.Lock()
		n += len(c.streams)
		c.smu.Unlock()
	}
	return n
}

func (e *env) openConns() int {
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	return len(e.srv.conns)
}

// checkNoStreams fails the test unless the server soon holds no call: a
// call ended (answered, reset, refused) must be forgotten.
func (e *env) checkNoStreams(t *testing.T) {
	t.Helper()
	if !eventually(func() bool { return e.openStreams() == 0 }) {
		t.Errorf("the server still holds %d calls after they ended", e.openStreams())
	}
}

// eventually polls cond until it holds, for waitFor at most.
func eventually(cond func() bool) bool {
	for end := time.Now().Add(waitFor); ; {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// tctx is a context for a test's calls, ended with the test.
func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// recv receives from ch, or fails the test after waitFor.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// recvAll receives a stream's messages until it ends: its error is nil
// when it ended with OK.
func recvAll[T any](s interface{ Recv() (*T, error) }) ([]*T, error) {
	var out []*T
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// checkPatterns checks that msgs are the payloads pattern(ns[i], i).
func checkPatterns(t *testing.T, msgs []*testpb.StreamingOutputCallResponse, ns []int) {
	t.Helper()
	if len(msgs) != len(ns) {
		t.Errorf("%d messages, want %d", len(msgs), len(ns))
	}
	for i, m := range msgs[:min(len(msgs), len(ns))] {
		if !checkBytes(t, fmt.Sprintf("message %d", i), m.GetPayload().GetBody(), pattern(ns[i], i)) {
			return
		}
	}
}

func TestUnaryPayloads(t *testing.T) {
	servers := map[string]Options{
		"default": {},
		"large":   {MaxRecvMsgSize: 16 << 20, MaxSendMsgSize: 16 << 20},
		"wide":    {MaxRecvMsgSize: 16 << 20, StreamWindow: 1 << 20, ConnWindow: 4 << 20, Workers: 2},
	}
	clients := map[string]testpb.TestServiceClient{}
	for name, opt := range servers {
		e := startTestServer(t, opt, &testServer{})
		clients[name] = e.client(t, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(32<<20), grpc.MaxCallSendMsgSize(32<<20)))
	}
	cases := []struct {
		server string
		size   int
	}{
		{"default", 0},
		{"default", 1},
		{"default", 100},
		{"default", 16<<10 - 8}, // the message (with its prefix and tag) just within one frame
		{"default", 16 << 10},
		{"default", 16<<10 + 1},
		{"default", 64<<10 - 1},
		{"default", 64 << 10}, // past the 65,535-byte windows
		{"default", 200 << 10},
		{"default", 1 << 20},
		{"large", 8 << 20},
		{"wide", 64<<10 + 1},
		{"wide", 3 << 20},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%s/%d", tc.server, tc.size), func(t *testing.T) {
			body := randBytes(tc.size, byte(i))
			resp, err := clients[tc.server].UnaryCall(tctx(t), simple(body))
			if err != nil {
				t.Fatal(err)
			}
			checkBytes(t, "echoed payload", resp.GetPayload().GetBody(), body)
		})
	}
}

func TestUnaryConcurrent(t *testing.T) {
	cases := []struct {
		name string
		opt  Options
	}{
		{"goroutine per call", Options{}},
		{"workers", Options{Workers: 4}},
		{"stream limit", Options{Workers: 2, MaxConcurrentStreams: 8}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startTestServer(t, tc.opt, &testServer{})
			c := e.client(t)
			ctx := tctx(t)
			const calls = 200
			var wg sync.WaitGroup
			var failed atomic.Int32
			for i := range calls {
				wg.Go(func() {
					body := pattern((i*997)%20000, i)
					resp, err := c.UnaryCall(ctx, simple(body))
					if err != nil {
						failed.Add(1)
						t.Errorf("call %d: %v", i, err)
						return
					}
					if !bytes.Equal(resp.GetPayload().GetBody(), body) {
						failed.Add(1)
						t.Errorf("call %d: answered another call's payload (%d bytes, want %d)", i, len(resp.GetPayload().GetBody()), len(body))
					}
				})
			}
			wg.Wait()
			if n := failed.Load(); n > 0 {
				t.Errorf("%d of %d calls failed", n, calls)
			}
		})
	}
}

// TestMixedConcurrent runs unary, server-streaming and bidi calls at
// once on one connection: their frames interleave on the shared writer.
func TestMixedConcurrent(t *testing.T) {
	e := startTestServer(t, Options{Workers: 2}, &testServer{})
	c := e.client(t)
	ctx := tctx(t)
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Go(func() {
			body := pattern(g*1000, g)
			resp, err := c.UnaryCall(ctx, simple(body))
			if err != nil || !bytes.Equal(resp.GetPayload().GetBody(), body) {
				t.Errorf("unary %d: %v", g, err)
			}
		})
		wg.Go(func() {
			ns := make([]int, 50)
			for i := range ns {
				ns[i] = (g*31 + i*101) % 3000
			}
			s, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: sizes(ns...)})
			if err != nil {
				t.Errorf("server stream %d: %v", g, err)
				return
			}
			msgs, err := recvAll(s)
			if err != nil {
				t.Errorf("server stream %d: %v", g, err)
			}
			checkPatterns(t, msgs, ns)
		})
		wg.Go(func() {
			s, err := c.FullDuplexCall(ctx)
			if err != nil {
				t.Errorf("bidi %d: %v", g, err)
				return
			}
			for i := range 30 {
				n := 4 + (g+i)*17
				if err := s.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: sizes(n)}); err != nil {
					t.Errorf("bidi %d send: %v", g, err)
					return
				}
				m, err := s.Recv()
				if err != nil {
					t.Errorf("bidi %d recv: %v", g, err)
					return
				}
				if !bytes.Equal(m.GetPayload().GetBody(), pattern(n, i)) {
					t.Errorf("bidi %d: answer %d differs", g, i)
				}
			}
			s.CloseSend()
			if _, err := s.Recv(); err != io.EOF {
				t.Errorf("bidi %d: ended with %v", g, err)
			}
		})
	}
	wg.Wait()
}

func TestMetadata(t *testing.T) {
	binVal := string([]byte{0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, '\n', '%'})
	large := strings.Repeat("m", 40<<10) // more than a frame: CONTINUATION frames both ways
	seen := make(chan metadata.MD, 8)
	ts := &testServer{}
	ts.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		seen <- md.Copy()
		ok := &testpb.SimpleResponse{Payload: req.GetPayload()}
		switch mode := string(req.GetPayload().GetBody()); mode {
		case "set":
			if err := grpc.SetHeader(ctx, metadata.Pairs("h", "v1", "h-bin", binVal)); err != nil {
				return nil, err
			}
			if err := grpc.SetHeader(ctx, metadata.Pairs("h", "v2")); err != nil {
				return nil, err
			}
			if err := grpc.SetTrailer(ctx, metadata.Pairs("t", "w", "t-bin", binVal)); err != nil {
				return nil, err
			}
			return ok, nil
		case "send":
			if err := grpc.SendHeader(ctx, metadata.Pairs("h", "sent")); err != nil {
				return nil, err
			}
			if err := grpc.SetHeader(ctx, metadata.Pairs("late", "x")); err == nil {
				return nil, status.Error(codes.Internal, "SetHeader after SendHeader succeeded")
			}
			grpc.SetTrailer(ctx, metadata.Pairs("t", "after-send"))
			return ok, nil
		case "error":
			grpc.SetHeader(ctx, metadata.Pairs("h", "on-error"))
			grpc.SetTrailer(ctx, metadata.Pairs("t", "on-error"))
			return nil, status.Error(codes.FailedPrecondition, "refused")
		case "trailer-only error":
			grpc.SetTrailer(ctx, metadata.Pairs("t", "only"))
			return nil, status.Error(codes.NotFound, "none")
		case "large":
			if got := md.Get("large-in"); len(got) != 1 || got[0] != large {
				return nil, status.Error(codes.InvalidArgument, "large-in metadata lost")
			}
			grpc.SetHeader(ctx, metadata.Pairs("large-out", large))
			grpc.SetTrailer(ctx, metadata.Pairs("large-trailer", large))
			return ok, nil
		}
		return nil, status.Errorf(codes.InvalidArgument, "mode %q", req.GetPayload().GetBody())
	}
	e := startTestServer(t, Options{}, ts)
	c := e.client(t)

	cases := []struct {
		mode            string
		code            codes.Code
		header, trailer map[string][]string
	}{
		{"set", codes.OK, map[string][]string{"h": {"v1", "v2"}, "h-bin": {binVal}}, map[string][]string{"t": {"w"}, "t-bin": {binVal}}},
		{"send", codes.OK, map[string][]string{"h": {"sent"}, "late": nil}, map[string][]string{"t": {"after-send"}}},
		{"error", codes.FailedPrecondition, map[string][]string{"h": {"on-error"}}, map[string][]string{"t": {"on-error"}}},
		{"trailer-only error", codes.NotFound, nil, map[string][]string{"t": {"only"}}},
		{"large", codes.OK, map[string][]string{"large-out": {large}}, map[string][]string{"large-trailer": {large}}},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(tctx(t),
				"k1", "v1", "multi", "a", "multi", "b", "trace-bin", binVal)
			if tc.mode == "large" {
				ctx = metadata.AppendToOutgoingContext(ctx, "large-in", large)
			}
			var header, trailer metadata.MD
			_, err := c.UnaryCall(ctx, simple([]byte(tc.mode)), grpc.Header(&header), grpc.Trailer(&trailer))
			if status.Code(err) != tc.code {
				t.Fatalf("status %v, want %v", err, tc.code)
			}
			md := recv(t, "the handler's metadata", seen)
			for k, want := range map[string][]string{"k1": {"v1"}, "multi": {"a", "b"}, "trace-bin": {binVal}} {
				if got := md.Get(k); !slices.Equal(got, want) {
					t.Errorf("incoming %s = %q, want %q", k, got, want)
				}
			}
			for k := range md {
				if strings.HasPrefix(k, ":") || reserved(k) {
					t.Errorf("incoming metadata has transport header %q", k)
				}
			}
			for k, want := range tc.header {
				if got := header.Get(k); !slices.Equal(got, want) {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			for k, want := range tc.trailer {
				if got := trailer.Get(k); !slices.Equal(got, want) {
					t.Errorf("trailer %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestStreamMetadata: a streaming call's SetHeader, SendHeader (which
// must reach the client before any message) and SetTrailer.
func TestStreamMetadata(t *testing.T) {
	binVal := string([]byte{0, 0xff, 0x10})
	headerSeen := make(chan struct{})
	incoming := make(chan metadata.MD, 1)
	ts := &testServer{output: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
		md, _ := metadata.FromIncomingContext(s.Context())
		incoming <- md.Copy()
		if err := s.SetHeader(metadata.Pairs("sh", "1")); err != nil {
			return err
		}
		if err := s.SendHeader(metadata.Pairs("sh-bin", binVal)); err != nil {
			return err
		}
		if err := s.SetHeader(metadata.Pairs("late", "1")); err == nil {
			return status.Error(codes.Internal, "SetHeader after SendHeader succeeded")
		}
		select { // the header went out alone: the client has it before any message
		case <-headerSeen:
		case <-s.Context().Done():
			return s.Context().Err()
		}
		for i := range 3 {
			if err := s.Send(outMsg(pattern(10, i))); err != nil {
				return err
			}
		}
		s.SetTrailer(metadata.Pairs("st", "a"))
		s.SetTrailer(metadata.Pairs("st", "b", "st-bin", binVal))
		return nil
	}}
	e := startTestServer(t, Options{}, ts)
	ctx := metadata.AppendToOutgoingContext(tctx(t), "stream-key", "sv", "stream-bin", binVal)
	s, err := e.client(t).StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	close(headerSeen)
	if !slices.Equal(h.Get("sh"), []string{"1"}) || !slices.Equal(h.Get("sh-bin"), []string{binVal}) || h.Get("late") != nil {
		t.Errorf("header %v", h)
	}
	msgs, err := recvAll(s)
	if err != nil {
		t.Fatal(err)
	}
	checkPatterns(t, msgs, []int{10, 10, 10})
	tr := s.Trailer()
	if !slices.Equal(tr.Get("st"), []string{"a", "b"}) || !slices.Equal(tr.Get("st-bin"), []string{binVal}) {
		t.Errorf("trailer %v", tr)
	}
	md := recv(t, "the handler's metadata", incoming)
	if !slices.Equal(md.Get("stream-key"), []string{"sv"}) || !slices.Equal(md.Get("stream-bin"), []string{binVal}) {
		t.Errorf("incoming metadata %v", md)
	}
}

func TestErrors(t *testing.T) {
	type call func(ctx context.Context, c testpb.TestServiceClient, cc *grpc.ClientConn) error
	unary := func(req *testpb.SimpleRequest, opts ...grpc.CallOption) call {
		return func(ctx context.Context, c testpb.TestServiceClient, _ *grpc.ClientConn) error {
			_, err := c.UnaryCall(ctx, req, opts...)
			return err
		}
	}
	failWith := func(err error) *testServer {
		return &testServer{unary: func(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) { return nil, err }}
	}
	// outputCall runs a server stream, checks the messages before its
	// end, and returns how it ended.
	outputCall := func(req *testpb.StreamingOutputCallRequest, want int, opts ...grpc.CallOption) call {
		return func(ctx context.Context, c testpb.TestServiceClient, _ *grpc.ClientConn) error {
			s, err := c.StreamingOutputCall(ctx, req, opts...)
			if err != nil {
				return err
			}
			msgs, err := recvAll(s)
			if len(msgs) != want {
				return fmt.Errorf("%d messages before the status, want %d", len(msgs), want)
			}
			return err
		}
	}
	info := &errdetails.ErrorInfo{Reason: "QUOTA_EXCEEDED", Domain: "test.example", Metadata: map[string]string{"limit": "10", "unit": "calls"}}
	detailed, err := status.New(codes.ResourceExhausted, "over quota").WithDetails(info)
	if err != nil {
		t.Fatal(err)
	}
	const oddMessage = "héllo, wörld: 100% ✓ — 日本語 %41 %% \t line\nnext \x01"

	type testCase struct {
		name  string
		opt   Options
		ts    *testServer
		call  call
		code  codes.Code
		msg   string // when not empty, the message exactly
		check func(t *testing.T, s *status.Status)
	}
	cases := []testCase{
		{name: "odd message", call: unary(&testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.InvalidArgument), Message: oddMessage}}),
			code: codes.InvalidArgument, msg: oddMessage},
		{name: "details", ts: failWith(detailed.Err()), call: unary(simple(nil)), code: codes.ResourceExhausted, msg: "over quota",
			check: func(t *testing.T, s *status.Status) {
				ds := s.Details()
				if len(ds) != 1 {
					t.Fatalf("details %v, want the ErrorInfo", ds)
				}
				if got, ok := ds[0].(*errdetails.ErrorInfo); !ok || !proto.Equal(got, info) {
					t.Errorf("detail %v, want %v", ds[0], info)
				}
			}},
		{name: "plain error", ts: failWith(errors.New("boom 100%")), call: unary(simple(nil)), code: codes.Unknown, msg: "boom 100%"},
		{name: "deadline error", ts: failWith(context.DeadlineExceeded), call: unary(simple(nil)), code: codes.DeadlineExceeded},
		{name: "wrapped deadline error", ts: failWith(fmt.Errorf("upstream: %w", context.DeadlineExceeded)), call: unary(simple(nil)), code: codes.DeadlineExceeded},
		{name: "canceled error", ts: failWith(context.Canceled), call: unary(simple(nil)), code: codes.Canceled},
		{name: "unimplemented method", call: func(ctx context.Context, c testpb.TestServiceClient, _ *grpc.ClientConn) error {
			_, err := c.UnimplementedCall(ctx, &testpb.Empty{})
			return err
		}, code: codes.Unimplemented},
		{name: "unknown method", call: func(ctx context.Context, _ testpb.TestServiceClient, cc *grpc.ClientConn) error {
			return cc.Invoke(ctx, "/grpc.testing.TestService/NoSuchMethod", &testpb.Empty{}, &testpb.Empty{})
		}, code: codes.Unimplemented, msg: "unknown method NoSuchMethod for service grpc.testing.TestService"},
		{name: "unknown service", call: func(ctx context.Context, _ testpb.TestServiceClient, cc *grpc.ClientConn) error {
			_, err := testpb.NewUnimplementedServiceClient(cc).UnimplementedCall(ctx, &testpb.Empty{})
			return err
		}, code: codes.Unimplemented, msg: "unknown service grpc.testing.UnimplementedService"},
		{name: "unknown stream method", call: func(ctx context.Context, _ testpb.TestServiceClient, cc *grpc.ClientConn) error {
			s, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/no.Such/Stream")
			if err != nil {
				return err
			}
			return s.RecvMsg(&testpb.Empty{})
		}, code: codes.Unimplemented},
		{name: "request too large", opt: Options{MaxRecvMsgSize: 1024}, call: unary(simple(make([]byte, 2048))), code: codes.ResourceExhausted},
		{name: "request too large, past the windows", opt: Options{MaxRecvMsgSize: 1024}, call: unary(simple(make([]byte, 1<<20))), code: codes.ResourceExhausted},
		{name: "request at the bound", opt: Options{MaxRecvMsgSize: 1024}, call: unary(atSize(t, 1024)), code: codes.OK},
		{name: "request a byte past the bound", opt: Options{MaxRecvMsgSize: 1024}, call: unary(atSize(t, 1025)), code: codes.ResourceExhausted},
		{name: "client stream message too large", opt: Options{MaxRecvMsgSize: 1024}, call: func(ctx context.Context, c testpb.TestServiceClient, _ *grpc.ClientConn) error {
			s, err := c.StreamingInputCall(ctx)
			if err != nil {
				return err
			}
			s.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 100)}})
			s.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 4096)}})
			_, err = s.CloseAndRecv()
			return err
		}, code: codes.ResourceExhausted},
		{name: "response too large", opt: Options{MaxSendMsgSize: 1024}, call: unary(&testpb.SimpleRequest{ResponseSize: 4096}), code: codes.ResourceExhausted},
		{name: "stream response too large", opt: Options{MaxSendMsgSize: 1024},
			call: outputCall(&testpb.StreamingOutputCallRequest{ResponseParameters: sizes(10, 500, 4096, 10)}, 2), code: codes.ResourceExhausted},
		{name: "compressed", call: unary(simple([]byte("squeeze me")), grpc.UseCompressor(gzip.Name)), code: codes.Unimplemented},
		{name: "compressed stream", call: outputCall(&testpb.StreamingOutputCallRequest{ResponseParameters: sizes(1)}, 0, grpc.UseCompressor(gzip.Name)),
			code: codes.Unimplemented},
		{name: "status after messages", call: outputCall(&testpb.StreamingOutputCallRequest{ResponseParameters: sizes(1, 20000, 3),
			ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Aborted), Message: "midway ✗"}}, 3), code: codes.Aborted, msg: "midway ✗"},
		{name: "bidi status", call: func(ctx context.Context, c testpb.TestServiceClient, _ *grpc.ClientConn) error {
			s, err := c.FullDuplexCall(ctx)
			if err != nil {
				return err
			}
			s.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: sizes(5)})
			if _, err := s.Recv(); err != nil {
				return fmt.Errorf("first answer: %w", err)
			}
			s.Send(&testpb.StreamingOutputCallRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.OutOfRange), Message: "stop"}})
			_, err = s.Recv()
			return err
		}, code: codes.OutOfRange, msg: "stop"},
	}
	for _, code := range []codes.Code{codes.Canceled, codes.Unknown, codes.InvalidArgument, codes.DeadlineExceeded, codes.NotFound,
		codes.AlreadyExists, codes.PermissionDenied, codes.ResourceExhausted, codes.FailedPrecondition, codes.Aborted,
		codes.OutOfRange, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss, codes.Unauthenticated} {
		msg := "status " + code.String()
		cases = append(cases, testCase{name: "code " + code.String(), code: code, msg: msg,
			call: unary(&testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(code), Message: msg}})})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := tc.ts
			if ts == nil {
				ts = &testServer{}
			}
			e := startTestServer(t, tc.opt, ts)
			cc := e.dial(t)
			err := tc.call(tctx(t), testpb.NewTestServiceClient(cc), cc)
			if _, ok := status.FromError(err); !ok {
				t.Fatalf("the call ended with %v, not a status", err)
			}
			checkStatus(t, "the call", err, tc.code, tc.msg)
			if tc.check != nil {
				tc.check(t, status.Convert(err))
			}
			// the connection is still good
			if _, err := testpb.NewTestServiceClient(cc).EmptyCall(tctx(t), &testpb.Empty{}); err != nil {
				t.Errorf("a call after: %v", err)
			}
		})
	}
}

func TestServerStreaming(t *testing.T) {
	e := startTestServer(t, Options{Workers: 1}, &testServer{})
	c := e.client(t)
	cases := []struct {
		name string
		ns   []int
	}{
		{"none", nil},
		{"one empty", []int{0}},
		{"1000 small", func() []int {
			ns := make([]int, 1000)
			for i := range ns {
				ns[i] = 4 + (i%97)*13
			}
			return ns
		}()},
		{"frames and windows", []int{16<<10 - 5, 16 << 10, 16<<10 + 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300 << 10, 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.StreamingOutputCall(tctx(t), &testpb.StreamingOutputCallRequest{ResponseParameters: sizes(tc.ns...)})
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := recvAll(s)
			if err != nil {
				t.Fatal(err)
			}
			checkPatterns(t, msgs, tc.ns)
		})
	}
}

// TestServerStreamFlowControl: a stream much larger than the client's
// windows, which the client does not read for a while. The server must
// wait for the windows (grpc-go's client ends the connection when a peer
// sends past them) and resume as they open, losing nothing.
func TestServerStreamFlowControl(t *testing.T) {
	const n, size = 24, 100 << 10
	for _, window := range []int32{64 << 10, 1 << 20} {
		t.Run(fmt.Sprintf("window %d", window), func(t *testing.T) {
			var sent atomic.Int32
			ts := &testServer{output: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
				for i := range n {
					if err := s.Send(outMsg(pattern(size, i))); err != nil {
						return err
					}
					sent.Add(1)
				}
				return nil
			}}
			e := startTestServer(t, Options{}, ts)
			c := e.client(t, grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window))
			s, err := c.StreamingOutputCall(tctx(t), &testpb.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			first, err := s.Recv()
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond) // the client reads nothing: the server is held by the windows
			if k := sent.Load(); k == n {
				t.Errorf("the server sent all %d messages (%d bytes) while the client read one: it did not wait for the windows", k, n*size)
			}
			msgs, err := recvAll(s)
			if err != nil {
				t.Fatal(err)
			}
			checkPatterns(t, append([]*testpb.StreamingOutputCallResponse{first}, msgs...), slices.Repeat([]int{size}, n))
		})
	}
}

func TestClientStreaming(t *testing.T) {
	cases := []struct {
		name  string
		opt   Options
		ns    []int
		delay bool // the handler starts reading late: the client is held by the windows
	}{
		{"interop sizes", Options{}, []int{27182, 8, 1828, 45904}, false},
		{"none", Options{}, nil, false},
		{"1000 small", Options{}, slices.Repeat([]int{10}, 1000), false},
		{"large", Options{}, slices.Repeat([]int{256 << 10}, 8), false},
		{"handler late, small bound", Options{MaxRecvMsgSize: 100 << 10}, slices.Repeat([]int{64 << 10}, 24), true},
		{"wide windows", Options{StreamWindow: 1 << 20, ConnWindow: 4 << 20, Workers: 2}, slices.Repeat([]int{100 << 10}, 24), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := &testServer{input: func(s testpb.TestService_StreamingInputCallServer) error {
				if tc.delay {
					time.Sleep(50 * time.Millisecond)
				}
				// the payloads must come whole and in order, not only add up
				total := 0
				for i := 0; ; i++ {
					req, err := s.Recv()
					if err == io.EOF {
						return s.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
					}
					if err != nil {
						return err
					}
					if i >= len(tc.ns) || !bytes.Equal(req.GetPayload().GetBody(), pattern(tc.ns[i], i)) {
						return status.Errorf(codes.DataLoss, "message %d differs", i)
					}
					total += len(req.GetPayload().GetBody())
				}
			}}
			e := startTestServer(t, tc.opt, ts)
			s, err := e.client(t).StreamingInputCall(tctx(t))
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for i, n := range tc.ns {
				if err := s.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: pattern(n, i)}}); err != nil {
					_, st := s.CloseAndRecv()
					t.Fatalf("send %d: %v (the call: %v)", i, err, st)
				}
				want += n
			}
			resp, err := s.CloseAndRecv()
			if err != nil {
				t.Fatal(err)
			}
			if got := int(resp.GetAggregatedPayloadSize()); got != want {
				t.Errorf("aggregated %d bytes, want %d", got, want)
			}
		})
	}
}

func TestBidi(t *testing.T) {
	e := startTestServer(t, Options{Workers: 2}, &testServer{})
	c := e.client(t)
	t.Run("ping-pong", func(t *testing.T) {
		s, err := c.FullDuplexCall(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			n := 4 + (i*37)%5000
			if i%50 == 49 {
				n = 70 << 10 // now and then one past the windows
			}
			if err := s.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: sizes(n)}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			m, err := s.Recv()
			if err != nil {
				t.Fatalf("recv %d: %v", i, err)
			}
			if !checkBytes(t, fmt.Sprintf("answer %d", i), m.GetPayload().GetBody(), pattern(n, i)) {
				return
			}
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Errorf("after CloseSend: %v, want io.EOF", err)
		}
	})
	t.Run("both ways at once", func(t *testing.T) {
		s, err := c.FullDuplexCall(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		const n = 500
		sendErr := make(chan error, 1)
		go func() {
			for i := range n {
				if err := s.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: sizes(i * 8), Payload: &testpb.Payload{Body: pattern(i*8, i)}}); err != nil {
					sendErr <- err
					return
				}
			}
			sendErr <- s.CloseSend()
		}()
		msgs, err := recvAll(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := recv(t, "the sender", sendErr); err != nil {
			t.Fatal(err)
		}
		ns := make([]int, n)
		for i := range ns {
			ns[i] = i * 8
		}
		checkPatterns(t, msgs, ns)
	})
	t.Run("half duplex", func(t *testing.T) {
		s, err := c.HalfDuplexCall(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		var ns []int
		for i := range 10 {
			ns = append(ns, 100*i+4, 7)
			if err := s.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: sizes(100*i+4, 7)}); err != nil {
				t.Fatal(err)
			}
		}
		s.CloseSend()
		msgs, err := recvAll(s)
		if err != nil {
			t.Fatal(err)
		}
		checkPatterns(t, msgs, ns)
	})
}

// holderOf is a generated stream's transport stream as a Holder.
func holderOf(s any) Holder {
	if g, ok := s.(*grpc.GenericServerStream[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]); ok {
		s = g.ServerStream
	}
	h, _ := s.(Holder)
	return h
}

// encodedOut is pattern(n, seed) as a response already encoded.
func encodedOut(t *testing.T, n, seed int) Encoded {
	b, err := proto.Marshal(outMsg(pattern(n, seed)))
	if err != nil {
		t.Error(err)
	}
	return Encoded(b)
}

// TestHoldAndFlush: messages held are sent at Flush, in order with those
// sent, and the held ones left at the end go with the status.
func TestHoldAndFlush(t *testing.T) {
	const n = 10
	held, flushNow, gotAll := make(chan struct{}), make(chan struct{}), make(chan struct{})
	ts := &testServer{output: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
		h := holderOf(s)
		if h == nil {
			return status.Errorf(codes.Internal, "%T is not a Holder", s)
		}
		wait := func(ch chan struct{}) error {
			select {
			case <-ch:
				return nil
			case <-s.Context().Done():
				return s.Context().Err()
			}
		}
		for i := range n {
			if err := h.Hold(encodedOut(t, 100+i, i)); err != nil {
				return err
			}
		}
		close(held)
		if err := wait(flushNow); err != nil {
			return err
		}
		if err := h.Flush(); err != nil {
			return err
		}
		if err := wait(gotAll); err != nil { // only Flush can have sent them
			return err
		}
		if err := s.SendMsg(encodedOut(t, 100+n, n)); err != nil {
			return err
		}
		for i := n + 1; i < 2*n; i++ {
			if err := h.Hold(encodedOut(t, 100+i, i)); err != nil {
				return err
			}
		}
		return nil // the status sends the ones held
	}}
	e := startTestServer(t, Options{}, ts)
	s, err := e.client(t).StreamingOutputCall(tctx(t), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *testpb.StreamingOutputCallResponse, 2*n)
	done := make(chan error, 1)
	go func() {
		for {
			m, err := s.Recv()
			if err != nil {
				close(msgs)
				done <- err
				return
			}
			msgs <- m
		}
	}()
	recv(t, "the handler to hold its messages", held)
	time.Sleep(20 * time.Millisecond)
	if len(msgs) > 0 {
		t.Errorf("%d held messages reached the client before Flush", len(msgs))
	}
	close(flushNow)
	var got []*testpb.StreamingOutputCallResponse
	for range n {
		got = append(got, recv(t, "a flushed message", msgs))
	}
	close(gotAll)
	if err := recv(t, "the end of the stream", done); err != io.EOF {
		t.Fatalf("stream ended with %v", err)
	}
	for m := range msgs {
		got = append(got, m)
	}
	ns := make([]int, 2*n)
	for i := range ns {
		ns[i] = 100 + i
	}
	checkPatterns(t, got, ns)
}

// TestEncodedUnary: a unary handler answering Encoded, as the generated
// code of a service that marshals its own answers does.
func TestEncodedUnary(t *testing.T) {
	desc := &grpc.ServiceDesc{
		ServiceName: "test.Raw",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Echo", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(testpb.SimpleRequest)
			if err := dec(in); err != nil {
				return nil, err
			}
			b, err := proto.Marshal(&testpb.SimpleResponse{Payload: in.GetPayload(), Username: "encoded"})
			return Encoded(b), err
		}}},
	}
	e := startServer(t, Options{}, func(s *Server) { s.RegisterService(desc, struct{}{}) })
	cc := e.dial(t)
	for _, n := range []int{0, 10, 100 << 10} {
		body := randBytes(n, byte(n))
		var resp testpb.SimpleResponse
		if err := cc.Invoke(tctx(t), "/test.Raw/Echo", simple(body), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.GetUsername() != "encoded" {
			t.Errorf("username %q", resp.GetUsername())
		}
		checkBytes(t, "payload", resp.GetPayload().GetBody(), body)
	}
	if info := e.srv.GetServiceInfo()["test.Raw"]; len(info.Methods) != 1 || info.Methods[0].Name != "Echo" {
		t.Errorf("service info %+v", info)
	}
}

func TestDeadline(t *testing.T) {
	type seen struct {
		deadline time.Time
		ok       bool
	}
	deadlines := make(chan seen, 1)
	record := func(ctx context.Context) {
		d, ok := ctx.Deadline()
		deadlines <- seen{d, ok}
	}
	ts := &testServer{
		unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			record(ctx)
			return &testpb.SimpleResponse{}, nil
		},
		output: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
			record(s.Context())
			return nil
		},
		duplex: func(s testpb.TestService_FullDuplexCallServer) error {
			record(s.Context())
			return nil
		},
	}
	e := startTestServer(t, Options{}, ts)
	c := e.client(t)
	calls := map[string]func(ctx context.Context) error{
		"unary": func(ctx context.Context) error {
			_, err := c.UnaryCall(ctx, simple(nil))
			return err
		},
		"server stream": func(ctx context.Context) error {
			s, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
			if err != nil {
				return err
			}
			_, err = recvAll(s)
			return err
		},
		"bidi": func(ctx context.Context) error {
			s, err := c.FullDuplexCall(ctx)
			if err != nil {
				return err
			}
			_, err = recvAll(s)
			return err
		},
	}
	for name, call := range calls {
		for _, timeout := range []time.Duration{0, 3 * time.Second, time.Hour} {
			t.Run(fmt.Sprintf("%s/%v", name, timeout), func(t *testing.T) {
				ctx := context.Background()
				if timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, timeout)
					defer cancel()
				}
				if err := call(ctx); err != nil {
					t.Fatal(err)
				}
				got := recv(t, "the handler's deadline", deadlines)
				want, ok := ctx.Deadline()
				if got.ok != ok {
					t.Fatalf("the handler has a deadline: %v, want %v", got.ok, ok)
				}
				if ok && got.deadline.Sub(want).Abs() > time.Second {
					t.Errorf("the handler's deadline is %v from the client's", got.deadline.Sub(want))
				}
			})
		}
	}
}

// TestCallEnds: a handler that waits sees its context end when the
// client cancels its call, or its deadline passes, whatever the kind of
// call; the client has Canceled or DeadlineExceeded.
func TestCallEnds(t *testing.T) {
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	block := func(ctx context.Context) error {
		started <- struct{}{}
		<-ctx.Done()
		ended <- ctx.Err()
		return ctx.Err()
	}
	ts := &testServer{
		unary: func(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			return nil, block(ctx)
		},
		output: func(_ *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
			return block(s.Context())
		},
		input: func(s testpb.TestService_StreamingInputCallServer) error {
			return block(s.Context())
		},
		duplex: func(s testpb.TestService_FullDuplexCallServer) error {
			return block(s.Context())
		},
	}
	e := startTestServer(t, Options{Workers: 2}, ts)
	c := e.client(t)
	calls := []struct {
		kind string
		call func(ctx context.Context) error
	}{
		{"unary", func(ctx context.Context) error {
			_, err := c.UnaryCall(ctx, simple([]byte("wait")))
			return err
		}},
		{"server stream", func(ctx context.Context) error {
			s, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
		{"client stream", func(ctx context.Context) error {
			s, err := c.StreamingInputCall(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(&testpb.StreamingInputCallRequest{}); err != nil && err != io.EOF {
				return err // io.EOF: the call has ended (the handler runs from HEADERS), CloseAndRecv says how
			}
			_, err = s.CloseAndRecv()
			return err
		}},
		{"bidi", func(ctx context.Context) error {
			s, err := c.FullDuplexCall(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(&testpb.StreamingOutputCallRequest{}); err != nil && err != io.EOF {
				return err // io.EOF: the call has ended, Recv says how
			}
			_, err = s.Recv()
			return err
		}},
	}
	for _, k := range calls {
		t.Run(k.kind+"/cancel", func(t *testing.T) {
			ctx, cancel := context.WithCancel(tctx(t))
			defer cancel()
			res := make(chan error, 1)
			go func() { res <- k.call(ctx) }()
			recv(t, "the handler to start", started)
			cancel()
			checkStatus(t, "the call", recv(t, "the call to end", res), codes.Canceled, "")
			if err := recv(t, "the handler to see its context end", ended); !errors.Is(err, context.Canceled) {
				t.Errorf("the handler's context ended with %v, want Canceled", err)
			}
		})
		t.Run(k.kind+"/deadline", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			res := make(chan error, 1)
			go func() { res <- k.call(ctx) }()
			recv(t, "the handler to start", started)
			checkStatus(t, "the call", recv(t, "the call to end", res), codes.DeadlineExceeded, "")
			// the server's timer or the client's RST_STREAM, whichever came first
			if err := recv(t, "the handler to see its context end", ended); err == nil {
				t.Error("the handler's context has no error")
			}
		})
	}
}

func TestHealth(t *testing.T) {
	hs := health.NewServer()
	e := startServer(t, Options{}, func(s *Server) {
		testpb.RegisterTestServiceServer(s, &testServer{})
		healthpb.RegisterHealthServer(s, hs)
	})
	hc := healthpb.NewHealthClient(e.dial(t))
	ctx := tctx(t)
	check := func(service string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		if resp.GetStatus() != want {
			t.Errorf("Check(%q) = %v, want %v", service, resp.GetStatus(), want)
		}
	}
	check("", healthpb.HealthCheckResponse_SERVING)
	const svc = "grpc.testing.TestService"
	hs.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	check(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check of an unknown service: %v, want NotFound", err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	next := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus() != want {
			t.Errorf("Watch: %v, want %v", resp.GetStatus(), want)
		}
	}
	next(healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	next(healthpb.HealthCheckResponse_SERVING)
	cancel()
	if _, err := w.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Watch after cancel: %v", err)
	}
}

func TestReflection(t *testing.T) {
	e := startServer(t, Options{}, func(s *Server) {
		testpb.RegisterTestServiceServer(s, &testServer{})
		healthpb.RegisterHealthServer(s, health.NewServer())
		reflection.Register(s)
	})
	rc := rpb.NewServerReflectionClient(e.dial(t))
	s, err := rc.ServerReflectionInfo(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *rpb.ServerReflectionRequest) *rpb.ServerReflectionResponse {
		t.Helper()
		if err := s.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	slices.Sort(names)
	want := []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "grpc.testing.TestService"}
	if !slices.Equal(names, want) {
		t.Errorf("services %q, want %q", names, want)
	}

	resp = ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "grpc.testing.TestService"}})
	var methods []string
	for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(b, &fd); err != nil {
			t.Fatal(err)
		}
		for _, sd := range fd.GetService() {
			if sd.GetName() == "TestService" {
				for _, m := range sd.GetMethod() {
					methods = append(methods, m.GetName())
				}
			}
		}
	}
	if !slices.Contains(methods, "FullDuplexCall") || !slices.Contains(methods, "UnaryCall") {
		t.Errorf("TestService's descriptor has methods %q", methods)
	}

	resp = ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "no.Such"}})
	if got := codes.Code(resp.GetErrorResponse().GetErrorCode()); got != codes.NotFound {
		t.Errorf("an unknown symbol: %v, want NotFound", got)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Errorf("after CloseSend: %v", err)
	}
}

// blockingServer's UnaryCall with the body "block" waits for release (or
// its context), telling started when it begins; any other echoes.
func blockingServer(started chan<- struct{}, release <-chan struct{}) *testServer {
	return &testServer{unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		if string(req.GetPayload().GetBody()) == "block" {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
	}}
}

func TestGracefulStop(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	e := startTestServer(t, Options{Workers: 2}, blockingServer(started, release))
	c := e.client(t)
	ctx := tctx(t)
	if _, err := c.EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		resp *testpb.SimpleResponse
		err  error
	}
	running := make(chan result, 1)
	go func() {
		resp, err := c.UnaryCall(ctx, simple([]byte("block")))
		running <- result{resp, err}
	}()
	recv(t, "the call to start", started)

	stopped := make(chan struct{})
	go func() {
		e.srv.GracefulStop()
		close(stopped)
	}()
	// New calls fail (the client is told to go away, and the listener is
	// closed), while the running one goes on.
	var err error
	if !eventually(func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = c.EmptyCall(cctx, &testpb.Empty{})
		return err != nil
	}) {
		t.Fatal("new calls still succeed after GracefulStop")
	}
	checkStatus(t, "a call after GracefulStop", err, codes.Unavailable, "")
	select {
	case <-stopped:
		t.Fatal("GracefulStop returned while a call was running")
	default:
	}

	close(release)
	r := recv(t, "the running call", running)
	if r.err != nil {
		t.Fatalf("the running call: %v", r.err)
	}
	if got := string(r.resp.GetPayload().GetBody()); got != "block" {
		t.Errorf("the running call's answer: %q", got)
	}
	recv(t, "GracefulStop to return", stopped)
	if err := e.wait(); !errors.Is(err, ErrServerStopped) {
		t.Errorf("Serve: %v", err)
	}
	if n := e.openConns(); n != 0 {
		t.Errorf("%d connections left", n)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Serve(ln); !errors.Is(err, ErrServerStopped) {
		t.Errorf("Serve after GracefulStop: %v", err)
	}
}

// TestGracefulStopManyCalls: calls that end together during GracefulStop
// all get their answer, the last included, though another call's
// goroutine may be the one writing it when the connection closes.
func TestGracefulStopManyCalls(t *testing.T) {
	const n = 16
	started, release := make(chan struct{}, n), make(chan struct{})
	e := startTestServer(t, Options{Workers: 4}, blockingServer(started, release))
	c := e.client(t)
	ctx := tctx(t)
	res := make(chan error, n)
	for range n {
		go func() {
			resp, err := c.UnaryCall(ctx, simple([]byte("block")))
			if err == nil && string(resp.GetPayload().GetBody()) != "block" {
				err = fmt.Errorf("answer %q", resp.GetPayload().GetBody())
			}
			res <- err
		}()
	}
	for range n {
		recv(t, "the calls to start", started)
	}
	stopped := make(chan struct{})
	go func() {
		e.srv.GracefulStop()
		close(stopped)
	}()
	if !eventually(func() bool {
		e.srv.mu.Lock()
		defer e.srv.mu.Unlock()
		for c := range e.srv.conns {
			c.smu.Lock()
			going := c.goingAway
			c.smu.Unlock()
			if !going {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the connection was not told to go away")
	}
	close(release)
	for i := range n {
		if err := recv(t, "a call's answer", res); err != nil {
			t.Errorf("call %d of those running at GracefulStop: %v", i, err)
		}
	}
	recv(t, "GracefulStop to return", stopped)
}

// TestLastStreamWaitsForTheWriter is the race behind
// TestGracefulStopManyCalls, made to happen: the last call of a
// connection going away ends while another goroutine is the one sending
// (between two rounds of its flush, the call's status among the bytes
// gathered). The connection must close only once they have gone out.
func TestLastStreamWaitsForTheWriter(t *testing.T) {
	srvSide, cliSide := net.Pipe()
	defer cliSide.Close()
	c := newConn(New(Options{Log: slog.New(slog.DiscardHandler)}), srvSide)
	c.ready = true // as after the handshake
	st := &stream{id: 1}
	c.streams[1], c.goingAway = st, true
	c.writePing([8]byte{'l', 'a', 's', 't'}) // stands for the call's status
	want := bytes.Clone(c.out)
	c.flushing = true // another writer is sending

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(cliSide)
		got <- b
	}()
	done := make(chan struct{})
	go func() {
		c.streamDone(st)
		close(done)
	}()
	time.Sleep(20 * time.Millisecond) // streamDone is waiting for the writer, not closing
	c.wmu.Lock()
	c.flush(-1) // the writer's next round
	recv(t, "streamDone", done)
	checkBytes(t, "what the client read before the connection closed", recv(t, "the connection to close", got), want)
}

// TestFlushKeepsTheBytesItSends is the corruption TestMixedConcurrent
// met, made to happen: after the writer has sent a batch grown past the
// size of a spare kept, other writers append while its next batch is on
// the wire. They must not write into the bytes being sent. net.Pipe's
// writes wait for the reader, which holds each batch in flight while the
// test appends.
func TestFlushKeepsTheBytesItSends(t *testing.T) {
	srvSide, cliSide := net.Pipe()
	defer cliSide.Close()
	c := newConn(New(Options{Log: slog.New(slog.DiscardHandler)}), srvSide)
	c.ready = true // as after the handshake
	c.out, c.spare = make([]byte, 0, 300<<10), make([]byte, 0, 32<<10)
	pings := func(b byte) func() {
		return func() {
			for range 100 {
				c.writePing([8]byte{b, b, b, b, b, b, b, b})
			}
		}
	}
	c.writeDataParts(1, [2][]byte{bytes.Repeat([]byte{'A'}, 200<<10), nil}, 0, 200<<10, 16384)
	lenA := len(c.out)
	want := bytes.Clone(c.out)
	for _, b := range []byte{'B', 'C'} {
		pings(b)()
		want = append(want, c.out[len(want):]...)
	}
	c.out = c.out[:lenA]

	inFlight, appended := make(chan struct{}), make(chan struct{})
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		one := make([]byte, 1)
		hold := func() { // a batch's first byte: its write is in flight
			io.ReadFull(cliSide, one)
			all = append(all, one...)
			inFlight <- struct{}{}
			<-appended
		}
		hold()
		rest := make([]byte, lenA-1)
		io.ReadFull(cliSide, rest)
		all = append(all, rest...)
		hold()
		b, _ := io.ReadAll(cliSide)
		got <- append(all, b...)
	}()
	flushed := make(chan struct{})
	go func() {
		c.wmu.Lock()
		c.flushing = true
		c.flush(-1)
		close(flushed)
	}()
	for _, b := range []byte{'B', 'C'} {
		recv(t, "a batch in flight", inFlight)
		c.write(pings(b), false) // another call's frames, while the batch is sent
		appended <- struct{}{}
	}
	recv(t, "the flush", flushed)
	srvSide.Close()
	checkBytes(t, "the bytes sent", recv(t, "the bytes sent", got), want)
}

// TestGracefulStopIdle: connections with no call close at once.
func TestGracefulStopIdle(t *testing.T) {
	e := startTestServer(t, Options{}, &testServer{})
	for range 3 {
		if _, err := e.client(t).EmptyCall(tctx(t), &testpb.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	stopped := make(chan struct{})
	go func() {
		e.srv.GracefulStop()
		close(stopped)
	}()
	recv(t, "GracefulStop to return", stopped)
	if n := e.openConns(); n != 0 {
		t.Errorf("%d connections left", n)
	}
	if err := e.wait(); !errors.Is(err, ErrServerStopped) {
		t.Errorf("Serve: %v", err)
	}
}

// TestStop: Stop ends the calls running, on its own and when it cuts a
// GracefulStop short.
func TestStop(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		t.Run(fmt.Sprintf("after GracefulStop %v", graceful), func(t *testing.T) {
			started := make(chan struct{}, 2)
			causes := make(chan error, 2)
			wait := func(ctx context.Context) error {
				started <- struct{}{}
				<-ctx.Done()
				causes <- context.Cause(ctx)
				return ctx.Err()
			}
			ts := &testServer{
				unary: func(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
					return nil, wait(ctx)
				},
				input: func(s testpb.TestService_StreamingInputCallServer) error { return wait(s.Context()) },
			}
			e := startTestServer(t, Options{Workers: 1}, ts)
			c := e.client(t)
			ctx := tctx(t)
			res := make(chan error, 2)
			go func() {
				_, err := c.UnaryCall(ctx, simple(nil))
				res <- err
			}()
			go func() {
				s, err := c.StreamingInputCall(ctx)
				if err == nil {
					_, err = s.CloseAndRecv()
				}
				res <- err
			}()
			recv(t, "a call to start", started)
			recv(t, "a call to start", started)

			gracefulDone := make(chan struct{})
			if graceful {
				go func() {
					e.srv.GracefulStop()
					close(gracefulDone)
				}()
				if !eventually(func() bool {
					e.srv.mu.Lock()
					defer e.srv.mu.Unlock()
					return e.srv.draining
				}) {
					t.Fatal("GracefulStop did not start")
				}
			}
			e.srv.Stop()
			for range 2 {
				if cause := recv(t, "a handler to see its context end", causes); !errors.Is(cause, errConnClosed) {
					t.Errorf("a handler's context ended with %v, want the connection's end", cause)
				}
				checkStatus(t, "a call", recv(t, "a call to end", res), codes.Unavailable, "")
			}
			if graceful {
				recv(t, "GracefulStop to return", gracefulDone)
			}
			if n := e.openConns(); n != 0 {
				t.Errorf("%d connections left after Stop", n)
			}
		})
	}
}

// TestCancelCalls: the calls running see their context end with the
// cause given, and still send the status they choose.
func TestCancelCalls(t *testing.T) {
	cause := errors.New("test: the server is shutting down")
	for _, graceful := range []bool{false, true} {
		t.Run(fmt.Sprintf("during GracefulStop %v", graceful), func(t *testing.T) {
			started := make(chan struct{}, 2)
			wait := func(ctx context.Context) error {
				started <- struct{}{}
				<-ctx.Done()
				if got := context.Cause(ctx); got != cause {
					return status.Errorf(codes.Internal, "cause %v", got)
				}
				return status.Error(codes.Unavailable, "drained: "+context.Cause(ctx).Error())
			}
			ts := &testServer{
				unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
					if len(req.GetPayload().GetBody()) > 0 {
						return &testpb.SimpleResponse{}, nil
					}
					return nil, wait(ctx)
				},
				output: func(_ *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
					if err := s.Send(outMsg(pattern(10, 0))); err != nil {
						return err
					}
					return wait(s.Context())
				},
			}
			e := startTestServer(t, Options{Workers: 2}, ts)
			c := e.client(t)
			ctx := tctx(t)
			unaryRes := make(chan error, 1)
			go func() {
				_, err := c.UnaryCall(ctx, simple(nil))
				unaryRes <- err
			}()
			s, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				t.Fatal(err)
			}
			recv(t, "a call to start", started)
			recv(t, "a call to start", started)

			stopped := make(chan struct{})
			if graceful {
				go func() {
					e.srv.GracefulStop()
					close(stopped)
				}()
			}
			e.srv.CancelCalls(cause)
			want := "drained: " + cause.Error()
			checkStatus(t, "the unary call", recv(t, "the unary call", unaryRes), codes.Unavailable, want)
			_, err = s.Recv()
			checkStatus(t, "the stream", err, codes.Unavailable, want)
			if graceful {
				recv(t, "GracefulStop to return", stopped)
				return
			}
			// the calls after are not cancelled
			if _, err := c.UnaryCall(ctx, simple([]byte("after"))); err != nil {
				t.Errorf("a call after CancelCalls: %v", err)
			}
		})
	}
}

// selfSigned is a certificate for 127.0.0.1, and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := certstest.NewCA(t, t.TempDir(), "grpcserver test CA")
	return ca.Issue(t, "grpcserver test").TLS(t), ca.Pool()
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	e := startTestServer(t, Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}}, &testServer{})
	c := e.client(t, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	ctx := tctx(t)

	body := randBytes(1<<20, 1)
	resp, err := c.UnaryCall(ctx, simple(body))
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "unary over TLS", resp.GetPayload().GetBody(), body)

	s, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		n := 1 + i*3000
		if err := s.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: sizes(n)}); err != nil {
			t.Fatal(err)
		}
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		checkBytes(t, fmt.Sprintf("answer %d", i), m.GetPayload().GetBody(), pattern(n, i))
	}
	s.CloseSend()
	if _, err := s.Recv(); err != io.EOF {
		t.Errorf("bidi over TLS ended with %v", err)
	}

	t.Run("plaintext client", func(t *testing.T) {
		_, err := e.client(t).EmptyCall(tctx(t), &testpb.Empty{})
		checkStatus(t, "a plaintext call to the TLS server", err, codes.Unavailable, "")
	})
	t.Run("untrusting client", func(t *testing.T) {
		_, err := e.client(t, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{}))).EmptyCall(tctx(t), &testpb.Empty{})
		checkStatus(t, "a call that does not trust the certificate", err, codes.Unavailable, "")
	})
	t.Run("no h2", func(t *testing.T) {
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", e.addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
		if err == nil {
			defer tc.Close()
			tc.SetDeadline(time.Now().Add(waitFor))
			_, err = tc.Read(make([]byte, 1))
		}
		if err == nil || isTimeout(err) {
			t.Errorf("a TLS connection without h2: %v, want it refused", err)
		}
	})
	if !eventually(func() bool { return e.openConns() == 1 }) {
		t.Errorf("%d connections open, want the TLS client's only", e.openConns())
	}
}

func TestTLSPlaintextServer(t *testing.T) {
	_, pool := selfSigned(t)
	e := startTestServer(t, Options{}, &testServer{})
	_, err := e.client(t, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool}))).EmptyCall(tctx(t), &testpb.Empty{})
	checkStatus(t, "a TLS call to a plaintext server", err, codes.Unavailable, "")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHandled: every call to a registered method is counted once as it
// ends, with the code its client saw; a call to a method the server does
// not serve is not.
func TestHandled(t *testing.T) {
	type done struct {
		method string
		code   codes.Code
	}
	got := make(chan done, 16)
	started := make(chan struct{})
	ts := &testServer{unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		switch string(req.GetPayload().GetBody()) {
		case "bad":
			return nil, status.Error(codes.InvalidArgument, "bad")
		case "block":
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return &testpb.SimpleResponse{}, nil
	}}
	e := startTestServer(t, Options{Handled: func(m string, c codes.Code) { got <- done{m, c} }}, ts)
	c := e.client(t)
	const unaryCall = "/grpc.testing.TestService/UnaryCall"

	if _, err := c.UnaryCall(tctx(t), simple([]byte("ok"))); err != nil {
		t.Fatal(err)
	}
	if d := recv(t, "the OK call's count", got); d != (done{unaryCall, codes.OK}) {
		t.Errorf("OK call counted as %+v", d)
	}
	if _, err := c.UnaryCall(tctx(t), simple([]byte("bad"))); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad call: %v", err)
	}
	if d := recv(t, "the bad call's count", got); d != (done{unaryCall, codes.InvalidArgument}) {
		t.Errorf("bad call counted as %+v", d)
	}
	ctx, cancel := context.WithCancel(tctx(t))
	errc := make(chan error, 1)
	go func() { _, err := c.UnaryCall(ctx, simple([]byte("block"))); errc <- err }()
	recv(t, "the blocking call to start", started)
	cancel()
	if err := recv(t, "the cancelled call to end", errc); status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: %v", err)
	}
	if d := recv(t, "the cancelled call's count", got); d != (done{unaryCall, codes.Canceled}) {
		t.Errorf("cancelled call counted as %+v", d)
	}
	if _, err := testpb.NewUnimplementedServiceClient(e.dial(t)).UnimplementedCall(tctx(t), &testpb.Empty{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := c.EmptyCall(tctx(t), &testpb.Empty{}); err != nil { // after the unknown one
		t.Fatal(err)
	}
	if d := recv(t, "the next call's count", got); d.method != "/grpc.testing.TestService/EmptyCall" {
		t.Errorf("after a call to an unknown service, counted %+v (the unknown one counts nothing)", d)
	}
}

// failingListener fails its accepts as a process out of descriptors does,
// n times, then is closed.
type failingListener struct {
	net.Listener
	n int
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.n == 0 {
		return nil, net.ErrClosed
	}
	l.n--
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
}

// TestAcceptWarnedOnce: accepts that keep failing are retried, and
// warned of once per acceptLogEvery, not at every retry.
func TestAcceptWarnedOnce(t *testing.T) {
	var logs bytes.Buffer
	s := New(Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := s.Serve(&failingListener{n: 6}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve: %v, want the listener's closing", err)
	}
	if n := strings.Count(logs.String(), "too many open files"); n != 1 || !strings.Contains(logs.String(), "since_last_warning=0") {
		t.Errorf("%d warnings for 6 failed accepts, want 1:\n%s", n, logs.String())
	}
}
