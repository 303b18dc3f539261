package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/omnigate/omnigate/proto/omnigate/v1"

	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/config"
)

// limitedConfig is the default config with three keys: team-rpm (3
// requests and 100,000 tokens a minute), team-users (each user 1
// request a minute) and team-free (no limits).
func limitedConfig() *config.Config {
	cfg := config.Default()
	cfg.Auth.Keys = []config.APIKey{
		{Name: "team-rpm", Hash: auth.Hash("sk-rpm"), Limits: config.KeyLimits{RequestsPerMinute: 3, TokensPerMinute: 100000}},
		{Name: "team-users", Hash: auth.Hash("sk-users"), UserLimits: config.KeyLimits{RequestsPerMinute: 1}},
		{Name: "team-free", Hash: auth.Hash("sk-free")},
	}
	return cfg
}

// TestSDKRateLimits: a key's limits through the official SDK: OpenAI's
// x-ratelimit-* headers on every answer, the 429 decoded with its type
// and code, Retry-After, per-user limits, and a key without limits
// untouched.
func TestSDKRateLimits(t *testing.T) {
	gw, srv := newTestGateway(t, limitedConfig())
	client := func(key string) openai.Client {
		return openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	}
	ask := func(c openai.Client, user string) (*http.Response, error) {
		var resp *http.Response
		p := openai.ChatCompletionNewParams{Model: "small", MaxTokens: openai.Int(4),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
		if user != "" {
			p.User = openai.String(user)
		}
		_, err := c.Chat.Completions.New(context.Background(), p, option.WithResponseInto(&resp))
		return resp, err
	}
	rpm := client("sk-rpm")
	for i, want := range []string{"2", "1", "0"} {
		resp, err := ask(rpm, "")
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		h := resp.Header
		if h.Get("X-Ratelimit-Remaining-Requests") != want || h.Get("X-Ratelimit-Limit-Requests") != "3" ||
			h.Get("X-Ratelimit-Reset-Requests") == "" || h.Get("X-Ratelimit-Limit-Tokens") != "100000" || h.Get("X-Ratelimit-Remaining-Tokens") == "" {
			t.Errorf("request %d: headers %v, want %s requests remaining", i+1, h, want)
		}
	}
	_, err := ask(rpm, "")
	var ae *openai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 429 || ae.Code != "rate_limit_exceeded" || ae.Type != "rate_limit_error" {
		t.Fatalf("4th request: %v, want 429 rate_limit_exceeded", err)
	}
	if h := ae.Response.Header; h.Get("Retry-After") != "20" || h.Get("X-Ratelimit-Remaining-Requests") != "0" {
		t.Errorf("the 429's headers: %v; want Retry-After 20 and none remaining", h)
	}
	if !strings.Contains(ae.Message, "requests per minute (RPM) of key team-rpm: limit 3") {
		t.Errorf("the 429's message: %q", ae.Message)
	}

	users := client("sk-users")
	if _, err := ask(users, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := ask(users, "alice"); !errors.As(err, &ae) || ae.StatusCode != 429 || !strings.Contains(ae.Message, "user alice of key team-users") {
		t.Errorf("alice's second request: %v", err)
	}
	if _, err := ask(users, "bob"); err != nil {
		t.Errorf("bob, under the same key: %v", err)
	}

	free := client("sk-free")
	for range 5 {
		resp, err := ask(free, "")
		if err != nil {
			t.Fatal(err)
		}
		if v := resp.Header.Get("X-Ratelimit-Limit-Requests"); v != "" {
			t.Fatalf("a key without limits has rate-limit headers: %q", v)
		}
	}

	// A stream has the headers too.
	st := rpmStream(t, srv.URL, "sk-users")
	if st.StatusCode != 200 || st.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
		t.Errorf("a stream of user carol: %d, remaining %q", st.StatusCode, st.Header.Get("X-Ratelimit-Remaining-Requests"))
	}

	mfs := families(t, gw)
	if v, _ := value(mfs, "omnigate_key_limited_total", map[string]string{"key": "team-rpm", "limit": "requests_per_minute"}); v != 1 {
		t.Errorf("omnigate_key_limited_total{team-rpm} = %v, want 1", v)
	}
	if v, _ := value(mfs, "omnigate_key_requests_total", map[string]string{"key": "team-rpm", "code": "429"}); v != 1 {
		t.Errorf("the 429 is not in the key's requests: %v", v)
	}
}

func rpmStream(t *testing.T, base, key string) *http.Response {
	t.Helper()
	resp, _ := postH(t, base+"/v1/chat/completions", `{"model":"small","stream":true,"user":"carol","max_tokens":4,"messages":[{"role":"user","content":"x"}]}`,
		map[string]string{"Authorization": "Bearer " + key})
	return resp
}

// TestGRPCRateLimits: the same limits and headers over gRPC: metadata on
// the answer, RESOURCE_EXHAUSTED with retry-after when refused.
func TestGRPCRateLimits(t *testing.T) {
	cfg := limitedConfig()
	_, _, client, _ := grpcGateway(t, cfg)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer sk-rpm")
	req := &pb.ChatCompletionRequest{Model: "small", MaxTokens: proto.Int64(4), Messages: []*pb.ChatMessage{say("hi")}}
	for i, want := range []string{"2", "1", "0"} {
		var hdr metadata.MD
		if _, err := client.ChatCompletion(ctx, req, grpc.Header(&hdr)); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(hdr.Get("x-ratelimit-remaining-requests"), ","); got != want {
			t.Errorf("call %d: x-ratelimit-remaining-requests %q, want %s", i+1, got, want)
		}
	}
	for _, stream := range []bool{false, true} {
		var hdr metadata.MD
		var err error
		if stream {
			var st grpc.ServerStreamingClient[pb.ChatCompletionChunk]
			if st, err = client.StreamChatCompletion(ctx, req); err == nil {
				_, err = st.Recv()
				hdr, _ = st.Header()
			}
		} else {
			_, err = client.ChatCompletion(ctx, req, grpc.Header(&hdr))
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("stream %v, over the limit: %v, want RESOURCE_EXHAUSTED", stream, err)
		}
		if hdr.Get("retry-after") == nil || strings.Join(hdr.Get("x-ratelimit-remaining-requests"), ",") != "0" {
			t.Errorf("stream %v, over the limit: metadata %v", stream, hdr)
		}
	}
}

// TestTenantHeadersStayPut: what one client sends (its key, cookies,
// forwarding chain, OpenAI org and project) never reaches the engine,
// which gets only the deployment's own key and headers; and what the
// engine answers beyond the body (cookies, its own rate-limit headers for
// the operator's account) never reaches the client.
func TestTenantHeadersStayPut(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Set-Cookie", "engine-session=secret")
		w.Header().Set("X-Ratelimit-Remaining-Requests", "9999")
		w.Header().Set("Openai-Organization", "operator-org")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer up.Close()
	t.Setenv("ENGINE_KEY", "engine-secret")
	cfg := &config.Config{
		Models: []config.Model{{Name: "m", Deployments: []config.Deployment{{Name: "up", Kind: "openai", URL: up.URL + "/v1",
			APIKeyEnv: "ENGINE_KEY", Headers: map[string]string{"X-Engine-Pool": "a"}}}}},
		Auth: config.Auth{Keys: []config.APIKey{{Name: "tenant-a", Hash: auth.Hash("sk-tenant-a"), Limits: config.KeyLimits{RequestsPerMinute: 100}}}},
	}
	_, srv := newTestGateway(t, cfg)
	client := map[string]string{
		"Authorization": "Bearer sk-tenant-a", "Cookie": "tenant-session=a", "X-Forwarded-For": "10.1.2.3",
		"Forwarded": "for=10.1.2.3", "Openai-Organization": "org-tenant-a", "Openai-Project": "proj-a",
		"X-Api-Key": "sk-other", "Proxy-Authorization": "Basic eA==", "X-Omnigate-Key": "someone-else",
	}
	for _, stream := range []bool{false, true} {
		body := `{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"x"}]}`
		if stream {
			body = `{"model":"m","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"x"}]}`
		}
		resp, b := postH(t, srv.URL+"/v1/chat/completions", body, client)
		if resp.StatusCode != 200 && !stream {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		for _, h := range []string{"Set-Cookie", "Openai-Organization"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("stream %v: the engine's %s reached the client: %q", stream, h, v)
			}
		}
		if v := resp.Header.Get("X-Ratelimit-Remaining-Requests"); !stream && v != "99" {
			t.Errorf("x-ratelimit-remaining-requests %q: want the gateway's own (99), not the engine's", v)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("the engine saw no request")
	}
	for _, h := range seen {
		if got := h.Get("Authorization"); got != "Bearer engine-secret" {
			t.Errorf("the engine got Authorization %q, want the deployment's own key", got)
		}
		if h.Get("X-Engine-Pool") != "a" {
			t.Errorf("the deployment's static header is missing: %v", h)
		}
		for name := range client {
			if name != "Authorization" && h.Get(name) != "" {
				t.Errorf("the client's %s reached the engine: %q", name, h.Get(name))
			}
		}
	}
}

// TestJobsSpendBudgetsNotRates: a key's background jobs are not held to
// its per-minute rate (a batch would trip it at once) but spend its
// token budget: once spent, a job ends 429 insufficient_quota, at its
// first run.
func TestJobsSpendBudgetsNotRates(t *testing.T) {
	cfg := config.Default()
	cfg.Jobs.Dir = t.TempDir()
	cfg.Auth.Keys = []config.APIKey{{Name: "team-jobs", Hash: auth.Hash("sk-jobs"), Limits: config.KeyLimits{RequestsPerMinute: 1, TokensPerDay: 80}}}
	gw, srv := newTestGateway(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	if err := gw.startJobs(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); gw.closeJobs(5 * time.Second) }()
	key := map[string]string{"Authorization": "Bearer sk-jobs"}
	body := `{"model":"small","max_tokens":8,"messages":[{"role":"user","content":"x"}]}`
	if resp, b := postH(t, srv.URL+"/v1/chat/completions", body, key); resp.StatusCode != 200 {
		t.Fatalf("the first request: %d %s", resp.StatusCode, b)
	}
	if resp, _ := postH(t, srv.URL+"/v1/chat/completions", body, key); resp.StatusCode != 429 {
		t.Fatalf("the second request within the minute: %d, want 429", resp.StatusCode)
	}
	async := map[string]string{"Authorization": "Bearer sk-jobs", "X-Omnigate-Async": "true"}
	succeeded := 0
	for i := range 20 {
		resp, b := postH(t, srv.URL+"/v1/chat/completions", body, async)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("job %d: %d %s", i, resp.StatusCode, b)
		}
		var j jobView
		json.Unmarshal(b, &j)
		for deadline := time.Now().Add(20 * time.Second); j.Status != "succeeded" && j.Status != "failed" && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/jobs/"+j.ID, nil)
			req.Header.Set("Authorization", "Bearer sk-jobs")
			_, b := doReq(t, req)
			json.Unmarshal(b, &j)
		}
		if j.Status == "succeeded" {
			succeeded++
			continue
		}
		if j.Response == nil || j.Response.StatusCode != 429 || !strings.Contains(string(j.Response.Body), "insufficient_quota") {
			t.Fatalf("job %d ended %s: %+v", i, j.Status, j.Response)
		}
		if j.Attempts != 1 {
			t.Errorf("the job refused by a spent budget ran %d times; want once (a retry in seconds is refused the same)", j.Attempts)
		}
		break
	}
	if succeeded == 0 || succeeded == 20 {
		t.Errorf("%d jobs succeeded past the spent rate before the budget stopped them; want some, then a refusal", succeeded)
	}
}
