package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func keyHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// limitsConfig is a gateway with the 7B tier on the instant simulator and
// three keys: sk-rpm (100 requests a minute), sk-budget (a day's budget
// of 600 tokens) and sk-down (100 requests a minute), their counters in
// store (memory or redis at redisAddr) with the policy onDown.
func limitsConfig(t *testing.T, store, redisAddr, onDown string) string {
	return writeConfig(t, fmt.Sprintf(`
server: {addr: "127.0.0.1:0"}
models:
  - name: qwen3-omni-7b
    aliases: [small]
    deployments: [{name: sim, kind: sim, profile: instant}]
auth:
  keys:
    - {name: team-rpm, hash: %q, limits: {requests_per_minute: 100}}
    - {name: team-budget, hash: %q, limits: {tokens_per_day: 600}}
    - {name: team-down, hash: %q, limits: {requests_per_minute: 100}}
  limits:
    store: %s
    # A generous timeout: the burst of 300 meets cold connection pools on
    # a machine the race detector slows, and a command past the timeout
    # would count as Redis down (on_store_down), which is tested apart.
    redis: {addr: %q, prefix: "omnigate-e2e-limits", timeout: 2s}
    on_store_down: %s
`, keyHash("sk-rpm"), keyHash("sk-budget"), keyHash("sk-down"), store, redisAddr, onDown))
}

type limitedAnswer struct {
	status     int
	code       string
	retryAfter string
	remaining  string
	tokens     int
}

// askKey sends one chat completion with key to base.
func askKey(client *http.Client, base, key string, maxTokens int) (limitedAnswer, error) {
	body := fmt.Sprintf(`{"model":"small","max_tokens":%d,"messages":[{"role":"user","content":"how many tokens is this?"}]}`, maxTokens)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return limitedAnswer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v struct {
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		}
		Error struct{ Code string }
	}
	json.Unmarshal(b, &v)
	return limitedAnswer{status: resp.StatusCode, code: v.Error.Code, retryAfter: resp.Header.Get("Retry-After"),
		remaining: resp.Header.Get("X-Ratelimit-Remaining-Requests"), tokens: v.Usage.TotalTokens}, nil
}

// burst sends n requests with key at once, spread over the gateways, and
// counts the answers by status (and 429s' error codes).
func burst(t *testing.T, gws []*proc, key string, n int) map[string]int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 30 * time.Second}
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			a, err := askKey(client, gws[i%len(gws)].URL, key, 4)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				counts["error"]++
			case a.status == 429 && (a.retryAfter == "" || a.remaining != "0"):
				counts["429 without its headers"]++
			default:
				counts[fmt.Sprint(a.status, a.code)]++
			}
		})
	}
	close(start)
	wg.Wait()
	return counts
}

// TestRateLimitsAcrossReplicas: three gateway processes sharing one real
// Redis hold a key to 100 requests a minute for the fleet: of 300 sent at
// once, spread over the three, 100 pass (±1: the limit refills one every
// 0.6 s). With each process counting alone, the same burst gets 300
// through. A day's budget stops within one request of its limit. With
// Redis killed, on_store_down local has each replica hold the limit
// alone, and closed refuses.
func TestRateLimitsAcrossReplicas(t *testing.T) {
	redisAddr, stopRedis := startRedis(t)
	shared := limitsConfig(t, "redis", redisAddr, "local")
	var gws []*proc
	for range 3 {
		gws = append(gws, start(t, "serve", "--config", shared))
	}
	closed := start(t, "serve", "--config", limitsConfig(t, "redis", redisAddr, "closed"))

	counts := burst(t, gws, "sk-rpm", 300)
	if ok := counts["200"]; ok < 99 || ok > 101 || ok+counts["429rate_limit_exceeded"] != 300 {
		t.Errorf("shared limit of 100/min, 300 requests over 3 replicas: %v; want 100 (±1) answered, the rest 429", counts)
	}
	t.Logf("shared in Redis: %v", counts)

	perProcess := limitsConfig(t, "memory", redisAddr, "local")
	var alone []*proc
	for range 3 {
		alone = append(alone, start(t, "serve", "--config", perProcess))
	}
	counts = burst(t, alone, "sk-rpm", 300)
	if counts["200"] != 300 {
		t.Errorf("per-process limits of 100/min, 300 requests over 3 replicas: %v; want all 300 answered", counts)
	}
	t.Logf("per process: %v", counts)

	// The budget: sequential requests, each reserving its prompt and
	// corrected to its usage, across the replicas.
	client := &http.Client{Timeout: 30 * time.Second}
	used, biggest, answered := 0, 0, 0
	var last limitedAnswer
	for i := range 200 {
		a, err := askKey(client, gws[i%3].URL, "sk-budget", 32)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != 200 {
			last = a
			break
		}
		answered++
		used += a.tokens
		biggest = max(biggest, a.tokens)
	}
	if last.status != 429 || last.code != "insufficient_quota" || last.retryAfter == "" {
		t.Fatalf("after %d answers (%d tokens) the budget's refusal: %+v", answered, used, last)
	}
	if used > 600+biggest || used < 600-biggest {
		t.Errorf("a 600-token budget stopped at %d tokens; want within one request (%d tokens) of 600", used, biggest)
	}
	t.Logf("budget of 600 tokens: %d answers, %d tokens, then %d %s", answered, used, last.status, last.code)

	// Redis killed: local holds 100 a minute per replica; closed refuses.
	stopRedis()
	counts = burst(t, gws[:1], "sk-down", 150)
	if counts["200"] != 100 || counts["429rate_limit_exceeded"] != 50 {
		t.Errorf("Redis down, on_store_down local, 150 requests to one replica: %v; want 100 answered, 50 refused", counts)
	}
	counts = burst(t, []*proc{closed}, "sk-down", 5)
	if counts["503rate_limit_store_unavailable"] != 5 {
		t.Errorf("Redis down, on_store_down closed: %v; want 5 refused with 503", counts)
	}
	if m := scrapeMetrics(t, gws[0].URL); m.sum("omnigate_limit_store_errors_total", nil) < 1 {
		t.Errorf("the store's failures are not counted")
	}
	gws[0].cmd.Process.Kill() // its log is complete, and no longer written
	gws[0].cmd.Wait()
	if !strings.Contains(gws[0].stderr.String(), "limit store unreachable") {
		t.Errorf("the store's failure is not logged:\n%s", gws[0].stderr.String())
	}
}
