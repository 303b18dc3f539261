package config

import "time"

// The defaults, in one place. docs/configuration.md lists the same values.
const (
	DefaultAddr              = "127.0.0.1:8080"
	DefaultMaxBodyBytes      = 32 << 20
	DefaultShutdownGrace     = 15 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultMaxBufferedBytes  = 256 << 20
	DefaultMaxConns          = 16384
	DefaultMaxConnsPerClient = 256

	DefaultContextWindow = 32768
	DefaultMaxN          = 8
	DefaultOnViolation   = OnViolationReject

	DefaultWeight       = 1
	DefaultDialect      = DialectOpenAI
	DefaultMaxIdleConns = 256
	// DefaultIdleConnTimeout is below uvicorn's 5 s keep-alive (vLLM, SGLang).
	DefaultIdleConnTimeout = 4 * time.Second
	// Active health checks: a dead engine leaves rotation within about
	// one interval, and returns within one of answering again.
	DefaultHealthInterval  = 2 * time.Second
	DefaultHealthTimeout   = time.Second
	DefaultHealthFailures  = 1
	DefaultHealthSuccesses = 1
	// Retries: interactive defaults, far below the seconds a batch client
	// against a remote cluster would wait.
	DefaultRetryAttempts   = 3
	DefaultRetryBackoff    = 25 * time.Millisecond
	DefaultRetryMaxBackoff = time.Second
	DefaultRetryBudget     = 0.2
	DefaultRetryMinRetries = 10

	// DefaultConnectTimeout is the connect timeout of a model with no
	// known tier (see TierTimeouts).
	DefaultConnectTimeout = 2 * time.Second

	TierSmall = "small"
	TierLarge = "large"
)

// TierTimeouts are the default timeouts of a tier's deployments; "" is
// the default of a model of another tier, or of none. A small tier (one
// GPU, answers in under a second) fails fast, so a retry elsewhere comes
// soon; a large one (tensor parallel, seconds per answer, busier) waits
// longer before it gives up. first_token bounds all of a non-streaming
// answer: its default leaves room for a long one.
var TierTimeouts = map[string]Timeouts{
	TierSmall: {Connect: Duration(time.Second), FirstToken: Duration(10 * time.Second), Idle: Duration(5 * time.Second), Total: Duration(5 * time.Minute)},
	TierLarge: {Connect: Duration(2 * time.Second), FirstToken: Duration(60 * time.Second), Idle: Duration(15 * time.Second), Total: Duration(10 * time.Minute)},
	"":        {Connect: Duration(DefaultConnectTimeout), FirstToken: Duration(30 * time.Second), Idle: Duration(30 * time.Second), Total: Duration(10 * time.Minute)},
}

// Words with meaning in the config.
const (
	KindSim    = "sim"
	KindOpenAI = "openai"

	OnViolationReject = "reject"
	OnViolationClamp  = "clamp"

	EndpointChat        = "chat"
	EndpointCompletions = "completions"
	EndpointEmbeddings  = "embeddings"

	DialectOpenAI      = "openai"
	DialectVLLM        = "vllm"
	DialectVLLMLegacy  = "vllm-legacy" // vLLM before 0.10.1: flat error bodies
	DialectSGLang      = "sglang"
	DialectOllama      = "ollama"
	DialectLlamaCpp    = "llamacpp"
	DialectModelStudio = "modelstudio"
)

// ApplyDefaults fills every unset key with its default. A zero value means
// unset: a timeout of 0 takes the default, there is no "no timeout". Kind,
// when unset, is inferred: a url means openai, a profile means sim.
// ApplyDefaults is idempotent and never overwrites a set value, so negative
// or otherwise invalid values survive for Validate to report.
func (c *Config) ApplyDefaults() {
	s := &c.Server
	setDefault(&s.Addr, DefaultAddr)
	setDefault(&s.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&s.ShutdownGrace, Duration(DefaultShutdownGrace))
	setDefault(&s.ReadHeaderTimeout, Duration(DefaultReadHeaderTimeout))
	setDefault(&s.ReadTimeout, Duration(DefaultReadTimeout))
	setDefault(&s.MaxBufferedBytes, DefaultMaxBufferedBytes)
	setDefault(&s.MaxConns, DefaultMaxConns)
	setDefault(&s.MaxConnsPerClient, DefaultMaxConnsPerClient)
	c.applyObservabilityDefaults()
	c.Cache.applyDefaults()
	c.Jobs.applyDefaults()
	c.Auth.applyDefaults()
	setDefault(&s.GRPCAddr, DefaultGRPCAddr)
	for i := range c.Models {
		c.Models[i].applyDefaults()
	}
}

func (m *Model) applyDefaults() {
	setDefault(&m.ContextWindow, DefaultContextWindow)
	r := &m.Retry
	setDefault(&r.Attempts, DefaultRetryAttempts)
	setDefault(&r.Backoff, Duration(DefaultRetryBackoff))
	setDefault(&r.MaxBackoff, Duration(DefaultRetryMaxBackoff))
	setDefault(&r.Budget, DefaultRetryBudget)
	setDefault(&r.MinRetries, DefaultRetryMinRetries)
	if len(m.Capabilities.Input) == 0 {
		m.Capabilities.Input = []string{"text"}
	}
	if len(m.Capabilities.Output) == 0 {
		m.Capabilities.Output = []string{"text"}
	}
	if len(m.Capabilities.Endpoints) == 0 {
		m.Capabilities.Endpoints = []string{EndpointChat, EndpointCompletions}
	}
	l := &m.Limits
	if l.Temperature == nil {
		l.Temperature = &Range{Min: 0, Max: 2}
	}
	if l.TopP == nil {
		l.TopP = &Range{Min: 0, Max: 1}
	}
	setDefault(&l.MaxN, DefaultMaxN)
	setDefault(&l.OnViolation, DefaultOnViolation)
	tier, ok := TierTimeouts[m.Tier]
	if !ok {
		tier = TierTimeouts[""]
	}
	m.Timeouts.applyDefaults(tier)
	m.Balance.applyDefaults()
	m.Admission.applyDefaults(m.Tier)
	m.Batching.applyDefaults()
	m.Cache.applyDefaults()
	m.Shadow.applyDefaults()
	for i := range m.Deployments {
		m.Deployments[i].applyDefaults(m.Name, m.Timeouts)
	}
}

// applyDefaults sets each unset timeout from def.
func (t *Timeouts) applyDefaults(def Timeouts) {
	setDefault(&t.Connect, def.Connect)
	setDefault(&t.FirstToken, def.FirstToken)
	setDefault(&t.Idle, def.Idle)
	setDefault(&t.Total, def.Total)
}

func (d *Deployment) applyDefaults(model string, timeouts Timeouts) {
	if d.Kind == "" {
		switch {
		case d.URL != "":
			d.Kind = KindOpenAI
		case d.Profile != "":
			d.Kind = KindSim
		}
	}
	setDefault(&d.Weight, DefaultWeight)
	// Dialect, upstream model and the connection pool mean nothing to the
	// in-process simulator; Validate rejects them there.
	if d.Kind == KindOpenAI {
		setDefault(&d.Dialect, DefaultDialect)
		setDefault(&d.UpstreamModel, model)
		setDefault(&d.MaxIdleConns, DefaultMaxIdleConns)
		setDefault(&d.IdleConnTimeout, Duration(DefaultIdleConnTimeout))
		h := &d.HealthCheck
		if h.Enabled == nil {
			on := healthPath(d.Dialect) != "models" // a self-hosted engine
			h.Enabled = &on
		}
		setDefault(&h.Path, healthPath(d.Dialect))
		setDefault(&h.Interval, Duration(DefaultHealthInterval))
		setDefault(&h.Timeout, Duration(DefaultHealthTimeout))
		setDefault(&h.Failures, DefaultHealthFailures)
		setDefault(&h.Successes, DefaultHealthSuccesses)
	}
	if d.Continuation == nil {
		on := d.Kind == KindSim || d.Dialect == DialectVLLM || d.Dialect == DialectVLLMLegacy
		d.Continuation = &on
	}
	// Timeouts apply to both kinds: the simulator can hang or stall on purpose.
	d.Timeouts.applyDefaults(timeouts)
	d.Metrics.applyDefaults(d.Kind, d.Dialect)
	d.GPUMetrics.applyDefaults()
	if d.Kind == KindOpenAI {
		setDefault(&d.MaxNumSeqs, DefaultMaxNumSeqs) // a simulator's comes from its profile
	}
}

// setDefault sets *p to def when *p is the zero value.
func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// healthPath is the default health check path for a dialect: a path at
// the engine's root, or a relative one below the base URL.
func healthPath(dialect string) string {
	switch dialect {
	case DialectVLLM, DialectVLLMLegacy, DialectSGLang, DialectLlamaCpp:
		return "/health"
	case DialectOllama:
		return "/api/version"
	}
	return "models" // the OpenAI API's own listing, below the base URL
}
