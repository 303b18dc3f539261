package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestRangeUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    Range
		wantErr string
	}{
		{in: "r: [0, 2]", want: Range{Min: 0, Max: 2}},
		{in: "r: [0.1, 0.95]", want: Range{Min: 0.1, Max: 0.95}},
		{in: "r:\n  - -1\n  - 1", want: Range{Min: -1, Max: 1}},
		{in: "r: [1]", wantErr: "line 1: a range is written [min, max]"},
		{in: "r: [0, 1, 2]", wantErr: "line 1: a range is written [min, max]"},
		{in: "r: 2", wantErr: "line 1: a range is written [min, max]"},
		{in: "r: {min: 0, max: 2}", wantErr: "line 1: a range is written [min, max]"},
		{in: "r: [a, 2]", wantErr: "cannot unmarshal !!str `a` into float64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got struct{ R Range }
			err := yaml.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.R); diff != "" {
				t.Errorf("Range (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDurationUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "d: 1.5s", want: 1500 * time.Millisecond},
		{in: `d: "10m"`, want: 10 * time.Minute},
		{in: "d: 250ms", want: 250 * time.Millisecond},
		{in: "d: 0", want: 0},
		{in: "d: -1s", want: -time.Second},
		{in: "d:", want: 0},
		{in: "d: 30", wantErr: `line 1: duration "30" needs a unit, such as "30s"`},
		{in: "d: soon", wantErr: `line 1: invalid duration "soon"`},
		{in: "d: [1s]", wantErr: "line 1: a duration is written as a string"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got struct{ D Duration }
			err := yaml.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.D.D() != tt.want {
				t.Errorf("Duration = %v, want %v", got.D.D(), tt.want)
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	in := struct {
		D Duration `yaml:"d"`
		R Range    `yaml:"r"`
	}{Duration(90 * time.Second), Range{Min: 0, Max: 1.5}}
	out, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "d: 1m30s\nr: [0, 1.5]\n"; got != want {
		t.Errorf("Marshal = %q, want %q", got, want)
	}
	var back struct {
		D Duration `yaml:"d"`
		R Range    `yaml:"r"`
	}
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"unknown top-level key", "server:\n  addr: :1\nmodles: []\n",
			[]string{`c.yaml:3: unknown key "modles" in the top level`}},
		{"unknown keys everywhere are all reported",
			"models:\n  - name: a\n    limts: {}\n    deployments:\n      - name: d\n        kind: sim\n        url_: x\n",
			[]string{`c.yaml:3: unknown key "limts" in a model`, `c.yaml:7: unknown key "url_" in a deployment`}},
		{"bad values are all reported",
			"server:\n  shutdown_grace: 15\nmodels:\n  - name: a\n    context_window: big\n    limits: {temperature: [2]}\n",
			[]string{
				`c.yaml:2: duration "15" needs a unit, such as "15s"`,
				"c.yaml:5: cannot unmarshal !!str `big` into int",
				"c.yaml:6: a range is written [min, max]",
			}},
		{"syntax error", "server: {}\nmodels: []\nrouting\nx: 1\n", []string{"c.yaml:3: could not find expected ':'"}},
		{"duplicate key", "server:\n  addr: a\n  addr: b\n", []string{`c.yaml:3: mapping key "addr" already defined at line 2`}},
		{"two documents", "server: {}\n---\nserver: {}\n", []string{"c.yaml:2: a config file holds one YAML document; found a second"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in), "c.yaml")
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Parse error = %v (%T), want *DecodeError", err, err)
			}
			if len(de.Errors) != len(tt.want) {
				t.Fatalf("errors = %q, want %d entries like %q", de.Errors, len(tt.want), tt.want)
			}
			for i := range tt.want {
				if !strings.HasPrefix(de.Errors[i], tt.want[i]) {
					t.Errorf("errors[%d] = %q, want prefix %q", i, de.Errors[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	cfg, err := Parse([]byte("# nothing here\n"), "e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Config{}, cfg); diff != "" {
		t.Errorf("Parse(empty) (-want +got):\n%s", diff)
	}
}

func intp(n int) *int { return &n }

// defaultJobs is the jobs section of a file that does not set it.
var defaultJobs = Jobs{
	Store: "embedded", Dir: "omnigate-data", Files: "dir", Workers: 16, Lease: Duration(30 * time.Second),
	MaxAttempts: 5, Window: Duration(24 * time.Hour), Retention: Duration(168 * time.Hour),
	MaxFileBytes: 200 << 20, MaxBatchRequests: 50000,
	Redis: JobsRedis{Prefix: "omnigate:jobs"}, NATS: JobsNATS{Prefix: "OMNIGATE_JOBS"},
	Webhook: Webhook{Attempts: 8, Timeout: Duration(10 * time.Second)},
}

// defaultAuth is the auth section of a file that does not set it.
var defaultAuth = Auth{
	Store:  KeyStore{Kind: "none", Postgres: KeyPostgres{Table: "omnigate_api_keys", Refresh: Duration(5 * time.Second)}},
	Limits: LimitStore{Store: "memory", Redis: RedisStore{Prefix: "omnigate:limits", Timeout: Duration(100 * time.Millisecond)}, OnStoreDown: "local"},
}

func TestApplyDefaults(t *testing.T) {
	data := []byte(`
models:
  - name: m
    timeouts: {idle: 7s}
    deployments:
      - {name: up, url: "http://h:8000/v1"}
      - {name: s, profile: p}
      - {name: custom, kind: openai, url: "http://h/v1", upstream_model: U, dialect: vllm, weight: 3,
         max_idle_conns: 4, idle_conn_timeout: 1s, timeouts: {connect: 1s, total: 1m}}
`)
	cfg, err := Parse(data, "d.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyDefaults()
	// No tier: the model's timeouts are the general defaults but for what
	// it sets, and its deployments take them but for what they set.
	defaultTimeouts := Timeouts{
		Connect: Duration(2 * time.Second), FirstToken: Duration(30 * time.Second),
		Idle: Duration(7 * time.Second), Total: Duration(10 * time.Minute),
	}
	want := &Config{
		Server: Server{
			Addr: "127.0.0.1:8080", MaxBodyBytes: 33554432,
			ShutdownGrace: Duration(15 * time.Second), ReadHeaderTimeout: Duration(10 * time.Second),
			ReadTimeout: Duration(30 * time.Second), MaxBufferedBytes: 256 << 20,
			MaxConns: 16384, MaxConnsPerClient: 256, AdminAddr: "127.0.0.1:8081", GRPCAddr: "127.0.0.1:50051",
		},
		Jobs:    defaultJobs,
		Auth:    defaultAuth,
		Logging: Logging{Level: "info", Format: "text"},
		Tracing: Tracing{ServiceName: "omnigate"},
		Cache:   defaultStores,
		Models: []Model{{
			Name:          "m",
			ContextWindow: 32768,
			Capabilities:  Capabilities{Input: []string{"text"}, Output: []string{"text"}, Endpoints: []string{"chat", "completions"}},
			Limits: Limits{
				Temperature: &Range{Min: 0, Max: 2}, TopP: &Range{Min: 0, Max: 1},
				MaxN: 8, OnViolation: "reject",
			},
			Retry:    defaultRetry,
			Timeouts: defaultTimeouts,
			Balance:  defaultBalance(), Admission: defaultAdmission(""), Batching: defaultBatching, Cache: defaultCache(CacheOff),
			Deployments: []Deployment{
				{Name: "up", Kind: "openai", URL: "http://h:8000/v1", UpstreamModel: "m", Dialect: "openai",
					Weight: 1, Timeouts: defaultTimeouts, Continuation: boolp(false), MaxIdleConns: 256, IdleConnTimeout: Duration(4 * time.Second),
					HealthCheck: defaultHealth("models"), Metrics: defaultMetrics(false), MaxNumSeqs: 256},
				{Name: "s", Kind: "sim", Profile: "p", Weight: 1, Timeouts: defaultTimeouts, Continuation: boolp(true), Metrics: defaultMetrics(true)},
				{Name: "custom", Kind: "openai", URL: "http://h/v1", UpstreamModel: "U", Dialect: "vllm", Weight: 3, Continuation: boolp(true),
					MaxIdleConns: 4, IdleConnTimeout: Duration(time.Second), Timeouts: Timeouts{
						Connect: Duration(time.Second), FirstToken: Duration(30 * time.Second),
						Idle: Duration(7 * time.Second), Total: Duration(time.Minute),
					}, HealthCheck: defaultHealth("/health"), Metrics: defaultMetrics(true), MaxNumSeqs: 256},
			},
		}},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("after ApplyDefaults (-want +got):\n%s", diff)
	}
	again, err := Parse(data, "d.yaml")
	if err != nil {
		t.Fatal(err)
	}
	again.ApplyDefaults()
	again.ApplyDefaults()
	if diff := cmp.Diff(cfg, again); diff != "" {
		t.Errorf("ApplyDefaults is not idempotent (-first +second):\n%s", diff)
	}
}

func TestDefault(t *testing.T) {
	small := Timeouts{ // the tiers' defaults
		Connect: Duration(time.Second), FirstToken: Duration(10 * time.Second),
		Idle: Duration(5 * time.Second), Total: Duration(5 * time.Minute),
	}
	large := Timeouts{
		Connect: Duration(2 * time.Second), FirstToken: Duration(60 * time.Second),
		Idle: Duration(15 * time.Second), Total: Duration(10 * time.Minute),
	}
	limits := func(maxTokens int, media MediaLimit) Limits {
		return Limits{MaxTokens: maxTokens, Temperature: &Range{Min: 0, Max: 2}, TopP: &Range{Min: 0, Max: 1},
			MaxN: 8, Media: media, OnViolation: "reject"}
	}
	want := &Config{
		Server: Server{
			Addr: "127.0.0.1:8080", MaxBodyBytes: 33554432,
			ShutdownGrace: Duration(15 * time.Second), ReadHeaderTimeout: Duration(10 * time.Second),
			ReadTimeout: Duration(30 * time.Second), MaxBufferedBytes: 256 << 20,
			MaxConns: 16384, MaxConnsPerClient: 256, AdminAddr: "127.0.0.1:8081", GRPCAddr: "127.0.0.1:50051",
		},
		Jobs:    defaultJobs,
		Auth:    defaultAuth,
		Logging: Logging{Level: "info", Format: "text"},
		Tracing: Tracing{ServiceName: "omnigate"},
		Cache:   defaultStores,
		Models: []Model{
			{
				Name: "qwen3-omni-7b", Aliases: []string{"small"}, Tier: "small", ContextWindow: 32768,
				Capabilities: Capabilities{
					Input: []string{"text", "image", "audio", "video"}, Output: []string{"text", "audio"},
					Endpoints: []string{"chat", "completions"},
				},
				Limits:   limits(8192, MediaLimit{Image: intp(5), Audio: intp(3), Video: intp(1)}),
				Retry:    defaultRetry,
				Timeouts: small,
				Balance:  defaultBalance(), Admission: defaultAdmission("small"), Batching: defaultBatching, Cache: defaultCache(CacheExact),
				Deployments: []Deployment{{Name: "sim-7b", Kind: "sim", Profile: "qwen3-omni-7b", AudioOutput: true,
					Weight: 1, Timeouts: small, Continuation: boolp(true), Metrics: defaultMetrics(true)}},
			},
			{
				Name: "qwen3-omni-30b", Aliases: []string{"large"}, Tier: "large", ContextWindow: 65536,
				Capabilities: Capabilities{
					Input: []string{"text", "image", "audio", "video"}, Output: []string{"text", "audio"},
					Endpoints: []string{"chat", "completions"},
				},
				Limits:   limits(4096, MediaLimit{}),
				Retry:    defaultRetry,
				Timeouts: large,
				Balance:  defaultBalance(), Admission: defaultAdmission("large"), Batching: defaultBatching, Cache: defaultCache(CacheExact),
				Deployments: []Deployment{{Name: "sim-30b", Kind: "sim", Profile: "qwen3-omni-30b", AudioOutput: true, Weight: 1, Timeouts: large,
					Continuation: boolp(true), Metrics: defaultMetrics(true)}},
			},
		},
		Routing: Routing{Fallbacks: map[string][]Fallback{"qwen3-omni-30b": {{Model: "qwen3-omni-7b"}}}},
	}
	got := Default()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Default() (-want +got):\n%s", diff)
	}
	got.Models[0].Name = "changed"
	if Default().Models[0].Name != "qwen3-omni-7b" {
		t.Error("Default() returned shared state: a change to one copy showed in the next")
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimalFile = `
server: {addr: "127.0.0.1:9000"}
models:
  - name: only
    deployments: [{name: s, kind: sim, profile: qwen3-omni-7b}]
`

func TestFromEnvAndFile(t *testing.T) {
	file := writeFile(t, "omnigate.yaml", minimalFile)
	envFile := writeFile(t, "from-env.yaml", strings.Replace(minimalFile, "name: only", "name: from-env", 1))
	bad := writeFile(t, "bad.yaml", "models: []\n")
	adminFile := writeFile(t, "admin.yaml", strings.Replace(minimalFile, `addr: "127.0.0.1:9000"`, `addr: "127.0.0.1:9000", admin_addr: "127.0.0.1:9001"`, 1))
	tests := []struct {
		name      string
		path      string
		env       map[string]string
		wantAddr  string
		wantAdmin string // when set
		wantModel string
		wantErr   string
	}{
		{name: "built-in default", wantAddr: "127.0.0.1:8080", wantModel: "qwen3-omni-7b"},
		{name: "addr override on the default", env: map[string]string{"OMNIGATE_ADDR": "0.0.0.0:9999"},
			wantAddr: "0.0.0.0:9999", wantModel: "qwen3-omni-7b"},
		{name: "file path", path: file, wantAddr: "127.0.0.1:9000", wantModel: "only"},
		{name: "addr override on a file", path: file, env: map[string]string{"OMNIGATE_ADDR": ":7000"},
			wantAddr: ":7000", wantModel: "only"},
		{name: "OMNIGATE_CONFIG", env: map[string]string{"OMNIGATE_CONFIG": envFile},
			wantAddr: "127.0.0.1:9000", wantModel: "from-env"},
		{name: "path beats OMNIGATE_CONFIG", path: file, env: map[string]string{"OMNIGATE_CONFIG": envFile},
			wantAddr: "127.0.0.1:9000", wantModel: "only"},
		{name: "admin default", path: file, wantAddr: "127.0.0.1:9000", wantAdmin: "127.0.0.1:8081", wantModel: "only"},
		{name: "admin from the file", path: adminFile, wantAddr: "127.0.0.1:9000", wantAdmin: "127.0.0.1:9001", wantModel: "only"},
		{name: "admin override on a file", path: adminFile, env: map[string]string{"OMNIGATE_ADMIN_ADDR": "127.0.0.1:9002"},
			wantAddr: "127.0.0.1:9000", wantAdmin: "127.0.0.1:9002", wantModel: "only"},
		{name: "admin turned off", path: adminFile, env: map[string]string{"OMNIGATE_ADMIN_ADDR": "off"},
			wantAddr: "127.0.0.1:9000", wantAdmin: "off", wantModel: "only"},
		{name: "both on port 0", env: map[string]string{"OMNIGATE_ADDR": "127.0.0.1:0", "OMNIGATE_ADMIN_ADDR": "127.0.0.1:0"},
			wantAddr: "127.0.0.1:0", wantAdmin: "127.0.0.1:0", wantModel: "qwen3-omni-7b"},
		{name: "admin on the API address", env: map[string]string{"OMNIGATE_ADMIN_ADDR": "127.0.0.1:8080"},
			wantErr: `server.admin_addr: "127.0.0.1:8080" is server.addr too: the admin API needs a listener of its own (set by OMNIGATE_ADMIN_ADDR)`},
		{name: "bad admin override", env: map[string]string{"OMNIGATE_ADMIN_ADDR": "nope"},
			wantErr: `server.admin_addr: "nope" is not host:port or "off" (missing port in address) (set by OMNIGATE_ADMIN_ADDR)`},
		{name: "bad override", env: map[string]string{"OMNIGATE_ADDR": "nope"},
			wantErr: `server.addr: "nope" is not host:port (missing port in address) (set by OMNIGATE_ADDR)`},
		{name: "invalid file", path: bad, wantErr: "models: at least one model is required"},
		{name: "missing file", path: filepath.Join(t.TempDir(), "absent.yaml"), wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := FromEnvAndFile(tt.path, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Server.Addr != tt.wantAddr || cfg.Models[0].Name != tt.wantModel {
				t.Errorf("addr, model = %q, %q; want %q, %q", cfg.Server.Addr, cfg.Models[0].Name, tt.wantAddr, tt.wantModel)
			}
			if tt.wantAdmin != "" && cfg.Server.AdminAddr != tt.wantAdmin {
				t.Errorf("admin_addr = %q, want %q", cfg.Server.AdminAddr, tt.wantAdmin)
			}
			if cfg.Server.MaxBodyBytes != DefaultMaxBodyBytes {
				t.Errorf("defaults were not applied: max_body_bytes = %d", cfg.Server.MaxBodyBytes)
			}
		})
	}
}

func TestFromEnvAndFileValidationErrorType(t *testing.T) {
	_, err := FromEnvAndFile(writeFile(t, "bad.yaml", "models: []\n"), func(string) string { return "" })
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v (%T), want *ValidationError", err, err)
	}
	want := []Problem{{Path: "models", Message: "at least one model is required"}}
	if diff := cmp.Diff(want, ve.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestShippedConfigsValidate loads the embedded default and every file in
// examples/: each must decode and validate with no problems.
func TestShippedConfigsValidate(t *testing.T) {
	cfg, err := Parse(DefaultYAML(), "default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyDefaults()
	if ps := cfg.Validate(); len(ps) != 0 {
		t.Errorf("default.yaml: %v", ps)
	}
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d example files, want at least 4", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg.ApplyDefaults()
			for _, p := range cfg.Validate() {
				t.Errorf("%s: %s", f, p)
			}
		})
	}
}

// defaultHealth is the health check ApplyDefaults gives a kind openai
// deployment whose dialect's path is path: on for engines, off for the
// openai dialect (path models).
func boolp(b bool) *bool { return &b }

func defaultHealth(path string) HealthCheck {
	on := path != "models"
	return HealthCheck{Enabled: &on, Path: path, Interval: Duration(2 * time.Second), Timeout: Duration(time.Second), Failures: 1, Successes: 1}
}

// defaultBalance is the balancing ApplyDefaults gives every model.
func defaultBalance() Balance {
	return Balance{Strategy: "score", Picker: "best", StickyHeader: "X-Sticky-Key",
		Weights: map[string]float64{"load": 1, "kv_cache": 0.25, "latency": 0.5, "prefix": 1, "sticky": 1},
		Prefix:  PrefixAffinity{BlockBytes: 256, Entries: 65536}}
}

func defaultAdmission(tier string) Admission {
	return Admission{QueueTimeout: map[string]Duration{"small": Duration(2 * time.Second), "large": Duration(10 * time.Second), "": Duration(5 * time.Second)}[tier]}
}

var defaultBatching = Batching{Window: Duration(2 * time.Millisecond), MaxInputs: 64}

// defaultCache is a model's cache with every default but its mode.
func defaultCache(mode string) Cache {
	return Cache{Mode: mode, TTL: Duration(time.Hour), Store: "memory", Scope: "none", MaxEntryBytes: 1 << 20,
		Semantic: SemanticCache{Threshold: 0.95, Timeout: Duration(time.Second)}}
}

var defaultStores = CacheStores{Memory: MemoryStore{MaxEntries: 1024, MaxBytes: 64 << 20},
	Redis: RedisStore{Prefix: "omnigate:cache", Timeout: Duration(100 * time.Millisecond)}}

func defaultMetrics(on bool) EngineMetrics {
	return EngineMetrics{Enabled: &on, Path: "/metrics", Interval: Duration(time.Second), Timeout: Duration(500 * time.Millisecond), StaleAfter: Duration(3 * time.Second)}
}

// defaultRetry is the retry policy ApplyDefaults gives every model.
var defaultRetry = Retry{Attempts: 3, Backoff: Duration(25 * time.Millisecond), MaxBackoff: Duration(time.Second), Budget: 0.2, MinRetries: 10}

func TestFallbackForms(t *testing.T) {
	cfg, err := Parse([]byte(`
routing:
  fallbacks:
    large: [small, {model: other, on: [overloaded, timeout]}]
`), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Fallback{{Model: "small"}, {Model: "other", On: []string{"overloaded", "timeout"}}}
	if diff := cmp.Diff(want, cfg.Routing.Fallbacks["large"]); diff != "" {
		t.Errorf("fallbacks (-want +got):\n%s", diff)
	}
	out, err := yaml.Marshal(cfg.Routing)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); !strings.Contains(got, "- small\n") || !strings.Contains(got, "model: other") {
		t.Errorf("marshalled back as:\n%s", got)
	}
	for _, bad := range []string{"routing: {fallbacks: {large: [[a]]}}", "routing: {fallbacks: {large: [{model: a, when: [x]}]}}"} {
		if _, err := Parse([]byte(bad), "bad.yaml"); err == nil {
			t.Errorf("%s: parsed", bad)
		}
	}
}
