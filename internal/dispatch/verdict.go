package dispatch

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/resilience"
)

// verdict is what one attempt's outcome means: for the deployment's
// health, for whether another deployment or model may succeed, and as the
// outcome label of the upstream metric. judge is the one place that
// decides it; nothing else reads errors to make these calls.
type verdict struct {
	health  balance.Outcome
	retry   bool             // another deployment of the model may do better
	class   resilience.Class // for the fallback chain; 0: no fallback
	outcome string
	// busy is how long the deployment asked to be left alone (its 429's
	// or 503's Retry-After; a 429 without one, a second).
	busy time.Duration
}

// judge classifies the outcome of an attempt (err nil: the deployment
// answered 2xx) or of the relay of its answer (err: what broke it). ctx is
// the request's context: once it is done, nothing is learnt.
func judge(ctx context.Context, err error) verdict {
	switch {
	case err == nil:
		return verdict{health: balance.Success, outcome: "200"}
	case ctx.Err() != nil:
		return verdict{health: balance.Neutral, outcome: "client_closed"}
	case backend.IsLocal(err):
		// The gateway's own limit: every other deployment would fail the
		// same way, and it says nothing about this one.
		return verdict{health: balance.Neutral, outcome: "gateway_limit"}
	}
	var dl *backend.DeadlineError
	if errors.As(err, &dl) {
		// The client's deadline passed (seen here after the relay, where
		// ctx is no longer the request's): not the deployment's doing.
		return verdict{health: balance.Neutral, outcome: "deadline"}
	}
	var dial *backend.DialError
	if errors.As(err, &dial) {
		return verdict{health: balance.Failure, retry: true, class: resilience.Unavailable, outcome: "unreachable"}
	}
	var e *apierror.Error
	if !errors.As(err, &e) {
		return verdict{health: balance.Failure, class: resilience.Unavailable, outcome: "error"}
	}
	var te *backend.TimeoutError
	var ce *backend.ConnError
	var me *backend.MisconfiguredError
	var oe *backend.OverloadError
	v := verdict{outcome: statusLabel(e.Status)}
	switch {
	case errors.As(err, &me):
		// The deployment cannot serve anyone as configured (its key, its
		// upstream model or its URL); another deployment may.
		v.health, v.retry, v.class, v.outcome = balance.Failure, true, resilience.Unavailable, "misconfigured"
	case errors.As(err, &te):
		// Before the first byte (connect, first_token) the client has
		// nothing yet, and the attempt is cancelled (which aborts it in
		// the engine): another deployment may answer. Later, the client
		// has part of an answer, and only a continuation could go on.
		v.health, v.class = balance.Failure, resilience.Timeout
		v.retry = te.Phase == backend.PhaseConnect || te.Phase == backend.PhaseFirstToken
	case errors.As(err, &ce):
		v.health, v.retry, v.class = balance.Failure, true, resilience.Unavailable
	case errors.As(err, &oe):
		// Out of memory now: another replica may have room, and the
		// engine is in trouble. A request that can never fit this
		// engine's KV cache says nothing against it, and another
		// replica of it would refuse it the same way; another tier, or
		// a smaller max_tokens, may not.
		v.class, v.outcome = resilience.Overloaded, "out_of_memory"
		if oe.TooLarge {
			v.health = balance.Neutral
		} else {
			v.health, v.retry = balance.Failure, true
		}
	case e.Code == backend.CodeContextLength:
		// Too long for this model: no replica of it will differ, a model
		// with a larger window may not.
		v.health, v.class, v.outcome = balance.Success, resilience.ContextLength, "context_length"
	case e.Status == http.StatusTooManyRequests:
		// Busy, not broken: another deployment may have room, and this
		// one after its Retry-After.
		v.health, v.retry, v.class = balance.Neutral, true, resilience.RateLimited
		v.busy = max(e.RetryAfter, time.Second)
	case e.Status == http.StatusNotImplemented || e.Status == http.StatusHTTPVersionNotSupported:
		v.health, v.class = balance.Failure, resilience.Unavailable // it will say the same again
	case e.Status >= 500:
		v.health, v.retry, v.class = balance.Failure, true, resilience.Unavailable
		v.busy = e.RetryAfter // an engine that is loading says when it will be up
	default:
		v.health = balance.Success // it answered; the request was at fault
	}
	return v
}

// statusLabel renders common statuses without allocating.
func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 400:
		return "400"
	case 404:
		return "404"
	case 429:
		return "429"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}
