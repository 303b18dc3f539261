package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnigate/omnigate/internal/admin"
	"github.com/omnigate/omnigate/internal/app"
	"github.com/omnigate/omnigate/internal/config"
)

// Secrets the test config holds; no admin answer may show one.
const (
	headerSecret = "value-of-a-header"
	traceSecret  = "pw-of-the-collector"
	keySecret    = "value-of-GPU_1_KEY"
)

// testConfig is two models: one on the simulator and an OpenAI upstream
// (never called) whose headers are secrets, one on the simulator alone,
// falling back to the first; and a trace collector whose URL carries a
// password and a key. (A deployment URL may not carry credentials:
// Validate refuses them.)
func testConfig() *config.Config {
	return &config.Config{
		Server: config.Server{Addr: "127.0.0.1:0"},
		Models: []config.Model{
			{Name: "small-m", Aliases: []string{"small"}, Tier: "small", Limits: config.Limits{MaxTokens: 512},
				Deployments: []config.Deployment{
					{Name: "sim-a", Kind: "sim", Profile: "instant"},
					{Name: "gpu-1", Kind: "openai", URL: "http://127.0.0.1:9/v1",
						Headers: map[string]string{"X-Api-Key": headerSecret}, APIKeyEnv: "GPU_1_KEY", Weight: 3},
				}},
			{Name: "large-m", Tier: "large", Deployments: []config.Deployment{{Name: "sim-b", Kind: "sim", Profile: "instant"}}},
		},
		Routing: config.Routing{Fallbacks: map[string][]config.Fallback{"large-m": {{Model: "small-m", On: []string{"unavailable"}}}}},
		Tracing: config.Tracing{Endpoint: "https://otel:" + traceSecret + "@collector.example/v1/traces?api-key=" + traceSecret, HeadersEnv: "OTEL_HEADERS"},
	}
}

// newGateway builds the gateway the way serve does, from cfg.
func newGateway(t *testing.T, cfg *config.Config) *app.Gateway {
	t.Helper()
	t.Setenv("GPU_1_KEY", keySecret)
	cfg.ApplyDefaults()
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatalf("config: %v", p)
	}
	gw, err := app.NewGateway(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return gw
}

// serve serves an admin handler over gw's core with opt's other fields.
func serve(t *testing.T, gw *app.Gateway, opt admin.Options) *httptest.Server {
	t.Helper()
	opt.Core, opt.Config = gw.Core(), gw.Config
	if opt.Metrics == nil {
		opt.Metrics = prometheus.NewRegistry()
	}
	opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(admin.New(opt))
	t.Cleanup(srv.Close)
	return srv
}

// do sends a request and returns the answer with its body read.
func do(t *testing.T, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return sendH(t, method, url, "", hdr...)
}

// send sends a request with a body and returns the answer, its body read.
func send(t *testing.T, method, url, body string) (*http.Response, string) {
	t.Helper()
	return sendH(t, method, url, body)
}

// sendH is send with header pairs.
func sendH(t *testing.T, method, url, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// apiError is the OpenAI error shape.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == nil || e.Error.Message == "" {
		t.Fatalf("not an OpenAI error: %s", body)
	}
	return *e.Error.Code
}

func TestToken(t *testing.T) {
	gw := newGateway(t, testConfig())
	srv := serve(t, gw, admin.Options{Token: "s3cret-token"})
	open := serve(t, gw, admin.Options{})
	tests := []struct {
		name, path, auth string
		want             int
		tokenless        int // the same request to a handler without a token
	}{
		{"page shell, no token", "/status", "", 200, 200},
		{"page script, no token", "/status/status.js", "", 200, 200},
		{"page style, no token", "/status/status.css", "", 200, 200},
		{"data without a token", "/admin/status.json", "", 401, 200},
		{"models without a token", "/admin/models", "", 401, 200},
		{"config without a token", "/admin/config", "", 401, 200},
		{"metrics without a token", "/metrics", "", 401, 200},
		{"unknown path without a token", "/admin/nope", "", 401, 404},
		{"wrong token", "/admin/models", "Bearer s3cret-tokeN", 401, 200},
		{"token prefix", "/admin/models", "Bearer s3cret", 401, 200},
		{"basic scheme", "/admin/models", "Basic s3cret-token", 401, 200},
		{"token", "/admin/models", "Bearer s3cret-token", 200, 200},
		{"scheme in lower case", "/admin/build", "bearer s3cret-token", 200, 200},
		{"unknown path with the token", "/admin/nope", "Bearer s3cret-token", 404, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+tt.path, "Authorization", tt.auth)
			if resp.StatusCode != tt.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want == 401 {
				if got := resp.Header.Get("WWW-Authenticate"); got != "Bearer" {
					t.Errorf("WWW-Authenticate %q", got)
				}
				if code := errorCode(t, body); code != "invalid_admin_token" {
					t.Errorf("code %q", code)
				}
			}
			if resp, _ := do(t, "GET", open.URL+tt.path, "Authorization", tt.auth); resp.StatusCode != tt.tokenless {
				t.Errorf("without a token configured: %d, want %d", resp.StatusCode, tt.tokenless)
			}
		})
	}
}

func TestMethodsAndUnknownPaths(t *testing.T) {
	srv := serve(t, newGateway(t, testConfig()), admin.Options{})
	tests := []struct {
		method, path string
		want         int
		allow        string
	}{
		{"POST", "/admin/models", 405, "GET, HEAD"},
		{"DELETE", "/admin/deployments", 405, "GET, HEAD"},
		{"PUT", "/admin/config", 405, "GET, HEAD"},
		{"POST", "/admin/build", 405, "GET, HEAD"},
		{"POST", "/admin/status.json", 405, "GET, HEAD"},
		{"POST", "/metrics", 405, "GET, HEAD"},
		{"POST", "/status", 405, "GET, HEAD"},
		{"GET", "/admin/reload", 405, "POST"},
		{"HEAD", "/admin/models", 200, ""},
		{"GET", "/admin", 404, ""},
		{"GET", "/admin/", 404, ""},
		{"GET", "/status/", 404, ""},
		{"GET", "/v1/models", 404, ""},
		{"GET", "/admin%2Fmodels", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := do(t, tt.method, srv.URL+tt.path)
			if resp.StatusCode != tt.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tt.want)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			switch tt.want {
			case 405:
				if code := errorCode(t, body); code != "method_not_allowed" {
					t.Errorf("code %q", code)
				}
			case 404:
				if code := errorCode(t, body); code != "unknown_url" {
					t.Errorf("code %q", code)
				}
			}
		})
	}
}

func TestReload(t *testing.T) {
	gw := newGateway(t, testConfig())
	invalid := &config.ValidationError{Source: "omnigate.yaml", Problems: []config.Problem{{Path: "models", Message: "at least one model is required"}}}
	tests := []struct {
		name     string
		reload   func(context.Context) error
		want     int
		wantBody string
	}{
		{"none", nil, 501, "no configuration source"},
		{"reloaded", func(context.Context) error { return nil }, 200, `{"status":"reloaded"}`},
		{"invalid config", func(context.Context) error { return invalid }, 400, "models: at least one model is required"},
		{"config that does not parse", func(context.Context) error {
			return &config.DecodeError{File: "omnigate.yaml", Errors: []string{"omnigate.yaml:3: unknown key"}}
		}, 400, "omnigate.yaml:3: unknown key"},
		{"config file gone", func(context.Context) error {
			_, err := os.ReadFile(filepath.Join(os.TempDir(), "omnigate-no-such-dir", "omnigate.yaml"))
			return err
		}, 400, "no such file"},
		{"gateway failure", func(context.Context) error { return errors.New("simulator would not start") }, 500, "simulator would not start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, gw, admin.Options{Reload: tt.reload})
			resp, body := do(t, "POST", srv.URL+"/admin/reload")
			if resp.StatusCode != tt.want || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%d %s, want %d with %q", resp.StatusCode, body, tt.want, tt.wantBody)
			}
			if tt.want != 200 {
				errorCode(t, body)
			}
		})
	}
}

func TestModels(t *testing.T) {
	srv := serve(t, newGateway(t, testConfig()), admin.Options{})
	resp, body := do(t, "GET", srv.URL+"/admin/models")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var got any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	limits := func(maxTokens float64) map[string]any {
		return map[string]any{"max_tokens": maxTokens, "temperature": []any{0.0, 2.0}, "top_p": []any{0.0, 1.0}, "max_n": 8.0,
			"media": map[string]any{"image": nil, "audio": nil, "video": nil}, "on_violation": "reject"}
	}
	caps := map[string]any{"input": []any{"text"}, "output": []any{"text"}, "endpoints": []any{"chat", "completions"}}
	want := map[string]any{"object": "list", "data": []any{
		map[string]any{"name": "small-m", "tier": "small", "aliases": []any{"small"}, "context_window": 32768.0, "capabilities": caps, "limits": limits(512),
			"deployments": []any{
				map[string]any{"name": "sim-a", "kind": "sim", "weight": 1.0},
				map[string]any{"name": "gpu-1", "kind": "openai", "weight": 3.0},
			},
			"fallbacks": []any{}},
		map[string]any{"name": "large-m", "tier": "large", "aliases": []any{}, "context_window": 32768.0, "capabilities": caps, "limits": limits(0),
			"deployments": []any{map[string]any{"name": "sim-b", "kind": "sim", "weight": 1.0}},
			"fallbacks":   []any{map[string]any{"model": "small-m", "on": []any{"unavailable"}}}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/admin/models (-want +got):\n%s", diff)
	}
	for _, leak := range []string{"127.0.0.1:9", headerSecret, "GPU_1_KEY"} {
		if strings.Contains(body, leak) {
			t.Errorf("/admin/models shows %q: %s", leak, body)
		}
	}
}

// TestFallbackOnEveryClass: a fallback that lists no class is taken for
// every one, and the listing says which those are.
func TestFallbackOnEveryClass(t *testing.T) {
	cfg := testConfig()
	cfg.Routing.Fallbacks = map[string][]config.Fallback{"large-m": {{Model: "small-m"}}}
	srv := serve(t, newGateway(t, cfg), admin.Options{})
	_, body := do(t, "GET", srv.URL+"/admin/models")
	var got struct {
		Data []struct {
			Fallbacks []struct {
				Model string   `json:"model"`
				On    []string `json:"on"`
			} `json:"fallbacks"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	fb := got.Data[1].Fallbacks
	if len(fb) != 1 || fb[0].Model != "small-m" || len(fb[0].On) < 5 {
		t.Errorf("fallbacks %+v, want small-m on every class", fb)
	}
}

func TestDeployments(t *testing.T) {
	cfg := testConfig()
	cfg.Models[0].Deployments[1].Quantization = "awq-int4"
	cfg.Models[0].Deployments[1].Hardware = config.DeploymentHardware{GPU: "L4", Count: 1}
	srv := serve(t, newGateway(t, cfg), admin.Options{})
	_, body := do(t, "GET", srv.URL+"/admin/deployments")
	var got struct {
		Object string `json:"object"`
		Data   []struct {
			Model      string `json:"model"`
			Deployment string `json:"deployment"`
			Kind       string `json:"kind"`
			Weight     int    `json:"weight"`
			Health     string `json:"health"`
			Breaker    struct {
				State string `json:"state"`
			} `json:"breaker"`
			Quantization string `json:"quantization"`
			Hardware     *struct {
				GPU   string `json:"gpu"`
				Count int    `json:"count"`
			} `json:"hardware"`
		} `json:"data"`
		Models []struct {
			Model     string `json:"model"`
			Strategy  string `json:"strategy"`
			Admission *struct {
				Limit int `json:"limit"`
			} `json:"admission"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Object != "list" || len(got.Data) != 3 || len(got.Models) != 2 {
		t.Fatalf("%s", body)
	}
	for i, want := range [][3]string{{"small-m", "sim-a", "sim"}, {"small-m", "gpu-1", "openai"}, {"large-m", "sim-b", "sim"}} {
		d := got.Data[i]
		if d.Model != want[0] || d.Deployment != want[1] || d.Kind != want[2] || d.Health != "unchecked" || d.Breaker.State != "closed" {
			t.Errorf("row %d: %+v, want %v unchecked and closed", i, d, want)
		}
	}
	if d := got.Data[1]; d.Quantization != "awq-int4" || d.Hardware == nil || d.Hardware.GPU != "L4" || d.Hardware.Count != 1 {
		t.Errorf("gpu-1's labels: %q %+v", d.Quantization, d.Hardware)
	}
	if d := got.Data[0]; d.Quantization != "" || d.Hardware != nil {
		t.Errorf("sim-a has labels it was not given: %q %+v", d.Quantization, d.Hardware)
	}
	if a := got.Models[0].Admission; a == nil || a.Limit < 1 {
		t.Errorf("admission %+v", got.Models[0].Admission)
	}
	if strings.Contains(body, "127.0.0.1:9") || strings.Contains(body, headerSecret) {
		t.Errorf("/admin/deployments shows an address: %s", body)
	}
}

func TestConfigRedacted(t *testing.T) {
	srv := serve(t, newGateway(t, testConfig()), admin.Options{})
	for _, format := range []string{"", "json", "yaml"} {
		t.Run("format="+format, func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+"/admin/config?format="+format)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			for _, secret := range []string{headerSecret, traceSecret, keySecret} {
				if strings.Contains(body, secret) {
					t.Errorf("the config shows %q:\n%s", secret, body)
				}
			}
			// What is not secret is all there: user names, header
			// names, env var names, addresses.
			for _, shown := range []string{"GPU_1_KEY", "OTEL_HEADERS", "X-Api-Key", "http://127.0.0.1:9/v1", "api-key=REDACTED", "otel:REDACTED@collector.example", "127.0.0.1:8081"} {
				if !strings.Contains(body, shown) {
					t.Errorf("the config lacks %q:\n%s", shown, body)
				}
			}
		})
	}
	_, body := do(t, "GET", srv.URL+"/admin/config")
	var got struct {
		Server struct {
			Addr          string `json:"addr"`
			AdminAddr     string `json:"admin_addr"`
			ShutdownGrace string `json:"shutdown_grace"`
		} `json:"server"`
		Models []struct {
			Name        string `json:"name"`
			Deployments []struct {
				Headers map[string]string `json:"headers"`
			} `json:"deployments"`
			Limits struct {
				Temperature []float64 `json:"temperature"`
			} `json:"limits"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	if got.Server.Addr != "127.0.0.1:0" || got.Server.AdminAddr != "127.0.0.1:8081" || got.Server.ShutdownGrace != "15s" {
		t.Errorf("server %+v", got.Server)
	}
	if len(got.Models) != 2 || got.Models[0].Name != "small-m" || got.Models[0].Deployments[1].Headers["X-Api-Key"] != admin.Redacted ||
		!cmp.Equal(got.Models[0].Limits.Temperature, []float64{0, 2}) {
		t.Errorf("models %+v", got.Models)
	}
	if resp, body := do(t, "GET", srv.URL+"/admin/config?format=toml"); resp.StatusCode != 400 {
		t.Errorf("format=toml: %d %s", resp.StatusCode, body)
	}
}

func TestBuild(t *testing.T) {
	srv := serve(t, newGateway(t, testConfig()), admin.Options{Build: admin.ReadBuild("v9.9.9")})
	_, body := do(t, "GET", srv.URL+"/admin/build")
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got["version"] != "v9.9.9" || !strings.HasPrefix(got["go_version"].(string), "go1.") {
		t.Errorf("%s", body)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "omnigate_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	srv := serve(t, newGateway(t, testConfig()), admin.Options{Metrics: reg})
	resp, body := do(t, "GET", srv.URL+"/metrics")
	if resp.StatusCode != 200 || !strings.Contains(body, "omnigate_test_total 3") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

func TestStatusPage(t *testing.T) {
	srv := serve(t, newGateway(t, testConfig()), admin.Options{Token: "t"})
	resp, body := do(t, "GET", srv.URL+"/status")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `src="status/status.js"`) {
		t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// Nothing is fetched from elsewhere.
	for _, p := range []string{"/status", "/status/status.js", "/status/status.css"} {
		if _, b := do(t, "GET", srv.URL+p); strings.Contains(b, "http://") || strings.Contains(b, "https://") {
			t.Errorf("%s refers to another origin", p)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "omnigate_requests_total", Help: "h"}, []string{"model", "deployment", "code", "stream"})
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "omnigate_tokens_total", Help: "h"}, []string{"model", "deployment", "kind"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "omnigate_upstream_latency_seconds", Help: "h", Buckets: []float64{0.5, 1}}, []string{"model", "deployment"})
	reg.MustRegister(requests, tokens, latency)
	requests.WithLabelValues("small-m", "sim-a", "200", "false").Add(2)
	tokens.WithLabelValues("small-m", "sim-a", "completion").Add(30)
	latency.WithLabelValues("small-m", "sim-a").Observe(0.25)
	srv := serve(t, newGateway(t, testConfig()), admin.Options{Metrics: reg})

	resp, body := do(t, "GET", srv.URL+"/admin/status.json")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	type counts struct {
		Requests []map[string]any   `json:"requests"`
		Tokens   map[string]float64 `json:"tokens"`
		Latency  *struct {
			Le     []float64 `json:"le"`
			Counts []float64 `json:"counts"`
			Count  float64   `json:"count"`
		} `json:"latency"`
	}
	var doc struct {
		Time   float64 `json:"time"`
		Models []struct {
			Model     string         `json:"model"`
			Tier      string         `json:"tier"`
			InFlight  int            `json:"in_flight"`
			Admission map[string]int `json:"admission"`
			Metrics   counts         `json:"metrics"`
			Deps      []struct {
				Deployment string          `json:"deployment"`
				Kind       string          `json:"kind"`
				Health     string          `json:"health"`
				Breaker    string          `json:"breaker"`
				InFlight   int             `json:"in_flight"`
				Engine     json.RawMessage `json:"engine"`
				Metrics    counts          `json:"metrics"`
			} `json:"deployments"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Time < 1e9 || len(doc.Models) != 2 {
		t.Fatalf("%s", body)
	}
	m := doc.Models[0]
	if m.Model != "small-m" || m.Tier != "small" || m.InFlight != 0 || m.Admission["limit"] < 1 || len(m.Deps) != 2 {
		t.Errorf("model %+v", m)
	}
	a := m.Deps[0]
	if a.Deployment != "sim-a" || a.Kind != "sim" || a.Health != "unchecked" || a.Breaker != "closed" {
		t.Errorf("deployment %+v", a)
	}
	if diff := cmp.Diff([]map[string]any{{"code": "200", "stream": "false", "count": 2.0}}, a.Metrics.Requests); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if a.Metrics.Tokens["completion"] != 30 || a.Metrics.Latency == nil || !cmp.Equal(a.Metrics.Latency.Counts, []float64{1, 1}) || a.Metrics.Latency.Count != 1 {
		t.Errorf("sim-a metrics %+v", a.Metrics)
	}
	if g := m.Deps[1]; g.Deployment != "gpu-1" || g.Metrics.Latency != nil || len(g.Metrics.Requests) != 0 || string(g.Engine) != "null" {
		t.Errorf("gpu-1 (no traffic, never scraped) %+v", g)
	}
	if m.Metrics.Tokens["completion"] != 30 || m.Metrics.Latency == nil {
		t.Errorf("model metrics %+v", m.Metrics)
	}
}
