package apierror

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestJSON(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"param and code null when empty", &Error{Status: 400, Type: TypeInvalidRequest, Message: "bad"},
			`{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}` + "\n"},
		{"param set", Invalid("messages[0].content", "wrong %s", "type"),
			`{"error":{"message":"wrong type","type":"invalid_request_error","param":"messages[0].content","code":null}}` + "\n"},
		{"escaping", &Error{Status: 500, Type: TypeServer, Message: "a \"quote\" <tag>\x00\xff", Code: "c"},
			`{"error":{"message":"a \"quote\" \u003ctag\u003e\u0000\ufffd","type":"server_error","param":null,"code":"c"}}` + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(tc.err.JSON())
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if !json.Valid([]byte(got)) {
				t.Error("not valid JSON")
			}
		})
	}
}

func TestTypeFor(t *testing.T) {
	for status, want := range map[int]string{400: TypeInvalidRequest, 401: TypeAuthentication, 403: TypeAuthentication,
		404: TypeNotFound, 413: TypeInvalidRequest, 415: TypeInvalidRequest, 429: TypeRateLimit, 500: TypeServer,
		502: TypeServer, 503: TypeUnavailable, 504: TypeTimeout} {
		if got := TypeFor(status); got != want {
			t.Errorf("TypeFor(%d) = %q, want %q", status, got, want)
		}
	}
}

func TestFromHidesCause(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.5:8000: secret detail")
	e := From(fmt.Errorf("wrapped: %w", cause))
	if e.Status != 500 || e.Message != "internal error" || !errors.Is(e, cause) {
		t.Errorf("got %+v", e)
	}
	inner := Invalid("x", "m")
	if From(fmt.Errorf("ctx: %w", inner)) != inner {
		t.Error("From did not find the wrapped *Error")
	}
}

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, New(429, "rate_limited", "slow down"))
	if w.Code != 429 || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("got %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	var v struct{ Error struct{ Type, Code string } }
	json.Unmarshal(w.Body.Bytes(), &v)
	if v.Error.Type != TypeRateLimit || v.Error.Code != "rate_limited" {
		t.Errorf("body %s", w.Body)
	}
}

func TestWriteRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		after time.Duration
		want  string
	}{{0, ""}, {time.Second, "1"}, {1500 * time.Millisecond, "2"}, {4200 * time.Millisecond, "5"}, {time.Millisecond, "1"}} {
		w := httptest.NewRecorder()
		e := New(503, "no_deployment", "down")
		e.RetryAfter = tc.after
		Write(w, e)
		if got := w.Header().Get("Retry-After"); got != tc.want {
			t.Errorf("RetryAfter %v: header %q, want %q", tc.after, got, tc.want)
		}
	}
}
