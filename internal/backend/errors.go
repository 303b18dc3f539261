package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend/h1"
)

// h1Phases names the h1 request limits as the deployment's timeouts they
// carry (see h1Sender.send).
var h1Phases = map[h1.Phase]string{h1.PhaseDeadline: PhaseTotal, h1.PhaseHead: PhaseFirstToken, h1.PhaseIdle: PhaseIdle}

// Marker types for the causes kept in apierror.Error.Err, so retry and
// breaker policy can decide with errors.As rather than by reading strings.

// DialError means the connection to the upstream could not be made: the
// request never left, so it is always safe to try elsewhere.
type DialError struct{ Err error }

// Error describes the failed dial.
func (e *DialError) Error() string { return "dial upstream: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *DialError) Unwrap() error { return e.Err }

// MisconfiguredError means the engine refused the gateway itself, not the
// client's request: it rejected the gateway's key (401, 403, 407), or it
// does not know the model or path the deployment sends (404: a wrong
// upstream_model or url). Retrying the same deployment cannot help until
// its configuration is fixed; another deployment may work.
type MisconfiguredError struct {
	Deployment string // the deployment's name
	Status     int    // the engine's HTTP status; 0: the TLS handshake failed
	Cause      error  // the engine's answer
}

// Error names the deployment and the engine's answer.
func (e *MisconfiguredError) Error() string {
	return fmt.Sprintf("deployment %q is misconfigured: %v", e.Deployment, e.Cause)
}

// Unwrap returns the cause.
func (e *MisconfiguredError) Unwrap() error { return e.Cause }

// ConnError means the connection failed after the request may have reached
// the upstream (reset, cut stream, bad response).
type ConnError struct{ Err error }

// Error describes the failed connection.
func (e *ConnError) Error() string { return "upstream connection: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *ConnError) Unwrap() error { return e.Err }

// DeadlineError means the caller's own deadline (a client's
// X-Request-Timeout) passed: nothing is learnt about the upstream.
type DeadlineError struct{ Err error }

// Error describes the expired deadline.
func (e *DeadlineError) Error() string { return "request deadline: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *DeadlineError) Unwrap() error { return e.Err }

// OverloadError means the engine ran out of memory for the request: GPU
// memory, or room in its KV cache. Another replica, another tier, or the
// same request with a smaller max_tokens may succeed. The dialect parser
// recognises the engine's words once, at the edge (NormalizeError).
type OverloadError struct {
	// TooLarge: the engine said the request can never fit its KV cache
	// (the simulator's and vLLM's wording), not only that memory is short
	// now.
	TooLarge bool
	Cause    error // the engine's answer
}

// Error describes the overload.
func (e *OverloadError) Error() string { return "engine out of memory: " + e.Cause.Error() }

// Unwrap returns the cause.
func (e *OverloadError) Unwrap() error { return e.Cause }

// LocalError means the gateway itself lacked a resource to make the call:
// it ran out of file descriptors (EMFILE, ENFILE) before a socket to the
// upstream existed. It says nothing about the upstream, so it must not
// count against the endpoint's health, and trying elsewhere would only
// fail the same way.
type LocalError struct{ Err error }

// Error describes the local failure.
func (e *LocalError) Error() string { return "gateway resources: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *LocalError) Unwrap() error { return e.Err }

// IsLocal reports whether err is a *LocalError.
func IsLocal(err error) bool {
	var le *LocalError
	return errors.As(err, &le)
}

// outOfFiles reports the process or the system open-file limit.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// Timeout phases, as named in config.Timeouts.
const (
	PhaseConnect    = "connect"
	PhaseFirstToken = "first_token"
	PhaseIdle       = "idle"
	PhaseTotal      = "total"
)

// TimeoutError means one of the deployment's timeouts expired.
type TimeoutError struct {
	Phase string // PhaseConnect, PhaseFirstToken, PhaseIdle or PhaseTotal
	Limit time.Duration
	Err   error // what the transport returned, if anything
}

// Error names the phase and the limit.
func (e *TimeoutError) Error() string {
	s := "upstream " + e.Phase + " timeout (" + e.Limit.String() + ")"
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *TimeoutError) Unwrap() error { return e.Err }

// Codes of the errors the backend itself decides.
const (
	CodeUpstreamUnavailable = "upstream_unavailable"
	CodeUpstreamTimeout     = "upstream_timeout"
	CodeClientClosed        = "client_closed"
	CodeDeadlineExceeded    = "deadline_exceeded"
	CodeGatewayOverloaded   = "gateway_overloaded"
	// CodeInvalidResponse: a 2xx whose body is no answer (not a JSON
	// object: an HTML page, a body cut short).
	CodeInvalidResponse = "upstream_invalid_response"
	// CodeOutOfMemory: the engine ran out of GPU memory or KV cache.
	CodeOutOfMemory = "upstream_out_of_memory"
	// CodeDeploymentMisconfigured: the engine refused the gateway's own
	// key, or does not know the model or path it was sent.
	CodeDeploymentMisconfigured = "deployment_misconfigured"
)

// classify turns a transport or body-read error of one attempt into an
// *apierror.Error. ctx is the caller's: when it is done, the caller gave
// up, whatever the transport said.
func classify(ctx context.Context, limits map[string]time.Duration, err error) *apierror.Error {
	var ae *apierror.Error
	if errors.As(err, &ae) {
		return ae
	}
	if perr := ctx.Err(); perr != nil {
		if errors.Is(perr, context.DeadlineExceeded) {
			return &apierror.Error{Status: http.StatusGatewayTimeout, Type: apierror.TypeTimeout, Code: CodeDeadlineExceeded,
				Message: "the request's deadline passed before the upstream answered", Err: &DeadlineError{Err: errors.Join(context.Cause(ctx), err)}}
		}
		return &apierror.Error{Status: apierror.StatusClientClosed, Type: apierror.TypeInvalidRequest, Code: CodeClientClosed,
			Message: "the client closed the request", Err: errors.Join(context.Cause(ctx), err)}
	}
	var te *TimeoutError
	if errors.As(err, &te) {
		return timeoutError(te.Phase, te.Limit, te.Err)
	}
	var he *h1.TimeoutError
	if errors.As(err, &he) {
		phase := h1Phases[he.Phase]
		return timeoutError(phase, limits[phase], err)
	}
	var de *DialError
	var oe *net.OpError
	if errors.As(err, &de) || (errors.As(err, &oe) && oe.Op == "dial") {
		if outOfFiles(err) {
			if de != nil {
				err = de.Err // not a *DialError: the upstream is not at fault
			}
			return &apierror.Error{Status: http.StatusServiceUnavailable, Type: apierror.TypeUnavailable, Code: CodeGatewayOverloaded,
				Message: "the gateway has reached its open-file limit and cannot open a connection to the upstream; retry shortly",
				Err:     &LocalError{Err: err}, RetryAfter: time.Second}
		}
		if de == nil {
			err = &DialError{Err: err}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return timeoutError(PhaseConnect, limits[PhaseConnect], err)
		}
		return &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeServer, Code: CodeUpstreamUnavailable,
			Message: "the upstream could not be reached", Err: err}
	}
	return &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeServer, Code: CodeUpstreamUnavailable,
		Message: "the upstream connection failed", Err: &ConnError{Err: err}}
}

// tlsRefused reports a TLS handshake with the upstream that failed for
// its configuration, on either side: the gateway did not trust the
// engine's certificate (or its name), the engine refused the gateway's
// (or its lack of one) with a TLS alert, or the engine does not speak TLS
// at all. Trying again with the same settings fails the same way.
func tlsRefused(err error) bool {
	var ve *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	var oe *net.OpError
	// crypto/tls reports the peer's alert as a *net.OpError of op
	// "remote error".
	return errors.As(err, &ve) || errors.As(err, &rh) || errors.As(err, &oe) && oe.Op == "remote error"
}

// misconfiguredTLS is the error of an attempt whose TLS handshake failed
// (tlsRefused): to the client, the deployment is misconfigured, as when
// the engine refuses the gateway's key; the logs keep the TLS cause.
func misconfiguredTLS(src ErrorSource, err error) *apierror.Error {
	return misconfiguredError(src, &MisconfiguredError{Deployment: src.Deployment, Cause: fmt.Errorf("TLS with the engine failed: %w", err)})
}

func timeoutError(phase string, limit time.Duration, err error) *apierror.Error {
	return &apierror.Error{Status: http.StatusGatewayTimeout, Type: apierror.TypeTimeout, Code: CodeUpstreamTimeout,
		Message: "the upstream did not answer in time (" + phase + " timeout " + limit.String() + ")",
		Err:     &TimeoutError{Phase: phase, Limit: limit, Err: err}}
}
