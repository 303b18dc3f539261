// Package grpcserver is a gRPC server: the HTTP/2 transport that carries
// gRPC calls, for services described as grpc-go describes them
// (grpc.ServiceDesc, registered by the generated Register functions), so
// the generated code, grpc-go's health service and its server reflection
// run on it unchanged, and grpc-go's clients call it.
//
// It does less than grpc-go's server, to cost less per call: one goroutine
// per connection reads its frames; a call runs on one of a few workers
// that keep their stacks, and writes its own frames, under the
// connection's lock, flushing once for its header, message and status
// (and not at all when another call waits to write behind it); a unary
// call is handed to a worker only when its whole request has come, so it
// never waits to read. There is no compression (a call compressed is
// Unimplemented), no interceptors, no stats handlers, no keepalive
// enforcement; the flow control windows are static.
package grpcserver

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // the default codec

	"github.com/omnigate/omnigate/internal/sparselog"
)

// Options configure a Server. The zero value is grpc-go's defaults.
type Options struct {
	// MaxRecvMsgSize bounds a message received (4 MiB when 0); a larger
	// one ends its call with ResourceExhausted.
	MaxRecvMsgSize int
	// MaxSendMsgSize bounds a message sent (math.MaxInt32 when 0).
	MaxSendMsgSize int
	// Codec marshals and unmarshals every message (grpc-go's proto codec
	// when nil).
	Codec encoding.CodecV2
	// Workers is how many goroutines serve calls one after another,
	// keeping their stacks; past them a call gets a goroutine of its own.
	Workers int
	// StreamWindow and ConnWindow are the flow control windows the server
	// gives a call and a connection (HTTP/2's 65,535 bytes when 0).
	StreamWindow, ConnWindow uint32
	// MaxConcurrentStreams bounds the calls a connection has open at once
	// (none when 0); past it a call is refused (REFUSED_STREAM, which
	// clients retry).
	MaxConcurrentStreams uint32
	// TLS serves TLS when set (its NextProtos must offer "h2"); plaintext
	// HTTP/2 with prior knowledge otherwise, as gRPC clients speak it.
	TLS *tls.Config
	// HandshakeTimeout bounds a new connection's TLS handshake and HTTP/2
	// preface (10s when 0).
	HandshakeTimeout time.Duration
	// MaxHeaderListSize bounds a call's metadata (1 MiB when 0).
	MaxHeaderListSize uint32
	// Handled, when set, is told of every call to a registered method as
	// it ends: its method ("/service/method") and status code (Canceled
	// for a call its client reset, Unavailable for one its connection
	// lost, before it sent a status).
	Handled func(fullMethod string, code codes.Code)
	Log     *slog.Logger // slog.Default when nil
}

const defaultWindow = 65535

// Server serves gRPC calls on the listeners given to Serve. Services are
// registered before Serve.
type Server struct {
	opt      Options
	handlers map[string]*handler // by path, "/package.Service/Method"
	services map[string]grpc.ServiceInfo
	work     chan *stream

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*conn]struct{}
	draining bool
	conndone sync.Cond // signalled as conns end
	quit     chan struct{}
	quitOnce sync.Once
}

// handler is one method of a registered service.
type handler struct {
	srv    any
	unary  grpc.MethodHandler
	stream grpc.StreamHandler
	// clientStreams: the client sends any number of messages; otherwise
	// one, and the call runs once it has come.
	clientStreams bool
	fullMethod    string
}

// New returns a Server.
func New(opt Options) *Server {
	if opt.MaxRecvMsgSize <= 0 {
		opt.MaxRecvMsgSize = 4 << 20
	}
	if opt.MaxSendMsgSize <= 0 {
		opt.MaxSendMsgSize = math.MaxInt32
	}
	if opt.Codec == nil {
		opt.Codec = encoding.GetCodecV2("proto")
	}
	if opt.StreamWindow < defaultWindow {
		opt.StreamWindow = defaultWindow
	}
	if opt.ConnWindow < defaultWindow {
		opt.ConnWindow = defaultWindow
	}
	if opt.HandshakeTimeout <= 0 {
		opt.HandshakeTimeout = 10 * time.Second
	}
	if opt.MaxHeaderListSize == 0 {
		opt.MaxHeaderListSize = 1 << 20
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	s := &Server{
		opt:      opt,
		handlers: map[string]*handler{},
		services: map[string]grpc.ServiceInfo{},
		lns:      map[net.Listener]struct{}{},
		conns:    map[*conn]struct{}{},
		quit:     make(chan struct{}),
	}
	s.conndone.L = &s.mu
	if opt.Workers > 0 {
		s.work = make(chan *stream)
		for range opt.Workers {
			go s.worker()
		}
	}
	return s
}

// RegisterService registers a service and its implementation, as
// grpc.Server's does; the generated Register functions call it.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	info := grpc.ServiceInfo{Metadata: desc.Metadata}
	for i := range desc.Methods {
		m := &desc.Methods[i]
		s.handlers["/"+desc.ServiceName+"/"+m.MethodName] = &handler{srv: impl, unary: m.Handler,
			fullMethod: "/" + desc.ServiceName + "/" + m.MethodName}
		info.Methods = append(info.Methods, grpc.MethodInfo{Name: m.MethodName})
	}
	for i := range desc.Streams {
		m := &desc.Streams[i]
		s.handlers["/"+desc.ServiceName+"/"+m.StreamName] = &handler{srv: impl, stream: m.Handler,
			clientStreams: m.ClientStreams, fullMethod: "/" + desc.ServiceName + "/" + m.StreamName}
		info.Methods = append(info.Methods, grpc.MethodInfo{Name: m.StreamName, IsClientStream: m.ClientStreams, IsServerStream: m.ServerStreams})
	}
	s.services[desc.ServiceName] = info
}

// GetServiceInfo describes the registered services, for server
// reflection.
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo { return s.services }

// ErrServerStopped is what Serve returns once the server is stopped.
var ErrServerStopped = errors.New("grpcserver: the server has been stopped")

// Serve accepts connections on ln until the server stops, and serves them
// each on a goroutine of its own. It returns ErrServerStopped once stopped,
// or the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		ln.Close()
		return ErrServerStopped
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	warnings := sparselog.Limiter{Every: acceptLogEvery}
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.quit:
				return ErrServerStopped
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				if ok, dropped := warnings.Allow(); ok {
					s.opt.Log.Warn("gRPC accept failed", "err", err, "retry_in", backoff, "since_last_warning", dropped)
				}
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.draining {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

// acceptLogEvery is the least time between two accept warnings: out of
// descriptors, accept fails on every retry.
const acceptLogEvery = 10 * time.Second

// isTemporary reports accept errors worth retrying: out of file
// descriptors, or a connection reset before it was accepted.
func isTemporary(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "too many open files") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "connection aborted")
}

// GracefulStop stops accepting connections, tells every connection to go
// away (GOAWAY: the client sends its next calls elsewhere), and returns
// once the calls running have ended and the connections closed.
func (s *Server) GracefulStop() {
	s.stopAccepting()
	s.mu.Lock()
	for c := range s.conns {
		go c.goAway()
	}
	for len(s.conns) > 0 {
		s.conndone.Wait()
	}
	s.mu.Unlock()
}

// CancelCalls ends the context of every call running, with cause
// (context.Cause): a handler still sends its status, as it does past its
// deadline. For the end of a shutdown's grace, before Stop.
func (s *Server) CancelCalls(cause error) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.smu.Lock()
		for _, st := range c.streams {
			st.cancel(cause)
		}
		c.smu.Unlock()
	}
}

// Stop closes every listener and connection at once: the calls running
// are cancelled.
func (s *Server) Stop() {
	s.stopAccepting()
	s.mu.Lock()
	for c := range s.conns {
		c.raw.Close()
	}
	for len(s.conns) > 0 {
		s.conndone.Wait()
	}
	s.mu.Unlock()
}

func (s *Server) stopAccepting() {
	s.quitOnce.Do(func() { close(s.quit) })
	s.mu.Lock()
	s.draining = true
	for ln := range s.lns {
		ln.Close()
	}
	s.mu.Unlock()
}

// connDone forgets c, once it has closed.
func (s *Server) connDone(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.conndone.Broadcast()
	s.mu.Unlock()
}

// dispatch runs st's call on a worker, or a goroutine of its own when
// none is free.
func (s *Server) dispatch(st *stream) {
	if s.work != nil {
		select {
		case s.work <- st:
			return
		default:
		}
	}
	go st.run()
}

func (s *Server) worker() {
	for {
		select {
		case st := <-s.work:
			st.run()
		case <-s.quit:
			return
		}
	}
}
