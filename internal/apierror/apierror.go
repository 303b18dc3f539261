// Package apierror is omnigate's one error type: what the client sees is
// rendered as the OpenAI error JSON, what the operator needs is kept in Err
// and logged.
package apierror

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error types as OpenAI names them.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeServer         = "server_error"
	TypeUnavailable    = "service_unavailable_error"
	TypeTimeout        = "timeout_error"
)

// StatusClientClosed is nginx's 499: the client went away before the answer.
const StatusClientClosed = 499

// Error is an error with an HTTP status and an OpenAI-shaped body.
// Message, Type, Param and Code are shown to the client; Err is the cause,
// for logs only.
type Error struct {
	Status  int
	Message string
	Type    string
	Param   string
	Code    string
	Err     error
	// Upstream marks an error that an upstream engine returned (as opposed to
	// one the gateway decided), so retry and breaker policy can tell them apart.
	Upstream bool
	// RetryAfter, when positive, is sent as the Retry-After header (whole
	// seconds, rounded up): when trying again makes sense. The OpenAI SDKs
	// wait that long before their own retry.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.Status))
	b.WriteString(" ")
	b.WriteString(e.Message)
	if e.Param != "" {
		b.WriteString(" (param ")
		b.WriteString(e.Param)
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Invalid is a 400 invalid_request_error naming the offending parameter.
func Invalid(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Param: param, Message: fmt.Sprintf(format, args...)}
}

// New makes an error with the given status and a type chosen from it.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Type: TypeFor(status), Code: code, Message: fmt.Sprintf(format, args...)}
}

// TypeFor maps an HTTP status to the OpenAI error type used for it.
func TypeFor(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return TypeAuthentication
	case status == http.StatusNotFound:
		return TypeNotFound
	case status == http.StatusTooManyRequests:
		return TypeRateLimit
	case status == http.StatusServiceUnavailable:
		return TypeUnavailable
	case status == http.StatusGatewayTimeout:
		return TypeTimeout
	case status >= 500:
		return TypeServer
	default:
		return TypeInvalidRequest
	}
}

// From returns err as an *Error, wrapping anything else as a 500 whose
// message hides the cause.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Type: TypeServer, Message: "internal error", Err: err}
}

// JSON renders the OpenAI error body: {"error":{"message","type","param","code"}}.
// param and code are null when empty, as OpenAI sends them.
func (e *Error) JSON() []byte {
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	v := struct {
		Error body `json:"error"`
	}{body{Message: e.Message, Type: e.Type, Param: nullable(e.Param), Code: nullable(e.Code)}}
	b, _ := json.Marshal(v) // cannot fail: strings only
	return append(b, '\n')
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Write sends err to the client as an OpenAI error.
func Write(w http.ResponseWriter, err error) *Error {
	e := From(err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	w.WriteHeader(e.Status)
	w.Write(e.JSON())
	return e
}
