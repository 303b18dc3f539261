package e2e

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/resilience"
)

// The chaos suite's behavioural targets (the figures it measures are
// logged as a table; see docs/chaos.md).
const (
	// leaveRotationTarget: a dead replica stops receiving traffic within
	// it. The health check runs every 100 ms, so a quiet machine takes a
	// fifth of it; the slack of leaveRotationSlack is for a loaded one.
	leaveRotationTarget = time.Second
	leaveRotationSlack  = 500 * time.Millisecond
	// goroutineSlack is how many goroutines the gateway may have more
	// after the suite than before it: a scrape's own, and a connection
	// being closed.
	goroutineSlack = 5
	// rssGrowthBound is how much the gateway's resident memory may grow
	// over the suite: its heap settles at the peak of the load, which
	// stays far below it; a leak of a buffer per request does not.
	rssGrowthBound = 64 << 20
)

// chaosScale is how much of each the suite does: the short mode runs in
// `go test` (and `make test`); OMNIGATE_CHAOS=long (`make chaos`) runs
// more requests and kills and restarts a replica again and again.
type chaosScale struct {
	long     bool
	requests int // non-streaming requests of the scenarios that need all to succeed
	streams  int
	failing  int // requests to a model whose every replica fails
	kills    int // kill-and-restart cycles
}

// currentScale reads OMNIGATE_CHAOS.
func currentScale() chaosScale {
	if os.Getenv("OMNIGATE_CHAOS") == "long" {
		return chaosScale{long: true, requests: 3000, streams: 600, failing: 1000, kills: 5}
	}
	return chaosScale{requests: 300, streams: 60, failing: 100, kills: 1}
}

// chaosScenario is one fault injected under load, and what must hold.
type chaosScenario struct {
	name string // the model's name is "chaos-" and this
	what string // for the table
	// faulty are the fault flags of each of the scenario's own replicas
	// (nil: none, for one to kill); healthy is how many of the suite's
	// healthy replicas the model has besides.
	faulty  [][]string
	healthy int
	// timeouts are the model's (YAML flow map; "" for the small tier's),
	// deployment extra keys of each of its deployments.
	timeouts, deployment string
	traffic              loadSpec
	// fault runs on the test goroutine while the load runs (nil: none):
	// it kills, restarts and watches replicas. With faultNeedsTraffic
	// the load goes on past its requests until the fault is done.
	fault             func(t *testing.T, s *scenarioRun)
	faultNeedsTraffic bool
	// check asserts the scenario's targets once the load is done; fails
	// are the failures (status and code) it expects the clients to see.
	check func(t *testing.T, s *scenarioRun)
	fails []string
	// gap, when set, is the gateway's known gap (docs/chaos.md) that
	// keeps the scenario from its target: its figures are measured and
	// logged, its checks skipped. Remove it with the fix.
	gap string
}

// scenarioRun is one scenario's live state and its figures.
type scenarioRun struct {
	*chaosScenario
	scale    chaosScale
	gw       string
	model    string
	replicas []*replica // its own first, then the suite's healthy ones
	// reference is the text of the answer to the suite's request.
	reference string
	load      *loader
	started   time.Time
	// keepLoading holds the load past its requests while the fault
	// needs traffic.
	keepLoading atomic.Bool
	res         loadResult
	after       metrics // the gateway's, once the load is done
	// leftRotation is how long the faulty replica took to leave
	// rotation, and how ("" when the scenario does not measure it).
	leftRotation string
	notes        []string
}

// note adds a line to the scenario's row of the table.
func (s *scenarioRun) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// chaosScenarios is the suite's table.
func chaosScenarios(sc chaosScale) []*chaosScenario {
	calls := loadSpec{requests: sc.requests, concurrency: 10}
	streams := loadSpec{requests: sc.streams, concurrency: 10, stream: true}
	failing := loadSpec{requests: sc.failing, concurrency: 10}
	twice := func(f ...string) [][]string { return [][]string{f, f} }
	const breakersOpen = "503 no_deployment"
	return []*chaosScenario{
		{name: "kill", what: "3 replicas, one SIGKILLed under load, then restarted",
			faulty: [][]string{nil}, healthy: 2, traffic: calls,
			fault: killAndRestart, faultNeedsTraffic: true, check: allSucceed},
		{name: "hang", what: "3 replicas, one accepts and never answers (first_token 1s)",
			faulty: [][]string{{"--hang-rate", "1"}}, healthy: 2, timeouts: "{first_token: 1s}", traffic: calls,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "hang-stream", what: "the same, streaming",
			faulty: [][]string{{"--hang-rate", "1"}}, healthy: 2, timeouts: "{first_token: 1s}", traffic: streams,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "stall", what: "3 replicas, one sends 200 and its headers, then nothing (first_token 1s)",
			faulty: [][]string{{"--stall-after-headers", "1"}}, healthy: 2, timeouts: "{first_token: 1s}", traffic: calls,
			fault: watchLeave, check: checkBreakerHolds, gap: gapBodyAfterHead},
		{name: "stall-stream", what: "the same, streaming",
			faulty: [][]string{{"--stall-after-headers", "1"}}, healthy: 2, timeouts: "{first_token: 1s}", traffic: streams,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "cut", what: "3 replicas, one cuts every stream after 3 chunks",
			faulty: [][]string{{"--cut-after", "3"}}, healthy: 2, traffic: streams,
			check: checkContinued},
		{name: "cut-nocont", what: "the same, continuation off",
			faulty: [][]string{{"--cut-after", "3"}}, healthy: 2, deployment: "continuation: false", traffic: streams,
			check: checkCutStreams},
		{name: "cut-json", what: "3 replicas, one cuts every non-streaming answer halfway",
			faulty: [][]string{{"--cut-after", "3"}}, healthy: 2, traffic: calls,
			check: checkBreakerHolds, gap: gapBodyAfterHead},
		{name: "503", what: "3 replicas, one answers 503 to everything",
			faulty: [][]string{{"--fail", "503=1"}}, healthy: 2, traffic: calls,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "429", what: "3 replicas, one answers 429 with Retry-After: 1 to everything",
			faulty: [][]string{{"--fail", "429=1", "--retry-after", "1"}}, healthy: 2, traffic: calls,
			check: checkRateLimited, gap: gapRetryAfter},
		{name: "oom", what: "3 replicas, one answers out of memory (vLLM: 500, no body)",
			faulty: [][]string{{"--oom", "1"}}, healthy: 2, traffic: calls,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "oom-stream", what: "the same, streaming (vLLM: 200, an error event, [DONE])",
			faulty: [][]string{{"--oom", "1"}}, healthy: 2, traffic: streams,
			check: checkBreakerHolds, gap: gapErrorEvent},
		{name: "oom-ollama", what: "3 replicas, one Ollama answers out of memory",
			faulty: [][]string{{"--oom", "1", "--error-dialect", "ollama"}}, healthy: 2, traffic: calls,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "html", what: "3 replicas, one answers 502 with an HTML page",
			faulty: [][]string{{"--fail-html", "1"}}, healthy: 2, traffic: calls,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "all-503", what: "2 replicas, both answer 503 to everything",
			faulty: twice("--fail", "503=1"), traffic: failing, check: checkBudget, fails: []string{"503", breakersOpen}},
		{name: "all-429", what: "2 replicas, both answer 429 to everything (no breaker opens)",
			faulty: twice("--fail", "429=1"), traffic: failing, check: checkBudget, fails: []string{"429"}},
		{name: "all-oom", what: "2 replicas, both answer out of memory (vLLM: 500, no body)",
			faulty: twice("--oom", "1"), traffic: failing, check: checkBudget, fails: []string{"500", breakersOpen}},
		{name: "all-oom-ollama", what: "2 Ollama replicas, both answer out of memory",
			faulty: twice("--oom", "1", "--error-dialect", "ollama"), traffic: failing, check: checkBudget,
			fails: []string{"503 upstream_out_of_memory", breakersOpen}},
		{name: "all-oom-llamacpp", what: "2 llama.cpp replicas, both answer out of memory",
			faulty: twice("--oom", "1", "--error-dialect", "llamacpp"), traffic: failing, check: checkBudget,
			fails: []string{"503 upstream_out_of_memory", breakersOpen}, gap: gapLlamaCppOOM},
		{name: "all-html", what: "2 replicas, both answer 502 with an HTML page",
			faulty: twice("--fail-html", "1"), traffic: failing, check: checkBudget, fails: []string{"502", breakersOpen}},
	}
}

// The gateway's known gaps, each keeping a scenario from its target
// (docs/chaos.md has them with a way to reproduce each).
const (
	gapBodyAfterHead = "a non-streaming answer that fails after its head (cut, or silent) is not retried on another replica"
	gapRetryAfter    = "a replica's 429 with Retry-After does not keep it out of rotation for that time, so retries exhaust the budget"
	gapErrorEvent    = "a stream whose first event is an error (vLLM's dead engine) is relayed as a success, then [DONE]"
	gapLlamaCppOOM   = "llama.cpp's out-of-memory answer (500 \"Context size has been exceeded.\") is not recognised"
)

// TestChaos runs the gateway in front of simulator processes, injects one
// fault per scenario under a bounded load, checks the targets (every
// request succeeds while a healthy replica is left, a dead replica leaves
// rotation within a second, the retry budget bounds a failing model's
// upstream traffic, nothing leaks) and logs the measured figures as a
// markdown table.
func TestChaos(t *testing.T) {
	sc := currentScale()
	suiteStart := time.Now()
	gw, debug, runs := startChaos(t, sc)

	// Warm the gateway's pools and connections up, then take the
	// baseline the suite must come back to.
	newLoader(gw.URL, runs[0].model).run(loadSpec{requests: 30, concurrency: 10}, nil)
	before := settledStats(t, gw, debug, nil)

	for _, s := range runs {
		t.Run(s.name, func(t *testing.T) { s.run(t) })
	}

	after := settledStats(t, gw, debug, &before)
	t.Logf("gateway before the scenarios: %d goroutines, %.1f MiB RSS; after: %d goroutines, %.1f MiB RSS (peak %.1f MiB)",
		before.goroutines, mib(before.rss), after.goroutines, mib(after.rss), mib(after.peakRSS))
	if after.goroutines > before.goroutines+goroutineSlack {
		t.Errorf("the gateway has %d goroutines after the suite, %d before: a leak", after.goroutines, before.goroutines)
	}
	if after.rss > before.rss+rssGrowthBound {
		t.Errorf("the gateway's RSS grew from %.1f to %.1f MiB over the suite, bound %d MiB", mib(before.rss), mib(after.rss), rssGrowthBound>>20)
	}
	t.Logf("chaos suite (%s mode), %s:\n%s", map[bool]string{false: "short", true: "long"}[sc.long],
		time.Since(suiteStart).Round(100*time.Millisecond), reportTable(runs))
}

// startChaos starts every scenario's replicas and the one gateway in
// front of them (with its debug listener, for forced collections), and
// waits until every replica is in rotation.
func startChaos(t *testing.T, sc chaosScale) (*proc, string, []*scenarioRun) {
	t.Helper()
	healthy := []*replica{newReplica(t, "healthy-1", nil), newReplica(t, "healthy-2", nil)}
	ref := reference(t, healthy[0])
	var runs []*scenarioRun
	var models []chaosModel
	for _, s := range chaosScenarios(sc) {
		r := &scenarioRun{chaosScenario: s, scale: sc, model: "chaos-" + s.name, reference: ref}
		for i, faults := range s.faulty {
			r.replicas = append(r.replicas, newReplica(t, fmt.Sprintf("%s-%d", s.name, i+1), faults))
		}
		r.replicas = append(r.replicas, healthy[:s.healthy]...)
		runs = append(runs, r)
		models = append(models, chaosModel{name: r.model, timeouts: s.timeouts, deployment: s.deployment, replicas: r.replicas})
	}
	debug := freeAddr(t)
	// Warnings are one a failed request: the suite makes thousands.
	gw := start(t, "serve", "--config", chaosConfig(t, models), "--debug-addr", debug, "--log-level", "error")
	for _, r := range runs {
		r.gw = gw.URL
		r.load = newLoader(gw.URL, r.model)
	}
	var rows []deploymentRow
	if _, ok := poll(10*time.Second, func() bool {
		rows = deploymentRows(t, gw.URL)
		for _, d := range rows {
			if d.Health != "up" {
				return false
			}
		}
		return true
	}); !ok {
		t.Fatalf("replicas not all in rotation: %+v", rows)
	}
	return gw, debug, runs
}

// reference is the answer every replica streams for the suite's request,
// asked of a healthy one directly.
func reference(t *testing.T, r *replica) string {
	t.Helper()
	l := newLoader("http://"+r.addr, "qwen3-omni-7b")
	res := l.run(loadSpec{requests: 1, concurrency: 1, stream: true}, nil)
	if res.ok != 1 || len(res.texts) != 1 {
		t.Fatalf("%s streamed %+v", r.name, res)
	}
	for text := range res.texts {
		return text
	}
	return ""
}

// run is one scenario: the load, with the fault alongside, then the checks.
func (s *scenarioRun) run(t *testing.T) {
	s.started = time.Now()
	s.keepLoading.Store(s.faultNeedsTraffic)
	defer s.keepLoading.Store(false) // should the fault end the test
	done := make(chan loadResult, 1)
	go func() { done <- s.load.run(s.traffic, s.keepLoading.Load) }()
	if s.fault != nil {
		s.fault(t, s)
	}
	s.keepLoading.Store(false)
	s.res = <-done
	s.after = scrapeMetrics(t, s.gw)
	if s.gap != "" {
		s.skipGap(t)
	}
	for _, b := range s.res.broken {
		t.Errorf("an answer that breaks the contract: %s", b)
	}
	s.check(t, s)
}

// skipGap notes whether the scenario met its target in spite of its
// known gap and skips its checks.
func (s *scenarioRun) skipGap(t *testing.T) {
	missed := "target missed"
	if s.res.ok == s.res.sent {
		missed = "target met: the gap may be closed"
	}
	s.note("%s (known gap: %s)", missed, s.gap)
	t.Skipf("known gap: %s; %d of %d requests succeeded (%s)", s.gap, s.res.ok, s.res.sent, s.res.failedString())
}

// killAndRestart SIGKILLs the first replica a third of the way into each
// cycle of the load, measures how long it takes to leave rotation, checks
// that it gets no attempt once out, starts it again on its address and
// waits until it serves again by itself.
func killAndRestart(t *testing.T, s *scenarioRun) {
	r := s.replicas[0]
	per := s.traffic.requests / s.scale.kills
	var left, health, back []time.Duration
	for c := range s.scale.kills {
		s.load.waitDone(c*per + per/3)
		r.kill()
		l := s.waitLeave(t, r, time.Now(), true)
		left, health = append(left, l.after), append(health, l.health)
		if l.after > leaveRotationTarget+leaveRotationSlack {
			t.Errorf("cycle %d: the killed replica left rotation after %v, target %v", c+1, l.after, leaveRotationTarget)
		}
		if l.health > leaveRotationTarget+leaveRotationSlack {
			t.Errorf("cycle %d: the health check took the killed replica out after %v, target %v", c+1, l.health, leaveRotationTarget)
		}
		sent := scrapeMetrics(t, s.gw).upstream(s.model, r.name, "")
		s.load.waitDone(c*per + 2*per/3)
		if n := scrapeMetrics(t, s.gw).upstream(s.model, r.name, "") - sent; n > 0 {
			t.Errorf("cycle %d: the killed replica got %d attempts after it left rotation", c+1, n)
		}

		r.start(t)
		served := scrapeMetrics(t, s.gw).upstream(s.model, r.name, "200")
		took, ok := poll(20*time.Second, func() bool { return scrapeMetrics(t, s.gw).upstream(s.model, r.name, "200") > served })
		if !ok {
			t.Fatalf("cycle %d: the restarted replica served nothing in %v: %+v", c+1, took, s.row(t, r))
		}
		back = append(back, took)
	}
	s.leftRotation = spread(left) + " (first of breaker and health check; health check " + spread(health) + ")"
	s.note("%d kill(s); served again %s after the restart (the breaker's %v cool-down)", s.scale.kills, spread(back), balance.Cooldown)
}

// watchLeave measures how long the first replica, faulty from the start,
// takes to leave rotation under the load.
func watchLeave(t *testing.T, s *scenarioRun) {
	l := s.waitLeave(t, s.replicas[0], s.started, false)
	s.leftRotation = l.String()
}

// leave is how a replica left rotation: after how long, by what (the
// health check or the breaker), and when the health check took it out
// (0: it did not, the replica answers its probes).
type leave struct {
	after  time.Duration
	by     string
	health time.Duration
}

// String renders l for the table: "2ms (breaker; health check 150ms)".
func (l leave) String() string {
	s := l.after.Round(time.Millisecond).String() + " (" + l.by
	if l.health > 0 && l.by != "health check" {
		s += "; health check " + l.health.Round(time.Millisecond).String()
	}
	return s + ")"
}

// waitLeave waits until r is out of rotation, and with health until its
// health check has taken it out too, and says how long each took since
// from.
func (s *scenarioRun) waitLeave(t *testing.T, r *replica, from time.Time, health bool) leave {
	t.Helper()
	var l leave
	var row deploymentRow
	_, ok := poll(15*time.Second, func() bool {
		row = s.row(t, r)
		now := time.Since(from)
		if l.by == "" && outOfRotation(row) {
			l.after, l.by = now, "breaker"
			if row.Health == "down" {
				l.by = "health check"
			}
		}
		if l.health == 0 && row.Health == "down" {
			l.health = now
		}
		return l.by != "" && (!health || l.health > 0)
	})
	if !ok {
		t.Fatalf("%s still in rotation (or still passing its health check) after %v: %+v", r.name, time.Since(from), row)
	}
	return l
}

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
	// Every request is tried once, but those that found every breaker open.
	tried := s.res.sent - s.res.failed["503 no_deployment"]
	if got > bound || got < tried {
		t.Errorf("%d upstream attempts for %d requests; want between %d and %d", got, s.res.sent, tried, bound)
	}
	s.note("%d upstream attempts for %d requests (%.2f×, bound %d)", got, s.res.sent, float64(got)/float64(s.res.sent), bound)
}

// checkFailures: the clients saw every one of the scenario's expected
// failures, and nothing else.
func checkFailures(t *testing.T, s *scenarioRun) {
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
