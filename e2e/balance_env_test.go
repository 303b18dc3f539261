package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The balancing benchmarks (docs/balancing.md): real `omnigate sim`
// processes whose step time grows with the batch, the gateway binary in
// front, closed-loop streaming clients measuring the time to first token,
// and the replica that served each answer from X-Omnigate-Deployment.

// benchProfile is the replicas' engine: a small GPU's worth of batch (16
// sequences, a step 4 ms plus 1 ms a sequence), a prefill that is worth
// caching (40 µs a token: a 2,000-token system prompt is 80 ms), and KV
// room for a few long prompts only (14,000 tokens; the eight prompts need 16,000), so a prefix cache
// asked to hold every prompt evicts.
const benchProfile = `name: bench-engine
description: a small engine whose step grows with its batch
max_model_len: 32768
max_num_seqs: 16
max_num_batched_tokens: 8192
kv_cache_tokens: 14000
block_size: 16
prefill_per_token: 40us
decode_base: 4ms
decode_per_seq: 1ms
answer_tokens: [24, 40]
embedding_dims: 64
`

// fleet is n bench replicas, started with the same seed.
type fleet struct {
	addrs []string
	procs []*proc
}

func newFleet(t *testing.T, n int, extra ...string) *fleet {
	t.Helper()
	prof := filepath.Join(t.TempDir(), "bench-engine.yaml")
	if err := os.WriteFile(prof, []byte(benchProfile), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fleet{}
	for range n {
		addr := freeAddr(t)
		args := append([]string{"sim", "--profile", prof, "--model", "bench", "--addr", addr, "--seed", "1"}, extra...)
		f.procs = append(f.procs, start(t, args...))
		f.addrs = append(f.addrs, addr)
	}
	return f
}

// name is replica i's deployment name.
func (f *fleet) name(i int) string { return fmt.Sprintf("r%d", i) }

// gateway starts a gateway whose model "bench" has the fleet as its
// deployments, with balance and admission given as YAML flow maps.
func (f *fleet) gateway(t *testing.T, model string) *proc {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "server: {addr: \"127.0.0.1:0\"}\nmodels:\n  - name: bench\n    tier: small\n%s    deployments:\n", model)
	for i, a := range f.addrs {
		fmt.Fprintf(&b, "      - {name: %s, kind: openai, url: \"http://%s/v1\", dialect: vllm, max_num_seqs: 16, metrics: {interval: 250ms, timeout: 200ms}}\n", f.name(i), a)
	}
	return start(t, "serve", "--config", writeConfig(t, b.String()))
}

// engineCounter sums a counter over the fleet's /metrics.
func (f *fleet) engineCounter(t *testing.T, name string) []float64 {
	t.Helper()
	out := make([]float64, len(f.addrs))
	for i, a := range f.addrs {
		out[i] = scrapeMetrics(t, "http://"+a).sum(name, nil)
	}
	return out
}

// outcome is one request's.
type outcome struct {
	at         time.Duration // since the run began, at its end
	ttft       time.Duration
	deployment string
	ok         bool
}

// runLoad runs workers closed-loop clients for d, each sending body(w, k)
// for its k-th request to url, and returns every outcome.
func runLoad(url string, workers int, d time.Duration, body func(w, k int) string) []outcome {
	var mu sync.Mutex
	var out []outcome
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				o := streamOnce(ctx, url, body(w, k))
				if ctx.Err() != nil {
					return // cut by the end of the run: not counted
				}
				o.at = time.Since(t0)
				mu.Lock()
				out = append(out, o)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// streamOnce sends one streaming chat request and times its first token.
func streamOnce(ctx context.Context, url, body string) outcome {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return outcome{}
	}
	defer resp.Body.Close()
	o := outcome{deployment: resp.Header.Get("X-Omnigate-Deployment")}
	if resp.StatusCode != 200 {
		io.Copy(io.Discard, resp.Body)
		return o
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Bytes()
		if o.ttft == 0 && bytes.Contains(line, []byte(`"content":"`)) {
			o.ttft = time.Since(start)
		}
		if bytes.Equal(line, []byte("data: [DONE]")) {
			o.ok = o.ttft > 0
		}
	}
	return o
}

// summary is what a table row shows of a run.
type summary struct {
	n, failed int
	rps       float64
	p50, p99  time.Duration
	share     map[string]float64 // of the answers, by deployment
}

func summarize(out []outcome, d time.Duration) summary {
	s := summary{share: map[string]float64{}}
	var ttfts []time.Duration
	for _, o := range out {
		if !o.ok {
			s.failed++
			continue
		}
		s.n++
		ttfts = append(ttfts, o.ttft)
		s.share[o.deployment]++
	}
	for k := range s.share {
		s.share[k] /= float64(max(s.n, 1))
	}
	s.rps = float64(s.n) / d.Seconds()
	s.p50, s.p99 = percentile(ttfts, 50), percentile(ttfts, 99)
	return s
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[int(math.Ceil(p/100*float64(len(ds))))-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// chatBody is a streaming chat request with a system prompt and a
// user's question, short answers.
func chatBody(system, user string) string {
	msgs := fmt.Sprintf(`[{"role":"user","content":%q}]`, user)
	if system != "" {
		msgs = fmt.Sprintf(`[{"role":"system","content":%q},{"role":"user","content":%q}]`, system, user)
	}
	return fmt.Sprintf(`{"model":"bench","messages":%s,"max_tokens":32,"stream":true}`, msgs)
}

// benchLong reports whether the long mode runs (make bench-balance).
func benchLong() bool { return os.Getenv("OMNIGATE_BALANCE") == "long" }

// benchDuration is a run's length: short in make test, long in the bench.
func benchDuration(short, long time.Duration) time.Duration {
	if benchLong() {
		return long
	}
	return short
}
