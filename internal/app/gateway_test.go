package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
)

// startWithUpstream serves a gateway whose one model, "m", is deployed on the
// given upstream handler (a real HTTP server).
func startWithUpstream(t *testing.T, upstream http.Handler, edit func(*config.Config)) *httptest.Server {
	t.Helper()
	_, srv := newWithUpstream(t, upstream, edit)
	return srv
}

// newWithUpstream is startWithUpstream that also hands back the gateway.
func newWithUpstream(t *testing.T, upstream http.Handler, edit func(*config.Config)) (*Gateway, *httptest.Server) {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	cfg := &config.Config{Models: []config.Model{{
		Name: "m", Aliases: []string{"m-alias"},
		Capabilities: config.Capabilities{Input: []string{"text", "image"}},
		Deployments:  []config.Deployment{{Name: "up", Kind: "openai", URL: up.URL + "/v1", UpstreamModel: "upstream/m"}},
	}}}
	if edit != nil {
		edit(cfg)
	}
	return newTestGateway(t, cfg)
}

func post(t *testing.T, url, ct, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	if ct != "" {
		hdr = append([]string{"Content-Type", ct}, hdr...)
	}
	return send(t, "POST", url, body, hdr...)
}

// TestForwardsOriginalBytes: unknown vendor fields reach the upstream
// untouched, the model is spliced to the upstream name, X-Request-Id is
// forwarded, and the answer's model reads the public name.
func TestForwardsOriginalBytes(t *testing.T) {
	var got atomic.Value
	var gotID atomic.Value
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b))
		gotID.Store(r.Header.Get("X-Request-Id"))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"upstream/m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	})
	srv := startWithUpstream(t, up, nil)
	body := `{"model":"m-alias","messages":[{"role":"user","content":"hi"}],"top_k":20,"repetition_penalty":1.05,"chat_template_kwargs":{"enable_thinking":false}}`
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", body, "X-Request-Id", "client-id-1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	want := strings.Replace(body, `"m-alias"`, `"upstream/m"`, 1)
	if diff := cmp.Diff(want, got.Load()); diff != "" {
		t.Errorf("upstream body (-want +got):\n%s", diff)
	}
	if gotID.Load() != "client-id-1" || resp.Header.Get("X-Request-Id") != "client-id-1" {
		t.Errorf("request id: upstream %q, echoed %q", gotID.Load(), resp.Header.Get("X-Request-Id"))
	}
	var out struct{ Model string }
	json.Unmarshal(b, &out)
	if out.Model != "m" {
		t.Errorf("response model %q, want the public name m", out.Model)
	}
	// Without a client id, one is generated and sent both ways.
	resp, _ = post(t, srv.URL+"/v1/chat/completions", "application/json", body)
	if id := resp.Header.Get("X-Request-Id"); id == "" || id != gotID.Load() {
		t.Errorf("generated id: echoed %q, upstream %q", id, gotID.Load())
	}
}

// TestStreamFlushesEachEvent: the client reads the first event while the
// upstream is still holding the second back.
func TestStreamFlushesEachEvent(t *testing.T) {
	release := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"model\":\"upstream/m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: {\"model\":\"upstream/m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\ndata: [DONE]\n\n")
	})
	srv := startWithUpstream(t, up, nil)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, `"content":"a"`) || !strings.Contains(line, `"model":"m"`) {
		t.Errorf("first event %q", line)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), `"content":"b"`) || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Errorf("rest of stream %q", rest)
	}
}

// TestBadInput: every malformed request gets the OpenAI error shape with the
// right status and parameter, and never reaches the upstream.
func TestBadInput(t *testing.T) {
	var calls atomic.Int32
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1); w.WriteHeader(500) })
	srv := startWithUpstream(t, up, func(c *config.Config) {
		c.Server.MaxBodyBytes = 1 << 10
		two := 2
		c.Models[0].Limits.Media.Image = &two
		c.Models[0].Limits.MaxTokens = 100
	})
	big := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}`
	img := `{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}`
	tests := []struct {
		name, ct, body string
		status         int
		typ, param     string
	}{
		{"malformed json", "application/json", `{"model":"m",`, 400, "invalid_request_error", ""},
		{"not an object", "application/json", `[1,2]`, 400, "invalid_request_error", ""},
		{"model wrong type", "application/json", `{"model":7,"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "model"},
		{"messages missing", "application/json", `{"model":"m"}`, 400, "invalid_request_error", "messages"},
		{"messages empty", "application/json", `{"model":"m","messages":[]}`, 400, "invalid_request_error", "messages"},
		{"bad role", "application/json", `{"model":"m","messages":[{"role":"robot","content":"hi"}]}`, 400, "invalid_request_error", "messages[0].role"},
		{"temperature wrong type", "application/json", `{"model":"m","temperature":"hot","messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "temperature"},
		{"temperature out of range", "application/json", `{"model":"m","temperature":2.5,"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "temperature"},
		{"max_tokens over limit", "application/json", `{"model":"m","max_tokens":101,"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "max_tokens"},
		{"max_tokens zero", "application/json", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "max_tokens"},
		{"unknown model", "application/json", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`, 404, "not_found_error", "model"},
		{"wrong content type", "text/plain", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 415, "invalid_request_error", ""},
		{"body too large", "application/json", big, 413, "invalid_request_error", ""},
		{"bad image part", "application/json", `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"image_url","image_url":{"url":5}}]}]}`, 400, "invalid_request_error", "messages[1].content[0].image_url.url"},
		{"unknown part type", "application/json", `{"model":"m","messages":[{"role":"user","content":[{"type":"hologram"}]}]}`, 400, "invalid_request_error", "messages[0].content[0].type"},
		{"too many images", "application/json", `{"model":"m","messages":[{"role":"user","content":[` + img + `,` + img + `,` + img + `]}]}`, 400, "invalid_request_error", "messages"},
		{"audio not accepted", "application/json", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`, 400, "invalid_request_error", ""},
		{"audio output not available", "application/json", `{"model":"m","modalities":["text","audio"],"audio":{"voice":"Chelsie","format":"wav"},"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "modalities"},
		{"stream wrong type", "application/json", `{"model":"m","stream":"yes","messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, srv.URL+"/v1/chat/completions", tc.ct, tc.body)
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
				} `json:"error"`
			}
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("body is not JSON: %q", b)
			}
			param := ""
			if e.Error.Param != nil {
				param = *e.Error.Param
			}
			// "audio not accepted" names the part; accept any param that starts with messages.
			if tc.param == "" && tc.name == "audio not accepted" {
				if !strings.HasPrefix(param, "messages") {
					t.Errorf("param %q should name the audio part", param)
				}
				param = ""
			}
			if resp.StatusCode != tc.status || e.Error.Type != tc.typ || (tc.name != "audio not accepted" && tc.name != "too many images" && param != tc.param) || e.Error.Message == "" {
				t.Errorf("got %d %q param %q (%s); want %d %q %q", resp.StatusCode, e.Error.Type, param, e.Error.Message, tc.status, tc.typ, tc.param)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("upstream called %d times for bad input", n)
	}
}

// TestUpstreamErrorNormalised: an engine's own error shape reaches the client
// as the OpenAI shape with the upstream's status.
func TestUpstreamErrorNormalised(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens.","type":"BadRequestError","param":null,"code":400}`)
	})
	off := false // the stand-in answers every path 400, /health too
	srv := startWithUpstream(t, up, func(c *config.Config) {
		c.Models[0].Deployments[0].Dialect = "vllm-legacy"
		c.Models[0].Deployments[0].HealthCheck.Enabled = &off
	})
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 400 || !bytes.Contains(b, []byte(`"type":"invalid_request_error"`)) || !bytes.Contains(b, []byte(`maximum context length`)) {
		t.Errorf("got %d %s", resp.StatusCode, b)
	}
}

// TestClientDisconnectCancelsUpstream: when the client goes away mid-stream,
// the upstream request is cancelled at once.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	up, cancelled := heldStream()
	srv := startWithUpstream(t, up, nil)
	leaveMidStream(t, srv.URL, "")
	waitClosed(t, cancelled)
}

// heldStream is an upstream that sends one event, then holds the stream
// open until its request is cancelled, which closes the channel.
func heldStream() (http.Handler, chan struct{}) {
	cancelled := make(chan struct{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(cancelled)
	}), cancelled
}

// leaveMidStream opens a stream at the gateway at base, reads its first
// line and goes away.
func leaveMidStream(t *testing.T, base, requestID string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(resp.Body).ReadString('\n')
	cancel()
	resp.Body.Close()
}

// waitClosed fails unless the upstream request was cancelled soon.
func waitClosed(t *testing.T, cancelled chan struct{}) {
	t.Helper()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream request was not cancelled after the client went away")
	}
}

// TestMetrics: model_latency_seconds per model version and deployment,
// with the documented buckets, counting the one request served.
func TestMetrics(t *testing.T) {
	srv := startDefault(t)
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"small","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`)
	r, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{
		`model_latency_seconds_bucket{deployment="sim-7b",model_version="qwen3-omni-7b",le="0.1"}`,
		`model_latency_seconds_bucket{deployment="sim-7b",model_version="qwen3-omni-7b",le="0.5"}`,
		`model_latency_seconds_bucket{deployment="sim-7b",model_version="qwen3-omni-7b",le="1"}`,
		`model_latency_seconds_bucket{deployment="sim-7b",model_version="qwen3-omni-7b",le="2"}`,
		`model_latency_seconds_bucket{deployment="sim-7b",model_version="qwen3-omni-7b",le="5"} 1`,
		`model_latency_seconds_bucket{deployment="sim-7b",model_version="qwen3-omni-7b",le="+Inf"} 1`,
		`model_latency_seconds_count{deployment="sim-7b",model_version="qwen3-omni-7b"} 1`,
		`omnigate_requests_total{code="200",deployment="sim-7b",model="qwen3-omni-7b",stream="false"} 1`,
		`omnigate_requests_total{code="404",deployment="",model="",stream="false"} 1`,
	} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The answer's usage is counted, from the relayed bytes.
	var usage struct {
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.Unmarshal(b, &usage); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf(`omnigate_tokens_total{deployment="sim-7b",kind="prompt",model="qwen3-omni-7b"} %d`+"\n", usage.Usage.PromptTokens),
		fmt.Sprintf(`omnigate_tokens_total{deployment="sim-7b",kind="completion",model="qwen3-omni-7b"} %d`+"\n", usage.Usage.CompletionTokens),
	} {
		if usage.Usage.CompletionTokens == 0 || !bytes.Contains(m, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
