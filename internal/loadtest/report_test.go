package loadtest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func phaseOf(target, kind string, rps, p50, p99, cpu float64, rss int64) PhaseResult {
	return PhaseResult{Mode: "small", Target: target, Kind: kind, Concurrency: 50, Rate: 1000, RPS: rps, OK: int64(rps),
		Latency: Summary{Count: int64(rps), P50US: p50, P90US: p50 * 2, P99US: p99, MaxUS: p99 * 2}, CPUMicrosPerReq: cpu, PeakRSS: rss}
}

func TestMergeRunsMedians(t *testing.T) {
	runs := [][]PhaseResult{
		{phaseOf("direct", "closed", 100, 10, 100, 5, 10<<20)},
		{phaseOf("direct", "closed", 300, 30, 300, 15, 30<<20)},
		{phaseOf("direct", "closed", 200, 20, 900, 10, 20<<20)},
	}
	idle := []map[string]int64{{"direct": 1}, {"direct": 3}, {"direct": 2}}
	m := mergeRuns("small", runs, idle)
	got := m.Phases[0]
	if got.RPS != 200 || got.Latency.P50US != 20 || got.Latency.P99US != 300 || got.CPUMicrosPerReq != 10 || got.PeakRSS != 20<<20 {
		t.Errorf("medians wrong: %+v", got)
	}
	if m.IdleRSS["direct"] != 2 || len(m.PerRun) != 3 {
		t.Errorf("idle %v per-run %d", m.IdleRSS, len(m.PerRun))
	}
}

func TestCompare(t *testing.T) {
	ps := []PhaseResult{
		phaseOf("direct", "open", 1000, 100, 500, 10, 10<<20),
		phaseOf("proxy", "open", 1000, 250, 1500, 60, 20<<20),
		phaseOf("omnigate", "open", 1000, 180, 900, 30, 30<<20),
		phaseOf("direct", "closed", 20000, 100, 500, 10, 10<<20),
		phaseOf("proxy", "closed", 8000, 100, 500, 60, 20<<20),
		phaseOf("omnigate", "closed", 16000, 100, 500, 30, 30<<20),
	}
	got := compare(ps)
	want := []Comparison{
		{Kind: "closed", Target: "proxy", RPSvsDirect: 0.4, AddedP90US: 0, PeakRSSvsDirect: 2},
		{Kind: "closed", Target: "omnigate", RPSvsDirect: 0.8, RPSvsProxy: 2, CPUvsProxy: 0.5, PeakRSSvsDirect: 3},
		{Kind: "open", Target: "proxy", RPSvsDirect: 1, AddedP50US: 150, AddedP90US: 300, AddedP99US: 1000, PeakRSSvsDirect: 2},
		{Kind: "open", Target: "omnigate", RPSvsDirect: 1, RPSvsProxy: 1, CPUvsProxy: 0.5, AddedP50US: 80, AddedP90US: 160, AddedP99US: 400, PeakRSSvsDirect: 3},
	}
	if d := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); d != "" {
		t.Errorf("compare (-want +got):\n%s", d)
	}
}

func TestGoalsAndTable(t *testing.T) {
	ps := []PhaseResult{
		phaseOf("direct", "closed", 20000, 100, 500, 10, 10<<20),
		phaseOf("proxy", "closed", 8000, 100, 500, 60, 20<<20),
		phaseOf("omnigate", "closed", 16000, 100, 500, 30, 30<<20),
		phaseOf("direct", "open", 1000, 100, 500, 10, 10<<20),
		phaseOf("omnigate", "open", 1000, 180, 1600, 30, 30<<20),
	}
	r := &Result{Machine: Machine{CPUs: 2}, Runs: 1, Modes: []ModeResult{mergeRuns("small", [][]PhaseResult{ps}, []map[string]int64{{"omnigate": 12 << 20}})}}
	r.Goals = evaluateGoals(r, Options{Pin: true})
	verdicts := map[string]string{}
	for _, g := range r.Goals {
		v := "unmeasured"
		if g.Met != nil {
			v = map[bool]string{true: "met", false: "missed"}[*g.Met]
		}
		verdicts[g.Name] = v
	}
	want := map[string]string{
		"CPU per non-streaming request": "met",    // 30 µs
		"throughput vs bare proxy":      "met",    // 2.0×
		"added p50 latency":             "met",    // 80 µs
		"added p99 latency":             "missed", // 1100 µs
		"added streaming TTFB (p50)":    "unmeasured",
		"RSS with 10,000 open streams":  "unmeasured",
		"RSS idle":                      "met",
		"RSS under concurrent clients":  "met",
		"soak RSS growth":               "unmeasured",
	}
	if d := cmp.Diff(want, verdicts); d != "" {
		t.Errorf("goals (-want +got):\n%s", d)
	}
	var b strings.Builder
	WriteTable(&b, r)
	for _, s := range []string{"== small · closed loop, 50 workers", "omnigate vs direct: rps ×0.80", "vs proxy: rps ×2.00", "added p99 latency", "MISSED"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
}

func TestIdleStreamsGoal(t *testing.T) {
	tests := []struct {
		name           string
		opened, errors int64
		nofile         uint64
		peakMB         int64
		want           bool
	}{
		{"all open, under", 10000, 0, 1 << 17, 365, true},
		{"all open, over", 10000, 0, 1 << 17, 405, false},
		{"some failed, no limit to blame", 9990, 10, 1 << 17, 365, false},
		{"the last few hit the descriptor limit", 9990, 10, 20000, 365, true},
		{"descriptor limit, over", 9990, 10, 20000, 405, false},
		{"far fewer than the limit allows", 9000, 1000, 20000, 365, false},
		{"streams lost, not refused", 9990, 0, 20000, 365, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PhaseResult{Mode: "idle-streams", Target: "omnigate", Kind: "idle", Streams: 10000,
				Opened: tt.opened, Errors: tt.errors, PeakRSS: tt.peakMB << 20}
			r := &Result{Machine: Machine{NoFile: tt.nofile}, Modes: []ModeResult{{Mode: "idle-streams", Phases: []PhaseResult{p}}}}
			for _, g := range evaluateGoals(r, Options{}) {
				if g.Name != "RSS with 10,000 open streams" {
					continue
				}
				if g.Met == nil || *g.Met != tt.want {
					t.Errorf("met = %v, want %v (note %q)", g.Met, tt.want, g.Note)
				}
				if tt.nofile == 20000 && !strings.Contains(g.Note, "RLIMIT_NOFILE 20000") {
					t.Errorf("note %q does not name the limit", g.Note)
				}
			}
		})
	}
}
