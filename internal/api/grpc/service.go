package grpcapi

import (
	"context"
	"slices"

	"google.golang.org/grpc"

	"github.com/omnigate/omnigate/internal/grpcserver"
	"github.com/omnigate/omnigate/internal/request"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// serviceDesc is the Omnigate service as the generated code describes it,
// but for ChatCompletion, whose answer is sent as written from the
// engine's JSON into wire format (writeChat), not as a message the codec
// marshals: the generated handler can only return the message.
var serviceDesc = func() grpc.ServiceDesc {
	d := pb.Omnigate_ServiceDesc
	d.Methods = slices.Clone(d.Methods)
	for i := range d.Methods {
		if d.Methods[i].MethodName == "ChatCompletion" {
			d.Methods[i].Handler = chatCompletionHandler
		}
	}
	return d
}()

// chatCompletionHandler is the generated handler of ChatCompletion, its
// answer already encoded (grpcserver.Encoded).
func chatCompletionHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(pb.ChatCompletionRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.chatCompletionWire(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: pb.Omnigate_ChatCompletion_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.chatCompletionWire(ctx, req.(*pb.ChatCompletionRequest))
	})
}

// chatCompletionWire serves ChatCompletion with its answer in wire
// format.
func (s *Server) chatCompletionWire(ctx context.Context, req *pb.ChatCompletionRequest) (any, error) {
	var out []byte
	err := s.unary(ctx, request.Chat,
		func(b []byte) ([]byte, error) { return appendChat(b, req, false) },
		func(b []byte) error {
			var err error
			out, err = writeChat(make([]byte, 0, len(b)), b)
			return err
		})
	if err != nil {
		return nil, err
	}
	return grpcserver.Encoded(out), nil
}
