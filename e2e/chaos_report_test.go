package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/loadtest"
)

// gatewayStats are the figures of the gateway process the suite compares
// before and after.
type gatewayStats struct {
	goroutines   int
	rss, peakRSS int64
}

// settledStats reads the gateway's goroutines (after forced collections,
// through its debug listener) and resident memory. With a baseline, it
// first gives the gateway up to 10 s to come back within goroutineSlack
// of it: connections closing and attempts being cancelled take a moment.
func settledStats(t *testing.T, gw *proc, debug string, baseline *gatewayStats) gatewayStats {
	t.Helper()
	var g int
	read := func() bool {
		g = goStats(t, gw, debug).Goroutines
		return baseline == nil || g <= baseline.goroutines+goroutineSlack
	}
	poll(10*time.Second, read)
	p, err := loadtest.ReadProc(gw.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return gatewayStats{goroutines: g, rss: p.RSS, peakRSS: p.PeakRSS}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// reportTable renders the figures of the scenarios that ran (-run may
// have left some out) as a markdown table.
func reportTable(runs []*scenarioRun) string {
	var b strings.Builder
	b.WriteString("| Scenario | Requests | Succeeded | Failed (by status) | Retried | Upstream attempts | Out of rotation after | Took | Notes |\n")
	b.WriteString("|---|---:|---:|---|---:|---:|---|---:|---|\n")
	for _, s := range runs {
		if s.after == nil {
			continue // not run
		}
		left := s.leftRotation
		if left == "" {
			left = "—"
		}
		fmt.Fprintf(&b, "| %s: %s | %d | %d | %s | %d | %d | %s | %s | %s |\n",
			s.name, s.what, s.res.sent, s.res.ok, s.res.failedString(), s.after.retries(s.model),
			s.after.upstream(s.model, "", ""), left, s.res.took.Round(100*time.Millisecond), strings.Join(s.notes, "; "))
	}
	return b.String()
}
