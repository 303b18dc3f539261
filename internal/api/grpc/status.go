package grpcapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/omnigate/omnigate/internal/apierror"
)

// Domain is the google.rpc.ErrorInfo domain of omnigate's errors.
const Domain = "omnigate"

// Code is the gRPC code of an error the HTTP API answers with status.
//
// 413 (a request larger than server.max_body_bytes) is ResourceExhausted,
// not InvalidArgument: it is the code gRPC itself gives a message past the
// server's receive limit, which is the same bound, so a client sees one
// code for "too large" whichever layer caught it. ErrorInfo's reason
// (request_too_large) tells it from a rate limit (rate_limited).
func Code(status int) codes.Code {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusUnsupportedMediaType:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case http.StatusConflict:
		return codes.Aborted
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case apierror.StatusClientClosed:
		return codes.Canceled
	case http.StatusInternalServerError:
		return codes.Internal
	case http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	switch {
	case status >= 400 && status < 500:
		return codes.InvalidArgument
	case status >= 500:
		return codes.Internal
	}
	return codes.Unknown
}

// Status renders e as the gRPC status a client gets: its code, its
// message, a google.rpc.ErrorInfo (reason: the OpenAI error code, or the
// error type when it has no code; metadata: type, param, http_status),
// a google.rpc.BadRequest naming the parameter when e names one (a header
// is named as the metadata key it came from), and a google.rpc.RetryInfo
// when the HTTP answer would carry a Retry-After.
func Status(e *apierror.Error) *status.Status {
	st := status.New(Code(e.Status), e.Message)
	reason := e.Code
	if reason == "" {
		reason = e.Type
	}
	info := &errdetails.ErrorInfo{Reason: reason, Domain: Domain,
		Metadata: map[string]string{"type": e.Type, "http_status": strconv.Itoa(e.Status)}}
	details := make([]protoadapt.MessageV1, 1, 3)
	details[0] = info
	if e.Param != "" {
		param := fieldName(e.Param)
		info.Metadata["param"] = param
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: param, Description: e.Message, Reason: reason}}})
	}
	if e.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	if with, err := st.WithDetails(details...); err == nil {
		st = with
	}
	return st
}

// fieldName is a parameter as a gRPC client names it: the request's
// parameters have their JSON names, which the messages' fields share; a
// header (X-Omnigate-Priority) is the metadata key it came in as.
func fieldName(param string) string {
	if strings.ContainsAny(param, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		return strings.ToLower(param)
	}
	return param
}

// errorOf is what a call that failed with err returns: err's status, or,
// for a client that left or whose deadline passed, the context's.
func errorOf(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return status.FromContextError(cerr).Err()
	}
	var e *apierror.Error
	if errors.As(err, &e) && e.Status == apierror.StatusClientClosed {
		return status.Error(codes.Canceled, e.Message)
	}
	return Status(apierror.From(err)).Err()
}
