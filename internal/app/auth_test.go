package app

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/config"
)

// keyedConfig is the default config with two keys: one for every model,
// one for the small tier only.
func keyedConfig() *config.Config {
	cfg := config.Default()
	cfg.Auth.Keys = []config.APIKey{
		{Name: "team-all", Hash: auth.Hash("sk-all")},
		{Name: "team-small", Hash: auth.Hash("sk-small"), Models: []string{"small"}},
	}
	return cfg
}

// TestSDKAuth: API keys through the official SDK, errors decoded with
// their type and code.
func TestSDKAuth(t *testing.T) {
	cfg := keyedConfig()
	cfg.Jobs.Dir = t.TempDir()
	gw, srv := newTestGateway(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	if err := gw.startJobs(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); gw.closeJobs(5 * time.Second) }()
	client := func(key string) openai.Client {
		return openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	}
	ask := func(c openai.Client, model string) error {
		_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: model, MaxTokens: openai.Int(4),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		return err
	}
	for _, tc := range []struct {
		name, key, model string
		status           int
		code             string
	}{
		{"good key", "sk-all", "large", 200, ""},
		{"small key, small", "sk-small", "qwen3-omni-7b", 200, ""},
		{"small key, large", "sk-small", "large", 403, "model_not_allowed"},
		{"wrong key", "sk-wrong", "small", 401, "invalid_api_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ask(client(tc.key), tc.model)
			var ae *openai.Error
			switch {
			case tc.status == 200 && err != nil:
				t.Fatal(err)
			case tc.status != 200 && (!errors.As(err, &ae) || ae.StatusCode != tc.status || ae.Code != tc.code || ae.Type == ""):
				t.Errorf("error %v (type %q, code %q), want %d %s", err, ae.Type, ae.Code, tc.status, tc.code)
			}
		})
	}
	// The model list and the job endpoints ask for the key too.
	wrong, good := client("sk-wrong"), client("sk-all")
	if _, err := wrong.Models.List(context.Background()); err == nil {
		t.Error("models listed for a wrong key")
	}
	if _, err := good.Models.List(context.Background()); err != nil {
		t.Errorf("models for a good key: %v", err)
	}
	resp, b := postH(t, srv.URL+"/v1/chat/completions", `{"model":"small","max_tokens":4,"messages":[{"role":"user","content":"x"}]}`,
		map[string]string{"X-Omnigate-Async": "true", "Authorization": "Bearer sk-wrong"})
	if resp.StatusCode != 401 {
		t.Errorf("a job for a wrong key: %d %s", resp.StatusCode, b)
	}
	// A job runs as its key: the small key's job for the large tier is
	// refused at submission; its job for the small tier runs.
	resp, _ = postH(t, srv.URL+"/v1/chat/completions", `{"model":"large","max_tokens":4,"messages":[{"role":"user","content":"x"}]}`,
		map[string]string{"X-Omnigate-Async": "true", "Authorization": "Bearer sk-small"})
	if resp.StatusCode != 403 {
		t.Errorf("the small key's job for the large tier: %d", resp.StatusCode)
	}
	resp, b = postH(t, srv.URL+"/v1/chat/completions", `{"model":"small","max_tokens":4,"messages":[{"role":"user","content":"x"}]}`,
		map[string]string{"X-Omnigate-Async": "true", "Authorization": "Bearer sk-small", "X-Omnigate-Key": "team-all"})
	if resp.StatusCode != 202 {
		t.Fatalf("the small key's job: %d %s", resp.StatusCode, b)
	}
	loc := resp.Header.Get("Location")
	var status string
	for deadline := time.Now().Add(20 * time.Second); status != "succeeded" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+loc, nil)
		req.Header.Set("Authorization", "Bearer sk-small")
		_, b := doReq(t, req)
		if bytes.Contains(b, []byte(`"status":"succeeded"`)) {
			status = "succeeded"
		}
	}
	if status != "succeeded" {
		t.Errorf("the small key's job did not succeed")
	}
	mfs := families(t, gw)
	if v, _ := value(mfs, "omnigate_requests_total", map[string]string{"model": "qwen3-omni-30b", "code": "403"}); v < 1 {
		t.Errorf("403s not counted: %v", v)
	}
	// Usage by key: the 403 and the answered requests, and their tokens.
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"omnigate_key_requests_total", map[string]string{"key": "team-small", "model": "qwen3-omni-30b", "code": "403"}},
		{"omnigate_key_requests_total", map[string]string{"key": "team-all", "model": "qwen3-omni-30b", "code": "200"}},
		{"omnigate_key_tokens_total", map[string]string{"key": "team-small", "model": "qwen3-omni-7b", "kind": "completion"}},
	} {
		if v, _ := value(mfs, c.name, c.labels); v < 1 {
			t.Errorf("%s%v = %v", c.name, c.labels, v)
		}
	}
}

func TestCheckOpen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*config.Config)
		fails string
	}{
		{"loopback", func(c *config.Config) {}, ""},
		{"beyond loopback, no keys", func(c *config.Config) { c.Server.Addr = "0.0.0.0:8080" }, "server.addr"},
		{"gRPC beyond loopback", func(c *config.Config) { c.Server.GRPCAddr = ":50051" }, "server.grpc_addr"},
		{"with keys", func(c *config.Config) { c.Server.Addr = "0.0.0.0:8080"; c.Auth = keyedConfig().Auth }, ""},
		{"with a key store, empty or not", func(c *config.Config) {
			c.Server.Addr = "0.0.0.0:8080"
			c.Auth.Store.Kind = config.KeyStorePostgres
		}, ""},
		{"open on purpose", func(c *config.Config) { c.Server.Addr = "0.0.0.0:8080"; c.Auth.Open = true }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.ApplyDefaults()
			tc.mod(cfg)
			err := checkOpen(cfg)
			if (err == nil) != (tc.fails == "") || (err != nil && !strings.Contains(err.Error(), tc.fails)) {
				t.Errorf("checkOpen: %v, want an error naming %q", err, tc.fails)
			}
		})
	}
}

func TestKeysCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := keys([]string{"hash"}, strings.NewReader("sk-all\n"), &out, &errOut); err != nil || strings.TrimSpace(out.String()) != auth.Hash("sk-all") {
		t.Errorf("hash from stdin: %q %v", out.String(), err)
	}
	out.Reset()
	if err := keys([]string{"new"}, nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || auth.Hash(strings.TrimPrefix(lines[0], "key:  ")) != strings.TrimPrefix(lines[1], "hash: ") {
		t.Errorf("new: %q", out.String())
	}
}
