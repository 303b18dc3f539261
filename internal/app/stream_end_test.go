package app

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

// syncBuffer is a log sink safe for the gateway's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLogged serves a gateway in front of upstream whose log lines land in
// the returned buffer.
func startLogged(t *testing.T, upstream http.Handler) (*httptest.Server, *syncBuffer) {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	cfg := &config.Config{Models: []config.Model{{Name: "m",
		Deployments: []config.Deployment{{Name: "up", Kind: "openai", URL: up.URL + "/v1"}}}}}
	cfg.ApplyDefaults()
	logs := &syncBuffer{}
	gw, err := NewGateway(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); gw.Close() })
	return srv, logs
}

// waitFor polls the log until it holds every want, or fails.
func waitFor(t *testing.T, logs *syncBuffer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := true
		for _, w := range want {
			all = all && strings.Contains(logs.String(), w)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const streamReq = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`

// TestStreamCutByTheEngine: the client gets an error event and no [DONE],
// and the log line names the request.
func TestStreamCutByTheEngine(t *testing.T) {
	srv, logs := startLogged(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n")
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack() // the engine dies mid-stream
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}))
	resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", streamReq, "X-Request-Id", "cut-1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	body := string(b)
	if !strings.Contains(body, `"content":"a"`) || !strings.Contains(body, `"code":"upstream_stream_error"`) || strings.Contains(body, "[DONE]") {
		t.Errorf("stream %q: want the first event, then an error event and no [DONE]", body)
	}
	if !strings.HasSuffix(body, "}\n\n") {
		t.Errorf("the error event is not terminated by a blank line: %q", body)
	}
	waitFor(t, logs, `msg="stream cut"`, "request_id=cut-1")
}

// TestAbandonedStreamIsLogged: a client that leaves mid-stream is logged
// with its request id.
func TestAbandonedStreamIsLogged(t *testing.T) {
	up, cancelled := heldStream()
	srv, logs := startLogged(t, up)
	leaveMidStream(t, srv.URL, "gone-1")
	waitClosed(t, cancelled)
	waitFor(t, logs, `msg="client went away"`, "request_id=gone-1")
}

// TestStreamEndsWithoutDone: a stream whose engine ends it, however
// cleanly, without [DONE] was cut: the client gets an error event; one
// that passes on an error event of the engine's, or a chunk that is no
// JSON, counts against the engine.
func TestStreamEndsWithoutDone(t *testing.T) {
	tests := []struct {
		name, events string
		errEvent     string // what the client's last event says
	}{
		{"no [DONE]", "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", "upstream_stream_error"},
		{"the engine's error event", "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"engine died\",\"code\":500}}\n\ndata: [DONE]\n\n", "engine died"},
		{"a malformed chunk", "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: Traceback (most recent call last)\n\ndata: [DONE]\n\n", "Traceback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw, srv := newWithUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, tt.events)
			}), nil)
			const stream = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
			for range 3 { // the breaker opens after three failures in a row
				_, b := post(t, srv.URL+"/v1/chat/completions", "application/json", stream)
				if !strings.Contains(string(b), tt.errEvent) {
					t.Fatalf("stream %q lacks %q", b, tt.errEvent)
				}
			}
			if _, status := get(t, adminServer(t, gw)+"/admin/deployments"); !strings.Contains(string(status), `"state":"open"`) {
				t.Errorf("three broken streams did not open the breaker: %s", status)
			}
		})
	}
}
