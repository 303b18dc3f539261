package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/resilience"
)

// allSucceed: with a healthy replica left, every request succeeds.
func allSucceed(t *testing.T, s *scenarioRun) {
	if s.res.ok != s.res.sent {
		t.Errorf("%d of %d requests failed: %s", s.res.sent-s.res.ok, s.res.sent, s.res.failedString())
	}
}

// checkBreakerHolds: every request succeeds, and the faulty replica's
// breaker opened and kept it to a handful of attempts: those in flight
// when it opened, and one probe per cool-down.
func checkBreakerHolds(t *testing.T, s *scenarioRun) {
	allSucceed(t, s)
	r := s.replicas[0]
	row := s.row(t, r)
	if row.Breaker.State == "closed" || row.Breaker.Changed == nil {
		t.Errorf("%s's breaker is %s after the load; want it open", r.name, row.Breaker.State)
	}
	got := s.after.upstream(s.model, r.name, "")
	bound := balance.FailuresToOpen + s.traffic.concurrency + 1 + int(s.res.took/balance.Cooldown)
	if got > bound {
		t.Errorf("%s got %d attempts; its breaker should have held it to %d", r.name, got, bound)
	}
	s.note("%s got %d attempts (%s); breaker %s, health check %s", r.name, got, outcomes(s.after, s.model, r.name), row.Breaker.State, row.Health)
}

// checkCutStreams: a stream cut by its replica ends with one well-formed
// error event (never [DONE], never silently short: run counts those as
// broken), one for each stream that replica answered; the others are whole.
func checkCutStreams(t *testing.T, s *scenarioRun) {
	cut := s.res.failed["stream upstream_stream_error"]
	if cut != s.res.failures() {
		t.Errorf("failures other than cut streams: %s", s.res.failedString())
	}
	r := s.replicas[0]
	if n := s.after.upstream(s.model, r.name, "200"); cut != n || cut == 0 {
		t.Errorf("%d streams ended with an error event; %s answered %d (want as many, and some)", cut, r.name, n)
	}
	whole := s.after.upstream(s.model, "", "200") - s.after.upstream(s.model, r.name, "200")
	if s.res.ok != whole {
		t.Errorf("%d whole streams; the healthy replicas answered %d", s.res.ok, whole)
	}
	checkTexts(t, s)
	row := s.row(t, r)
	s.note("%d streams cut, each ended with an upstream_stream_error event; %s's breaker %s", cut, r.name, row.Breaker.State)
}

// checkContinued: every stream the replica cut is continued on another
// one, and reaches the client whole: one id, one role chunk, the uncut
// answer's text byte for byte, [DONE].
func checkContinued(t *testing.T, s *scenarioRun) {
	allSucceed(t, s)
	checkTexts(t, s)
	r := s.replicas[0]
	cut := s.after.upstream(s.model, r.name, "200")
	continued := int(s.after.sum("omnigate_continuations_total", map[string]string{"model": s.model}))
	if continued != cut || cut == 0 {
		t.Errorf("%s answered %d streams and cut them; %d were continued (want as many, and some)", r.name, cut, continued)
	}
	s.note("%d streams cut and continued on another replica, each whole and the uncut answer byte for byte; %s's breaker %s",
		continued, r.name, s.row(t, r).Breaker.State)
}

// checkTexts: every whole stream has the text of the uncut answer (every
// request of the suite is the same, and so is every replica's answer).
func checkTexts(t *testing.T, s *scenarioRun) {
	for text, n := range s.res.texts {
		if text != s.reference {
			t.Errorf("%d whole streams have the text %q; the uncut answer is %q", n, text, s.reference)
		}
	}
}

// checkRateLimited: a replica answering 429 with Retry-After costs no
// request: each goes at once to another replica, and the breaker stays
// out of it (busy is not broken).
func checkRateLimited(t *testing.T, s *scenarioRun) {
	allSucceed(t, s)
	r := s.replicas[0]
	row := s.row(t, r)
	if row.Breaker.State != "closed" {
		t.Errorf("%s's breaker is %s; a 429 says nothing against the replica", r.name, row.Breaker.State)
	}
	s.note("%s got %d attempts (%s); breaker %s", r.name, s.after.upstream(s.model, r.name, ""), outcomes(s.after, s.model, r.name), row.Breaker.State)
}

// checkFellBack: every request succeeds, each answered by the fallback
// once the model's replicas are rate limited.
func checkFellBack(t *testing.T, s *scenarioRun) {
	allSucceed(t, s)
	fb := s.model + "-fallback"
	n := int(s.after.sum("omnigate_fallbacks_total", map[string]string{"from": s.model, "to": fb}))
	if n != s.res.sent {
		t.Errorf("%d of %d requests fell back to %s", n, s.res.sent, fb)
	}
	s.note("%d requests answered by %s", n, fb)
}

// checkBudget: a model whose every replica fails every request sends at
// most 1.2 times the clients' requests upstream (the default budget, 0.2
// retries a request), plus the budget's floor (10) for each half window
// of the budget the load spanned.
func checkBudget(t *testing.T, s *scenarioRun) {
	if s.res.ok != 0 {
		t.Errorf("%d requests succeeded on replicas that fail everything", s.res.ok)
	}
	checkFailures(t, s)
	got := s.after.upstream(s.model, "", "")
	halves := 1 + int(s.res.took/(resilience.Window/2))
	bound := int((1+config.DefaultRetryBudget)*float64(s.res.sent)) + config.DefaultRetryMinRetries*halves
	// Every request is tried once, but those that found every breaker open
	// or every replica busy after its 429.
	tried := s.res.sent - s.res.failed["503 no_deployment"] - s.res.failed["429 rate_limited"]
	if got > bound || got < tried {
		t.Errorf("%d upstream attempts for %d requests; want between %d and %d", got, s.res.sent, tried, bound)
	}
	s.note("%d upstream attempts for %d requests (%.2f×, bound %d); %d sent again", got, s.res.sent, float64(got)/float64(s.res.sent), bound, got-tried)
}

// checkFailures: the clients saw every one of the scenario's expected
// failures, and nothing else (when it expects some).
func checkFailures(t *testing.T, s *scenarioRun) {
	if s.fails == nil {
		return
	}
	for _, f := range s.fails {
		if s.res.failed[f] == 0 {
			t.Errorf("no request failed with %s: %s", f, s.res.failedString())
		}
	}
	for f := range s.res.failed {
		if !slices.Contains(s.fails, f) {
			t.Errorf("requests failed with %s, want only %v: %s", f, s.fails, s.res.failedString())
		}
	}
}

// outcomes renders a deployment's attempts by outcome: "504: 4".
func outcomes(m metrics, model, deployment string) string {
	var parts []string
	for _, x := range m {
		if x.name == "omnigate_upstream_requests_total" && x.labels["model"] == model && x.labels["deployment"] == deployment {
			parts = append(parts, fmt.Sprintf("%s: %.0f", x.labels["outcome"], x.value))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// spread renders durations as "87 ms" or "84–120 ms".
func spread(ds []time.Duration) string {
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo.Round(time.Millisecond) == hi.Round(time.Millisecond) {
		return lo.Round(time.Millisecond).String()
	}
	return lo.Round(time.Millisecond).String() + "–" + hi.Round(time.Millisecond).String()
}

// checkHedged: every request succeeds, and those that found the slow
// replica were hedged on another (a hedge per request the slow one was
// given, about) rather than waiting for it.
func checkHedged(t *testing.T, s *scenarioRun) {
	allSucceed(t, s)
	hedges := int(s.after.sum("omnigate_hedges_total", map[string]string{"model": s.model}))
	r := s.replicas[0]
	slow := s.after.upstream(s.model, r.name, "")
	if hedges == 0 {
		t.Errorf("no request was hedged; the slow replica got %d attempts", slow)
	}
	s.note("%d requests hedged; the slow replica got %d attempts (%s)", hedges, slow, outcomes(s.after, s.model, r.name))
}
