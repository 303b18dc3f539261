package dispatch

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/limits"
	"github.com/omnigate/omnigate/internal/request"
)

// Whole is an answer read whole, for the front ends that do not relay
// bytes as they come: a background job, a gRPC unary call.
type Whole struct {
	// Status is the answer's status: 200, or an error's.
	Status      int
	ContentType string
	// Body is the answer's bytes as the HTTP front end would have sent
	// them; an error's OpenAI error JSON.
	Body []byte
	// Model is the model that answered ("" when none did); Deployment,
	// Cache, FallbackReason, Clamped and Route are as on Answer.
	Model, Deployment, Cache, FallbackReason, Clamped, Route string
}

// OK reports whether the answer is a success.
func (w *Whole) OK() bool { return w.Status >= 200 && w.Status < 300 }

// ServeWhole serves call through the core (Do, then the answer read whole
// through its taps, at most max bytes, then Done) and returns the answer.
// A failure comes back as a Whole with the error's status and JSON body,
// and as the *apierror.Error itself; a ctx that ended is the context's
// error, with the call counted as the client's leaving (499).
func (c *Core) ServeWhole(ctx context.Context, call *Call, max int64) (*Whole, error) {
	a, err := c.Do(ctx, call)
	if err != nil {
		return c.failWhole(ctx, call, nil, err)
	}
	w := &Whole{Status: a.Resp.StatusCode, ContentType: a.Resp.Header.Get("Content-Type"), Model: a.Model.Name,
		Cache: a.Cache, FallbackReason: a.FallbackReason, Clamped: a.Clamped, Route: a.Route}
	if a.Deployment != nil {
		w.Deployment = a.Deployment.Config.Name
	}
	body, err := readWhole(a.Resp.Body, a.Tap(), max)
	a.Resp.Body.Close()
	if err != nil {
		return c.failWhole(ctx, call, a, err)
	}
	if a.Continuable() && !a.StreamDone() {
		// A stream read whole that ended without [DONE] was cut: it is
		// not continued here (the reader wants it whole, not spliced).
		return c.failWhole(ctx, call, a, ErrStreamIncomplete)
	}
	w.Body = body
	c.Done(call, a, w.Status, nil)
	return w, nil
}

// failWhole ends call, which failed with err after a (nil when Do
// failed), and renders the failure.
func (c *Core) failWhole(ctx context.Context, call *Call, a *Answer, err error) (*Whole, error) {
	if ctx.Err() != nil {
		c.Done(call, a, apierror.StatusClientClosed, nil)
		return nil, ctx.Err()
	}
	e := apierror.From(err)
	if a != nil && e.Status == http.StatusInternalServerError {
		e = apierror.New(http.StatusBadGateway, "upstream_error", "The upstream answer broke off.")
		e.Err = err
	}
	w := &Whole{Status: e.Status, ContentType: "application/json", Body: e.JSON(), Model: call.Requested()}
	var relayErr error
	if a != nil {
		relayErr = err
	}
	c.Done(call, a, e.Status, relayErr)
	return w, e
}

// ErrTooLarge is a whole answer past the reader's bound.
var ErrTooLarge = errors.New("the answer is larger than the bound for a whole answer")

// readWhole reads body to its end, at most max bytes, through tap.
func readWhole(body io.Reader, tap Tap, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, max+1))
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	if len(b) > 0 {
		tap.Write(b)
	}
	return b, err
}

// Check reports what the core would refuse r for before asking any
// upstream: its routing, the first model's endpoints and, with limits,
// the first model's limits unless a fallback would take the request. For
// the front ends that queue a request to serve later (background jobs),
// so the client hears of a bad request at once.
func (c *Core) Check(r *request.Request, body []byte, key *auth.Key, withLimits bool) error {
	snap := c.snap.Load()
	chain, why, err := snap.Router.Route(r, body, nil)
	if err != nil {
		return err
	}
	if err := key.Allows(chain[0].Model.Name, why != ""); err != nil {
		return err
	}
	m := snap.Model(chain[0].Model)
	if !m.Serves(r.Endpoint.String()) {
		return apierror.Invalid("model", "The model %q does not serve /v1/%s.", m.Name, r.Endpoint.Path())
	}
	if !withLimits {
		return nil
	}
	if _, err := limits.Check(r, m.Model); err != nil && !takes(chain[1:], judge(context.Background(), err).class) {
		return err
	}
	return nil
}

// Authenticate checks the client's API key for the front ends' own
// endpoints (jobs, files, batches, the model list): nil, nil when the
// gateway has no keys.
func (c *Core) Authenticate(h http.Header) (*auth.Key, error) {
	return c.snap.Load().Auth.Authenticate(h, c.clock.Now())
}

// KeyNamed returns the key named name, for a job's runs; nil when there
// is none (any more) or the gateway has no keys.
func (c *Core) KeyNamed(name string) *auth.Key { return c.snap.Load().Auth.Named(name) }

// AuthOn reports whether the gateway checks API keys.
func (c *Core) AuthOn() bool { return c.snap.Load().Auth != nil }
