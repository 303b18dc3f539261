package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
)

// accessGateway serves models "m" (a dead deployment first, then up) and
// "f", which falls back to "m" when its only deployment is down, with a
// JSON log in the returned buffer.
func accessGateway(t *testing.T, up http.Handler, lc config.Logging) (*httptest.Server, *syncBuffer) {
	t.Helper()
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String() + "/v1"
	dead.Close()
	cfg := &config.Config{Logging: lc, Models: []config.Model{
		{Name: "m", Balance: config.Balance{Strategy: "round_robin"}, Deployments: []config.Deployment{
			{Name: "dead", Kind: "openai", URL: deadURL}, {Name: "up", Kind: "openai", URL: upSrv.URL + "/v1"}}},
		{Name: "f", Deployments: []config.Deployment{{Name: "f-dead", Kind: "openai", URL: deadURL}}},
	}, Routing: config.Routing{Fallbacks: map[string][]config.Fallback{"f": {{Model: "m"}}}}}
	cfg.Logging.Format = "json"
	cfg.ApplyDefaults()
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatal(p)
	}
	logs := &syncBuffer{}
	gw, err := NewGateway(cfg, newLogger(logs, cfg.Logging, new(slog.LevelVar)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); gw.Close() })
	return srv, logs
}

// accessLines returns the access lines in logs, parsed.
func accessLines(t *testing.T, logs *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("a log line is not JSON: %q", sc.Text())
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// awaitAccessLine waits for the access line match accepts, and returns it.
func awaitAccessLine(t *testing.T, logs *syncBuffer, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var line map[string]any
	eventually(t, what, func() bool {
		for _, l := range accessLines(t, logs) {
			if match(l) {
				line = l
				return true
			}
		}
		return false
	})
	return line
}

// jsonLogGateway is a gateway of cfg logging JSON into the buffer returned.
func jsonLogGateway(t *testing.T, cfg *config.Config) (*Gateway, *syncBuffer) {
	t.Helper()
	cfg.Logging.Format = "json"
	cfg.ApplyDefaults()
	logs := &syncBuffer{}
	gw, err := NewGateway(cfg, newLogger(logs, cfg.Logging, new(slog.LevelVar)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return gw, logs
}

// usageUpstream answers every chat request with usage and the prompt
// echoed as the answer's text.
func usageUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"the-answer-text"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`)
	})
}

// TestAccessLog: one JSON line per request with the request id the client
// got, the model and the deployment that served it, the status, the
// tokens, the times, the retries and the fallback; no prompt or answer.
func TestAccessLog(t *testing.T) {
	srv, logs := accessGateway(t, usageUpstream(), config.Logging{})
	body := `{"model":"m","messages":[{"role":"user","content":"secret-prompt-text"}]}`
	var ids []string
	for range 2 { // round robin: one of the two starts on the dead deployment
		resp, _ := post(t, srv.URL+"/v1/chat/completions", "application/json", body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		ids = append(ids, resp.Header.Get("X-Request-Id"))
	}
	resp, _ := post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"f","messages":[{"role":"user","content":"x"}]}`)
	ids = append(ids, resp.Header.Get("X-Request-Id"))
	resp, _ = post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`)
	ids = append(ids, resp.Header.Get("X-Request-Id"))

	lines := accessLines(t, logs)
	if len(lines) != 4 {
		t.Fatalf("%d access lines, want 4:\n%s", len(lines), logs)
	}
	retried := 0
	for i, l := range lines[:2] {
		if l["request_id"] != ids[i] || l["model"] != "m" || l["served_by"] != "m" || l["deployment"] != "up" ||
			l["status"] != 200.0 || l["prompt_tokens"] != 7.0 || l["completion_tokens"] != 3.0 || l["stream"] != false {
			t.Errorf("line %d: %v", i, l)
		}
		for _, k := range []string{"latency", "first_byte", "upstream", "overhead"} {
			if v, ok := l[k].(float64); !ok || v <= 0 {
				t.Errorf("line %d: %s = %v, want a positive duration", i, k, l[k])
			}
		}
		if v, ok := l["api"]; ok {
			t.Errorf("line %d: an HTTP request's line has api=%v", i, v)
		}
		if l["retries"] == 1.0 && l["attempts"] == 2.0 {
			retried++
		}
	}
	if retried != 1 {
		t.Errorf("%d of the first two lines show one retry, want 1: %v", retried, lines[:2])
	}
	if l := lines[2]; l["request_id"] != ids[2] || l["model"] != "f" || l["served_by"] != "m" || l["fallback"] != "unreachable" {
		t.Errorf("fallback line: %v", l)
	}
	want := map[string]any{"request_id": ids[3], "status": 404.0}
	got := map[string]any{"request_id": lines[3]["request_id"], "status": lines[3]["status"]}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("unknown model line (-want +got):\n%s", d)
	}
	if strings.Contains(logs.String(), "secret-prompt-text") || strings.Contains(logs.String(), "the-answer-text") {
		t.Errorf("the log holds a prompt or an answer:\n%s", logs)
	}
}

// TestAccessLogBodies: with logging.bodies, the line carries the start of
// the request and of the answer.
func TestAccessLogBodies(t *testing.T) {
	srv, logs := accessGateway(t, usageUpstream(), config.Logging{Bodies: true})
	post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"m","messages":[{"role":"user","content":"secret-prompt-text"}]}`)
	lines := accessLines(t, logs)
	if len(lines) != 1 {
		t.Fatalf("%d access lines, want 1", len(lines))
	}
	if rb, _ := lines[0]["request_body"].(string); !strings.Contains(rb, "secret-prompt-text") {
		t.Errorf("request_body %q", rb)
	}
	if ab, _ := lines[0]["answer_body"].(string); !strings.Contains(ab, "the-answer-text") {
		t.Errorf("answer_body %q", ab)
	}
}

// TestAccessLogOff: logging.access false writes no access line.
func TestAccessLogOff(t *testing.T) {
	off := false
	srv, logs := accessGateway(t, usageUpstream(), config.Logging{Access: &off})
	post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"m","messages":[{"role":"user","content":"x"}]}`)
	if n := len(accessLines(t, logs)); n != 0 {
		t.Errorf("%d access lines with the access log off", n)
	}
}

// TestAccessLogAbandonedStream: a stream the client leaves is logged, 499.
func TestAccessLogAbandonedStream(t *testing.T) {
	srv, logs := accessGateway(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // never ends on its own
	}), config.Logging{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(resp.Body).ReadString('\n')
	id := resp.Header.Get("X-Request-Id")
	cancel()
	resp.Body.Close()
	l := awaitAccessLine(t, logs, "the abandoned stream's access line", func(l map[string]any) bool { return l["request_id"] == id })
	if l["status"] != 499.0 || l["stream"] != true || l["deployment"] != "up" {
		t.Errorf("abandoned stream's line: %v", l)
	}
}

// TestJobAccessLog: a background job's submission is an HTTP request's
// line; its run through the core is a line of its own, api=job, under
// the job's id.
func TestJobAccessLog(t *testing.T) {
	cfg := config.Default()
	cfg.Jobs.Dir = t.TempDir()
	gw, logs := jsonLogGateway(t, cfg)
	srv := httptest.NewServer(gw)
	ctx, cancel := context.WithCancel(context.Background())
	if err := gw.startJobs(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); gw.closeJobs(5 * time.Second); srv.Close() })
	resp, body := postH(t, srv.URL+"/v1/chat/completions", `{"model":"qwen3-omni-7b","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`,
		map[string]string{"X-Omnigate-Async": "true"})
	var job jobView
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &job) != nil {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	run := awaitAccessLine(t, logs, "the job's access line", func(l map[string]any) bool { return l["api"] == "job" })
	if run["request_id"] != job.ID || run["status"] != 200.0 || run["model"] != "qwen3-omni-7b" {
		t.Errorf("the run's line: %v", run)
	}
	for _, l := range accessLines(t, logs) {
		if l["status"] == 202.0 && l["api"] != nil {
			t.Errorf("the submission's line has api=%v: %v", l["api"], l)
		}
	}
}
