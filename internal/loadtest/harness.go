// Package loadtest is omnigate's load harness (`omnigate bench`). It starts
// an upstream, a bare reverse proxy and the gateway as separate processes,
// optionally pinned to CPUs, drives the same load at each — direct to the
// upstream, through the proxy, through omnigate — and reports throughput,
// latency percentiles, CPU per request and RSS of each from /proc, side by
// side. It also provides the helper modes it runs as children: a
// fixed-payload upstream and the bare proxy.
package loadtest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"
)

// Modes the harness knows, in the order "all" runs them.
var allModes = []string{"small", "stream", "payload", "idle-streams"}

// Targets in report order: the default ones, then grpc (omnigate's gRPC
// API), which runs when asked for.
var (
	allTargets   = []string{"direct", "proxy", "omnigate"}
	knownTargets = append(slices.Clone(allTargets), "grpc")
)

// Options configure one harness run. Zero values take the defaults noted.
type Options struct {
	Modes       []string      // small, stream, payload, idle-streams, soak; default allModes
	Targets     []string      // direct, proxy, omnigate, grpc; default the first three
	Duration    time.Duration // per measured phase; default 10s
	Warmup      time.Duration // unrecorded load before each phase; default 1s
	Rate        float64       // open-loop rate; 0 with Concurrency set: closed-loop only
	Concurrency int           // closed-loop workers; 0 with Rate set: open-loop only
	MaxRequests int           // cap per phase; default 2,000,000
	Streams     int           // idle-streams: streams held open; default 10,000
	Hold        time.Duration // idle-streams: hold time once open; default 3s
	Soak        time.Duration // soak mode length; default 3m
	Payload     int           // payload mode response size; default 10240
	Pin         bool
	ServerCPUs  []int  // with Pin; default [0]
	ClientCPUs  []int  // with Pin; default [1]
	Upstream    string // external upstream base URL (loopback only); default: start one
	UpstreamSim bool   // use `omnigate sim --profile instant` for small and stream
	// Rename gives omnigate's deployment an upstream model name of its own,
	// so every answer goes through the model-name rewrite, as in most real
	// setups (a public "qwen3-omni-30b" in front of the engine's name).
	Rename bool
	// Keyed gives omnigate an API key with rate limits and budgets (far
	// past the load) and has every request send it: the cost of the key
	// check and the limits on the request path.
	Keyed bool
	// GRPCConns is how many connections the grpc target's calls share;
	// default 1.
	GRPCConns int
	// GRPCWindow, when set, is the grpc target's clients' static flow
	// control window in bytes (the connection's is four times it); 0:
	// gRPC's default, estimated with pings.
	GRPCWindow int
	Bin        string // binary to exec; default os.Executable()
	Out        string // JSON result path; "" writes none
	Runs       int    // repetitions; the report shows medians; default 1
	Progress   io.Writer
}

func (o *Options) defaults() error {
	if len(o.Modes) == 0 {
		o.Modes = allModes
	}
	if len(o.Targets) == 0 {
		o.Targets = allTargets
	}
	for _, m := range o.Modes {
		if !slices.Contains(allModes, m) && m != "soak" && m != "cached" && m != "auto" {
			return fmt.Errorf("bench: unknown mode %q (want small, stream, payload, idle-streams, soak, cached, auto or all)", m)
		}
	}
	for _, t := range o.Targets {
		if !slices.Contains(knownTargets, t) {
			return fmt.Errorf("bench: unknown target %q (want direct, proxy, omnigate, grpc)", t)
		}
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	} else if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.Rate == 0 && o.Concurrency == 0 {
		o.Rate, o.Concurrency = 1000, 50
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = 2_000_000
	}
	if o.Streams <= 0 {
		o.Streams = 10_000
	}
	if o.Hold <= 0 {
		o.Hold = 3 * time.Second
	}
	if o.Soak <= 0 {
		o.Soak = 3 * time.Minute
	}
	if o.Payload <= 0 {
		o.Payload = 10240
	}
	if o.Pin {
		if len(o.ServerCPUs) == 0 {
			o.ServerCPUs = []int{0}
		}
		if len(o.ClientCPUs) == 0 {
			o.ClientCPUs = []int{1}
		}
	} else {
		o.ServerCPUs, o.ClientCPUs = nil, nil
	}
	if o.Runs <= 0 {
		o.Runs = 1
	}
	if o.GRPCConns <= 0 {
		o.GRPCConns = 1
	}
	// Report order, whatever the order asked in.
	slices.SortStableFunc(o.Targets, func(a, b string) int { return slices.Index(knownTargets, a) - slices.Index(knownTargets, b) })
	if o.Bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find own binary (use --bin): %w", err)
		}
		o.Bin = exe
	}
	if o.Upstream != "" {
		if err := loopbackURL(o.Upstream); err != nil {
			return err
		}
	}
	return nil
}

// loopbackURL accepts only http URLs on this machine: the harness never
// sends load anywhere else.
func loopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("bench: --upstream %q: want http://127.0.0.1:PORT/v1", raw)
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("bench: --upstream %q: only loopback addresses are allowed", raw)
	}
	return nil
}

// Run executes the harness and returns the result (medians over runs). It
// writes the table to stdout and the JSON file to o.Out.
func Run(ctx context.Context, o Options, stdout io.Writer) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.Pin {
		if err := PinSelf(o.ClientCPUs); err != nil {
			return nil, fmt.Errorf("bench: pin load generator: %w", err)
		}
	}
	res := newResult(o)
	res.Machine.NoFile = raiseNoFile()
	if need := fdsForStreams(o.Streams); slices.Contains(o.Modes, "idle-streams") && res.Machine.NoFile < need && o.Progress != nil {
		fmt.Fprintf(o.Progress, "warning: RLIMIT_NOFILE is %d and cannot be raised; %d streams through a gateway need %d: the streams past the limit will fail\n",
			res.Machine.NoFile, o.Streams, need)
	}
	r := &runner{client: newClient(max(o.Concurrency, 64)), progress: o.Progress, samples: 200_000}
	defer r.client.CloseIdleConnections()
	perMode := map[string][][]PhaseResult{}
	idle := map[string][]map[string]int64{}
	for run := range o.Runs {
		for _, mode := range o.Modes {
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "bench: run %d/%d, mode %s\n", run+1, o.Runs, mode)
			}
			phases, idleRSS, err := runMode(ctx, &o, r, mode, run)
			if err != nil {
				return nil, fmt.Errorf("bench %s: %w", mode, err)
			}
			perMode[mode] = append(perMode[mode], phases)
			idle[mode] = append(idle[mode], idleRSS)
		}
	}
	for _, mode := range o.Modes {
		res.Modes = append(res.Modes, mergeRuns(mode, perMode[mode], idle[mode]))
	}
	res.Goals = evaluateGoals(res, o)
	res.Finished = time.Now().UTC()
	WriteTable(stdout, res)
	if o.Out != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return res, err
		}
		if err := os.WriteFile(o.Out, append(b, '\n'), 0o644); err != nil {
			return res, fmt.Errorf("bench: write result: %w", err)
		}
	}
	return res, nil
}

// stack is the set of processes one mode runs against.
type stack struct {
	procs   []*Process
	targets []*target
	idleRSS map[string]int64
	closers []func()
}

func (s *stack) stop() {
	for _, c := range s.closers {
		c()
	}
	for _, p := range slices.Backward(s.procs) {
		p.Stop()
	}
}

// runMode starts the processes for one mode, runs its phases against every
// target, and stops the processes. Odd runs take the targets in reverse
// order, so that none is always measured first (or second, behind
// another's leftovers); the phases come back in report order either way.
func runMode(ctx context.Context, o *Options, r *runner, mode string, run int) ([]PhaseResult, map[string]int64, error) {
	if mode == "idle-streams" && len(o.Targets) > 1 && o.Upstream == "" {
		// Holding 10,000 streams leaves its mark on the upstream (a heap
		// sized for them, a slower start): each target gets a fresh one,
		// so none is measured behind another's leftovers.
		var out []PhaseResult
		idle := map[string]int64{}
		for _, t := range o.Targets {
			one := *o
			one.Targets = []string{t}
			ps, rss, err := runMode(ctx, &one, r, mode, run)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, ps...)
			maps.Copy(idle, rss)
		}
		return out, idle, nil
	}
	st, err := startStack(ctx, o, mode)
	if st != nil {
		defer st.stop()
	}
	if err != nil {
		return nil, nil, err
	}
	byTarget := make([][]PhaseResult, len(st.targets))
	order := make([]int, len(st.targets))
	for i := range order {
		order[i] = i
	}
	if run%2 == 1 {
		slices.Reverse(order)
	}
	for n, i := range order {
		t := st.targets[i]
		if n > 0 {
			// Let the previous target's connections drain out of the upstream.
			time.Sleep(500 * time.Millisecond)
		}
		for _, p := range phasesFor(o, mode, t) {
			pr, err := r.run(ctx, p)
			if err != nil {
				return nil, nil, fmt.Errorf("%s %s: %w", t.Name, p.Kind, err)
			}
			byTarget[i] = append(byTarget[i], pr)
		}
	}
	return slices.Concat(byTarget...), st.idleRSS, nil
}

// Request bodies. The model name is the one the generated gateway config serves.
var (
	bodySmall   = []byte(`{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}`)
	bodyStream  = []byte(`{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16,"stream":true}`)
	bodyPayload = []byte(`{"model":"bench-model","messages":[{"role":"user","content":"Write a long answer."}],"max_tokens":4096}`)
	bodyIdle    = []byte(`{"model":"bench-model","messages":[{"role":"user","content":"Take your time."}],"max_tokens":8192,"stream":true}`)
	// bodyCached goes to the model with the exact cache, at temperature 0:
	// after the first, every request is a hit.
	bodyCached = []byte(`{"model":"bench-cached","temperature":0,"messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}`)
	// bodyAuto is bodySmall with model auto: the gateway chooses between
	// bench-model (tier small) and bench-large, at the cost of the
	// routing decision.
	bodyAuto = []byte(`{"model":"auto","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}`)
)

// phasesFor lists the phases of one mode against one target.
func phasesFor(o *Options, mode string, t *target) []*phase {
	base := phase{Mode: mode, Target: t, Warmup: o.Warmup, Duration: o.Duration, MaxRequests: o.MaxRequests}
	switch mode {
	case "idle-streams":
		p := base
		p.Kind, p.Body, p.Stream, p.Streams, p.Rate, p.Hold = "idle", bodyIdle, true, o.Streams, 2000, o.Hold
		return []*phase{&p}
	case "soak":
		p := base
		p.Kind, p.Body, p.Duration, p.SampleEvery = "soak", bodySmall, o.Soak, max(o.Soak/30, time.Second)
		p.Rate, p.MaxInFlight = cmp0(o.Rate, 1000), 4096
		return []*phase{&p}
	}
	base.Body = map[string][]byte{"small": bodySmall, "stream": bodyStream, "payload": bodyPayload, "cached": bodyCached, "auto": bodyAuto}[mode]
	base.Stream = mode == "stream"
	var ps []*phase
	if o.Concurrency > 0 {
		p := base
		p.Kind, p.Concurrency = "closed", o.Concurrency
		ps = append(ps, &p)
	}
	if o.Rate > 0 {
		p := base
		p.Kind, p.Rate, p.MaxInFlight = "open", o.Rate, 4096
		ps = append(ps, &p)
	}
	return ps
}

func cmp0(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// startStack starts the upstream (unless external), the proxy and the
// gateway for a mode, as the targets need, and records their idle RSS.
func startStack(ctx context.Context, o *Options, mode string) (*stack, error) {
	st := &stack{idleRSS: map[string]int64{}}
	const wait = 20 * time.Second
	upBase := o.Upstream
	var up *Process
	if upBase == "" {
		var args []string
		name := "upstream"
		switch {
		case o.UpstreamSim && (mode == "small" || mode == "stream" || mode == "soak"):
			name, args = "sim", []string{"sim", "--profile", "instant", "--addr", "127.0.0.1:0"}
		case mode == "payload":
			args = []string{"bench", "upstream", "--payload", strconv.Itoa(o.Payload)}
		case mode == "idle-streams":
			args = []string{"bench", "upstream", "--chunks", "100000", "--chunk-interval", "1s"}
		default:
			args = []string{"bench", "upstream", "--payload", "256", "--chunks", "20"}
		}
		p, err := StartProcess(ctx, name, o.Bin, args, o.ServerCPUs, wait)
		if err != nil {
			return st, err
		}
		st.procs = append(st.procs, p)
		up, upBase = p, p.URL.String()+"/v1"
	}
	u, _ := url.Parse(upBase)
	origin := &url.URL{Scheme: u.Scheme, Host: u.Host}
	for _, name := range o.Targets {
		switch name {
		case "direct":
			if up == nil {
				return st, errors.New("target direct needs a harness-started upstream to measure (drop --upstream or the target)")
			}
			st.targets = append(st.targets, &target{Name: "direct", Base: upBase, Proc: up})
		case "proxy":
			p, err := StartProcess(ctx, "proxy", o.Bin, []string{"bench", "proxy", "--upstream", origin.String(), "--addr", "127.0.0.1:0"}, o.ServerCPUs, wait)
			if err != nil {
				return st, err
			}
			st.procs = append(st.procs, p)
			st.targets = append(st.targets, &target{Name: "proxy", Base: p.URL.String() + u.Path, Proc: p, Upstream: up})
		case "omnigate":
			cfg, err := writeGatewayConfig(upBase, o.Rename, o.Keyed)
			if err != nil {
				return st, err
			}
			defer os.RemoveAll(filepath.Dir(cfg))
			// No admin or gRPC listener: their default ports are one for
			// every gateway on the machine, and the runs do not use them.
			p, err := StartProcess(ctx, "omnigate", o.Bin, []string{"serve", "--config", cfg, "--admin-addr", "off", "--grpc-addr", "off"}, o.ServerCPUs, wait)
			if err != nil {
				return st, err
			}
			st.procs = append(st.procs, p)
			st.targets = append(st.targets, &target{Name: "omnigate", Base: p.URL.String() + "/v1", Proc: p, Upstream: up, MetricsURL: p.URL.String() + "/metrics", Auth: o.auth()})
		case "grpc":
			// A gateway of its own, as the omnigate target's but for its
			// gRPC listener: each is measured alone.
			cfg, err := writeGatewayConfig(upBase, o.Rename, o.Keyed)
			if err != nil {
				return st, err
			}
			defer os.RemoveAll(filepath.Dir(cfg))
			p, err := StartProcess(ctx, "omnigate-grpc", o.Bin, []string{"serve", "--config", cfg, "--admin-addr", "off", "--grpc-addr", "127.0.0.1:0"}, o.ServerCPUs, wait)
			if err != nil {
				return st, err
			}
			st.procs = append(st.procs, p)
			if p.GRPC == "" {
				return st, errors.New("the gateway printed no gRPC address")
			}
			gc, err := dialGRPC(p.GRPC, o.GRPCConns, o.GRPCWindow)
			if err != nil {
				return st, err
			}
			st.closers = append(st.closers, gc.close)
			st.targets = append(st.targets, &target{Name: "grpc", Proc: p, Upstream: up, MetricsURL: p.URL.String() + "/metrics", GRPC: gc, Auth: o.auth()})
		}
	}
	time.Sleep(300 * time.Millisecond) // let start-up allocation settle
	for _, t := range st.targets {
		if s, err := ReadProc(t.Proc.PID); err == nil {
			st.idleRSS[t.Name] = s.RSS
		}
	}
	return st, nil
}

// benchKey is the API key of the keyed runs.
const benchKey = "sk-bench-0123456789abcdef"

// auth is the Authorization header of the omnigate targets' requests;
// nil unless keyed.
func (o *Options) auth() []string {
	if !o.Keyed {
		return nil
	}
	return []string{"Bearer " + benchKey}
}

// writeGatewayConfig writes a one-model omnigate config pointing at upstream,
// with an upstream model name to rewrite when rename is set. The file only
// needs to exist until the gateway has read it at start-up.
func writeGatewayConfig(upstream string, rename, keyed bool) (string, error) {
	dir, err := os.MkdirTemp("", "omnigate-bench-")
	if err != nil {
		return "", err
	}
	extra := ""
	if rename {
		extra = ", upstream_model: Qwen/Qwen3-Omni-30B-A3B-Instruct"
	}
	// The bench upstream has no batch limit of its own: a max_num_seqs
	// and an admission limit past any load the harness makes keep
	// admission (whose cost is measured) from queueing idle streams.
	cfg := fmt.Sprintf(`server: {addr: "127.0.0.1:0"}
models:
  - name: bench-model
    tier: small
    admission: {limit: {initial: 1000000}}
    deployments: [{name: up, kind: openai, url: %q, max_num_seqs: 1000000%s}]
  - name: bench-cached
    cache: {mode: exact}
    admission: {limit: {initial: 1000000}}
    deployments: [{name: up, kind: openai, url: %q, max_num_seqs: 1000000%s}]
  - name: bench-large
    tier: large
    admission: {limit: {initial: 1000000}}
    deployments: [{name: up, kind: openai, url: %q, max_num_seqs: 1000000%s}]
`, upstream, extra, upstream, extra, upstream, extra)
	if keyed {
		sum := sha256.Sum256([]byte(benchKey))
		cfg += fmt.Sprintf(`auth:
  keys:
    - name: bench
      hash: sha256:%x
      limits: {requests_per_minute: 1000000000, tokens_per_minute: 1000000000000, tokens_per_day: 1000000000000000}
`, sum)
	}
	path := filepath.Join(dir, "omnigate.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// Machine describes where the numbers were measured.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	NoFile    uint64 `json:"nofile"` // RLIMIT_NOFILE of the processes
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = string(trimNL(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(b)
	}
	return m
}
