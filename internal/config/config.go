// Package config is omnigate's one typed configuration tree. Defaults live in
// one place (Default and ApplyDefaults); Validate reports every problem with
// its YAML path. A loaded *Config is immutable: a reload builds a new one.
package config

import "time"

// Config is the whole configuration file.
type Config struct {
	Server  Server  `yaml:"server"`
	Models  []Model `yaml:"models"`
	Routing Routing `yaml:"routing"`
	Logging Logging `yaml:"logging"`
	Tracing Tracing `yaml:"tracing"`
	// Cache holds the stores the models' caches use (models[].cache).
	Cache CacheStores `yaml:"cache"`
	// Jobs configures background jobs and batches.
	Jobs Jobs `yaml:"jobs"`
	// Auth is the API keys clients must send.
	Auth Auth `yaml:"auth"`
}

// Server holds the listener settings. OMNIGATE_ADDR overrides Addr.
type Server struct {
	Addr         string `yaml:"addr"`           // default 127.0.0.1:8080
	MaxBodyBytes int64  `yaml:"max_body_bytes"` // default 32 MiB
	// ShutdownGrace is how long in-flight requests and streams may run after
	// SIGINT/SIGTERM before they are cancelled. Default 15s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// ReadHeaderTimeout bounds slow clients. Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading one request body, from the end of its
	// headers to its last byte; a slower body is answered 408. Default 30s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// MaxBufferedBytes bounds the request-body bytes the process holds at
	// once; a body that finds no room is answered 503. Default 256 MiB.
	MaxBufferedBytes int64 `yaml:"max_buffered_bytes"`
	// MaxConns bounds the client connections open at once. Default 16384.
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerClient bounds the connections open at once from one remote
	// IP address; loopback peers count only against MaxConns. Default 256.
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
	// AdminAddr is the admin listener (the admin API, the status page,
	// /metrics too): default 127.0.0.1:8081; "off" turns it off.
	// OMNIGATE_ADMIN_ADDR overrides it.
	AdminAddr string `yaml:"admin_addr"`
	// AdminTokenEnv names the environment variable holding the admin
	// API's bearer token; unset, the admin API takes no token (keep it
	// on loopback then).
	AdminTokenEnv string `yaml:"admin_token_env"`
	// WatchConfig reloads the config file when it changes (polled every
	// second). Default true when serving from a file.
	WatchConfig *bool `yaml:"watch_config"`
	// GRPCAddr is the gRPC listener (the omnigate.v1 service, health and
	// reflection): default 127.0.0.1:50051; "off" turns it off.
	// OMNIGATE_GRPC_ADDR overrides it.
	GRPCAddr string `yaml:"grpc_addr"`
	// TLS serves the API over TLS (HTTP/2 too); unset: plaintext.
	TLS ListenerTLS `yaml:"tls"`
	// AdminTLS serves the admin listener over TLS; unset: plaintext.
	AdminTLS ListenerTLS `yaml:"admin_tls"`
	// GRPCTLS serves gRPC over TLS; unset: plaintext.
	GRPCTLS ListenerTLS `yaml:"grpc_tls"`
	// MetricsOnAPI: the API listener serves GET /metrics too (the admin
	// listener always does). Default: only when Addr is a loopback
	// address (see APIMetrics).
	MetricsOnAPI *bool `yaml:"metrics_on_api"`
}

// DeploymentHardware is the GPUs one replica of a deployment runs on.
type DeploymentHardware struct {
	// GPU names the model as omnigate plan does: H100-80GB, A100-80GB,
	// L4, RTX-4090…
	GPU string `yaml:"gpu"`
	// Count is how many GPUs the replica spans (its tensor-parallel
	// size, usually).
	Count int `yaml:"count"`
}

// Watch reports whether the config file is watched for changes.
func (s Server) Watch() bool { return s.WatchConfig == nil || *s.WatchConfig }

// Model is one public model name and the deployments that serve it.
type Model struct {
	Name          string       `yaml:"name"`
	Aliases       []string     `yaml:"aliases"`
	Tier          string       `yaml:"tier"`
	ContextWindow int          `yaml:"context_window"` // tokens; default 32768
	Capabilities  Capabilities `yaml:"capabilities"`
	Limits        Limits       `yaml:"limits"`
	Retry         Retry        `yaml:"retry"`
	Hedge         Hedge        `yaml:"hedge"`
	// Timeouts are the defaults of the model's deployments, each of which
	// may set its own; unset keys follow the tier (see TierTimeouts).
	Timeouts  Timeouts  `yaml:"timeouts"`
	Balance   Balance   `yaml:"balance"`
	Admission Admission `yaml:"admission"`
	Batching  Batching  `yaml:"batching"`
	Cache     Cache     `yaml:"cache"`
	// Shadow mirrors a share of the model's answered requests to a
	// candidate model, off the request path, and counts how often the
	// two agree; clients get only this model's answers.
	Shadow Shadow `yaml:"shadow"`

	Deployments []Deployment `yaml:"deployments"`
}

// Retry is how a model's failed attempts are tried again: each on another
// deployment while one is left untried, then, after a backoff with full
// jitter, on the pool again. Only failures the verdict calls retryable are
// (nothing the client has seen part of). The budget bounds retries to a
// share of the model's requests over the last 10 s, so a failing tier is
// not hammered.
type Retry struct {
	Attempts   int      `yaml:"attempts"`    // per model, the first included; default 3
	Backoff    Duration `yaml:"backoff"`     // the first wait's upper bound; default 25ms
	MaxBackoff Duration `yaml:"max_backoff"` // the cap; default 1s
	Budget     float64  `yaml:"budget"`      // retries per request, over 10 s; default 0.2
	MinRetries int      `yaml:"min_retries"` // retries allowed per 10 s whatever the share; default 10
}

// Hedge sends a second attempt of a request to another deployment when
// the first has not started answering within After, keeps whichever
// starts first and cancels the other. Off by default: it spends engine
// time to cut the tail of the time to first token. Hedges are retries for
// the model's retry budget.
type Hedge struct {
	After Duration `yaml:"after"` // 0: off
	// Percentile, when set (1–100), waits instead the model's recent
	// time to first byte at that percentile, when longer than After
	// (which then is the least wait, and the wait until 20 answers
	// were seen).
	Percentile int `yaml:"percentile"`
}

// Capabilities lists the modalities a model takes and gives, and the
// endpoints its deployments serve.
type Capabilities struct {
	Input  []string `yaml:"input"`  // text, image, audio, video; default [text]
	Output []string `yaml:"output"` // text, audio; default [text]
	// Endpoints the model serves: chat, completions, embeddings. Default [chat, completions].
	Endpoints []string `yaml:"endpoints"`
}

// Limits are the per-model parameter limits.
type Limits struct {
	MaxTokens   int        `yaml:"max_tokens"`  // 0: no ceiling beyond the context window
	Temperature *Range     `yaml:"temperature"` // default [0, 2]
	TopP        *Range     `yaml:"top_p"`       // default [0, 1]
	MaxN        int        `yaml:"max_n"`       // default 8
	Media       MediaLimit `yaml:"media"`
	// OnViolation is "reject" (400 naming the parameter, the default) or
	// "clamp" (forward the clamped value, say so in X-Omnigate-Clamped).
	OnViolation string `yaml:"on_violation"`
}

// Range is a closed interval, written [min, max] in YAML.
type Range struct {
	Min, Max float64
}

// MediaLimit is the most media parts of each kind one request may carry.
// A nil pointer means no limit; 0 means the kind is not accepted.
type MediaLimit struct {
	Image *int `yaml:"image"`
	Audio *int `yaml:"audio"`
	Video *int `yaml:"video"`
}

// Deployment is one place a model is served: the built-in simulator or an
// OpenAI-compatible upstream.
type Deployment struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"` // "sim" or "openai"

	// kind: sim
	Profile string `yaml:"profile"` // built-in profile name or a YAML file path

	// kind: openai
	URL           string            `yaml:"url"`            // base URL including /v1
	UpstreamModel string            `yaml:"upstream_model"` // default: the public name
	APIKeyEnv     string            `yaml:"api_key_env"`    // env var holding the bearer token
	Headers       map[string]string `yaml:"headers"`        // static headers sent upstream
	// Dialect names the engine, for error normalisation: openai, vllm,
	// vllm-legacy (before 0.10.1), sglang, ollama, llamacpp, modelstudio.
	// Default openai.
	Dialect string `yaml:"dialect"`
	// StreamOnly: the upstream accepts only stream:true (Model Studio's Omni
	// models); non-streaming requests are streamed and aggregated.
	StreamOnly bool `yaml:"stream_only"`
	// Continuation: the engine can continue a final assistant message
	// (vLLM's continue_final_message with add_generation_prompt false), so
	// a stream cut on another replica can be resumed here. Default true for
	// the simulator and the vllm and vllm-legacy dialects, false otherwise.
	Continuation *bool `yaml:"continuation"`
	// AudioOutput: the deployment can answer with audio (vllm-omni, SGLang-Omni,
	// Model Studio, simulator profiles that declare it).
	AudioOutput bool `yaml:"audio_output"`

	// Quantization labels the variant of the model this deployment
	// serves (bf16, fp8, int8, awq-int4, gptq-int4…), for the admin
	// API, shadow comparisons and omnigate eval; a simulator deployment
	// also behaves as that variant (faster, its answers drifting a little).
	Quantization string `yaml:"quantization"`
	// Hardware is what the deployment runs on, as the operator (or
	// omnigate plan --fleet) describes it: shown by the admin API.
	Hardware DeploymentHardware `yaml:"hardware"`

	Weight   int      `yaml:"weight"` // default 1
	Timeouts Timeouts `yaml:"timeouts"`
	// MaxIdleConns is the keep-alive pool size to this upstream. Default 256.
	MaxIdleConns int `yaml:"max_idle_conns"`
	// IdleConnTimeout is how long a keep-alive connection may sit idle and
	// still be reused. Keep it below the engine's own keep-alive timeout
	// (uvicorn's, under vLLM and SGLang, is 5 s), past which the engine
	// closes the connection. Default 4s.
	IdleConnTimeout Duration `yaml:"idle_conn_timeout"`
	// HealthCheck probes the engine in the background (kind openai).
	HealthCheck HealthCheck `yaml:"health_check"`
	// Metrics scrapes the engine's own Prometheus metrics for balancing.
	Metrics EngineMetrics `yaml:"metrics"`
	// GPUMetrics scrapes the deployment's DCGM exporter (off by default).
	GPUMetrics GPUMetrics `yaml:"gpu_metrics"`
	// TLS is how an https engine is reached: its CA, the gateway's
	// client certificate, the server name.
	TLS UpstreamTLS `yaml:"tls"`
	// MaxNumSeqs is the engine's batch limit (vLLM --max-num-seqs): the
	// most requests it runs at once, which bounds the model's admission
	// limit. Default: the simulator profile's; 256 (vLLM's default)
	// for kind openai.
	MaxNumSeqs int `yaml:"max_num_seqs"`
}

// HealthCheck is a deployment's active health check: a GET every
// Interval; Failures in a row take the deployment out of rotation, and
// Successes in a row bring it back.
type HealthCheck struct {
	// Enabled: default true for self-hosted engines (dialects vllm,
	// vllm-legacy, sglang, llamacpp, ollama), false for the openai and
	// modelstudio dialects, which are often hosted APIs that meter or
	// rate-limit every call. The in-process simulator is never probed.
	Enabled *bool `yaml:"enabled"`
	// Path is requested at the engine's root (not under the base URL's
	// /v1) when it starts with "/"; the default follows the dialect:
	// /health (vLLM, SGLang, llama.cpp), /api/version (Ollama), the base
	// URL's models (OpenAI, Model Studio).
	Path      string   `yaml:"path"`
	Interval  Duration `yaml:"interval"`  // default 2s
	Timeout   Duration `yaml:"timeout"`   // default 1s
	Failures  int      `yaml:"failures"`  // default 1
	Successes int      `yaml:"successes"` // default 1
}

// CanContinue reports whether the deployment can continue a final
// assistant message (after ApplyDefaults).
func (d *Deployment) CanContinue() bool { return d.Continuation != nil && *d.Continuation }

// On reports whether the check runs (after ApplyDefaults).
func (h HealthCheck) On() bool { return h.Enabled != nil && *h.Enabled }

// Timeouts bound one upstream attempt. Defaults follow the model's tier
// (TierTimeouts).
type Timeouts struct {
	Connect Duration `yaml:"connect"`
	// FirstToken bounds the wait from sending to the first byte of the
	// answer: a stream's first event (its headers alone do not count),
	// and, since an engine sends a non-streaming answer whole, all of a
	// non-streaming answer.
	FirstToken Duration `yaml:"first_token"`
	Idle       Duration `yaml:"idle"` // the gap between two reads of a stream
	Total      Duration `yaml:"total"`
}

// Routing holds cross-model policy.
type Routing struct {
	// Fallbacks: public model name → the models to try, in order, when it
	// could not answer before any byte was sent. Each entry is a model name
	// (tried for every error class) or {model, on: [classes]}.
	Fallbacks map[string][]Fallback `yaml:"fallbacks"`
	// Auto is automatic tier routing (model "auto").
	Auto Auto `yaml:"auto"`
}

// Fallback is one model of a fallback chain, and the error classes it is
// tried for: unavailable, timeout, rate_limited, overloaded,
// context_length (resilience.ClassNames); none listed means all.
type Fallback struct {
	Model string   `yaml:"model"`
	On    []string `yaml:"on"`
}

// Duration is a time.Duration written as "1.5s" in YAML.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
