package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/omnigate/omnigate/internal/admin"
	"github.com/omnigate/omnigate/internal/admission"
	"github.com/omnigate/omnigate/internal/api/openai"
	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/batching"
	"github.com/omnigate/omnigate/internal/cache"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/enginemetrics"
	"github.com/omnigate/omnigate/internal/health"
	"github.com/omnigate/omnigate/internal/jobs"
	"github.com/omnigate/omnigate/internal/quota"
	"github.com/omnigate/omnigate/internal/resilience"
	"github.com/omnigate/omnigate/internal/router"
	"github.com/omnigate/omnigate/internal/sim"
	"github.com/omnigate/omnigate/internal/telemetry"
	"github.com/omnigate/omnigate/internal/telemetry/tracing"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "[--config FILE] [--addr HOST:PORT]", stderr)
	cfgPath := fs.String("config", "", "YAML config `file` (env OMNIGATE_CONFIG); without one, both tiers run on the built-in simulator")
	addr := fs.String("addr", "", "listen address `host:port` (env OMNIGATE_ADDR; default 127.0.0.1:8080)")
	adminAddr := fs.String("admin-addr", "", "admin API and status page `host:port`, or off (env OMNIGATE_ADMIN_ADDR; default 127.0.0.1:8081)")
	grpcAddr := fs.String("grpc-addr", "", "gRPC API `host:port`, or off (env OMNIGATE_GRPC_ADDR; default 127.0.0.1:50051)")
	levelFlag := fs.String("log-level", "", "log level: debug, info, warn, error (default: logging.level, info)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `file` until shutdown (for performance work)")
	debugAddr := fs.String("debug-addr", os.Getenv("OMNIGATE_DEBUG_ADDR"), "serve Go's /debug/pprof/ on this loopback `host:port` (env OMNIGATE_DEBUG_ADDR; off by default)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	level := new(slog.LevelVar)
	if *levelFlag != "" {
		l, err := logLevel(*levelFlag)
		if err != nil {
			fmt.Fprintf(stderr, "omnigate serve: --log-level: %v\n", err)
			return errUsage
		}
		level.Set(l)
	}
	cfg, err := config.FromEnvAndFile(*cfgPath, os.Getenv)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Server.Addr = *addr
	}
	if *adminAddr != "" {
		cfg.Server.AdminAddr = *adminAddr
	}
	if *grpcAddr != "" {
		cfg.Server.GRPCAddr = *grpcAddr
	}
	if *levelFlag == "" {
		l, _ := logLevel(cfg.Logging.Level) // validated
		level.Set(l)
	}
	log := newLogger(stderr, cfg.Logging, level)
	redis.SetLogger(redisLog{log})
	// Access lines are written in batches; the process's own lines, the
	// ones that explain a crash, at once.
	lw := newLogWriter(stderr)
	defer lw.Close()
	if *debugAddr != "" {
		if err := serveDebug(*debugAddr, log); err != nil {
			return err
		}
	}
	gw, err := newGateway(cfg, log, newLogger(lw, cfg.Logging, level))
	if err != nil {
		return err
	}
	defer gw.Close()
	path := *cfgPath
	if path == "" {
		path = os.Getenv(config.EnvConfig)
	}
	rl := &reloader{path: path, getenv: os.Getenv, gw: gw, log: log, level: level, fixed: *levelFlag != ""}
	if *addr != "" {
		rl.getenv = overrideEnv(os.Getenv, config.EnvAddr, *addr) // a reload keeps --addr
	}
	if *adminAddr != "" {
		rl.getenv = overrideEnv(rl.getenv, config.EnvAdminAddr, *adminAddr) // and --admin-addr
	}
	if *grpcAddr != "" {
		rl.getenv = overrideEnv(rl.getenv, config.EnvGRPCAddr, *grpcAddr) // and --grpc-addr
	}
	rl.started() // the file as loaded is not a change
	gw.reload = rl.Reload
	stopHUP := onHangup(ctx, rl, log)
	defer stopHUP()
	if path != "" && cfg.Server.Watch() {
		wctx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		go rl.watch(wctx, time.Second)
	}
	stopAdmin, adminURL, err := gw.serveAdmin(cfg.Server, gw.reload, stdout)
	if err != nil {
		return err
	}
	defer stopAdmin()
	stopGRPC, err := gw.serveGRPC(ctx, cfg.Server, stdout) // grpc.go
	if err != nil {
		return err
	}
	defer stopGRPC()

	if err := checkOpen(cfg); err != nil {
		return err
	}
	apiTLS, err := gw.listenerTLS("server.tls", cfg.Server.TLS, httpProtos)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return err
	}
	jctx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	if err := gw.startJobs(jctx); err != nil {
		ln.Close()
		return err
	}
	defer gw.closeJobs(cfg.Server.ShutdownGrace.D())
	apiURL := scheme(cfg.Server.TLS) + "://" + ln.Addr().String()
	fmt.Fprintln(stdout, "omnigate: "+metricsLine(adminURL, apiURL, cfg.Server.APIMetrics()))
	fmt.Fprintf(stdout, "omnigate: serving on %s%s\n", apiURL, tlsMark(cfg.Server.TLS))
	log.Info("serving", "addr", ln.Addr().String(), "tls", cfg.Server.TLS.On(), "mtls", cfg.Server.TLS.Mutual(),
		"models", len(cfg.Models), "version", version())
	return serveUntilDone(ctx, ln, apiTLS, gw, cfg.Server, log)
}

// serveUntilDone serves until ctx ends, then shuts down gracefully: stop
// accepting, let in-flight requests and streams finish within the grace
// period, then cancel what is left. With tlsConf, connections are TLS
// (HTTP/2 or HTTP/1.1, as the client offers); the connection limits apply
// before the handshake, so a refused connection costs none.
func serveUntilDone(ctx context.Context, ln net.Listener, tlsConf *tls.Config, h http.Handler, sc config.Server, log *slog.Logger) error {
	base, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(nil)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: sc.ReadHeaderTimeout.D(),
		IdleTimeout:       2 * time.Minute,
		// The base context's end (the grace running out) reaches requests
		// served detached from their own after a client's half-close.
		BaseContext: func(net.Listener) context.Context { return openai.WithShutdown(base) },
		// net/http's own messages; accept errors, the ones an operator
		// must see, are logged as warnings by limitConns.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	limited := limitConns(ln, sc.MaxConns, sc.MaxConnsPerClient, log)
	srv.ConnState = limited.connState
	ln = limited
	if tlsConf != nil {
		// srv.TLSConfig stays nil: net/http then serves HTTP/2 to the
		// clients that negotiate it (tlsConf offers h2).
		ln = tls.NewListener(ln, tlsConf)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	grace := sc.ShutdownGrace.D()
	log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("grace period over; cancelling the requests still running")
		cancelBase(openai.ErrShutdown) // a cause of its own: streams say so, the half-close rule tells it from a client's end of input
		// Handlers see their context cancelled and return; give them a moment.
		c2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel2()
		if srv.Shutdown(c2) != nil {
			srv.Close()
		}
		err = nil
	}
	<-errc
	return err
}

// Gateway is the assembled handler with the resources it owns.
type Gateway struct {
	http.Handler
	core     *dispatch.Core
	registry *balance.Registry
	// budgets are the models' retry budgets, by name: live state kept
	// across reloads, like the registry's.
	budgets   map[string]*resilience.Budget
	queues    map[string]*admission.Queue // by model, live across reloads
	budgetsMu sync.Mutex
	// transports are the upstream connection pools, one per upstream and
	// pool settings, shared by every snapshot so a reload keeps them warm.
	transports backend.Transports
	metrics    *telemetry.Metrics
	obs        observability     // what /metrics reads beyond the request path (metrics.go)
	tracing    *tracing.Provider // nil: tracing is off
	log        *slog.Logger
	answers    *cache.Cache   // the answer cache: live state, kept across reloads
	limits     *quota.Limiter // the keys' limit counters: live state, kept across reloads
	stopLimits func()
	cfg        atomic.Pointer[config.Config] // the one being served
	// reload reloads the config from its source; nil for a gateway
	// built in process from a config value.
	reload func(context.Context) error
	// admin is the admin API's handler, with its token (admin.go).
	admin      *admin.Handler
	adminToken string
	jobs       *jobs.Service // background jobs, files and batches
	// keys are the API keys in force: live state, kept across reloads
	// (keys.go); stopKeys ends their refresh and closes their store.
	keys     *auth.Directory
	stopKeys func()
}

// Config returns the configuration the gateway serves now.
func (g *Gateway) Config() *config.Config { return g.cfg.Load() }

// Close stops what the current snapshot holds (embedded simulators) and
// flushes the spans not yet exported.
func (g *Gateway) Close() {
	g.core.Snapshot().Close()
	g.answers.Close()
	g.stopLimits()
	g.stopKeys()
	stopTracing(g.tracing, g.log)
}

// NewGateway builds the whole request path from a validated config. Its
// access lines go to log too.
func NewGateway(cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	return newGateway(cfg, log, log)
}

// newGateway is NewGateway with the access lines on accessLog.
func newGateway(cfg *config.Config, log, accessLog *slog.Logger) (*Gateway, error) {
	g := &Gateway{registry: &balance.Registry{}, budgets: map[string]*resilience.Budget{}, queues: map[string]*admission.Queue{}, metrics: telemetry.New(), log: log}
	g.transports.Log = log
	g.transports.Reloaded = func(err error) { g.metrics.TLSReloaded("deployments.tls", err) }
	keys, err := openKeys(cfg.Auth.Store, os.Getenv, g.metrics, log)
	if err != nil {
		return nil, err
	}
	g.keys, g.stopKeys = keys, func() { keys.Close() }
	g.answers = newAnswerCache(cfg, log)
	g.limits, g.stopLimits = newLimiter(cfg.Auth.Limits, g.metrics, log)
	snap, err := g.build(cfg)
	if err == nil {
		err = g.startKeys(cfg.Auth.Store)
	}
	if err != nil {
		if snap != nil {
			snap.Close()
		}
		g.answers.Close()
		g.stopKeys()
		return nil, err
	}
	g.cfg.Store(cfg)
	var access *telemetry.AccessLog
	if cfg.Logging.AccessOn() {
		access = telemetry.NewAccessLog(accessLog)
	}
	var tracer dispatch.Tracer
	if g.tracing, tracer, err = startTracing(cfg.Tracing, log); err != nil {
		snap.Close()
		return nil, err
	}
	g.core = dispatch.New(snap, dispatch.Options{Metrics: g.metrics, Log: log, Access: access, LogBodies: cfg.Logging.Bodies, Tracer: tracer})
	g.metrics.Live(g.liveState)
	g.jobs = g.newJobs(cfg)
	g.Handler = openai.NewServer(openai.Options{
		Core: g.core, Metrics: g.metrics, NoMetrics: !cfg.Server.APIMetrics(), Log: log,
		MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxBufferedBytes: cfg.Server.MaxBufferedBytes, ReadTimeout: cfg.Server.ReadTimeout.D(),
		Jobs: g.jobs, MaxFileBytes: cfg.Jobs.MaxFileBytes,
	})
	if err := g.initAdmin(cfg); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Reload swaps in a snapshot built from cfg. Deployments that keep their
// identity (model and deployment name) keep their live state: in-flight
// counts, breakers. The old snapshot's resources are released once the
// requests still using them are done (bounded by its longest total timeout).
func (g *Gateway) Reload(cfg *config.Config, grace time.Duration) error {
	snap, err := g.build(cfg)
	if err != nil {
		return err
	}
	old := g.core.Swap(snap)
	g.cfg.Store(cfg)
	keep := map[string]bool{}
	for _, m := range snap.Models {
		for _, d := range m.Pool {
			keep[balance.Key(m.Name, d.Config.Name)] = true
		}
	}
	go func() {
		// Requests served with the old snapshot finish on it: wait for
		// them, up to the longest an attempt of it may take (or grace, when
		// longer).
		deadline := time.Now().Add(max(grace, longestTotal(old)))
		for old.InUse() > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		old.Close()
		g.registry.Retain(keep)
	}()
	return nil
}

// longestTotal is the longest total timeout of snap's deployments.
func longestTotal(snap *dispatch.Snapshot) time.Duration {
	var d time.Duration
	for _, m := range snap.Models {
		for _, dep := range m.Pool {
			d = max(d, dep.Config.Timeouts.Total.D())
		}
	}
	return d
}

// build compiles cfg into a snapshot whose deployments take their live
// state from the gateway's registry.
func (g *Gateway) build(cfg *config.Config) (*dispatch.Snapshot, error) {
	cat, err := catalog.New(cfg)
	if err != nil {
		return nil, err
	}
	rt, err := router.New(cat, cfg.Routing)
	if err != nil {
		return nil, err
	}
	snap := &dispatch.Snapshot{Catalog: cat, Router: rt, Cache: g.answers}
	var checks []health.Target
	var scrapes []enginemetrics.Target
	for _, cm := range cat.Models() {
		m := &dispatch.Model{Model: cm, Metrics: g.metrics.Model(cm.Name), Budget: g.budget(cm), Picker: balance.NewPicker(cm.Balance)}
		if sh := cfg.Models[cm.Index].Shadow; sh.On() {
			cand, _ := cat.Lookup(sh.Model) // validated
			m.Shadow = dispatch.NewShadow(cand.Name, sh.Share, sh.MaxInFlight)
		}
		if c := cm.Cache; c.Mode == config.CacheSemantic && c.Store != config.StoreMemory {
			g.answers.FollowSemantic() // what the other replicas index, this one does too
		}
		for _, d := range cm.Deployments {
			if d.Kind == config.KindOpenAI && d.TLS != (config.UpstreamTLS{}) {
				if d.TLS.InsecureSkipVerify {
					g.log.Warn("deployment's tls.insecure_skip_verify is set: "+config.InsecureWarning, "model", cm.Name, "deployment", d.Name)
				}
				if d.TLS.CAFile != "" || d.TLS.CertFile != "" {
					g.metrics.TLSFiles("deployments.tls")
				}
			}
			up, err := newUpstream(d, cm.Name, &g.transports)
			if err != nil {
				snap.Close()
				return nil, fmt.Errorf("model %s, deployment %s: %w", cm.Name, d.Name, err)
			}
			if up.close != nil {
				snap.Closers = append(snap.Closers, up.close)
			}
			if d.Kind == config.KindSim && d.MaxNumSeqs == 0 { // later code relies on a batch limit
				d.MaxNumSeqs = up.maxNumSeqs
			}
			b := up.backend
			if cm.Batching.Enabled { // what it does not batch passes through
				b = batching.Wrap(b, cm.Batching)
			}
			dep := balance.NewDeployment(d, b, g.registry.State(balance.Key(cm.Name, d.Name)))
			m.Pool = append(m.Pool, dep)
			if d.Kind == config.KindOpenAI && d.HealthCheck.On() {
				p, err := backend.NewProber(up.engine, up.rt)
				if err != nil {
					snap.Close()
					return nil, fmt.Errorf("model %s, deployment %s: %w", cm.Name, d.Name, err)
				}
				checks = append(checks, health.Target{Model: cm.Name, Deployment: d.Name, Prober: p, State: dep.State, Check: d.HealthCheck})
			}
			if d.Metrics.On() {
				mg, err := backend.NewGetter(up.engine, up.rt, d.Metrics.Path, metricsAccept)
				if err != nil {
					snap.Close()
					return nil, fmt.Errorf("model %s, deployment %s: %w", cm.Name, d.Name, err)
				}
				scrapes = append(scrapes, enginemetrics.Target{Model: cm.Name, Deployment: d.Name, Get: mg.Get, State: dep.State, Config: d.Metrics})
			}
		}
		m.Admission = g.admission(cm, m.Pool)
		snap.Models = append(snap.Models, m)
	}
	if len(checks) > 0 {
		snap.Closers = append(snap.Closers, health.Start(checks, clock.Real{}, g.log).Stop)
	}
	if len(scrapes) > 0 {
		snap.Closers = append(snap.Closers, enginemetrics.Start(scrapes, clock.Real{}, g.log).Stop)
	}
	snap.Closers = append(snap.Closers, g.startGPUScrapes(snap)...)
	snap.Escalate = escalation(snap, rt, cfg.Routing.Auto.Escalate)
	g.keys.SetConfig(cfg.Auth.Keys, cat, rt.IsAuto)
	if len(cfg.Auth.Keys) > 0 || g.keys.Stored() { // with a store, auth is on even while it holds no key
		snap.Auth = g.keys
		snap.Limits = g.limits
	}
	return snap, nil
}

// metricsAccept asks for the classic Prometheus text format, the one
// enginemetrics reads (not OpenMetrics, not protobuf).
const metricsAccept = "text/plain;version=0.0.4"

// admission returns the model's admission queue, made on first use and
// set to the model's policy and pool on every build (the learned limit
// and the waiters are kept); nil when the model turns admission off.
func (g *Gateway) admission(m *catalog.Model, pool []*balance.Deployment) *admission.Queue {
	g.budgetsMu.Lock()
	defer g.budgetsMu.Unlock()
	if !m.Admission.On() {
		delete(g.queues, m.Name)
		return nil
	}
	seqs := make([]int, len(pool))
	for i, d := range pool {
		seqs[i] = d.Config.MaxNumSeqs
	}
	cfg := m.Admission.Resolve(seqs)
	q, ok := g.queues[m.Name]
	if !ok {
		q = admission.New(cfg, clock.Real{})
		g.queues[m.Name] = q
	} else {
		q.SetConfig(cfg)
	}
	return q
}

// budget returns the model's retry budget, made on first use and set to
// the model's policy on every build (the counts are kept).
func (g *Gateway) budget(m *catalog.Model) *resilience.Budget {
	g.budgetsMu.Lock()
	defer g.budgetsMu.Unlock()
	b, ok := g.budgets[m.Name]
	if !ok {
		b = resilience.NewBudget(m.Retry.Budget, m.Retry.MinRetries)
		g.budgets[m.Name] = b
	}
	b.Set(m.Retry.Budget, m.Retry.MinRetries)
	return b
}

// upstream is how a deployment's engine is reached: the backend for
// requests, and the transport and deployment config (with the URL used)
// that the health check and the metrics scrape go through.
type upstream struct {
	backend backend.Backend
	engine  config.Deployment
	rt      http.RoundTripper
	// maxNumSeqs is the simulator profile's batch limit (0 for kind openai).
	maxNumSeqs int
	close      func() // nil: nothing to release
}

// newUpstream makes the upstream of one deployment. A sim deployment is
// the same OpenAI backend, talking to an in-process engine instead of a
// socket.
func newUpstream(d config.Deployment, public string, transports *backend.Transports) (upstream, error) {
	switch d.Kind {
	case "sim":
		p, err := sim.LoadProfile(d.Profile)
		if err != nil {
			return upstream{}, err
		}
		if d.AudioOutput && !p.AudioOutput() {
			return upstream{}, fmt.Errorf("audio_output is set but simulator profile %q has no audio output", d.Profile)
		}
		if d.UpstreamModel == "" {
			d.UpstreamModel = public
		}
		eng := sim.New(p, sim.Options{ModelName: d.UpstreamModel, Quantization: sim.QuantizationFor(d.Quantization)})
		d.URL = "http://sim.internal/v1"
		rt := backend.HandlerTransport(eng.Handler())
		b, err := backend.NewOpenAI(d, rt)
		if err != nil {
			eng.Close()
			return upstream{}, err
		}
		return upstream{backend: b, engine: d, rt: rt, maxNumSeqs: p.MaxNumSeqs, close: eng.Close}, nil
	case "openai":
		rt, err := transports.For(d)
		if err != nil {
			return upstream{}, err
		}
		b, err := backend.NewOpenAI(d, rt)
		return upstream{backend: b, engine: d, rt: rt}, err
	}
	return upstream{}, fmt.Errorf("unknown deployment kind %q", d.Kind)
}

// serveDebug exposes net/http/pprof on its own listener, never on the API
// port, and only on loopback: profiles show the gateway's memory, and a
// CPU profile costs what it measures.
func serveDebug(addr string, log *slog.Logger) error {
	if err := checkLoopback(addr); err != nil {
		return fmt.Errorf("--debug-addr: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--debug-addr: %w", err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		ln.Close() // "localhost" that /etc/hosts sends elsewhere
		return fmt.Errorf("--debug-addr: %q listens on %s, which is not a loopback address", addr, ln.Addr())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	log.Info("debug endpoints", "addr", ln.Addr().String())
	go http.Serve(ln, mux)
	return nil
}

var (
	_ dispatch.Router = (*router.Router)(nil)
	_ http.Handler    = (*Gateway)(nil)
)

// escalation compiles routing.auto.escalate over snap's models; nil when
// it is off or there are no two tiers.
func escalation(snap *dispatch.Snapshot, rt *router.Router, e config.Escalate) *dispatch.Escalation {
	small, large := rt.Tiers()
	if len(e.On) == 0 || small == nil {
		return nil
	}
	x := &dispatch.Escalation{Small: snap.Model(small), Large: snap.Model(large), MinLogprob: e.MinLogprobOr()}
	for _, on := range e.On {
		switch on {
		case "length":
			x.Length = true
		case "refusal":
			x.Refusal = true
		case "invalid_json":
			x.InvalidJSON = true
		case "low_logprob":
			x.LowLogprob = true
		}
	}
	return x
}
