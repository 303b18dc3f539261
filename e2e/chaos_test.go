package e2e

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
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
	// hedge is the model's hedge (YAML flow map; "" for none).
	hedge string
	// fallbackOn, when set, gives the model a fallback for those error
	// classes (a YAML list): a model of the suite's healthy replicas.
	fallbackOn string
	traffic    loadSpec
	// fault runs on the test goroutine while the load runs (nil: none):
	// it kills, restarts and watches replicas. With faultNeedsTraffic
	// the load goes on past its requests until the fault is done.
	fault             func(t *testing.T, s *scenarioRun)
	faultNeedsTraffic bool
	// check asserts the scenario's targets once the load is done; fails
	// are the failures (status and code) it expects the clients to see
	// (nil: any).
	check func(t *testing.T, s *scenarioRun)
	fails []string
	// gap, when set, keeps the scenario from its target: its figures are
	// measured and logged, its checks skipped. Remove it with the fix.
	gap *knownGap
}

// scenarioRun is one scenario's live state and its figures.
type scenarioRun struct {
	*chaosScenario
	scale    chaosScale
	gw       string
	admin    string // the gateway's admin listener
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
	failingStreams := loadSpec{requests: sc.failing, concurrency: 10, stream: true}
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
			fault: watchLeave, check: checkBreakerHolds},
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
			fault: watchLeave, check: checkBreakerHolds},
		{name: "503", what: "3 replicas, one answers 503 to everything",
			faulty: [][]string{{"--fail", "503=1"}}, healthy: 2, traffic: calls,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "429", what: "3 replicas, one answers 429 with Retry-After: 1 to everything",
			faulty: [][]string{{"--fail", "429=1", "--retry-after", "1"}}, healthy: 2, traffic: calls,
			check: checkRateLimited},
		{name: "slow", what: "3 replicas, one 300 ms slower a token; hedge after 300 ms",
			faulty: [][]string{{"--slow", "300ms"}}, healthy: 2, hedge: "{after: 300ms}", traffic: calls, check: checkHedged},
		{name: "slow-stream", what: "the same, streaming",
			faulty: [][]string{{"--slow", "300ms"}}, healthy: 2, hedge: "{after: 300ms}", traffic: streams, check: checkHedged},
		{name: "oom", what: "3 replicas, one answers out of memory (vLLM: 500, no body)",
			faulty: [][]string{{"--oom", "1"}}, healthy: 2, traffic: calls,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "oom-stream", what: "the same, streaming (vLLM: 200, an error event, [DONE])",
			faulty: [][]string{{"--oom", "1"}}, healthy: 2, traffic: streams,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "oom-ollama", what: "3 replicas, one Ollama answers out of memory",
			faulty: [][]string{{"--oom", "1", "--error-dialect", "ollama"}}, healthy: 2, traffic: calls,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "html", what: "3 replicas, one answers 502 with an HTML page",
			faulty: [][]string{{"--fail-html", "1"}}, healthy: 2, traffic: calls,
			fault: watchLeave, check: checkBreakerHolds},
		{name: "all-503", what: "2 replicas, both answer 503 to everything",
			faulty: twice("--fail", "503=1"), traffic: failing, check: checkBudget, fails: []string{"503", breakersOpen}},
		{name: "all-429", what: "2 replicas, both answer 429 to everything (no breaker opens)",
			faulty: twice("--fail", "429=1"), traffic: failing, check: checkBudget},
		{name: "all-429-fallback", what: "the same, falling back on rate_limited to the healthy replicas",
			faulty: twice("--fail", "429=1"), fallbackOn: "[rate_limited]", traffic: calls, check: checkFellBack},
		{name: "all-oom", what: "2 replicas, both answer out of memory (vLLM: 500, no body)",
			faulty: twice("--oom", "1"), traffic: failing, check: checkBudget, fails: []string{"500", breakersOpen}},
		{name: "all-oom-stream", what: "the same, streaming (vLLM: 200, an error event, [DONE])",
			faulty: twice("--oom", "1"), traffic: failingStreams, check: checkBudget, fails: []string{"500", breakersOpen}},
		{name: "all-oom-ollama", what: "2 Ollama replicas, both answer out of memory",
			faulty: twice("--oom", "1", "--error-dialect", "ollama"), traffic: failing, check: checkBudget,
			fails: []string{"503 upstream_out_of_memory", breakersOpen}},
		{name: "all-oom-llamacpp", what: "2 llama.cpp replicas, both answer out of memory",
			faulty: twice("--oom", "1", "--error-dialect", "llamacpp"), traffic: failing, check: checkBudget,
			fails: []string{"503 upstream_out_of_memory", breakersOpen}},
		{name: "all-html", what: "2 replicas, both answer 502 with an HTML page",
			faulty: twice("--fail-html", "1"), traffic: failing, check: checkBudget, fails: []string{"502", breakersOpen}},
	}
}

// knownGap is a gap of the gateway that keeps a scenario from its
// target, numbered as in docs/chaos.md, which has a way to reproduce it.
type knownGap struct {
	n    int
	what string
}

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
		m := chaosModel{name: r.model, timeouts: s.timeouts, hedge: s.hedge, deployment: s.deployment, replicas: r.replicas}
		if s.fallbackOn != "" {
			fb := chaosModel{name: r.model + "-fallback", replicas: healthy}
			m.fallback = fmt.Sprintf("{model: %s, on: %s}", fb.name, s.fallbackOn)
			models = append(models, fb)
		}
		models = append(models, m)
	}
	debug := freeAddr(t)
	// Warnings are one a failed request: the suite makes thousands.
	gw := start(t, "serve", "--config", chaosConfig(t, models), "--debug-addr", debug, "--log-level", "error")
	for _, r := range runs {
		r.gw, r.admin = gw.URL, gw.Admin
		r.load = newLoader(gw.URL, r.model)
	}
	var rows []deploymentRow
	if _, ok := poll(10*time.Second, func() bool {
		rows = deploymentRows(t, gw.Admin)
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
	if s.gap != nil {
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
	s.note("%s (known gap %d)", missed, s.gap.n)
	t.Skipf("known gap %d (docs/chaos.md): %s; %d of %d requests succeeded (%s)", s.gap.n, s.gap.what, s.res.ok, s.res.sent, s.res.failedString())
}
