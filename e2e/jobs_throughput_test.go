package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBatchThroughput runs a batch of small requests on one gateway while
// interactive clients stream requests to the same model, and reports the
// batch's rate and the interactive time to first token with and without
// it. The batch runs at the admission queue's batch priority: every
// interactive request must succeed. 300 lines here; 10,000 with
// OMNIGATE_BATCH=long (make bench-batch; docs/jobs.md has the figures).
func TestBatchThroughput(t *testing.T) {
	n, window := 300, time.Second
	if os.Getenv("OMNIGATE_BATCH") == "long" {
		n, window = 10000, 10*time.Second
	}
	cfg := jobsConfig(t, "  workers: 64\n  dir: "+filepath.Join(t.TempDir(), "data"))
	gw := start(t, "serve", "--config", cfg, "--addr", "127.0.0.1:0")
	interactive := func(w, k int) string {
		return fmt.Sprintf(`{"model":"small","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"interactive %d %d"}]}`, w, k)
	}
	alone := summarize(runLoad(gw.URL, 4, window, interactive), window)

	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf(`{"custom_id":"b%d","method":"POST","url":"/v1/chat/completions","body":{"model":"small","max_tokens":8,"messages":[{"role":"user","content":"batch line %d"}]}}`, i, i))
	}
	t0 := time.Now()
	batch := uploadBatch(t, gw.URL, lines)
	var st batchState
	poll(60*time.Second, func() bool {
		getJSON(t, gw.URL+"/v1/batches/"+batch, &st)
		return st.Status == "in_progress" || st.Status == "completed"
	})
	during := summarize(runLoad(gw.URL, 4, window, interactive), window)
	if _, ok := poll(20*time.Minute, func() bool {
		getJSON(t, gw.URL+"/v1/batches/"+batch, &st)
		return st.Status == "completed" || st.Status == "failed"
	}); !ok || st.Status != "completed" || st.RequestCounts.Completed != n {
		t.Fatalf("batch: %+v", st)
	}
	took := time.Since(t0)
	if alone.failed > 0 || during.failed > 0 || during.n == 0 {
		t.Errorf("interactive requests failed: %d alone, %d during the batch (%d answered)", alone.failed, during.failed, during.n)
	}
	t.Logf("batch of %d lines: %.1f s, %.0f lines/s", n, took.Seconds(), float64(n)/took.Seconds())
	t.Logf("interactive TTFT alone: p50 %s p99 %s (%d requests); during the batch: p50 %s p99 %s (%d requests)",
		ms(alone.p50), ms(alone.p99), alone.n, ms(during.p50), ms(during.p99), during.n)
}
