package grpcapi

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/omnigate/omnigate/internal/apierror"
)

// TestCode: every status the HTTP API answers has its gRPC code.
func TestCode(t *testing.T) {
	tests := []struct {
		status int
		want   codes.Code
	}{
		{400, codes.InvalidArgument}, {401, codes.Unauthenticated}, {403, codes.PermissionDenied}, {404, codes.NotFound},
		{408, codes.DeadlineExceeded}, {409, codes.Aborted}, {413, codes.ResourceExhausted}, {415, codes.InvalidArgument},
		{422, codes.InvalidArgument}, {429, codes.ResourceExhausted}, {499, codes.Canceled}, {500, codes.Internal},
		{501, codes.Unimplemented}, {502, codes.Unavailable}, {503, codes.Unavailable}, {504, codes.DeadlineExceeded},
		{418, codes.InvalidArgument}, {507, codes.Internal}, {302, codes.Unknown},
	}
	for _, tt := range tests {
		if got := Code(tt.status); got != tt.want {
			t.Errorf("Code(%d) = %v, want %v", tt.status, got, tt.want)
		}
	}
}

// TestStatusDetails: ErrorInfo always, BadRequest with a parameter (a
// header named as its metadata key), RetryInfo with a Retry-After.
func TestStatusDetails(t *testing.T) {
	tests := []struct {
		name string
		err  *apierror.Error
		want []any
	}{
		{"bad parameter", apierror.Invalid("messages[0].content", "Missing required parameter: 'messages[0].content'."), []any{
			&errdetails.ErrorInfo{Reason: "invalid_request_error", Domain: "omnigate",
				Metadata: map[string]string{"type": "invalid_request_error", "param": "messages[0].content", "http_status": "400"}},
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "messages[0].content",
				Description: "Missing required parameter: 'messages[0].content'.", Reason: "invalid_request_error"}}},
		}},
		{"header", apierror.Invalid("X-Omnigate-Priority", "bad"), []any{
			&errdetails.ErrorInfo{Reason: "invalid_request_error", Domain: "omnigate",
				Metadata: map[string]string{"type": "invalid_request_error", "param": "x-omnigate-priority", "http_status": "400"}},
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "x-omnigate-priority", Description: "bad", Reason: "invalid_request_error"}}},
		}},
		{"rate limited", func() *apierror.Error {
			e := apierror.New(429, "rate_limited", "slow down")
			e.RetryAfter = 1500 * time.Millisecond
			return e
		}(), []any{
			&errdetails.ErrorInfo{Reason: "rate_limited", Domain: "omnigate", Metadata: map[string]string{"type": "rate_limit_error", "http_status": "429"}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Status(tt.err)
			if st.Message() != tt.err.Message || st.Code() != Code(tt.err.Status) {
				t.Errorf("status %v", st)
			}
			if diff := cmp.Diff(tt.want, st.Details(), protocmp.Transform()); diff != "" {
				t.Errorf("details (-want +got):\n%s", diff)
			}
		})
	}
}
