package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is one server the load is sent to.
type target struct {
	Name       string   // direct, proxy, omnigate
	Base       string   // API base URL including /v1
	Proc       *Process // the process whose CPU and RSS this target costs
	Upstream   *Process // the upstream behind it (nil for direct)
	MetricsURL string   // Prometheus endpoint with go_goroutines, or ""
	// GRPC, when set, is the gateway's gRPC API, which the load goes to
	// instead of Base.
	GRPC *grpcClients
	// Auth, when set, is the Authorization header its requests send.
	Auth []string
}

// phase describes one measured run of load against one target.
type phase struct {
	Mode, Kind  string // Kind: closed, open, idle, soak
	Target      *target
	Body        []byte
	Stream      bool
	Warmup      time.Duration
	Duration    time.Duration
	Concurrency int     // closed
	Rate        float64 // open, soak; idle: ramp rate
	MaxRequests int     // cap per phase
	MaxInFlight int     // open: beyond this a due request is dropped and counted
	Streams     int     // idle
	Hold        time.Duration
	SampleEvery time.Duration // soak
}

// PhaseResult is the measured outcome of one phase.
type PhaseResult struct {
	Mode        string  `json:"mode"`
	Target      string  `json:"target"`
	Kind        string  `json:"kind"`
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	Streams     int     `json:"streams,omitempty"`
	Seconds     float64 `json:"seconds"`

	Sent    int64   `json:"sent"`
	OK      int64   `json:"ok"`
	Errors  int64   `json:"errors"`
	Dropped int64   `json:"dropped,omitempty"`
	RPS     float64 `json:"rps"`
	Latency Summary `json:"latency"`
	// TTFB and ChunksPerSec are for streaming phases.
	TTFB         *Summary `json:"ttfb,omitempty"`
	ChunksPerSec float64  `json:"chunks_per_sec,omitempty"`
	Opened       int64    `json:"opened,omitempty"` // idle: streams that got their first chunk

	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUMicrosPerReq float64 `json:"cpu_us_per_req"`
	UpstreamCPUUS   float64 `json:"upstream_cpu_us_per_req,omitempty"`
	PeakRSS         int64   `json:"peak_rss_bytes"`
	EndRSS          int64   `json:"end_rss_bytes"`
	UpstreamPeakRSS int64   `json:"upstream_peak_rss_bytes,omitempty"`
	Goroutines      int     `json:"goroutines,omitempty"`
	// idle: the target's Go stack and heap in use while the streams are
	// open (from its /metrics), where the per-stream memory goes.
	StackBytes int64   `json:"stack_inuse_bytes,omitempty"`
	HeapBytes  int64   `json:"heap_inuse_bytes,omitempty"`
	Series     []Point `json:"series,omitempty"` // soak
	FirstError string  `json:"first_error,omitempty"`
}

// Point is one soak sample.
type Point struct {
	Second     float64 `json:"t"`
	OK         int64   `json:"ok"`
	RSS        int64   `json:"rss_bytes"`
	Goroutines int     `json:"goroutines,omitempty"`
}

// runner executes phases and reports progress.
type runner struct {
	client   *http.Client
	progress io.Writer
	samples  int // latency samples kept per phase
}

func (p *phase) label() string {
	return fmt.Sprintf("%-12s %-8s %-6s", p.Mode, p.Target.Name, p.Kind)
}

// run executes a warm-up (not recorded) and then the measured phase.
func (r *runner) run(ctx context.Context, p *phase) (PhaseResult, error) {
	if p.Warmup > 0 && p.Kind != "idle" {
		w := *p
		w.Duration, w.Warmup, w.MaxRequests = p.Warmup, 0, (p.MaxRequests+9)/10
		r.load(ctx, &w, newRecorder(1), nil)
	}
	if err := r.checkAlive(p); err != nil {
		return PhaseResult{}, err
	}
	procs := []*Process{p.Target.Proc}
	if p.Target.Upstream != nil {
		procs = append(procs, p.Target.Upstream)
	}
	before := make([]ProcSample, len(procs))
	for i, pr := range procs {
		_ = ResetPeakRSS(pr.PID)
		s, err := ReadProc(pr.PID)
		if err != nil {
			return PhaseResult{}, err
		}
		before[i] = s
	}
	peaks := newPeakSampler(procs)
	rec := newRecorder(r.samples)
	res := PhaseResult{Mode: p.Mode, Target: p.Target.Name, Kind: p.Kind, Concurrency: p.Concurrency, Rate: p.Rate, Streams: p.Streams}
	stopProgress := r.startProgress(p, rec)
	start := time.Now()
	r.load(ctx, p, rec, &res)
	elapsed := time.Since(start)
	stopProgress()
	peak := peaks.stop()
	if err := r.checkAlive(p); err != nil {
		return PhaseResult{}, err
	}
	if ctx.Err() != nil {
		return PhaseResult{}, ctx.Err()
	}
	for i, pr := range procs {
		after, err := ReadProc(pr.PID)
		if err != nil {
			return PhaseResult{}, err
		}
		cpu := (after.CPU - before[i].CPU).Seconds()
		pk := max(peak[i], after.PeakRSS, after.RSS)
		if i == 0 {
			res.CPUSeconds, res.PeakRSS, res.EndRSS = cpu, pk, after.RSS
			if n := rec.ok.Load(); n > 0 {
				res.CPUMicrosPerReq = cpu * 1e6 / float64(n)
			}
		} else {
			res.UpstreamPeakRSS = pk
			if n := rec.ok.Load(); n > 0 {
				res.UpstreamCPUUS = cpu * 1e6 / float64(n)
			}
		}
	}
	if res.Goroutines == 0 {
		res.Goroutines = scrapeGo(ctx, r.client, p.Target.MetricsURL).Goroutines
	}
	res.Seconds = elapsed.Seconds()
	res.Sent, res.OK, res.Errors, res.Dropped = rec.sent.Load(), rec.ok.Load(), rec.errs.Load(), rec.dropped.Load()
	res.FirstError = rec.firstErr
	if p.Kind != "idle" {
		res.RPS = float64(res.OK) / elapsed.Seconds()
	}
	res.Latency = rec.lat.Summarize()
	if p.Stream {
		t := rec.ttfb.Summarize()
		res.TTFB = &t
		res.ChunksPerSec = float64(rec.chunks.Load()) / elapsed.Seconds()
	}
	return res, nil
}

func (r *runner) checkAlive(p *phase) error {
	for _, pr := range []*Process{p.Target.Proc, p.Target.Upstream} {
		if pr != nil && !pr.Alive() {
			return pr.Exited()
		}
	}
	return nil
}

// load sends the phase's requests. res receives idle/soak extras (may be nil).
func (r *runner) load(ctx context.Context, p *phase, rec *recorder, res *PhaseResult) {
	c := &call{client: r.client, url: p.Target.Base + "/chat/completions", body: p.Body, stream: p.Stream, grpc: p.Target.GRPC, auth: p.Target.Auth}
	if c.grpc != nil {
		var err error
		if c.greq, err = grpcRequest(p.Body); err != nil {
			rec.fail(err)
			return
		}
	}
	switch p.Kind {
	case "closed":
		r.closed(ctx, p, c, rec)
	case "open":
		r.open(ctx, p, c, rec)
	case "soak":
		r.soak(ctx, p, c, rec, res)
	case "idle":
		r.idle(ctx, p, c, rec, res)
	}
}

// closed runs p.Concurrency workers, each sending its next request as soon
// as the previous one completes, until the duration or the cap is reached.
func (r *runner) closed(ctx context.Context, p *phase, c *call, rec *recorder) {
	ctx, cancel := context.WithTimeout(ctx, p.Duration+10*time.Second)
	defer cancel()
	deadline := time.Now().Add(p.Duration)
	var budget atomic.Int64
	budget.Store(int64(p.MaxRequests))
	var wg sync.WaitGroup
	for range p.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) && budget.Add(-1) >= 0 {
				c.do(ctx, time.Now(), rec)
			}
		})
	}
	wg.Wait()
}

// open sends requests on a fixed schedule whatever the responses do.
func (r *runner) open(ctx context.Context, p *phase, c *call, rec *recorder) {
	rctx, cancel := context.WithTimeout(ctx, p.Duration+10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var inflight atomic.Int64
	s := Schedule{Start: time.Now(), Rate: p.Rate, For: p.Duration, Max: p.MaxRequests}
	s.Run(ctx, realClock{}, func(_ int, due time.Time) {
		if p.MaxInFlight > 0 && inflight.Load() >= int64(p.MaxInFlight) {
			rec.dropped.Add(1)
			return
		}
		inflight.Add(1)
		wg.Go(func() {
			c.do(rctx, due, rec)
			inflight.Add(-1)
		})
	})
	wg.Wait()
}

// soak is an open-loop phase that samples the target's RSS and goroutine
// count every p.SampleEvery, to show whether either grows with requests.
func (r *runner) soak(ctx context.Context, p *phase, c *call, rec *recorder, res *PhaseResult) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var series []Point
	wg.Go(func() {
		t := time.NewTicker(p.SampleEvery)
		defer t.Stop()
		start := time.Now()
		for {
			pt := Point{Second: time.Since(start).Seconds(), OK: rec.ok.Load()}
			if s, err := ReadProc(p.Target.Proc.PID); err == nil {
				pt.RSS = s.RSS
			}
			pt.Goroutines = scrapeGo(ctx, r.client, p.Target.MetricsURL).Goroutines
			series = append(series, pt)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	r.open(ctx, p, c, rec)
	close(done)
	wg.Wait()
	if res != nil {
		res.Series = series
	}
}

// idle opens p.Streams slow streams at p.Rate per second, holds them for
// p.Hold once all have their first chunk (or 15 s after the ramp), reads the
// target's memory while they are open, then releases them.
func (r *runner) idle(ctx context.Context, p *phase, c *call, rec *recorder, res *PhaseResult) {
	hctx, release := context.WithCancel(ctx)
	defer release()
	var opened atomic.Int64
	c.opened = func() { opened.Add(1) }
	var wg sync.WaitGroup
	s := Schedule{Start: time.Now(), Rate: p.Rate, For: time.Duration(float64(p.Streams)/p.Rate*float64(time.Second)) + time.Second, Max: p.Streams}
	s.Run(hctx, realClock{}, func(_ int, due time.Time) {
		wg.Go(func() { c.do(hctx, due, rec) })
	})
	settle := time.Now().Add(15 * time.Second)
	for opened.Load()+rec.errs.Load() < int64(p.Streams) && time.Now().Before(settle) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-time.After(p.Hold):
	case <-ctx.Done():
	}
	if res != nil {
		res.Opened = opened.Load()
		st := scrapeGo(ctx, r.client, p.Target.MetricsURL)
		res.Goroutines, res.StackBytes, res.HeapBytes = st.Goroutines, st.StackBytes, st.HeapBytes
	}
	release()
	wg.Wait()
	r.client.CloseIdleConnections()
}

// startProgress prints one line a second to the progress writer.
func (r *runner) startProgress(p *phase, rec *recorder) (stop func()) {
	if r.progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start, last := time.Now(), int64(0)
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				ok := rec.ok.Load()
				fmt.Fprintf(r.progress, "%s %4.0fs sent=%d ok=%d err=%d dropped=%d rps=%d\n",
					p.label(), now.Sub(start).Seconds(), rec.sent.Load(), ok, rec.errs.Load(), rec.dropped.Load(), ok-last)
				last = ok
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// peakSampler polls VmRSS every 100 ms, for kernels or permissions that do
// not let the harness reset VmHWM between phases.
type peakSampler struct {
	done  chan struct{}
	wg    sync.WaitGroup
	peaks []int64
}

func newPeakSampler(procs []*Process) *peakSampler {
	s := &peakSampler{done: make(chan struct{}), peaks: make([]int64, len(procs))}
	s.wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			for i, p := range procs {
				if ps, err := ReadProc(p.PID); err == nil {
					s.peaks[i] = max(s.peaks[i], ps.RSS)
				}
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	})
	return s
}

func (s *peakSampler) stop() []int64 {
	close(s.done)
	s.wg.Wait()
	return s.peaks
}

// GoStats are the Go runtime gauges of a Prometheus endpoint (a target's,
// or the gateway's in the e2e memory budget test).
type GoStats struct {
	Goroutines int
	StackBytes int64 // go_memstats_stack_inuse_bytes
	HeapBytes  int64 // go_memstats_heap_inuse_bytes
}

// scrapeGo reads GoStats from a Prometheus endpoint; zeros if unknown.
func scrapeGo(ctx context.Context, c *http.Client, metricsURL string) GoStats {
	if metricsURL == "" {
		return GoStats{}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return GoStats{}
	}
	resp, err := c.Do(req)
	if err != nil {
		return GoStats{}
	}
	defer resp.Body.Close()
	return ParseGoStats(resp.Body)
}

// ParseGoStats finds the gauges of GoStats in Prometheus text format; the
// ones it does not find stay zero.
func ParseGoStats(r io.Reader) GoStats {
	var st GoStats
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			st.Goroutines = int(f)
		case "go_memstats_stack_inuse_bytes":
			st.StackBytes = int64(f)
		case "go_memstats_heap_inuse_bytes":
			st.HeapBytes = int64(f)
		}
	}
	return st
}
