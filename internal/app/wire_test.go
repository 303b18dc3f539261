package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/api/openai"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

// serveReal serves cfg the way `omnigate serve` does (serveUntilDone on a
// loopback listener) until the test ends, and returns the listen address.
func serveReal(t *testing.T, cfg *config.Config) string {
	t.Helper()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.ApplyDefaults()
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatalf("config: %v", p)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, err := NewGateway(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveUntilDone(ctx, ln, nil, gw, cfg.Server, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveUntilDone: %v", err)
		}
		gw.Close()
	})
	return ln.Addr().String()
}

// upstreamConfig is a one-model ("m") config deployed on upstream.
func upstreamConfig(t *testing.T, upstream http.Handler) *config.Config {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	return &config.Config{Models: []config.Model{{Name: "m",
		Deployments: []config.Deployment{{Name: "up", Kind: "openai", URL: up.URL + "/v1"}}}}}
}

// rawRequest is an HTTP/1.1 POST to /v1/chat/completions, as bytes.
func rawRequest(body string, contentLength int) string {
	return fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\n\r\n%s", contentLength, body)
}

// readAnswer reads one HTTP answer from c (nil resp when the connection
// ended first) and its body.
func readAnswer(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err.Error()
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp, string(b) + " [" + err.Error() + "]"
	}
	return resp, string(b)
}

// TestHalfClosedClientGetsItsAnswer: a client that shuts down its sending
// side after the request (net/http reads that as the client leaving) gets
// the whole answer, streamed or not, instead of 200 and an empty body.
func TestHalfClosedClientGetsItsAnswer(t *testing.T) {
	addr := serveReal(t, config.Default())
	for _, tc := range []struct{ name, body, want string }{
		{"whole", `{"model":"small","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`, `"chat.completion"`},
		{"stream", `{"model":"small","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`, "data: [DONE]\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, rawRequest(tc.body, len(tc.body)))
			c.(*net.TCPConn).CloseWrite()
			resp, b := readAnswer(t, c)
			if resp == nil || resp.StatusCode != 200 || !strings.Contains(b, tc.want) {
				t.Fatalf("got %v %q, want 200 with %q", resp, b, tc.want)
			}
		})
	}
}

// TestClientLeavingWhileWaiting: an end of input later than the half-close
// window, before any answer, is the client leaving: the upstream request is
// cancelled, and the connection is closed without a word rather than with
// 200 and an empty body.
func TestClientLeavingWhileWaiting(t *testing.T) {
	cancelled := make(chan struct{})
	arrived := make(chan struct{})
	cfg := upstreamConfig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		close(arrived)
		<-r.Context().Done()
		close(cancelled)
	}))
	cfg.ApplyDefaults()
	gw, err := NewGateway(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	clk := clock.NewFake(time.Unix(1e9, 0))
	srv := httptest.NewServer(openai.NewServer(openai.Options{Core: gw.core, Metrics: gw.metrics, Now: clk.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer srv.Close()

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	io.WriteString(c, rawRequest(body, len(body)))
	<-arrived
	clk.Advance(openai.DefaultHalfCloseWindow + time.Millisecond)
	c.(*net.TCPConn).CloseWrite()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled after the client left")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
		t.Errorf("client that left got %q (err %v), want the connection closed with nothing sent", b, err)
	}
}

// TestClientLeavingMidStreamCancelsUpstream: served as serve serves, a
// client that goes away mid-stream has its upstream request cancelled at
// once.
func TestClientLeavingMidStreamCancelsUpstream(t *testing.T) {
	up, cancelled := heldStream()
	addr := serveReal(t, upstreamConfig(t, up))
	leaveMidStream(t, "http://"+addr, "")
	waitClosed(t, cancelled)
}

// TestBodyBudget: request bodies share server.max_buffered_bytes; a request
// that finds no room is answered 503 gateway_overloaded with Retry-After,
// and is served again once the room is back.
func TestBodyBudget(t *testing.T) {
	cfg := upstreamConfig(t, jsonUpstream())
	cfg.Server.MaxBodyBytes = 1 << 20
	cfg.Server.MaxBufferedBytes = 1 << 20
	cfg.Models[0].ContextWindow = 1 << 20 // room for the big prompt
	addr := serveReal(t, cfg)

	// A holds the whole budget: a 1 MiB body, 600 KiB of it sent.
	prefix := `{"model":"m","messages":[{"role":"user","content":"`
	suffix := `"}]}`
	big := prefix + strings.Repeat("x", 1<<20-len(prefix)-len(suffix)) + suffix
	a, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	io.WriteString(a, rawRequest(big[:600<<10], len(big)))

	// Its buffer doubles as the bytes arrive, to the whole budget.
	for end := time.Now().Add(5 * time.Second); openai.BufferedBytes() < 1<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d bytes of bodies held, want the whole budget", openai.BufferedBytes())
		}
	}
	small := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	resp, b := post(t, "http://"+addr+"/v1/chat/completions", "application/json", small)
	if resp.StatusCode != 503 || !bytes.Contains(b, []byte(`"code":"gateway_overloaded"`)) {
		t.Fatalf("with the budget held: %d %s, want 503 gateway_overloaded", resp.StatusCode, b)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}

	io.WriteString(a, big[600<<10:])
	if ra, rb := readAnswer(t, a); ra == nil || ra.StatusCode != 200 {
		t.Fatalf("the budget's holder: %v %s", ra, rb)
	}
	if resp, b = post(t, "http://"+addr+"/v1/chat/completions", "application/json", small); resp.StatusCode != 200 {
		t.Errorf("after the room came back: %d %s", resp.StatusCode, b)
	}
}

// TestReadTimeoutBoundsTheBodyOnly: a body trickling in past
// server.read_timeout is answered 408 in the OpenAI shape and its
// connection closed; a stream that lasts longer than the timeout is not
// cut, because the deadline is cleared once the body is read.
func TestReadTimeoutBoundsTheBodyOnly(t *testing.T) {
	const timeout = 300 * time.Millisecond
	cfg := upstreamConfig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 8 { // 8 x 100 ms: well past the timeout
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%d\"}}]}\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	cfg.Server.ReadTimeout = config.Duration(timeout)
	addr := serveReal(t, cfg)

	t.Run("slow body", func(t *testing.T) {
		const conns = 20
		body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
		start := time.Now()
		var wg sync.WaitGroup
		for range conns {
			wg.Go(func() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				io.WriteString(c, rawRequest("", len(body)))
				go func() { // one byte every 50 ms, until the gateway stops reading
					for i := range len(body) {
						time.Sleep(50 * time.Millisecond)
						if _, err := c.Write([]byte{body[i]}); err != nil {
							return
						}
					}
				}()
				resp, b := readAnswer(t, c)
				if resp == nil || resp.StatusCode != http.StatusRequestTimeout ||
					!strings.Contains(b, `"code":"request_timeout"`) || resp.Header.Get("X-Request-Id") == "" {
					t.Errorf("slow body: %v %q, want 408 request_timeout with an X-Request-Id", resp, b)
					return
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadAll(c); errors.Is(err, os.ErrDeadlineExceeded) {
					t.Error("connection not closed after the 408") // a reset is closed too: it had unread bytes
				}
			})
		}
		wg.Wait()
		if d := time.Since(start); d > timeout+2*time.Second {
			t.Errorf("slow bodies were cut after %v, timeout %v", d, timeout)
		}
	})
	t.Run("long stream", func(t *testing.T) {
		resp, b := post(t, "http://"+addr+"/v1/chat/completions", "application/json",
			`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 || !strings.HasSuffix(string(b), "data: [DONE]\n\n") || strings.Count(string(b), "data: ") != 9 {
			t.Errorf("a stream longer than the read timeout: %d %q", resp.StatusCode, b)
		}
	})
}

// TestConnLimits: past server.max_conns_per_client from one address, or
// server.max_conns in all, a connection is closed at accept; closing one
// makes room; the refusals are logged as one warning per interval.
func TestConnLimits(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	l := limitConns(inner, 3, 2, slog.New(slog.NewTextHandler(&logs, nil)))
	clk := clock.NewFake(time.Unix(1e9, 0))
	l.refuseLog.Now = clk.Now
	var counted atomic.Bool
	l.exempt = func(netip.Addr) bool { return !counted.Load() }
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ConnState: l.connState}
	go srv.Serve(l)
	defer srv.Close()
	// dial reports whether the server kept a new connection: it answers a
	// request on it.
	dial := func() (net.Conn, bool) {
		t.Helper()
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return c, strings.HasPrefix(line, "HTTP/1.1 200")
	}

	counted.Store(true) // loopback counts as a client of its own here
	c1, ok1 := dial()
	c2, ok2 := dial()
	c3, ok3 := dial()
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("per client: kept %v %v %v, want true true false", ok1, ok2, ok3)
	}
	c3.Close()
	c1.Close()
	deadline := time.Now().Add(5 * time.Second)
	c4, ok4 := dial()
	for !ok4 && time.Now().Before(deadline) { // until the gateway side of c1 is closed
		c4.Close()
		time.Sleep(5 * time.Millisecond)
		c4, ok4 = dial()
	}
	if !ok4 {
		t.Fatal("closing a connection did not make room")
	}

	counted.Store(false) // loopback exempt, as by default: only the total counts
	c5, ok5 := dial()
	c6, ok6 := dial()
	if !ok5 || ok6 {
		t.Fatalf("total: kept %v %v, want true false", ok5, ok6)
	}
	for _, c := range []net.Conn{c2, c4, c5, c6} {
		c.Close()
	}
	if n := strings.Count(logs.String(), "connection refused"); n != 1 {
		t.Errorf("%d refusal warnings in one interval, want 1:\n%s", n, logs.String())
	}
}

// failingListener fails every Accept with err, until closed.
type failingListener struct {
	net.Listener
	err error
}

func (l failingListener) Accept() (net.Conn, error) { return nil, l.err }

// TestAcceptErrorsAreWarnings: a failing accept (a full descriptor table)
// is a warning, not a debug line, and at most one per interval however
// often http.Server retries; the next one says how many were held back.
func TestAcceptErrorsAreWarnings(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	var logs syncBuffer
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	l := limitConns(failingListener{inner, emfile}, 10, 10, slog.New(slog.NewTextHandler(&logs, nil)))
	clk := clock.NewFake(time.Unix(1e9, 0))
	l.acceptLog.Now = clk.Now
	for range 100 {
		if _, err := l.Accept(); !errors.Is(err, syscall.EMFILE) {
			t.Fatalf("Accept: %v, want the listener's error", err)
		}
	}
	clk.Advance(logEvery)
	l.Accept()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "too many open files") ||
		!strings.Contains(lines[1], "since_last_warning=99") {
		t.Errorf("accept warnings:\n%s", logs.String())
	}
}

// TestDebugAddrIsLoopbackOnly: --debug-addr takes localhost and loopback
// IPs and refuses anything else, before listening.
func TestDebugAddrIsLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:6060", true},
		{"127.0.0.2:6060", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{"[::ffff:127.0.0.1]:6060", true},
		{":6060", false},
		{"0.0.0.0:6060", false},
		{"[::]:6060", false},
		{"192.0.2.2:6060", false},
		{"10.0.0.1:6060", false},
		{"debug.example:6060", false},
		{"127.0.0.1", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			err := checkLoopback(tc.addr)
			if (err == nil) != tc.ok {
				t.Errorf("checkLoopback(%q) = %v, want ok %v", tc.addr, err, tc.ok)
			}
		})
	}
	if err := serveDebug("0.0.0.0:0", slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil ||
		!strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("serveDebug(0.0.0.0:0) = %v, want a refusal", err)
	}
}
