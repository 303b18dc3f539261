package app

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"go.uber.org/goleak"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
)

// simEngine is a simulator engine's handler, to serve as an upstream.
func simEngine(t *testing.T, profile, model string) http.Handler {
	t.Helper()
	p, err := sim.LoadProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	eng := sim.New(p, sim.Options{ModelName: model})
	t.Cleanup(eng.Close)
	return eng.Handler()
}

// TestStreamOnlyUpstream: a deployment that only streams (as Model Studio's
// Omni models) still gives a normal non-streaming answer, audio included.
func TestStreamOnlyUpstream(t *testing.T) {
	var streamed atomic.Bool
	eng := simEngine(t, "instant", "qwen3-omni-flash")
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(b), `"stream":true`) {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":{"message":"only stream:true is supported","type":"invalid_request_error","param":null,"code":"InvalidParameter"}}`)
			return
		}
		streamed.Store(true)
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		eng.ServeHTTP(w, r)
	})
	srv := startWithUpstream(t, up, func(c *config.Config) {
		d := &c.Models[0].Deployments[0]
		d.StreamOnly, d.AudioOutput, d.UpstreamModel, d.Dialect = true, true, "qwen3-omni-flash", "modelstudio"
		c.Models[0].Capabilities.Output = []string{"text", "audio"}
	})
	c := sdkClient(srv)
	res, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:      "m",
		Messages:   []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something.")},
		Modalities: []string{"text", "audio"},
		Audio:      openai.ChatCompletionAudioParam{Voice: openai.ChatCompletionAudioParamVoiceUnion{OfString: openai.String("Cherry")}, Format: "wav"},
		MaxTokens:  openai.Int(12),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !streamed.Load() {
		t.Fatal("upstream was not asked to stream")
	}
	msg := res.Choices[0].Message
	if msg.Content == "" && msg.Audio.Transcript == "" {
		t.Errorf("no text in aggregated answer: %+v", msg)
	}
	wav, err := base64.StdEncoding.DecodeString(msg.Audio.Data)
	if err != nil || len(wav) < 44 || string(wav[:4]) != "RIFF" || string(wav[8:12]) != "WAVE" {
		t.Errorf("aggregated audio is not a WAV file (%d bytes, err %v)", len(wav), err)
	}
	if res.Model != "m" || res.Usage.CompletionTokens == 0 {
		t.Errorf("model %q usage %+v", res.Model, res.Usage)
	}
}

// TestAudioOutputDefaultTiers: both default tiers answer with audio, whole and streamed.
func TestAudioOutputDefaultTiers(t *testing.T) {
	srv := startDefault(t)
	body := `{"model":"small","max_tokens":6,"modalities":["text","audio"],"audio":{"voice":"Chelsie","format":"wav"},"messages":[{"role":"user","content":"hi"}]}`
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", body)
	var out struct {
		Choices []struct {
			Message struct {
				Audio struct{ Data, Transcript string }
			}
		}
	}
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != 200 || len(out.Choices) != 1 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if wav, _ := base64.StdEncoding.DecodeString(out.Choices[0].Message.Audio.Data); len(wav) < 44 || string(wav[:4]) != "RIFF" {
		t.Errorf("no WAV in message.audio: %.200s", b)
	}
	resp, b = post(t, srv.URL+"/v1/chat/completions", "application/json", strings.Replace(body, `"max_tokens"`, `"stream":true,"max_tokens"`, 1))
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"audio":{`) {
		t.Errorf("stream lacks delta.audio: %d %.300s", resp.StatusCode, b)
	}
}

// TestClampPolicy: with on_violation clamp, the clamped value is forwarded and
// the response says so.
func TestClampPolicy(t *testing.T) {
	var got atomic.Value
	up := recordingUpstream(&got)
	srv := startWithUpstream(t, up, func(c *config.Config) {
		c.Models[0].Limits.MaxTokens = 100
		c.Models[0].Limits.OnViolation = "clamp"
	})
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"m","max_tokens":5000,"temperature":9,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var sent struct {
		Model       string
		MaxTokens   int     `json:"max_tokens"`
		Temperature float64 `json:"temperature"`
	}
	json.Unmarshal([]byte(got.Load().(string)), &sent)
	if sent.MaxTokens != 100 || sent.Temperature != 2 || sent.Model != "upstream/m" {
		t.Errorf("upstream got %+v", sent)
	}
	if h := resp.Header.Get("X-Omnigate-Clamped"); !strings.Contains(h, "max_tokens=100") || !strings.Contains(h, "temperature=2") {
		t.Errorf("X-Omnigate-Clamped %q", h)
	}
}

// TestEndpointsByCapability: completions and embeddings are forwarded only to
// models whose deployments declare them.
func TestEndpointsByCapability(t *testing.T) {
	srv := startWithUpstream(t, simEngine(t, "instant", "m"), func(c *config.Config) {
		c.Models[0].Deployments[0].UpstreamModel = "m"
		c.Models[0].Capabilities.Endpoints = []string{"chat", "embeddings"}
	})
	resp, b := post(t, srv.URL+"/v1/embeddings", "application/json", `{"model":"m","input":["a","b"]}`)
	var emb struct {
		Object string
		Data   []struct{ Embedding []float64 }
	}
	json.Unmarshal(b, &emb)
	if resp.StatusCode != 200 || emb.Object != "list" || len(emb.Data) != 2 || len(emb.Data[0].Embedding) == 0 {
		t.Errorf("embeddings: %d %.200s", resp.StatusCode, b)
	}
	resp, b = post(t, srv.URL+"/v1/completions", "application/json", `{"model":"m","prompt":"hi"}`)
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"param":"model"`) {
		t.Errorf("completions on a model without it: %d %s", resp.StatusCode, b)
	}
}

// TestFallbackOnUnavailable: a 503 from the requested model's only replica
// sends the request to the next model in its chain.
func TestFallbackOnUnavailable(t *testing.T) {
	var calls atomic.Int32
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(503)
		io.WriteString(w, `{"error":{"message":"overloaded","type":"ServiceUnavailableError","param":null,"code":503}}`)
	})
	srv := startWithUpstream(t, up, func(c *config.Config) {
		c.Models = append(c.Models, config.Model{Name: "backup",
			Deployments: []config.Deployment{{Name: "sim", Kind: "sim", Profile: "instant"}}})
		c.Routing.Fallbacks = map[string][]config.Fallback{"m": {{Model: "backup"}}}
	})
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"model":"backup"`) || calls.Load() != 1 {
		t.Errorf("%d after %d upstream calls: %s", resp.StatusCode, calls.Load(), b)
	}
	r, _ := http.Get(srv.URL + "/metrics")
	m, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(m), `omnigate_fallbacks_total{from="m",to="backup"} 1`) {
		t.Error("fallback not counted")
	}
}

// TestNoGoroutineLeakOnDisconnect: clients that go away mid-stream leave no
// goroutine behind in the gateway or the simulator.
func TestNoGoroutineLeakOnDisconnect(t *testing.T) {
	srv := startDefault(t)
	before := goleak.IgnoreCurrent()
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	for range 10 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"large","stream":true,"messages":[{"role":"user","content":"a long story"}]}`))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		bufio.NewReader(resp.Body).ReadString('\n')
		cancel()
		resp.Body.Close()
	}
	tr.CloseIdleConnections()
	srv.CloseClientConnections()
	goleak.VerifyNone(t, before)
}

// TestDefaultMaxTokens: a model's max_tokens ceiling is sent when the client
// gives none, and the model name is still spliced correctly.
func TestDefaultMaxTokens(t *testing.T) {
	var got atomic.Value
	up := recordingUpstream(&got)
	srv := startWithUpstream(t, up, func(c *config.Config) { c.Models[0].Limits.MaxTokens = 4096 })
	for _, tc := range []struct{ body, want string }{
		{`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, `{"max_tokens":4096,"model":"upstream/m","messages":[{"role":"user","content":"hi"}]}`},
		{` {"messages":[{"role":"user","content":"hi"}], "model":"m"}`, ` {"max_tokens":4096,"messages":[{"role":"user","content":"hi"}], "model":"upstream/m"}`},
		{`{"model":"m","max_completion_tokens":7,"messages":[{"role":"user","content":"hi"}]}`, `{"model":"upstream/m","max_completion_tokens":7,"messages":[{"role":"user","content":"hi"}]}`},
	} {
		resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", tc.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if g := got.Load().(string); g != tc.want {
			t.Errorf("upstream got %s\nwant %s", g, tc.want)
		}
	}
}

// recordingUpstream answers every chat request with an empty completion and
// stores the last request body it got in got.
func recordingUpstream(got *atomic.Value) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"upstream/m","choices":[]}`)
	})
}

// TestUpstreamEarlyAnswer: an upstream that refuses a large request before
// reading it (413, then it closes) has its answer reach the client as an
// OpenAI error, once: not a 502 for the broken write, not a retry.
func TestUpstreamEarlyAnswer(t *testing.T) {
	var calls atomic.Int32
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, `{"error":{"message":"request body over the engine's 1 MiB limit","type":"invalid_request_error","param":null,"code":null}}`)
	})
	srv := startWithUpstream(t, up, nil)
	// Well past what the sockets buffer, so the gateway is still writing
	// when the upstream closes.
	body := `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,` +
		strings.Repeat("AAAA", 6<<20) + `"}}]}]}`
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "1 MiB limit") {
		t.Fatalf("%d %s, want the upstream's 413", resp.StatusCode, b)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("upstream called %d times, want 1", n)
	}
}

// writeCounter is a ResponseWriter that counts the writes of the body.
type writeCounter struct {
	*httptest.ResponseRecorder
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	return w.ResponseRecorder.Write(p)
}

// TestWholeBodyWrittenOnce: a completion of known length that reaches the
// gateway in pieces goes to the client in one write, not one per piece.
func TestWholeBodyWrittenOnce(t *testing.T) {
	body := `{"id":"x","object":"chat.completion","created":1,"model":"upstream/m","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("word ", 2400) + `"},"finish_reason":"stop"}]}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		for i := 0; i < len(body); i += 5000 { // three pieces, each on the wire before the next
			w.Write([]byte(body[i:min(i+5000, len(body))]))
			w.(http.Flusher).Flush()
			time.Sleep(5 * time.Millisecond)
		}
	}))
	defer up.Close()
	cfg := &config.Config{Models: []config.Model{{Name: "m",
		Deployments: []config.Deployment{{Name: "up", Kind: "openai", URL: up.URL + "/v1", UpstreamModel: "upstream/m"}}}}}
	cfg.ApplyDefaults()
	gw, err := NewGateway(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	for range 3 { // also over a reused upstream connection
		w := &writeCounter{ResponseRecorder: httptest.NewRecorder()}
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Content-Type", "application/json")
		gw.ServeHTTP(w, req)
		if w.Code != 200 || w.Body.String() != strings.Replace(body, "upstream/m", "m", 1) {
			t.Fatalf("%d, %d bytes: %.200s", w.Code, w.Body.Len(), w.Body.String())
		}
		if w.writes != 1 {
			t.Errorf("body written in %d writes, want 1", w.writes)
		}
	}
}

// TestNonStreamingBodies: answers up to 32 KiB are sent whole with their
// length, larger ones as they come; one cut short before the gateway has
// written anything reaches the client as a clear 502, and one cut later
// aborts the connection rather than look complete.
func TestNonStreamingBodies(t *testing.T) {
	answer := func(n int) string {
		return `{"id":"x","object":"chat.completion","created":1,"model":"upstream/m","choices":[{"index":0,"message":{"role":"assistant","content":"` +
			strings.Repeat("a", n) + `"},"finish_reason":"stop"}]}`
	}
	small, big := answer(100), answer(100<<10)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		q := string(b) // the user's message says what to do
		body := small
		if strings.Contains(q, "big") {
			body = big
		}
		send := len(body)
		switch {
		case strings.Contains(q, "cut early"):
			send = 50
		case strings.Contains(q, "cut late"):
			send = 60 << 10
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write([]byte(body[:send]))
		if send < len(body) {
			w.(http.Flusher).Flush()
			if send > 32<<10 {
				// Past what the gateway reads before it answers: let it
				// read that and start relaying, so the cut comes late.
				time.Sleep(100 * time.Millisecond)
			}
			panic(http.ErrAbortHandler) // the engine dies mid-answer
		}
	})
	// One attempt each: a retried cut would open the only breaker.
	srv := startWithUpstream(t, up, func(c *config.Config) { c.Models[0].Retry.Attempts = 1 })
	ask := func(msg string) (*http.Response, string, error) {
		resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"`+msg+`"}]}`))
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	public := func(s string) string { return strings.Replace(s, `"upstream/m"`, `"m"`, 1) }
	for _, tc := range []struct{ msg, want string }{{"hi", public(small)}, {"big", public(big)}} {
		resp, b, err := ask(tc.msg)
		if err != nil {
			t.Fatalf("%s: %v", tc.msg, err)
		}
		if resp.StatusCode != 200 || b != tc.want {
			t.Fatalf("%s: %s, %d bytes, want 200 and %d", tc.msg, resp.Status, len(b), len(tc.want))
		}
		if cl := resp.ContentLength; tc.msg == "hi" && cl != int64(len(tc.want)) {
			t.Errorf("small answer: Content-Length %d, want %d (rewritten model, length known once read)", cl, len(tc.want))
		}
	}
	if resp, b, err := ask("cut early"); err != nil {
		t.Errorf("cut before the gateway wrote anything: %v, want a 502 error body", err)
	} else if resp.StatusCode != http.StatusBadGateway || !strings.Contains(b, `"code":"upstream_unavailable"`) {
		t.Errorf("cut before the gateway wrote anything: %s %s, want a 502 error body", resp.Status, b)
	}
	if _, b, err := ask("big, cut late"); err == nil {
		t.Errorf("a big answer cut after its first bytes went out read as complete (%d bytes: %.200s)", len(b), b)
	}
}

// TestNoDeploymentRetryAfter: once every replica is marked down, the 503
// says in Retry-After when the first comes back.
func TestNoDeploymentRetryAfter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() // nothing listens here once closed
	ln.Close()
	cfg := &config.Config{Models: []config.Model{{Name: "m",
		Deployments: []config.Deployment{{Name: "dead", Kind: "openai", URL: dead + "/v1"}}}}}
	srv := startGateway(t, cfg)
	// The failures that open its breaker: three attempts, which the first
	// request's retries make by themselves.
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Retry-After") != "" {
		t.Fatalf("first request: %d Retry-After %q %s, want 502 without Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	resp, b = post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "no_deployment") || ra < 1 || ra > 5 {
		t.Fatalf("%d Retry-After %q %s, want 503 no_deployment and 1-5 s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}

// TestUpstreamRetryAfter: an engine's 429 with Retry-After reaches the
// client with the header, so its SDK waits as the engine asked.
func TestUpstreamRetryAfter(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":null}}`)
	})
	srv := startWithUpstream(t, up, nil)
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("%d Retry-After %q %s, want 429 with 7", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}
