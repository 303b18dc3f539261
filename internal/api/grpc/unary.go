package grpcapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/omnigate/omnigate/internal/answer"
	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/bufpool"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/request"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// ChatCompletion serves a chat completion answered whole.
func (s *Server) ChatCompletion(ctx context.Context, req *pb.ChatCompletionRequest) (*pb.ChatCompletionResponse, error) {
	out := new(pb.ChatCompletionResponse)
	err := s.unary(ctx, request.Chat,
		func(b []byte) ([]byte, error) { return appendChat(b, req, false) },
		func(b []byte) error { return decodeChat(b, out) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Completion serves a completion answered whole.
func (s *Server) Completion(ctx context.Context, req *pb.CompletionRequest) (*pb.CompletionResponse, error) {
	out := new(pb.CompletionResponse)
	err := s.unary(ctx, request.Completions,
		func(b []byte) ([]byte, error) { return appendCompletion(b, req) },
		func(b []byte) error { return decodeCompletion(b, out) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Embedding serves an embeddings request.
func (s *Server) Embedding(ctx context.Context, req *pb.EmbeddingRequest) (*pb.EmbeddingResponse, error) {
	out := new(pb.EmbeddingResponse)
	err := s.unary(ctx, request.Embeddings,
		func(b []byte) ([]byte, error) { return appendEmbedding(b, req) },
		func(b []byte) error { return decodeEmbedding(b, out) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// unary serves one call answered whole: the request's JSON body (encode)
// through the core, as the HTTP front end serves it, and the answer's
// JSON read whole into the answer message (decode). The header metadata
// (the request id, what the core did) goes out with the answer or the
// error.
func (s *Server) unary(ctx context.Context, ep request.Endpoint, encode func([]byte) ([]byte, error), decode func([]byte) error) error {
	var call dispatch.Call
	call.Header, call.RequestID = s.incoming(ctx)
	call.API = apiName
	md := metadata.MD{"x-request-id": []string{call.RequestID}}
	defer grpc.SetHeader(ctx, md) // md as it is at return
	buf := bufpool.Get(4 << 10)
	defer bufpool.Put(buf)
	body, err := s.encode(encode, buf)
	if err != nil {
		return s.reject(ctx, call.RequestID, err, md)
	}
	req := s.views.Get().(*request.Request)
	defer s.views.Put(req)
	if err := request.Parse(ep, body, req); err != nil {
		return s.reject(ctx, call.RequestID, err, md)
	}
	// Integers written 10.0 or 1e1 (in extra) are forwarded as 10, as
	// the HTTP front end forwards them.
	call.Req, call.Body = req, req.Normalize(body)
	call.Deadline, _ = ctx.Deadline()
	a, err := s.opt.Core.Do(ctx, &call)
	if err != nil {
		return s.failCall(ctx, &call, err, md)
	}
	answerMD(md, &call, a)
	status, rerr, err := s.readAnswer(ctx, &call, a, decode)
	s.opt.Core.Done(&call, a, status, rerr)
	return err
}

// encode writes the request's JSON body into buf (kept there for the
// pool, grown or not), within MaxBodyBytes.
func (s *Server) encode(encode func([]byte) ([]byte, error), buf *[]byte) ([]byte, error) {
	body, err := encode((*buf)[:0])
	*buf = body[:0]
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > s.opt.MaxBodyBytes {
		return nil, apierror.New(http.StatusRequestEntityTooLarge, "request_too_large",
			"The request body is larger than the limit of %d bytes.", s.opt.MaxBodyBytes)
	}
	return body, nil
}

// reject fails a call the core never saw (a message that is no valid
// request), recorded as the HTTP front end records one.
func (s *Server) reject(ctx context.Context, reqID string, err error, md metadata.MD) error {
	status := apierror.StatusClientClosed
	if ctx.Err() == nil {
		e := apierror.From(err)
		status = e.Status
		retryAfter(md, e)
	}
	s.opt.Core.Done(&dispatch.Call{RequestID: reqID, API: apiName}, nil, status, nil)
	return errorOf(ctx, err)
}

// failCall fails a call the core could not serve.
func (s *Server) failCall(ctx context.Context, call *dispatch.Call, err error, md metadata.MD) error {
	call.DescribeLimits(func(_, key, value string) { md[key] = []string{value} })
	status := 0
	if ctx.Err() != nil {
		status, _ = s.ended(call)
	} else {
		e := apierror.From(err)
		status = e.Status
		if status >= 500 {
			s.opt.Log.Warn("request failed", "request_id", call.RequestID, "status", status, "err", e)
		}
		retryAfter(md, e)
	}
	s.opt.Core.Done(call, nil, status, nil)
	return errorOf(ctx, err)
}

// retryAfter puts the Retry-After the HTTP answer would carry in md too
// (the status's RetryInfo has it as well), in whole seconds.
func retryAfter(md metadata.MD, e *apierror.Error) {
	if e.RetryAfter > 0 {
		md["retry-after"] = []string{strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10)}
	}
}

// deadlineSlack: a gRPC client cancels its call when its deadline passes,
// which reaches the server about when the server's copy of that deadline
// passes too; a call whose context ended that close to its deadline ended
// by it.
const deadlineSlack = 50 * time.Millisecond

// ended is the status to record for a call whose context ended, and the
// relay's error for Done: 504 when its deadline passed, as the HTTP front
// end records a client's X-Request-Timeout; else 499, the client left.
func (s *Server) ended(call *dispatch.Call) (int, error) {
	if dl := call.Deadline; !dl.IsZero() && !time.Now().Before(dl.Add(-deadlineSlack)) {
		return http.StatusGatewayTimeout, &apierror.Error{Status: http.StatusGatewayTimeout, Type: apierror.TypeTimeout,
			Code: backend.CodeDeadlineExceeded, Message: "The call's deadline passed.", Err: &backend.DeadlineError{Err: context.DeadlineExceeded}}
	}
	return apierror.StatusClientClosed, nil
}

// readAnswer reads a's body whole (through its taps) and decodes it: the
// status to record, what broke the relay (for Done) and the call's error.
// An event stream (an engine that streamed anyway) is merged into the
// document a whole answer is.
func (s *Server) readAnswer(ctx context.Context, call *dispatch.Call, a *dispatch.Answer, decode func([]byte) error) (int, error, error) {
	resp := a.Resp
	defer resp.Body.Close()
	size := 4 << 10
	if resp.ContentLength >= 0 && resp.ContentLength < maxAnswer {
		size = int(resp.ContentLength) + 1 // +1 reads EOF with the last byte
	}
	buf := bufpool.Get(size)
	defer bufpool.Put(buf)
	b, err := readAll(resp.Body, buf, maxAnswer)
	if err != nil {
		if ctx.Err() != nil {
			status, derr := s.ended(call)
			return status, derr, errorOf(ctx, err)
		}
		// As dispatch.ServeWhole says it: the answer broke off.
		e := apierror.From(err)
		if e.Status == http.StatusInternalServerError {
			e = apierror.New(http.StatusBadGateway, "upstream_error", "The upstream answer broke off.")
			e.Err = err
		}
		s.opt.Log.Warn("response cut", "request_id", call.RequestID, "err", err)
		return e.Status, err, Status(e).Err()
	}
	a.Tap().Write(b)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		doc, _, err := answer.Assemble(bytes.NewReader(b), "")
		if err != nil {
			e := streamFailure(err)
			return e.Status, e, Status(e).Err()
		}
		b = doc
	}
	if err := decode(b); err != nil {
		e := apierror.New(http.StatusBadGateway, backend.CodeInvalidResponse, "The upstream answered with a body that is not a valid answer.")
		e.Err = err
		s.opt.Log.Warn("answer not decoded", "request_id", call.RequestID, "err", err)
		return e.Status, e, Status(e).Err()
	}
	return resp.StatusCode, nil, nil
}

// streamFailure is the error of a stream read whole that carried an error
// event or was malformed.
func streamFailure(err error) *apierror.Error {
	var ev *answer.EventError
	if errors.As(err, &ev) {
		e := eventError(ev.Data, http.StatusBadGateway)
		e.Err = err
		return e
	}
	e := apierror.New(http.StatusBadGateway, backend.CodeInvalidResponse, "The upstream stream is not a valid answer.")
	e.Err = err
	return e
}

// readAll reads r to its end into buf (kept there for the pool, grown or
// not), at most limit bytes.
func readAll(r io.Reader, buf *[]byte, limit int) ([]byte, error) {
	b := (*buf)[:0]
	defer func() { *buf = b[:0] }()
	for {
		if len(b) == cap(b) {
			if len(b) >= limit {
				return nil, dispatch.ErrTooLarge
			}
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
