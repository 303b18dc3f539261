package loadtest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is the machine-readable outcome of a harness run (--out).
type Result struct {
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	Command  []string     `json:"command"`
	Machine  Machine      `json:"machine"`
	Pinned   bool         `json:"pinned"`
	Renamed  bool         `json:"renamed,omitempty"` // --rename: omnigate rewrote the model name
	Server   []int        `json:"server_cpus,omitempty"`
	Client   []int        `json:"client_cpus,omitempty"`
	Runs     int          `json:"runs"`
	Modes    []ModeResult `json:"modes"`
	Goals    []Goal       `json:"goals"`
}

// ModeResult holds one mode's phases (medians over runs) and comparisons.
type ModeResult struct {
	Mode        string           `json:"mode"`
	IdleRSS     map[string]int64 `json:"idle_rss_bytes"`
	Phases      []PhaseResult    `json:"phases"`
	Comparisons []Comparison     `json:"comparisons"`
	PerRun      [][]PhaseResult  `json:"per_run,omitempty"`
}

// Comparison sets one target's phase against direct and against the proxy.
type Comparison struct {
	Kind            string  `json:"kind"`
	Target          string  `json:"target"`
	RPSvsDirect     float64 `json:"rps_ratio_vs_direct,omitempty"`
	RPSvsProxy      float64 `json:"rps_ratio_vs_proxy,omitempty"`
	CPUvsProxy      float64 `json:"cpu_per_req_ratio_vs_proxy,omitempty"`
	AddedP50US      float64 `json:"added_p50_us"`
	AddedP90US      float64 `json:"added_p90_us"`
	AddedP99US      float64 `json:"added_p99_us"`
	AddedTTFBP50US  float64 `json:"added_ttfb_p50_us,omitempty"`
	AddedTTFBP99US  float64 `json:"added_ttfb_p99_us,omitempty"`
	PeakRSSvsDirect float64 `json:"peak_rss_ratio_vs_direct,omitempty"`
	// For grpc: against omnigate's HTTP API.
	RPSvsHTTP     float64 `json:"rps_ratio_vs_http,omitempty"`
	CPUvsHTTP     float64 `json:"cpu_per_req_ratio_vs_http,omitempty"`
	PeakRSSvsHTTP float64 `json:"peak_rss_ratio_vs_http,omitempty"`
}

// Goal is one target from the performance issue and whether it was met.
type Goal struct {
	Name     string  `json:"name"`
	Limit    string  `json:"limit"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	Met      *bool   `json:"met"` // nil: not measured in this run
	Note     string  `json:"note,omitempty"`
}

func newResult(o Options) *Result {
	return &Result{Started: time.Now().UTC(), Command: os.Args, Machine: machine(), Pinned: o.Pin, Renamed: o.Rename, Server: o.ServerCPUs, Client: o.ClientCPUs, Runs: o.Runs}
}

// mergeRuns reduces several runs of one mode to field-wise medians. Runs list
// the same phases in the same order.
func mergeRuns(mode string, runs [][]PhaseResult, idle []map[string]int64) ModeResult {
	m := ModeResult{Mode: mode, IdleRSS: map[string]int64{}}
	if len(runs) == 0 {
		return m
	}
	if len(runs) > 1 {
		m.PerRun = runs
	}
	for i := range runs[0] {
		col := make([]PhaseResult, 0, len(runs))
		for _, r := range runs {
			if i < len(r) {
				col = append(col, r[i])
			}
		}
		m.Phases = append(m.Phases, medianPhase(col))
	}
	for name := range idle[0] {
		var xs []float64
		for _, r := range idle {
			xs = append(xs, float64(r[name]))
		}
		m.IdleRSS[name] = int64(median(xs))
	}
	m.Comparisons = compare(m.Phases)
	return m
}

// medianPhase takes the median of every measured field; counts, labels and
// the soak series come from the first run.
func medianPhase(ps []PhaseResult) PhaseResult {
	out := ps[0]
	f := func(get func(*PhaseResult) float64) float64 {
		xs := make([]float64, len(ps))
		for i := range ps {
			xs[i] = get(&ps[i])
		}
		return median(xs)
	}
	out.Seconds = f(func(p *PhaseResult) float64 { return p.Seconds })
	out.Sent = int64(f(func(p *PhaseResult) float64 { return float64(p.Sent) }))
	out.OK = int64(f(func(p *PhaseResult) float64 { return float64(p.OK) }))
	out.Errors = int64(f(func(p *PhaseResult) float64 { return float64(p.Errors) }))
	out.Dropped = int64(f(func(p *PhaseResult) float64 { return float64(p.Dropped) }))
	out.Opened = int64(f(func(p *PhaseResult) float64 { return float64(p.Opened) }))
	out.RPS = f(func(p *PhaseResult) float64 { return p.RPS })
	out.Latency = medianSummary(ps, func(p *PhaseResult) *Summary { return &p.Latency })
	if out.TTFB != nil {
		t := medianSummary(ps, func(p *PhaseResult) *Summary { return p.TTFB })
		out.TTFB = &t
	}
	out.ChunksPerSec = f(func(p *PhaseResult) float64 { return p.ChunksPerSec })
	out.CPUSeconds = f(func(p *PhaseResult) float64 { return p.CPUSeconds })
	out.CPUMicrosPerReq = f(func(p *PhaseResult) float64 { return p.CPUMicrosPerReq })
	out.UpstreamCPUUS = f(func(p *PhaseResult) float64 { return p.UpstreamCPUUS })
	out.PeakRSS = int64(f(func(p *PhaseResult) float64 { return float64(p.PeakRSS) }))
	out.EndRSS = int64(f(func(p *PhaseResult) float64 { return float64(p.EndRSS) }))
	out.UpstreamPeakRSS = int64(f(func(p *PhaseResult) float64 { return float64(p.UpstreamPeakRSS) }))
	out.Goroutines = int(f(func(p *PhaseResult) float64 { return float64(p.Goroutines) }))
	out.StackBytes = int64(f(func(p *PhaseResult) float64 { return float64(p.StackBytes) }))
	out.HeapBytes = int64(f(func(p *PhaseResult) float64 { return float64(p.HeapBytes) }))
	return out
}

func medianSummary(ps []PhaseResult, get func(*PhaseResult) *Summary) Summary {
	g := func(field func(*Summary) float64) float64 {
		var xs []float64
		for i := range ps {
			if s := get(&ps[i]); s != nil {
				xs = append(xs, field(s))
			}
		}
		return median(xs)
	}
	return Summary{
		Count:  int64(g(func(s *Summary) float64 { return float64(s.Count) })),
		MeanUS: g(func(s *Summary) float64 { return s.MeanUS }),
		P50US:  g(func(s *Summary) float64 { return s.P50US }),
		P90US:  g(func(s *Summary) float64 { return s.P90US }),
		P99US:  g(func(s *Summary) float64 { return s.P99US }),
		MaxUS:  g(func(s *Summary) float64 { return s.MaxUS }),
	}
}

// compare sets proxy and omnigate against direct (and omnigate against proxy)
// for each phase kind.
func compare(ps []PhaseResult) []Comparison {
	find := func(target, kind string) *PhaseResult {
		for i := range ps {
			if ps[i].Target == target && ps[i].Kind == kind {
				return &ps[i]
			}
		}
		return nil
	}
	var out []Comparison
	for _, kind := range []string{"closed", "open", "idle", "soak"} {
		direct, proxy, http := find("direct", kind), find("proxy", kind), find("omnigate", kind)
		for _, name := range []string{"proxy", "omnigate", "grpc"} {
			p := find(name, kind)
			if p == nil || (direct == nil && (name == "proxy" || proxy == nil) && (name != "grpc" || http == nil)) {
				continue
			}
			c := Comparison{Kind: kind, Target: name}
			if direct != nil {
				c.RPSvsDirect = ratio(p.RPS, direct.RPS)
				c.AddedP50US = p.Latency.P50US - direct.Latency.P50US
				c.AddedP90US = p.Latency.P90US - direct.Latency.P90US
				c.AddedP99US = p.Latency.P99US - direct.Latency.P99US
				if p.TTFB != nil && direct.TTFB != nil {
					c.AddedTTFBP50US = p.TTFB.P50US - direct.TTFB.P50US
					c.AddedTTFBP99US = p.TTFB.P99US - direct.TTFB.P99US
				}
				c.PeakRSSvsDirect = ratio(float64(p.PeakRSS), float64(direct.PeakRSS))
			}
			if name != "proxy" && proxy != nil {
				c.RPSvsProxy = ratio(p.RPS, proxy.RPS)
				c.CPUvsProxy = ratio(p.CPUMicrosPerReq, proxy.CPUMicrosPerReq)
			}
			if name == "grpc" && http != nil {
				c.RPSvsHTTP = ratio(p.RPS, http.RPS)
				c.CPUvsHTTP = ratio(p.CPUMicrosPerReq, http.CPUMicrosPerReq)
				c.PeakRSSvsHTTP = ratio(float64(p.PeakRSS), float64(http.PeakRSS))
			}
			out = append(out, c)
		}
	}
	return out
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// WriteTable prints the human report: per mode and phase kind, one row per
// target, then the ratios, then the goals.
func WriteTable(w io.Writer, r *Result) {
	pin := "not pinned"
	if r.Pinned {
		pin = fmt.Sprintf("servers on CPU %v, load generator on CPU %v", r.Server, r.Client)
	}
	if r.Renamed {
		pin += "; omnigate rewrites the model name"
	}
	fmt.Fprintf(w, "\nomnigate bench — %d CPU %s, %s, %s; %s; median of %d run(s)\n",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.Kernel, r.Machine.GoVersion, pin, r.Runs)
	for _, m := range r.Modes {
		for _, kind := range []string{"closed", "open", "idle", "soak"} {
			var rows []PhaseResult
			for _, p := range m.Phases {
				if p.Kind == kind {
					rows = append(rows, p)
				}
			}
			if len(rows) == 0 {
				continue
			}
			fmt.Fprintf(w, "\n== %s · %s ==\n", m.Mode, describe(rows[0]))
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			switch kind {
			case "idle":
				fmt.Fprintln(tw, "target\topened\terrors\tidle RSS\tpeak RSS\tGo stack\tGo heap\tupstream RSS\tgoroutines\tTTFB p50 ms\tTTFB p99 ms\t")
				for _, p := range rows {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.Target, p.Opened, p.Errors, mb(m.IdleRSS[p.Target]),
						mb(p.PeakRSS), mb(p.StackBytes), mb(p.HeapBytes), mb(p.UpstreamPeakRSS), count(p.Goroutines), ms(p.TTFB.P50US), ms(p.TTFB.P99US))
				}
			default:
				head := "target\trps\tp50 ms\tp90 ms\tp99 ms\tmax ms\tCPU µs/req\tupstream µs/req\tidle RSS\tpeak RSS\terrors\t"
				if rows[0].TTFB != nil {
					head += "TTFB p50\tTTFB p99\tchunks/s\t"
				}
				fmt.Fprintln(tw, head)
				for _, p := range rows {
					fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%d\t", p.Target, p.RPS, ms(p.Latency.P50US), ms(p.Latency.P90US),
						ms(p.Latency.P99US), ms(p.Latency.MaxUS), p.CPUMicrosPerReq, opt(p.UpstreamCPUUS), mb(m.IdleRSS[p.Target]), mb(p.PeakRSS), p.Errors+p.Dropped)
					if p.TTFB != nil {
						fmt.Fprintf(tw, "%s\t%s\t%.0f\t", ms(p.TTFB.P50US), ms(p.TTFB.P99US), p.ChunksPerSec)
					}
					fmt.Fprintln(tw)
				}
			}
			_ = tw.Flush()
			for _, c := range m.Comparisons {
				if c.Kind == kind {
					fmt.Fprintln(w, "  "+describeComparison(c))
				}
			}
			for _, p := range rows {
				if p.FirstError != "" {
					fmt.Fprintf(w, "  %s first error: %s\n", p.Target, p.FirstError)
				}
			}
		}
	}
	if len(r.Goals) > 0 {
		fmt.Fprintln(w, "\n== goals (omnigate) ==")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, g := range r.Goals {
			verdict := "not measured"
			if g.Met != nil {
				verdict = map[bool]string{true: "met", false: "MISSED"}[*g.Met]
			}
			meas := "-"
			if g.Met != nil {
				meas = fmt.Sprintf("%.3g %s", g.Measured, g.Unit)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Name, g.Limit, meas, verdict, g.Note)
		}
		_ = tw.Flush()
	}
}

func describe(p PhaseResult) string {
	switch p.Kind {
	case "closed":
		return fmt.Sprintf("closed loop, %d workers, %.0fs", p.Concurrency, p.Seconds)
	case "open":
		return fmt.Sprintf("open loop at %.0f req/s, %.0fs (latency from intended send time)", p.Rate, p.Seconds)
	case "idle":
		return fmt.Sprintf("%d concurrent slow streams held open", p.Streams)
	case "soak":
		return fmt.Sprintf("soak at %.0f req/s, %.0fs", p.Rate, p.Seconds)
	}
	return p.Kind
}

func describeComparison(c Comparison) string {
	var b strings.Builder
	if c.RPSvsDirect == 0 && c.PeakRSSvsHTTP != 0 { // no direct target: against HTTP only
		if c.Kind == "idle" {
			fmt.Fprintf(&b, "%s vs omnigate over HTTP: peak RSS ×%.2f", c.Target, c.PeakRSSvsHTTP)
		} else {
			fmt.Fprintf(&b, "%s vs omnigate over HTTP: rps ×%.2f, CPU/req ×%.2f", c.Target, c.RPSvsHTTP, c.CPUvsHTTP)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%s vs direct:", c.Target)
	if c.Kind == "idle" {
		fmt.Fprintf(&b, " peak RSS ×%.2f, TTFB p50 %+.3f ms", c.PeakRSSvsDirect, c.AddedTTFBP50US/1000)
		if c.PeakRSSvsHTTP != 0 {
			fmt.Fprintf(&b, "; vs omnigate over HTTP: peak RSS ×%.2f", c.PeakRSSvsHTTP)
		}
		return b.String()
	}
	fmt.Fprintf(&b, " rps ×%.2f, added p50 %+.3f ms, p90 %+.3f ms, p99 %+.3f ms", c.RPSvsDirect, c.AddedP50US/1000, c.AddedP90US/1000, c.AddedP99US/1000)
	if c.AddedTTFBP50US != 0 || c.AddedTTFBP99US != 0 {
		fmt.Fprintf(&b, ", TTFB p50 %+.3f ms, p99 %+.3f ms", c.AddedTTFBP50US/1000, c.AddedTTFBP99US/1000)
	}
	if c.RPSvsProxy != 0 {
		fmt.Fprintf(&b, "; vs proxy: rps ×%.2f, CPU/req ×%.2f", c.RPSvsProxy, c.CPUvsProxy)
	}
	if c.CPUvsHTTP != 0 {
		fmt.Fprintf(&b, "; vs omnigate over HTTP: rps ×%.2f, CPU/req ×%.2f", c.RPSvsHTTP, c.CPUvsHTTP)
	}
	return b.String()
}

func ms(usv float64) string { return fmt.Sprintf("%.3f", usv/1000) }

func mb(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}

func opt(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

func count(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func trimNL(b []byte) []byte { return bytes.TrimSpace(b) }

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo []byte) string {
	for line := range bytes.Lines(cpuinfo) {
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
			return string(bytes.TrimSpace(v))
		}
	}
	return "unknown CPU"
}
