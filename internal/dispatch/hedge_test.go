package dispatch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
)

// silent is a backend that answers only when its context ends.
type silent struct{ cancelled chan struct{} }

func (s *silent) Do(ctx context.Context, r *backend.Request) (*http.Response, error) {
	<-ctx.Done()
	close(s.cancelled)
	return nil, ctx.Err()
}

// TestHedge: a first attempt that has not answered within hedge.after gets
// a second on another deployment; the first answer wins, the other is
// cancelled and says nothing against its deployment.
func TestHedge(t *testing.T) {
	h := newHarness(t, nil)
	m := h.core.Snapshot().Models[0] // big: b1, b2
	m.Hedge = config.Hedge{After: config.Duration(100 * time.Millisecond)}
	slow := &silent{cancelled: make(chan struct{})}
	m.Pool[0].Backend = slow
	a, err, waited := h.driven(t, chat)
	if err != nil {
		t.Fatalf("hedged request failed: %v", err)
	}
	if a.Deployment.Config.Name != "b2" {
		t.Errorf("answered by %s, want the hedge on b2", a.Deployment.Config.Name)
	}
	if waited < 100*time.Millisecond {
		t.Errorf("hedged after %v, before hedge.after", waited)
	}
	select {
	case <-slow.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the losing attempt was not cancelled")
	}
	w := httptest.NewRecorder()
	h.metrics.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if want := `omnigate_hedges_total{model="big"} 1`; !strings.Contains(w.Body.String(), want) {
		t.Errorf("metrics lack %s", want)
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.Pool[0].InFlight() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // the loser is ended as it comes back
	}
	if m.Pool[0].InFlight() != 0 || m.Pool[1].InFlight() != 0 {
		t.Error("in-flight count leaked")
	}
	if f := m.Pool[0].LastFailure(); f != nil {
		t.Errorf("the cancelled loser counted against b1: %+v", f)
	}
}

// TestHedgeNotNeeded: an answer within hedge.after sends no second attempt.
func TestHedgeNotNeeded(t *testing.T) {
	h := newHarness(t, nil)
	m := h.core.Snapshot().Models[0]
	m.Hedge = config.Hedge{After: config.Duration(time.Hour)}
	a, err := h.do(t, chat)
	if err != nil || a.Deployment.Config.Name != "b1" {
		t.Fatalf("answer %v, err %v", a, err)
	}
	if n := h.backends["b2"].calls(); n != 0 {
		t.Errorf("b2 got %d calls", n)
	}
	if !strings.Contains(h.backends["b1"].sent[0], `"model"`) {
		t.Error("b1 was not sent the request")
	}
}

// TestHedgeWaitPercentile: with hedge.percentile, the first attempt runs
// alone for the recent time to first byte at that percentile, and never
// less than hedge.after.
func TestHedgeWaitPercentile(t *testing.T) {
	m := &Model{Model: &catalog.Model{Hedge: config.Hedge{After: config.Duration(10 * time.Millisecond), Percentile: 90}}}
	if got := hedgeWait(m); got != 10*time.Millisecond {
		t.Errorf("with no samples: %v, want hedge.after", got)
	}
	for i := range 100 {
		m.firstByte.Observe(time.Duration(100+i) * time.Millisecond)
	}
	if got := hedgeWait(m); got != 190*time.Millisecond {
		t.Errorf("p90 of 100–199 ms: %v, want 190ms", got)
	}
	m.Hedge.After = config.Duration(time.Second)
	if got := hedgeWait(m); got != time.Second {
		t.Errorf("%v, want hedge.after when it is longer", got)
	}
}
