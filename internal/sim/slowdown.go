package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/omnigate/omnigate/internal/apierror"
)

// maxSlowdown bounds the step-time factor, so a step's duration stays finite.
const maxSlowdown = 1000

// checkSlowdown validates a step-time factor.
func checkSlowdown(f float64) error {
	if !(f > 0 && f <= maxSlowdown) { // also NaN
		return fmt.Errorf("slowdown factor must be a number in (0, %d], got %g", maxSlowdown, f)
	}
	return nil
}

// SetSlowdown multiplies the duration of every engine step from the next
// one on, prefill and decode alike: the whole batch slows down, so the
// replica's throughput drops by f (unlike Faults.Slow, which holds back
// each token of one request). 1 is normal speed; f must be in (0, 1000].
// A zero-latency profile stays instant.
func (e *Engine) SetSlowdown(f float64) error {
	if err := checkSlowdown(f); err != nil {
		return err
	}
	e.slowdown.store(f)
	return nil
}

// Slowdown returns the step-time factor (1: normal speed).
func (e *Engine) Slowdown() float64 { return e.slowdown.load() }

// slowdownBody is the wire shape of GET and POST /sim/slowdown.
type slowdownBody struct {
	Factor *float64 `json:"factor"`
}

// serveSlowdown answers GET /sim/slowdown with the factor and POST
// /sim/slowdown {"factor": F} by setting it, then answering the same.
func (e *Engine) serveSlowdown(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		if err := e.postSlowdown(w, r); err != nil {
			apierror.Write(w, err)
			return
		}
	}
	f := e.Slowdown()
	writeJSON(w, slowdownBody{Factor: &f})
}

func (e *Engine) postSlowdown(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var b slowdownBody
	if err := json.Unmarshal(body, &b); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return apierror.Invalid("factor", "factor must be a number, got %s", typ.Value)
		}
		return malformed(err)
	}
	if b.Factor == nil {
		return apierror.Invalid("factor", "factor: field required")
	}
	if err := e.SetSlowdown(*b.Factor); err != nil {
		return apierror.Invalid("factor", "%v", err)
	}
	return nil
}
