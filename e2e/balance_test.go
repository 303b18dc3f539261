package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBalanceExternalLoad: one of four replicas also serves traffic that
// does not pass through the gateway. Round robin and the gateway's own
// least-in-flight count cannot see it; the default pipeline, reading the
// engines' queues, sends it clearly less.
func TestBalanceExternalLoad(t *testing.T) {
	d := benchDuration(4*time.Second, 20*time.Second)
	f := newFleet(t, 4)
	type row struct {
		strategy string
		s        summary
	}
	var rows []row
	for _, strategy := range []string{"round_robin", "least_inflight", "score"} {
		gw := f.gateway(t, fmt.Sprintf("    balance: {strategy: %s}\n    admission: {enabled: false}\n", strategy))
		stop := externalLoad(f.addrs[0], 12)
		time.Sleep(600 * time.Millisecond) // the engine's queue shows in a scrape
		out := runLoad(gw.URL, 24, d, func(w, k int) string { return chatBody("", fmt.Sprintf("question %d of client %d", k, w)) })
		stop()
		s := summarize(out, d)
		rows = append(rows, row{strategy, s})
		t.Logf("%-15s %6.1f req/s  ttft p50 %s p99 %s  to the loaded replica %.0f%%  failed %d",
			strategy, s.rps, ms(s.p50), ms(s.p99), 100*s.share[f.name(0)], s.failed)
	}
	var b strings.Builder
	b.WriteString("| strategy | req/s | TTFT p50 | TTFT p99 | share to the loaded replica |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s | %.0f%% |\n", r.strategy, r.s.rps, ms(r.s.p50), ms(r.s.p99), 100*r.s.share[f.name(0)])
	}
	t.Logf("external load, 4 replicas, one with 12 streams of its own, 24 clients, %s:\n%s", d, b.String())
	rr, score := rows[0].s, rows[2].s
	if rr.n == 0 || score.n == 0 {
		t.Fatal("no answers")
	}
	if got, base := score.share[f.name(0)], rr.share[f.name(0)]; got > 0.6*base {
		t.Errorf("the pipeline sent the externally loaded replica %.0f%% of requests, round robin %.0f%%: want clearly less (≤ 60%% of it)", 100*got, 100*base)
	}
	for _, r := range rows {
		if r.s.failed > 0 {
			t.Errorf("%s: %d requests failed", r.strategy, r.s.failed)
		}
	}
}

// externalLoad keeps n streams running on the engine at addr, straight,
// until stop is called.
func externalLoad(addr string, n int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				body := fmt.Sprintf(`{"model":"bench","messages":[{"role":"user","content":"batch job %d item %d"}],"max_tokens":200,"stream":true}`, w, k)
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					drain(resp)
				}
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// systemPrompt is one of a few long system prompts (~2,000 tokens each)
// that many users share.
func systemPrompt(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "You are assistant number %d. ", i)
	for k := 0; b.Len() < 9000; k++ {
		fmt.Fprintf(&b, "Rule %d of assistant %d: answer carefully, cite the policy section %d, and stay polite. ", k, i, k*7+i)
	}
	return b.String()
}

// TestBalancePrefixAffinity: eight system prompts shared by many users.
// With affinity each prompt's prefill is cached where it is sent; round
// robin spreads every prompt everywhere, and the engines' caches, too
// small for all of them on each replica, evict.
func TestBalancePrefixAffinity(t *testing.T) {
	d := benchDuration(4*time.Second, 20*time.Second)
	var systems []string
	for i := range 8 {
		systems = append(systems, systemPrompt(i))
	}
	body := func(w, k int) string {
		return chatBody(systems[(w*7+k)%len(systems)], fmt.Sprintf("user %d asks question %d", w, k))
	}
	type row struct {
		strategy string
		s        summary
		hitRate  float64
		spread   float64 // the busiest replica's requests over the mean
	}
	var rows []row
	for _, strategy := range []string{"round_robin", "score"} {
		f := newFleet(t, 4) // fresh engines: cold caches
		gw := f.gateway(t, fmt.Sprintf("    balance: {strategy: %s}\n    admission: {enabled: false}\n", strategy))
		runLoad(gw.URL, 16, time.Second, body) // warm up: the steady state is measured
		q0, h0 := f.engineCounter(t, "vllm:prefix_cache_queries_total"), f.engineCounter(t, "vllm:prefix_cache_hits_total")
		out := runLoad(gw.URL, 16, d, body)
		q1, h1 := f.engineCounter(t, "vllm:prefix_cache_queries_total"), f.engineCounter(t, "vllm:prefix_cache_hits_total")
		var q, h float64
		for i := range q0 {
			q, h = q+q1[i]-q0[i], h+h1[i]-h0[i]
		}
		s := summarize(out, d)
		busiest := 0.0
		for i := range f.addrs {
			busiest = max(busiest, s.share[f.name(i)])
		}
		r := row{strategy, s, h / max(q, 1), busiest * float64(len(f.addrs))}
		rows = append(rows, r)
		for _, p := range f.procs {
			p.cmd.Process.Kill()
		}
	}
	var b strings.Builder
	b.WriteString("| strategy | req/s | TTFT p50 | TTFT p99 | prefix-cache hit rate | busiest replica / mean |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s | %.1f%% | %.2f |\n", r.strategy, r.s.rps, ms(r.s.p50), ms(r.s.p99), 100*r.hitRate, r.spread)
	}
	t.Logf("shared prefixes, 4 replicas, 8 system prompts of ~2,000 tokens, 16 clients, %s:\n%s", d, b.String())
	hits, spread := 0.85, 1.3 // 4 s runs: a few cold misses weigh more
	if benchLong() {
		hits, spread = 0.9, 1.2
	}
	if rows[1].hitRate < hits {
		t.Errorf("hit rate with affinity %.1f%%, want ≥ %.0f%%", 100*rows[1].hitRate, 100*hits)
	}
	if rows[1].spread > spread {
		t.Errorf("with affinity the busiest replica took %.3f× the mean, want ≤ %.2f", rows[1].spread, spread)
	}
	if rows[1].s.p50 >= rows[0].s.p50 {
		t.Errorf("affinity did not lower the median time to first token: %s vs %s", ms(rows[1].s.p50), ms(rows[0].s.p50))
	}
}

// TestBalanceSlowReplica: one replica becomes 3× slower mid-run and gets
// proportionally less within a few seconds.
func TestBalanceSlowReplica(t *testing.T) {
	d := benchDuration(8*time.Second, 30*time.Second)
	f := newFleet(t, 4)
	gw := f.gateway(t, "    admission: {enabled: false}\n")
	slowAt := d / 3
	go func() {
		time.Sleep(slowAt)
		resp, err := http.Post("http://"+f.addrs[0]+"/sim/slowdown", "application/json", strings.NewReader(`{"factor": 3}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	out := runLoad(gw.URL, 24, d, func(w, k int) string { return chatBody("", fmt.Sprintf("question %d of client %d", k, w)) })
	var before, after []outcome
	for _, o := range out {
		switch {
		case o.at < slowAt:
			before = append(before, o)
		case o.at > slowAt+2*time.Second:
			after = append(after, o)
		}
	}
	sb, sa := summarize(before, slowAt), summarize(after, d-slowAt-2*time.Second)
	t.Logf("slow replica, 4 replicas, 24 clients, %s: its share %.0f%% before, %.0f%% from 2 s after it turned 3× slower", d,
		100*sb.share[f.name(0)], 100*sa.share[f.name(0)])
	if sa.share[f.name(0)] > 0.6*sb.share[f.name(0)] {
		t.Errorf("the slowed replica's share went from %.0f%% to %.0f%%: want it well down", 100*sb.share[f.name(0)], 100*sa.share[f.name(0)])
	}
}

// TestAdmissionAdaptiveLimit: fixed concurrency limits of 4 and 32 and
// the adaptive limit, on two replicas that batch 16 each, under more
// clients than they can run at once. The adaptive limit is not told
// which fixed setting is best; it starts from the rule of thumb (16
// here; it reaches 32 in about 2 s) and has 3 s of warm-up, as the fixed
// ones do.
func TestAdmissionAdaptiveLimit(t *testing.T) {
	d := benchDuration(5*time.Second, 20*time.Second)
	f := newFleet(t, 2)
	type row struct {
		limit string
		s     summary
		final string
	}
	var rows []row
	for _, lim := range []struct{ name, yaml string }{
		{"fixed 4", "limit: {initial: 4, min: 4, max: 4}, "},
		{"fixed 32", "limit: {initial: 32, min: 32, max: 32}, "},
		{"adaptive", ""},
	} {
		gw := f.gateway(t, fmt.Sprintf("    admission: {%squeue_timeout: 30s, max_queue: 256}\n", lim.yaml))
		body := func(w, k int) string { return chatBody("", fmt.Sprintf("question %d of client %d", k, w)) }
		runLoad(gw.URL, 64, 3*time.Second, body) // warm up: the steady state is measured
		// The limit through the run, read every 250 ms.
		stop := make(chan struct{})
		limits := make(chan [2]int)
		go func() {
			lo, hi := 1<<30, 0
			for {
				select {
				case <-stop:
					limits <- [2]int{lo, hi}
					return
				case <-time.After(250 * time.Millisecond):
					n := admissionLimit(t, gw.Admin)
					lo, hi = min(lo, n), max(hi, n)
				}
			}
		}()
		out := runLoad(gw.URL, 64, d, body)
		close(stop)
		lh := <-limits
		rows = append(rows, row{lim.name, summarize(out, d), fmt.Sprintf("%d–%d", lh[0], lh[1])})
		gw.cmd.Process.Kill()
	}
	var b strings.Builder
	b.WriteString("| limit | req/s | TTFT p50 | TTFT p99 | limit during the run |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s | %s |\n", r.limit, r.s.rps, ms(r.s.p50), ms(r.s.p99), r.final)
	}
	t.Logf("admission, 2 replicas of 16 sequences, 64 clients, %s:\n%s", d, b.String())
	best := rows[0]
	if rows[1].s.rps > best.s.rps {
		best = rows[1]
	}
	ad := rows[2]
	share, tail := 0.9, 1.5 // short runs are mostly the warm-up's noise
	if benchLong() {
		share, tail = 0.95, 1.05
	}
	if ad.s.rps < share*best.s.rps {
		t.Errorf("adaptive limit: %.1f req/s, the best fixed (%s) %.1f: want ≥ %.0f%% of it", ad.s.rps, best.limit, best.s.rps, 100*share)
	}
	if float64(ad.s.p99) > tail*float64(best.s.p99) {
		t.Errorf("adaptive limit: TTFT p99 %s, the best fixed (%s) %s", ms(ad.s.p99), best.limit, ms(best.s.p99))
	}
	for _, r := range rows {
		if r.s.failed > 0 {
			t.Errorf("%s: %d requests failed", r.limit, r.s.failed)
		}
	}
}

// admissionLimit reads model bench's admission limit from the status API
// (0 on an error, reported: it runs beside the load, off the test's
// goroutine).
func admissionLimit(t *testing.T, base string) int {
	resp, err := http.Get(base + "/admin/deployments")
	if err != nil {
		t.Error(err)
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		Models []struct {
			Admission *struct {
				Limit int `json:"limit"`
			} `json:"admission"`
		} `json:"models"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || len(st.Models) == 0 || st.Models[0].Admission == nil {
		t.Errorf("status: %v", err)
		return 0
	}
	return st.Models[0].Admission.Limit
}

// TestFlood: far more requests than the default tiers can serve in time,
// sent as a new user would, at once. Every one gets an answer or, soon,
// a 503 or 429 with a Retry-After; none is left hanging.
func TestFlood(t *testing.T) {
	n := 600
	if benchLong() {
		n = 5000
	}
	gw := startEnv(t, []string{"OMNIGATE_ADDR=127.0.0.1:0", "OMNIGATE_CONFIG="}, "serve") // the built-in config: both tiers on the simulator
	type res struct {
		status     int
		retryAfter string
		took       time.Duration
		model      string
	}
	results := make(chan res, n)
	client := &http.Client{Timeout: 60 * time.Second}
	t0 := time.Now()
	for i := range n {
		go func() {
			time.Sleep(time.Duration(i) * time.Second / time.Duration(n)) // n over one second
			s := time.Now()
			body := fmt.Sprintf(`{"model":"qwen3-omni-30b","messages":[{"role":"user","content":"flood request %d"}]}`, i)
			resp, err := client.Post(gw.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				results <- res{status: -1, took: time.Since(s)}
				return
			}
			drain(resp)
			results <- res{resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(s), resp.Header.Get("X-Omnigate-Model")}
		}()
	}
	counts := map[string]int{}
	var slowest time.Duration
	for range n {
		r := <-results
		slowest = max(slowest, r.took)
		switch {
		case r.status == 200:
			counts["200 "+r.model]++
		case (r.status == 503 || r.status == 429) && r.retryAfter != "":
			counts[fmt.Sprintf("%d with Retry-After", r.status)]++
		default:
			counts[fmt.Sprintf("%d (Retry-After %q)", r.status, r.retryAfter)]++
			t.Errorf("a flooded request ended %d, Retry-After %q, after %s", r.status, r.retryAfter, r.took)
		}
	}
	t.Logf("flood: %d requests in 1 s to qwen3-omni-30b: %v; slowest answer %s, all in %s", n, counts, slowest.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	if slowest > 30*time.Second {
		t.Errorf("the slowest request took %s: the queue timeout (10 s) and an answer (3 s) bound it", slowest)
	}
}
