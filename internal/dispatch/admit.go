package dispatch

import (
	"context"
	"errors"
	"net/http"

	"github.com/omnigate/omnigate/internal/admission"
	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/resilience"
)

// HeaderPriority sets a request's admission priority: interactive (the
// default) or batch.
const HeaderPriority = "X-Omnigate-Priority"

// admit waits for a place in m's admission queue (none when m has no
// queue: the zero Permit). class is the error class the chain goes on
// with after a refusal: overloaded for a queue that stayed full,
// rate_limited for a client over its share; 0 when the client left or
// its deadline passed.
func (c *Core) admit(ctx context.Context, call *Call, m *Model) (admission.Permit, error, resilience.Class) {
	if m.Admission == nil {
		return admission.Permit{}, nil, 0
	}
	prio := admission.Interactive
	if call.Header != nil {
		if v := call.Header[HeaderPriority]; len(v) > 0 {
			p, ok := admission.ParsePriority(v[0])
			if !ok {
				return admission.Permit{}, apierror.Invalid(HeaderPriority, "The header %s must be interactive or batch, not %q.", HeaderPriority, v[0]), 0
			}
			prio = p
		}
	}
	if call.Key != nil && call.Key.Batch {
		prio = admission.Batch // the key's class, whatever the header says
	}
	call.st.stats.admission = true
	if permit, ok := m.Admission.TryAcquire(); ok {
		return permit, nil, 0
	}
	t0 := c.clock.Now() // only a request that queues reads the clock
	permit, err := m.Admission.Acquire(ctx, prio, tenant(call))
	t1 := c.clock.Now()
	call.st.stats.queued += t1.Sub(t0)
	if call.st.span != nil {
		call.st.span.Queued(m.Name, t0, t1, err)
	}
	if err == nil {
		return permit, nil, 0
	}
	var e *apierror.Error
	if errors.As(err, &e) {
		m.Metrics.Rejected(e.Code)
		if e.Code == admission.CodeRateLimited {
			return permit, err, resilience.RateLimited
		}
		return permit, err, resilience.Overloaded
	}
	return permit, waitError(ctx, err), 0
}

// tenant names whose share of the queue a request takes: its API key's
// name (its Authorization header, without keys configured), else its
// "user", else the anonymous tenant.
func tenant(call *Call) string {
	if call.Key != nil {
		return call.Key.Name
	}
	if call.Header != nil {
		if v := call.Header["Authorization"]; len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	if sp := call.Req.UserSpan; sp[1]-sp[0] > 2 && sp[1] <= len(call.Body) {
		return string(call.Body[sp[0]:sp[1]])
	}
	return ""
}

// waitError is the error of a request whose wait for a place ended with
// ctx: its deadline passed (504), or its client left.
func waitError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return &apierror.Error{Status: http.StatusGatewayTimeout, Type: apierror.TypeTimeout, Code: backend.CodeDeadlineExceeded,
			Message: "The request's deadline passed while it waited for a place.", Err: &backend.DeadlineError{Err: err}}
	}
	return &apierror.Error{Status: apierror.StatusClientClosed, Type: apierror.TypeInvalidRequest, Code: backend.CodeClientClosed,
		Message: "the client closed the request", Err: err}
}
