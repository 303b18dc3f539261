package backend

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
)

// timeoutErr is a net.Error that timed out, as a dial past its limit.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassifyDialErrors(t *testing.T) {
	dial := func(call string, errno error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError(call, errno)}
	}
	limits := map[string]time.Duration{PhaseConnect: 2 * time.Second}
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       string
		local, dia bool // IsLocal; a *DialError inside (counts against the endpoint)
	}{
		{"process open-file limit", &DialError{Err: dial("socket", syscall.EMFILE)}, http.StatusServiceUnavailable, CodeGatewayOverloaded, true, false},
		{"system open-file limit", &DialError{Err: dial("socket", syscall.ENFILE)}, http.StatusServiceUnavailable, CodeGatewayOverloaded, true, false},
		{"open-file limit, unmarked dial", dial("socket", syscall.EMFILE), http.StatusServiceUnavailable, CodeGatewayOverloaded, true, false},
		{"connection refused", &DialError{Err: dial("connect", syscall.ECONNREFUSED)}, http.StatusBadGateway, CodeUpstreamUnavailable, false, true},
		{"unmarked dial refused", dial("connect", syscall.ECONNREFUSED), http.StatusBadGateway, CodeUpstreamUnavailable, false, true},
		{"connect timeout", &DialError{Err: &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}}, http.StatusGatewayTimeout, CodeUpstreamTimeout, false, true},
		{"reset after sending", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, http.StatusBadGateway, CodeUpstreamUnavailable, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			got := classify(ctx, limits, tc.err)
			if got.Status != tc.status || got.Code != tc.code || got.Type != apierror.TypeFor(tc.status) {
				t.Errorf("classify = %d %s %s, want %d %s", got.Status, got.Type, got.Code, tc.status, tc.code)
			}
			var de *DialError
			if IsLocal(got) != tc.local || errors.As(got, &de) != tc.dia {
				t.Errorf("IsLocal %v, *DialError inside %v; want %v, %v", IsLocal(got), de != nil, tc.local, tc.dia)
			}
		})
	}
}
