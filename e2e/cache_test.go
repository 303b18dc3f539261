package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// startRedis runs a redis-server of the test's own on a free loopback
// port (no persistence), so the test can kill it. Without the binary the
// test is skipped, unless CI is set.
func startRedis(t *testing.T) (addr string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not found")
		}
		t.Skip("redis-server not found")
	}
	addr = freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	t.Cleanup(stop)
	if !listening(addr, 5*time.Second) {
		t.Fatal("redis-server did not start")
	}
	return addr, stop
}

// listening waits up to limit for something to accept connections at addr.
func listening(addr string, limit time.Duration) bool {
	_, ok := poll(limit, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return ok
}

// cacheAsk sends body and returns the status, the cache header and the body.
func cacheAsk(t *testing.T, base, body string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := chat(ctx, base, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Omnigate-Cache"), string(b)
}

// TestCacheSharedInRedis: two gateway processes on one Redis share
// answers (one answers, the other hits, streams replayed); with Redis
// killed mid-run every request is still answered, upstream; once Redis is
// back the shared cache works again.
func TestCacheSharedInRedis(t *testing.T) {
	redisAddr, stopRedis := startRedis(t)
	cfg := writeConfig(t, fmt.Sprintf(`
server: {addr: "127.0.0.1:0"}
cache:
  redis: {addr: %q, prefix: "omnigate-e2e"}
models:
  - name: m
    cache: {mode: exact, store: redis}
    deployments: [{name: sim, kind: sim, profile: instant}]
`, redisAddr))
	a := start(t, "serve", "--config", cfg)
	b := start(t, "serve", "--config", cfg)
	q := func(i int) string {
		return fmt.Sprintf(`{"model":"m","temperature":0,"max_tokens":16,"messages":[{"role":"user","content":"question %d"}]}`, i)
	}
	streamed := func(body string) string {
		return strings.Replace(body, `{"model":"m",`, `{"model":"m","stream":true,`, 1)
	}

	code, h, first := cacheAsk(t, a.URL, q(1))
	if code != 200 || h != "miss" {
		t.Fatalf("first request: %d %q", code, h)
	}
	code, h, again := cacheAsk(t, b.URL, q(1))
	if code != 200 || h != "hit" || again != first {
		t.Fatalf("the other gateway: %d %q, same answer %v", code, h, again == first)
	}
	if code, h, s := cacheAsk(t, b.URL, streamed(q(1))); code != 200 || h != "hit" || !strings.HasSuffix(s, "data: [DONE]\n\n") {
		t.Fatalf("the other gateway, streamed: %d %q %q", code, h, s)
	}

	stopRedis()
	for i := 2; i < 12; i++ {
		gw := []*proc{a, b}[i%2]
		if code, h, body := cacheAsk(t, gw.URL, q(i)); code != 200 || h != "miss" {
			t.Fatalf("with Redis down, request %d: %d %q %s", i, code, h, body)
		}
	}
	if code, _, _ := cacheAsk(t, b.URL, q(1)); code != 200 {
		t.Fatalf("a kept answer's request with Redis down: %d", code)
	}

	// Redis back (empty: it kept nothing): the shared cache works again,
	// within a second of the store's circuit.
	restart := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", redisAddr[strings.LastIndex(redisAddr, ":")+1:], "--save", "", "--appendonly", "no")
	if err := restart.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restart.Process.Kill(); restart.Wait() })
	if _, ok := poll(10*time.Second, func() bool {
		_, h1, _ := cacheAsk(t, a.URL, q(100))
		_, h2, _ := cacheAsk(t, b.URL, q(100))
		return h1 == "hit" || h2 == "hit"
	}); !ok {
		t.Fatal("after Redis came back, the gateways do not share answers again")
	}
	resp, err := http.Get(a.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), "omnigate_cache_store_errors_total") || strings.Contains(string(m), "omnigate_cache_store_errors_total 0\n") {
		t.Errorf("the store errors while Redis was down are not counted")
	}
	for _, gw := range []*proc{a, b} { // their logs are complete, and no longer written
		gw.cmd.Process.Kill()
		gw.cmd.Wait()
	}
	if log := a.stderr.String() + b.stderr.String(); !strings.Contains(log, "cache store failing") {
		t.Errorf("the Redis failure was not logged")
	}
}
