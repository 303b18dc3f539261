package app

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

// TestClientDeadline: the gateway works no longer than the client's
// X-Request-Timeout (or the SDKs' X-Stainless-Timeout), answers 504 when
// it passes — in the stream when one has started — and never holds that
// against the deployment.
func TestClientDeadline(t *testing.T) {
	var cancelled atomic.Int64
	gw, srv := newWithUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"choices\":[]}\n\n")
			w.(http.Flusher).Flush()
		}
		select { // an engine far slower than the client will wait
		case <-r.Context().Done():
			cancelled.Add(1)
		case <-time.After(10 * time.Second):
		}
	}), nil)
	const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	const stream = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`

	for i := range 4 { // more than the breaker's three: none may count
		start := time.Now()
		resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", chat, "X-Request-Timeout", "0.2")
		if took := time.Since(start); resp.StatusCode != 504 || !strings.Contains(string(b), `"code":"deadline_exceeded"`) || took > 5*time.Second {
			t.Fatalf("request %d: %d %s after %v, want 504 deadline_exceeded after about 0.2 s", i, resp.StatusCode, b, took)
		}
	}
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", stream, "X-Stainless-Timeout", "0.2")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"code":"deadline_exceeded"`) || strings.Contains(string(b), "[DONE]") {
		t.Errorf("stream past its deadline: %d %q", resp.StatusCode, b)
	}
	for end := time.Now().Add(5 * time.Second); cancelled.Load() < 5 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := cancelled.Load(); n != 5 {
		t.Errorf("the engine saw %d of 5 requests cancelled at the deadline", n)
	}
	_, status := get(t, adminServer(t, gw)+"/admin/deployments")
	if !strings.Contains(string(status), `"state":"closed"`) {
		t.Errorf("clients' deadlines counted against the deployment: %s", status)
	}

	for _, bad := range []string{"0", "-1", "soon", "1e9"} {
		resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", chat, "X-Request-Timeout", bad)
		if resp.StatusCode != 400 || !strings.Contains(string(b), `"param":"X-Request-Timeout"`) {
			t.Errorf("X-Request-Timeout %q: %d %s", bad, resp.StatusCode, b)
		}
	}
}

// TestDeadlinePropagates: the time a client has left goes upstream as
// X-Request-Timeout, so the gateway or engine behind can stop in time.
func TestDeadlinePropagates(t *testing.T) {
	var got atomic.Value
	srv := startWithUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Store(r.Header.Get("X-Request-Timeout"))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[]}`)
	}), nil)
	const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	post(t, srv.URL+"/v1/chat/completions", "application/json", chat, "X-Stainless-Timeout", "30")
	left, err := strconv.ParseFloat(got.Load().(string), 64)
	if err != nil || left <= 0 || left > 30 {
		t.Errorf("upstream X-Request-Timeout %q, want the seconds left of 30", got.Load())
	}
	post(t, srv.URL+"/v1/chat/completions", "application/json", chat)
	if v := got.Load().(string); v != "" {
		t.Errorf("X-Request-Timeout %q sent upstream for a client without a deadline", v)
	}
}

// TestClientThatStopsReading: a client that stops reading a stream does not
// hold the engine's connection past the deployment's total timeout.
func TestClientThatStopsReading(t *testing.T) {
	released := make(chan struct{})
	srv := startWithUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		defer close(released)
		w.Header().Set("Content-Type", "text/event-stream")
		ev := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + strings.Repeat("x", 32<<10) + "\"}}]}\n\n"
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
			if _, err := io.WriteString(w, ev); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}), func(c *config.Config) { c.Models[0].Deployments[0].Timeouts.Total = config.Duration(time.Second) })
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// ... and never read.
	select {
	case <-released:
	case <-time.After(20 * time.Second):
		t.Fatal("the engine's connection was still held 20 s after a total timeout of 1 s")
	}
}
