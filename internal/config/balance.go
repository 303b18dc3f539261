package config

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// Balance is how a request picks one of its model's deployments: filters
// drop those that cannot take it (out of rotation, breaker open, busy,
// saturated), weighted scorers rate the rest, a picker chooses.
type Balance struct {
	// Strategy: score (default: the filter → score → pick pipeline),
	// least_inflight (the gateway's own in-flight count only, two random
	// choices), round_robin, random.
	Strategy string `yaml:"strategy"`
	// Picker, for strategy score: best (default; ties broken at random)
	// or two_choices (the better of two random survivors).
	Picker string `yaml:"picker"`
	// Weights of the scorers, each rating a deployment in [0, 1]: load
	// (in-flight and engine queue), kv_cache (free KV cache), latency
	// (recent time to first token and per token), prefix (the share of
	// the prompt the deployment likely has cached), sticky (the
	// deployment the requests sharing a sticky key stick to). Keys left
	// out keep their default; 0 turns a scorer off.
	Weights map[string]float64 `yaml:"weights"`
	// Prefix is the prefix-affinity index.
	Prefix PrefixAffinity `yaml:"prefix"`
	// StickyHeader names the request header whose value keeps the
	// requests sharing it (a conversation, an end user) on one
	// deployment (the body's "user" when the header is absent). Default
	// X-Sticky-Key.
	StickyHeader string `yaml:"sticky_header"`
}

// The balance strategies and pickers.
const (
	StrategyScore         = "score"
	StrategyLeastInflight = "least_inflight"
	StrategyRoundRobin    = "round_robin"
	StrategyRandom        = "random"
	PickerBest            = "best"
	PickerTwoChoices      = "two_choices"
)

// The scorer names of balance.weights.
const (
	ScoreLoad    = "load"
	ScoreKV      = "kv_cache"
	ScoreLatency = "latency"
	ScorePrefix  = "prefix"
	ScoreSticky  = "sticky"
)

// DefaultWeights are the scorer weights a model does not set. Prefix and
// sticky outweigh load on purpose: a cached prefix saves a whole prefill,
// and a deployment loses its affinity only once it is clearly busier than
// the others (the load scorer falls fast with queueing).
var DefaultWeights = map[string]float64{ScoreLoad: 1, ScoreKV: 0.25, ScoreLatency: 0.5, ScorePrefix: 1, ScoreSticky: 1}

// PrefixAffinity is the index of which deployment was sent which prompt
// prefixes: the prompt (messages, media by their bytes) is cut into blocks
// and each block's chained hash remembered with the deployments it went
// to. A fixed-size table: old entries are overwritten, memory is bounded.
type PrefixAffinity struct {
	Enabled *bool `yaml:"enabled"` // default true
	// BlockBytes is the block length in bytes of the request body's
	// prompt. Default 256 (about 64 tokens of English).
	BlockBytes int `yaml:"block_bytes"`
	// Entries is the table size in blocks, per model. Default 65536
	// (1.5 MiB).
	Entries int `yaml:"entries"`
}

// On reports whether prefix affinity is enabled.
func (p PrefixAffinity) On() bool { return p.Enabled == nil || *p.Enabled }

// Admission is the queue in front of a model: at most Limit requests in
// flight on its deployments, adapted to the latency they see; the rest
// wait in priority order, fairly across clients, for at most QueueTimeout
// (and never past the client's deadline), after which the client is told
// to come back with a 503 and a Retry-After.
type Admission struct {
	Enabled *bool `yaml:"enabled"` // default true
	// Limit bounds the adaptive concurrency limit (see Resolve for the
	// defaults, which follow the deployments' max_num_seqs).
	Limit LimitBounds `yaml:"limit"`
	// QueueTimeout is the longest a request waits for a place. Default by
	// tier: small 2s, large 10s, other 5s.
	QueueTimeout Duration `yaml:"queue_timeout"`
	// MaxQueue is how many requests may wait; past it a request is
	// refused at once. Default 8 × the limit's maximum.
	MaxQueue int `yaml:"max_queue"`
}

// LimitBounds are an adaptive limit's start and bounds (0: the default).
type LimitBounds struct {
	Initial int `yaml:"initial"`
	Min     int `yaml:"min"`
	Max     int `yaml:"max"`
}

// On reports whether admission control is enabled.
func (a Admission) On() bool { return a.Enabled == nil || *a.Enabled }

// TierQueueTimeouts are the default admission queue timeouts by tier.
var TierQueueTimeouts = map[string]Duration{
	TierSmall: Duration(2 * time.Second),
	TierLarge: Duration(10 * time.Second),
	"":        Duration(5 * time.Second),
}

// Batching merges concurrent small /v1/embeddings and non-streaming
// /v1/completions requests to the same deployment (bodies identical but
// for the input or prompt) into one upstream call, split back per client;
// chat completions are not batched. Off by default.
type Batching struct {
	Enabled bool `yaml:"enabled"`
	// Window is how long the first request of a batch waits for others.
	// Default 2ms.
	Window Duration `yaml:"window"`
	// MaxInputs caps the inputs (embeddings inputs, completions prompts)
	// of one merged call. Default 64.
	MaxInputs int `yaml:"max_inputs"`
}

// EngineMetrics is how a deployment's engine metrics (Prometheus text at
// the engine's /metrics: vLLM, SGLang, llama.cpp with --metrics, the
// simulator) are scraped for balancing.
type EngineMetrics struct {
	// Enabled: default true for the simulator and the vllm, vllm-legacy,
	// sglang and llamacpp dialects, false otherwise (hosted APIs have no
	// engine metrics).
	Enabled *bool `yaml:"enabled"`
	// Path at the engine's root. Default /metrics.
	Path       string   `yaml:"path"`
	Interval   Duration `yaml:"interval"`    // default 1s
	Timeout    Duration `yaml:"timeout"`     // default 500ms, or the interval when shorter
	StaleAfter Duration `yaml:"stale_after"` // past it a scrape stops counting; default 3 × interval
}

// On reports whether the engine's metrics are scraped.
func (e EngineMetrics) On() bool { return e.Enabled != nil && *e.Enabled }

// Defaults of the balancing keys.
const (
	DefaultPrefixBlockBytes    = 256
	DefaultPrefixEntries       = 65536
	DefaultStickyHeader        = "X-Sticky-Key"
	DefaultBatchWindow         = 2 * time.Millisecond
	DefaultBatchMaxInputs      = 64
	DefaultMetricsPath         = "/metrics"
	DefaultMetricsInterval     = time.Second
	DefaultMetricsTimeout      = 500 * time.Millisecond
	DefaultMaxNumSeqs          = 256 // vLLM's default --max-num-seqs
	DefaultAdmissionQueueScale = 8
)

func (b *Balance) applyDefaults() {
	setDefault(&b.Strategy, StrategyScore)
	setDefault(&b.Picker, PickerBest)
	setDefault(&b.StickyHeader, DefaultStickyHeader)
	w := make(map[string]float64, len(DefaultWeights))
	for k, v := range DefaultWeights {
		w[k] = v
	}
	for k, v := range b.Weights {
		w[k] = v
	}
	b.Weights = w
	setDefault(&b.Prefix.BlockBytes, DefaultPrefixBlockBytes)
	setDefault(&b.Prefix.Entries, DefaultPrefixEntries)
}

func (a *Admission) applyDefaults(tier string) {
	qt, ok := TierQueueTimeouts[tier]
	if !ok {
		qt = TierQueueTimeouts[""]
	}
	setDefault(&a.QueueTimeout, qt)
}

// Resolve fills the limit keys left unset from the max_num_seqs of the
// model's deployments (the engines' own batch limits): Max is their sum
// (more in flight only queues inside the engines, where the gateway can
// neither order nor shed it), Min one per deployment, Initial the rule of
// thumb min(32, max(4, pending/2)) per deployment with pending its
// max_num_seqs, and MaxQueue 8 × Max.
func (a Admission) Resolve(maxNumSeqs []int) Admission {
	var seqs, initial int
	for _, n := range maxNumSeqs {
		n = max(n, 1)
		seqs += n
		initial += min(32, max(4, n/2))
	}
	l := &a.Limit
	setDefault(&l.Max, max(seqs, 1))
	setDefault(&l.Min, min(max(len(maxNumSeqs), 1), l.Max))
	setDefault(&l.Initial, min(max(initial, l.Min), l.Max))
	setDefault(&a.MaxQueue, DefaultAdmissionQueueScale*l.Max)
	return a
}

func (b *Batching) applyDefaults() {
	setDefault(&b.Window, Duration(DefaultBatchWindow))
	setDefault(&b.MaxInputs, DefaultBatchMaxInputs)
}

// applyDefaults fills a deployment's metrics scrape settings.
func (e *EngineMetrics) applyDefaults(kind, dialect string) {
	if e.Enabled == nil {
		on := kind == KindSim || kind == KindOpenAI && healthPath(dialect) == "/health"
		e.Enabled = &on
	}
	setDefault(&e.Path, DefaultMetricsPath)
	setDefault(&e.Interval, Duration(DefaultMetricsInterval))
	setDefault(&e.Timeout, min(Duration(DefaultMetricsTimeout), e.Interval))
	setDefault(&e.StaleAfter, 3*e.Interval)
}

func (v *validator) balance(p string, b *Balance) {
	switch b.Strategy {
	case StrategyScore, StrategyLeastInflight, StrategyRoundRobin, StrategyRandom:
	default:
		v.add(p+".strategy", "%q is not one of score, least_inflight, round_robin, random", b.Strategy)
	}
	if b.Picker != PickerBest && b.Picker != PickerTwoChoices {
		v.add(p+".picker", "%q is not one of best, two_choices", b.Picker)
	}
	keys := make([]string, 0, len(b.Weights))
	for k := range b.Weights {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	known := []string{ScoreLoad, ScoreKV, ScoreLatency, ScorePrefix, ScoreSticky}
	for _, k := range keys {
		if !slices.Contains(known, k) {
			v.add(p+".weights."+k, "unknown scorer (want %s)", strings.Join(known, ", "))
		} else if w := b.Weights[k]; w < 0 || w > 100 {
			v.add(p+".weights."+k, "must be in [0, 100], got %v", w)
		}
	}
	var sum float64
	for _, w := range b.Weights {
		sum += w
	}
	if b.Strategy == StrategyScore && sum <= 0 {
		v.add(p+".weights", "strategy score needs at least one weight above 0")
	}
	if b.Prefix.BlockBytes < 16 || b.Prefix.BlockBytes > 1<<20 {
		v.add(p+".prefix.block_bytes", "must be in [16, 1048576], got %d", b.Prefix.BlockBytes)
	}
	if b.Prefix.Entries < 64 || b.Prefix.Entries > 1<<26 {
		v.add(p+".prefix.entries", "must be in [64, 67108864], got %d", b.Prefix.Entries)
	}
	if strings.TrimSpace(b.StickyHeader) == "" || strings.ContainsAny(b.StickyHeader, " \t:") {
		v.add(p+".sticky_header", "%q is not a header name", b.StickyHeader)
	}
}

func (v *validator) admission(p string, a *Admission) {
	l := a.Limit
	if l.Min < 0 || l.Max < 0 || l.Initial < 0 {
		v.add(p+".limit", "must not be negative; got %+v", l)
	}
	lo, hi := l.Min, l.Max
	if hi == 0 {
		hi = 1 << 30
	}
	if l.Initial > 0 && (l.Initial < lo || l.Initial > hi) || l.Max > 0 && l.Min > l.Max {
		v.add(p+".limit", "need min <= initial <= max where set; got %+v", l)
	}
	if a.QueueTimeout <= 0 {
		v.add(p+".queue_timeout", "must be > 0, got %s", a.QueueTimeout)
	}
	if a.MaxQueue < 0 {
		v.add(p+".max_queue", "must be >= 0, got %d", a.MaxQueue)
	}
}

func (v *validator) batching(p string, b *Batching) {
	if b.Window <= 0 || b.Window.D() > time.Second {
		v.add(p+".window", "must be in (0, 1s], got %s", b.Window)
	}
	if b.MaxInputs < 2 || b.MaxInputs > 2048 {
		v.add(p+".max_inputs", "must be in [2, 2048], got %d", b.MaxInputs)
	}
}

func (v *validator) engineMetrics(p string, e *EngineMetrics) {
	if !strings.HasPrefix(e.Path, "/") {
		v.add(p+".path", "must start with /, got %q", e.Path)
	}
	if e.Interval <= 0 || e.Timeout <= 0 || e.StaleAfter < e.Interval {
		v.add(p, "need interval > 0, timeout > 0 and stale_after >= interval; got interval %s, timeout %s, stale_after %s",
			e.Interval, e.Timeout, e.StaleAfter)
	}
	if e.Timeout > e.Interval {
		v.add(p+".timeout", "%s is longer than the interval (%s)", e.Timeout, e.Interval)
	}
}
