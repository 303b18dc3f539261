package config

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// validConfig is a small configuration that passes Validate after defaults:
// one model on the simulator, one on an OpenAI-compatible upstream.
func validConfig() *Config {
	five := 5
	return &Config{
		Models: []Model{
			{
				Name: "small-model", Aliases: []string{"small"}, Tier: "small",
				Capabilities: Capabilities{Input: []string{"text", "image"}, Output: []string{"text", "audio"}},
				Limits:       Limits{MaxTokens: 1024, Media: MediaLimit{Image: &five}},
				Deployments:  []Deployment{{Name: "sim", Kind: KindSim, Profile: "qwen3-omni-7b", AudioOutput: true}},
			},
			{
				Name: "large-model", Aliases: []string{"large"}, Tier: "large", ContextWindow: 65536,
				Deployments: []Deployment{
					{Name: "gpu-a", Kind: KindOpenAI, URL: "http://10.0.0.5:8000/v1", Dialect: DialectVLLM, APIKeyEnv: "GPU_A_KEY"},
					{Name: "gpu-b", URL: "https://gpu-b.example:8443/v1", Headers: map[string]string{"X-Team": "ml"}},
				},
			},
		},
		Routing: Routing{Fallbacks: map[string][]Fallback{"large-model": {{Model: "small-model"}}}},
	}
}

func TestValidConfigHasNoProblems(t *testing.T) {
	cfg := validConfig()
	cfg.ApplyDefaults()
	if ps := cfg.Validate(); len(ps) != 0 {
		t.Fatalf("Validate() = %v, want none", ps)
	}
}

func TestValidate(t *testing.T) {
	neg := -1
	tests := []struct {
		name   string
		mutate func(c *Config)
		paths  []string // the exact paths reported, in order
		msg    string   // a fragment of the first message
	}{
		{"no models", func(c *Config) { c.Models = nil; c.Routing.Fallbacks = nil },
			[]string{"models"}, "at least one model"},
		{"empty model name", func(c *Config) { c.Models[0].Name = ""; c.Routing.Fallbacks = nil },
			[]string{"models[0].name"}, "name is required"},
		{"name with space", func(c *Config) { c.Models[0].Name = "small model"; c.Routing.Fallbacks = nil },
			[]string{"models[0].name"}, "white space"},
		{"duplicate model name", func(c *Config) { c.Models[1].Name = "small-model"; c.Routing.Fallbacks = nil },
			[]string{"models[1].name"}, "already used as the name of models[0]"},
		{"alias equals another model's name", func(c *Config) { c.Models[1].Aliases = []string{"small-model"} },
			[]string{"models[1].aliases[0]"}, "the name of models[0]"},
		{"duplicate alias across models", func(c *Config) { c.Models[1].Aliases = []string{"large", "small"} },
			[]string{"models[1].aliases[1]"}, "an alias of models[0]"},
		{"name equals earlier alias", func(c *Config) {
			c.Models[1].Name = "small"
			c.Routing.Fallbacks = nil
		}, []string{"models[1].name"}, "an alias of models[0]"},
		{"alias repeats own name", func(c *Config) { c.Models[0].Aliases = []string{"small-model"} },
			[]string{"models[0].aliases[0]"}, "own name"},
		{"empty alias", func(c *Config) { c.Models[0].Aliases = []string{""} },
			[]string{"models[0].aliases[0]"}, "alias is required"},
		{"reserved auto", func(c *Config) { c.Models[0].Aliases = []string{"auto"} },
			[]string{"models[0].aliases[0]"}, "reserved"},
		{"empty tier is fine", func(c *Config) { c.Models[0].Tier = "" }, nil, ""},
		{"admin addr not host:port", func(c *Config) { c.Server.AdminAddr = "8081" },
			[]string{"server.admin_addr"}, "not host:port"},
		{"both on port 0 is fine", func(c *Config) { c.Server.Addr, c.Server.AdminAddr = "127.0.0.1:0", "127.0.0.1:0" }, nil, ""},
		{"admin addr off is fine", func(c *Config) { c.Server.AdminAddr = "off" }, nil, ""},
		{"admin addr is the API's", func(c *Config) { c.Server.Addr, c.Server.AdminAddr = "127.0.0.1:9000", "127.0.0.1:9000" },
			[]string{"server.admin_addr"}, "a listener of its own"},
		{"admin token env not a name", func(c *Config) { c.Server.AdminTokenEnv = "my token" },
			[]string{"server.admin_token_env"}, "not an environment variable name"},
		{"log level", func(c *Config) { c.Logging.Level = "loud" }, []string{"logging.level"}, "not one of debug"},
		{"cache mode", func(c *Config) { c.Models[0].Cache.Mode = "fuzzy" }, []string{"models[0].cache.mode"}, "not off, exact or semantic"},
		{"cache store", func(c *Config) { c.Models[0].Cache.Store = "disk" }, []string{"models[0].cache.store"}, "not memory, redis or both"},
		{"cache redis without addr", func(c *Config) { c.Models[0].Cache.Mode, c.Models[0].Cache.Store = "exact", "redis" },
			[]string{"models[0].cache.store"}, "needs cache.redis.addr"},
		{"cache scope", func(c *Config) { c.Models[0].Cache.Scope = "team" }, []string{"models[0].cache.scope"}, "not none, api_key or user"},
		{"semantic without embeddings", func(c *Config) { c.Models[0].Cache.Mode = "semantic" },
			[]string{"models[0].cache.semantic.embeddings"}, "needs the name of a model"},
		{"semantic on a model without embeddings", func(c *Config) {
			c.Models[0].Cache.Mode, c.Models[0].Cache.Semantic.Embeddings = "semantic", c.Models[1].Name
		}, []string{"models[0].cache.semantic.embeddings"}, "does not serve embeddings"},
		{"cache redis addr", func(c *Config) { c.Cache.Redis.Addr = "localhost" }, []string{"cache.redis.addr"}, "not host:port"},
		{"log format", func(c *Config) { c.Logging.Format = "xml" }, []string{"logging.format"}, "not text or json"},
		{"tracing endpoint", func(c *Config) { c.Tracing.Endpoint = "127.0.0.1:4318" }, []string{"tracing.endpoint"}, "not an http"},
		{"tracing headers env", func(c *Config) { c.Tracing.HeadersEnv = "a-b" }, []string{"tracing.headers_env"}, "not an environment"},
		{"tracing sample ratio", func(c *Config) { r := 1.5; c.Tracing.SampleRatio = &r }, []string{"tracing.sample_ratio"}, "from 0 to 1"},
		{"negative context window", func(c *Config) { c.Models[0].ContextWindow = -1 },
			[]string{"models[0].context_window"}, "must be > 0"},
		{"unknown input modality", func(c *Config) { c.Models[0].Capabilities.Input = []string{"text", "smell"} },
			[]string{"models[0].capabilities.input[1]"}, `unknown input modality "smell"`},
		{"repeated input modality", func(c *Config) { c.Models[0].Capabilities.Input = []string{"text", "text"} },
			[]string{"models[0].capabilities.input[1]"}, "listed twice"},
		{"video is not an output", func(c *Config) { c.Models[1].Capabilities.Output = []string{"text", "video"} },
			[]string{"models[1].capabilities.output[1]"}, `unknown output modality "video"`},
		{"output without text", func(c *Config) { c.Models[0].Capabilities.Output = []string{"audio"} },
			[]string{"models[0].capabilities.output"}, "must include text"},
		{"audio output without an audio deployment", func(c *Config) { c.Models[0].Deployments[0].AudioOutput = false },
			[]string{"models[0].capabilities.output"}, "no deployment sets audio_output"},
		{"unknown endpoint", func(c *Config) { c.Models[0].Capabilities.Endpoints = []string{"chat", "images"} },
			[]string{"models[0].capabilities.endpoints[1]"}, `unknown endpoint "images"`},
		{"embeddings endpoint is fine", func(c *Config) {
			c.Models[0].Capabilities.Endpoints = []string{"chat", "embeddings"}
		}, nil, ""},
		{"negative max_tokens", func(c *Config) { c.Models[0].Limits.MaxTokens = -5 },
			[]string{"models[0].limits.max_tokens"}, "must be >= 0"},
		{"max_tokens over context window", func(c *Config) { c.Models[0].Limits.MaxTokens = 40000 },
			[]string{"models[0].limits.max_tokens"}, "exceeds the model's context_window 32768"},
		{"temperature min > max", func(c *Config) { c.Models[0].Limits.Temperature = &Range{Min: 1.5, Max: 1} },
			[]string{"models[0].limits.temperature"}, "min 1.5 is greater than max 1"},
		{"negative temperature", func(c *Config) { c.Models[0].Limits.Temperature = &Range{Min: -1, Max: 1} },
			[]string{"models[0].limits.temperature"}, "below 0"},
		{"top_p above 1", func(c *Config) { c.Models[0].Limits.TopP = &Range{Min: 0, Max: 1.5} },
			[]string{"models[0].limits.top_p"}, "within [0, 1]"},
		{"top_p NaN", func(c *Config) { c.Models[0].Limits.TopP = &Range{Min: math.NaN(), Max: 1} },
			[]string{"models[0].limits.top_p"}, "finite"},
		{"negative max_n", func(c *Config) { c.Models[0].Limits.MaxN = -1 },
			[]string{"models[0].limits.max_n"}, ">= 1"},
		{"negative media count", func(c *Config) { c.Models[0].Limits.Media.Audio = &neg },
			[]string{"models[0].limits.media.audio"}, ">= 0"},
		{"unknown violation policy", func(c *Config) { c.Models[0].Limits.OnViolation = "ignore" },
			[]string{"models[0].limits.on_violation"}, "reject or clamp"},
		{"clamp is fine", func(c *Config) { c.Models[0].Limits.OnViolation = OnViolationClamp }, nil, ""},
		{"no deployments", func(c *Config) { c.Models[1].Deployments = nil },
			[]string{"models[1].deployments"}, "at least one deployment"},
		{"empty deployment name", func(c *Config) { c.Models[1].Deployments[1].Name = "" },
			[]string{"models[1].deployments[1].name"}, "name is required"},
		{"duplicate deployment name", func(c *Config) { c.Models[1].Deployments[1].Name = "gpu-a" },
			[]string{"models[1].deployments[1].name"}, "already used by models[1].deployments[0]"},
		{"same deployment name in two models is fine", func(c *Config) { c.Models[1].Deployments[0].Name = "sim" }, nil, ""},
		{"unknown kind", func(c *Config) { c.Models[0].Deployments[0].Kind = "grpc" },
			[]string{"models[0].deployments[0].kind"}, `unknown kind "grpc"`},
		{"missing kind", func(c *Config) { c.Models[0].Deployments[0] = Deployment{Name: "x", AudioOutput: true} },
			[]string{"models[0].deployments[0].kind"}, "kind is required"},
		{"sim without profile", func(c *Config) { c.Models[0].Deployments[0].Profile = "" },
			[]string{"models[0].deployments[0].profile"}, "needs a profile"},
		{"sim with openai-only keys", func(c *Config) {
			d := &c.Models[0].Deployments[0]
			d.URL, d.Dialect, d.StreamOnly, d.IdleConnTimeout = "http://x/v1", DialectVLLM, true, Duration(time.Second)
		}, []string{"models[0].deployments[0].url", "models[0].deployments[0].dialect", "models[0].deployments[0].stream_only",
			"models[0].deployments[0].idle_conn_timeout"}, "only to kind openai"},
		{"openai with profile", func(c *Config) { c.Models[1].Deployments[0].Profile = "p" },
			[]string{"models[1].deployments[0].profile"}, "only to kind sim"},
		{"openai without url", func(c *Config) { c.Models[1].Deployments[0].URL = "" },
			[]string{"models[1].deployments[0].url"}, "needs a url"},
		{"relative url", func(c *Config) { c.Models[1].Deployments[0].URL = "10.0.0.5:8000/v1" },
			[]string{"models[1].deployments[0].url"}, "absolute"},
		{"ftp url", func(c *Config) { c.Models[1].Deployments[0].URL = "ftp://10.0.0.5/v1" },
			[]string{"models[1].deployments[0].url"}, "absolute http"},
		{"url without host", func(c *Config) { c.Models[1].Deployments[0].URL = "http:///v1" },
			[]string{"models[1].deployments[0].url"}, "no host"},
		{"url with env reference", func(c *Config) { c.Models[1].Deployments[0].URL = "http://${GPU_HOST}:8000/v1" },
			[]string{"models[1].deployments[0].url"}, "not expanded"},
		{"url with credentials", func(c *Config) { c.Models[1].Deployments[0].URL = "http://u:p@h/v1" },
			[]string{"models[1].deployments[0].url"}, "api_key_env"},
		{"unknown dialect", func(c *Config) { c.Models[1].Deployments[0].Dialect = "tgi" },
			[]string{"models[1].deployments[0].dialect"}, `unknown dialect "tgi"`},
		{"every known dialect", func(c *Config) {
			for _, d := range dialects {
				c.Models[1].Deployments = append(c.Models[1].Deployments,
					Deployment{Name: "d-" + d, Kind: KindOpenAI, URL: "http://h/v1", Dialect: d})
			}
		}, nil, ""},
		{"zero weight after defaults is 1", func(c *Config) { c.Models[1].Deployments[0].Weight = 0 }, nil, ""},
		{"negative weight", func(c *Config) { c.Models[1].Deployments[0].Weight = -2 },
			[]string{"models[1].deployments[0].weight"}, "must be >= 1"},
		{"negative timeouts", func(c *Config) {
			c.Models[1].Deployments[0].Timeouts = Timeouts{Connect: -1, Total: -1}
		}, []string{"models[1].deployments[0].timeouts.connect", "models[1].deployments[0].timeouts.total"}, "must be >= 0"},
		{"negative model timeouts", func(c *Config) { c.Models[0].Timeouts.FirstToken = -1 },
			[]string{"models[0].timeouts.first_token", "models[0].deployments[0].timeouts.first_token"}, "must be >= 0"}, // inherited
		{"negative idle_conn_timeout", func(c *Config) { c.Models[1].Deployments[0].IdleConnTimeout = -1 },
			[]string{"models[1].deployments[0].idle_conn_timeout"}, "must be >= 0"},
		{"health check interval", func(c *Config) { c.Models[1].Deployments[0].HealthCheck.Interval = -1 },
			[]string{"models[1].deployments[0].health_check.interval", "models[1].deployments[0].health_check.timeout"}, "must be > 0"},
		{"health check timeout past the interval", func(c *Config) { c.Models[1].Deployments[0].HealthCheck.Timeout = Duration(time.Minute) },
			[]string{"models[1].deployments[0].health_check.timeout"}, "at most the interval"},
		{"health check thresholds", func(c *Config) {
			c.Models[1].Deployments[0].HealthCheck.Failures, c.Models[1].Deployments[0].HealthCheck.Successes = -1, -1
		}, []string{"models[1].deployments[0].health_check.failures", "models[1].deployments[0].health_check.successes"}, "must be >= 1"},
		{"health check path", func(c *Config) { c.Models[1].Deployments[0].HealthCheck.Path = "http://x/health" },
			[]string{"models[1].deployments[0].health_check.path"}, "is not a path"},
		{"health check on the simulator", func(c *Config) { c.Models[0].Deployments[0].HealthCheck.Path = "/health" },
			[]string{"models[0].deployments[0].health_check"}, "only to kind openai"},
		{"tls cert without key", func(c *Config) { c.Server.TLS.CertFile = "c.pem" },
			[]string{"server.tls"}, "go together"},
		{"admin client CA without a certificate", func(c *Config) { c.Server.AdminTLS.ClientCAFile = "ca.pem" },
			[]string{"server.admin_tls.client_ca_file"}, "needs cert_file and key_file"},
		{"grpc tls key without cert", func(c *Config) { c.Server.GRPCTLS.KeyFile = "k.pem" },
			[]string{"server.grpc_tls"}, "go together"},
		{"listener tls is fine", func(c *Config) {
			c.Server.TLS = ListenerTLS{CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem"}
			c.Server.AdminTLS, c.Server.GRPCTLS = c.Server.TLS, ListenerTLS{CertFile: "c.pem", KeyFile: "k.pem"}
		}, nil, ""},
		{"deployment tls on an http url", func(c *Config) { c.Models[1].Deployments[0].TLS.CAFile = "ca.pem" },
			[]string{"models[1].deployments[0].tls"}, "only to an https url"},
		{"deployment client cert without key", func(c *Config) { c.Models[1].Deployments[1].TLS.CertFile = "c.pem" },
			[]string{"models[1].deployments[1].tls"}, "go together"},
		{"insecure with a CA", func(c *Config) {
			c.Models[1].Deployments[1].TLS = UpstreamTLS{CAFile: "ca.pem", InsecureSkipVerify: true}
		}, []string{"models[1].deployments[1].tls.insecure_skip_verify"}, "checks nothing"},
		{"tls on the simulator", func(c *Config) { c.Models[0].Deployments[0].TLS.ServerName = "x" },
			[]string{"models[0].deployments[0].tls"}, "only to kind openai"},
		{"deployment tls is fine", func(c *Config) {
			c.Models[1].Deployments[1].TLS = UpstreamTLS{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem", ServerName: "engine.internal"}
		}, nil, ""},
		{"bad api_key_env name", func(c *Config) { c.Models[1].Deployments[0].APIKeyEnv = "1-KEY" },
			[]string{"models[1].deployments[0].api_key_env"}, "not an environment variable name"},
		{"bad header name", func(c *Config) { c.Models[1].Deployments[1].Headers = map[string]string{"X Team": "a"} },
			[]string{"models[1].deployments[1].headers"}, "not a valid header name"},
		{"header value with newline", func(c *Config) { c.Models[1].Deployments[1].Headers = map[string]string{"X-A": "a\r\nB: c"} },
			[]string{"models[1].deployments[1].headers.X-A"}, "line break"},
		{"fallback from unknown model", func(c *Config) { c.Routing.Fallbacks["nope"] = []Fallback{{Model: "small-model"}} },
			[]string{"routing.fallbacks.nope"}, `unknown model "nope"`},
		{"fallback to unknown model", func(c *Config) { c.Routing.Fallbacks["large-model"] = []Fallback{{Model: "nope"}} },
			[]string{"routing.fallbacks.large-model[0]"}, `unknown model "nope"`},
		{"fallback to an alias", func(c *Config) { c.Routing.Fallbacks["large-model"] = []Fallback{{Model: "small"}} },
			[]string{"routing.fallbacks.large-model[0]"}, "alias of small-model"},
		{"fallback to itself", func(c *Config) { c.Routing.Fallbacks["large-model"] = []Fallback{{Model: "large-model"}} },
			[]string{"routing.fallbacks.large-model[0]"}, "itself"},
		{"fallback listed twice", func(c *Config) {
			c.Routing.Fallbacks["large-model"] = []Fallback{{Model: "small-model"}, {Model: "small-model", On: []string{"timeout"}}}
		}, []string{"routing.fallbacks.large-model[1]"}, "listed twice"},
		{"fallback both ways is no loop", func(c *Config) {
			c.Routing.Fallbacks["small-model"] = []Fallback{{Model: "large-model", On: []string{"context_length"}}}
		}, nil, ""},
		{"unknown error class", func(c *Config) {
			c.Routing.Fallbacks["large-model"] = []Fallback{{Model: "small-model", On: []string{"timeout", "oops"}}}
		}, []string{"routing.fallbacks.large-model[0].on[1]"}, `unknown error class "oops"`},
		{"bad addr", func(c *Config) { c.Server.Addr = "localhost" },
			[]string{"server.addr"}, "not host:port"},
		{"non-numeric port", func(c *Config) { c.Server.Addr = "localhost:http" },
			[]string{"server.addr"}, "not a number"},
		{"port out of range", func(c *Config) { c.Server.Addr = ":70000" },
			[]string{"server.addr"}, "not a number from 0 to 65535"},
		{"empty host is fine", func(c *Config) { c.Server.Addr = ":8080" }, nil, ""},
		{"negative max_body_bytes", func(c *Config) { c.Server.MaxBodyBytes = -1 },
			[]string{"server.max_body_bytes"}, "must be > 0"},
		{"negative shutdown grace", func(c *Config) { c.Server.ShutdownGrace = -1 },
			[]string{"server.shutdown_grace"}, "must be >= 0"},
		{"negative read timeout", func(c *Config) { c.Server.ReadTimeout = -1 },
			[]string{"server.read_timeout"}, "must be >= 0"},
		{"negative max_buffered_bytes", func(c *Config) { c.Server.MaxBufferedBytes = -1 },
			[]string{"server.max_buffered_bytes"}, "must be > 0"},
		{"max_buffered_bytes below max_body_bytes", func(c *Config) { c.Server.MaxBufferedBytes = 1 << 20 },
			[]string{"server.max_buffered_bytes"}, "less than server.max_body_bytes (33554432)"},
		{"max_body_bytes raised alone", func(c *Config) { c.Server.MaxBodyBytes = 512 << 20 },
			[]string{"server.max_buffered_bytes"}, "268435456 is less than server.max_body_bytes (536870912)"},
		{"negative max_conns", func(c *Config) { c.Server.MaxConns = -1 },
			[]string{"server.max_conns"}, "must be > 0"},
		{"negative max_conns_per_client", func(c *Config) { c.Server.MaxConnsPerClient = -1 },
			[]string{"server.max_conns_per_client"}, "must be > 0"},
		{"every problem is reported", func(c *Config) {
			c.Server.Addr = "nope"
			c.Models[0].Name = ""
			c.Models[1].Deployments[0].URL = ""
			c.Models[1].Deployments[1].Weight = -1
		}, []string{"server.addr", "models[0].name", "models[1].deployments[0].url", "models[1].deployments[1].weight",
			"routing.fallbacks.large-model[0]"}, "not host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.mutate(cfg)
			cfg.ApplyDefaults()
			ps := cfg.Validate()
			var paths []string
			for _, p := range ps {
				paths = append(paths, p.Path)
			}
			if diff := cmp.Diff(tt.paths, paths); diff != "" {
				t.Fatalf("problem paths (-want +got):\n%s\nproblems: %v", diff, ps)
			}
			if len(ps) > 0 && !strings.Contains(ps[0].Message, tt.msg) {
				t.Errorf("message %q does not contain %q", ps[0].Message, tt.msg)
			}
		})
	}
}

func TestValidateProfileHook(t *testing.T) {
	t.Cleanup(func() { ProfileExists = nil })
	ProfileExists = func(p string) bool { return p == "qwen3-omni-7b" }
	cfg := validConfig()
	cfg.Models[0].Deployments = append(cfg.Models[0].Deployments, Deployment{Name: "sim2", Kind: KindSim, Profile: "nope"})
	cfg.ApplyDefaults()
	want := []Problem{{Path: "models[0].deployments[1].profile", Message: `unknown simulator profile "nope"`}}
	if diff := cmp.Diff(want, cfg.Validate()); diff != "" {
		t.Errorf("Validate() (-want +got):\n%s", diff)
	}
}

func TestWarnings(t *testing.T) {
	cfg := validConfig()
	cfg.Tracing = Tracing{Enabled: true, HeadersEnv: "OTLP_HEADERS"}
	cfg.Auth.Store = KeyStore{Kind: KeyStorePostgres, Postgres: KeyPostgres{DSNEnv: "KEYS_DSN"}}
	cfg.ApplyDefaults()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	want := []Problem{{
		Path:    "models[1].deployments[0].api_key_env",
		Message: "environment variable GPU_A_KEY is unset or empty; serve needs it set",
	}, {
		Path:    "tracing.headers_env",
		Message: "environment variable OTLP_HEADERS is unset or empty; serve needs it set",
	}, {
		Path:    "auth.store.postgres.dsn_env",
		Message: "environment variable KEYS_DSN is unset or empty; serve needs it set",
	}}
	if diff := cmp.Diff(want, cfg.Warnings(getenv)); diff != "" {
		t.Errorf("Warnings() with the keys unset (-want +got):\n%s", diff)
	}
	env["GPU_A_KEY"], env["OTLP_HEADERS"], env["KEYS_DSN"] = "secret", "api-key=secret", "postgres://127.0.0.1/keys"
	if ws := cfg.Warnings(getenv); len(ws) != 0 {
		t.Errorf("Warnings() with the key set = %v, want none", ws)
	}
}

func TestProblemAndValidationErrorStrings(t *testing.T) {
	p := Problem{Path: "server.addr", Message: "bad"}
	if got, want := p.String(), "server.addr: bad"; got != want {
		t.Errorf("Problem.String() = %q, want %q", got, want)
	}
	one := &ValidationError{Source: "a.yaml", Problems: []Problem{p}}
	if got, want := one.Error(), "invalid configuration (a.yaml): server.addr: bad"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	two := &ValidationError{Source: "a.yaml", Problems: []Problem{p, {Path: "models", Message: "none"}}}
	if got, want := two.Error(), "invalid configuration (a.yaml): 2 problems:\n  server.addr: bad\n  models: none"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
