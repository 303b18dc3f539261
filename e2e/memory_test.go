package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/loadtest"
)

// Budgets per open stream in the gateway process, measured after forced
// collections. On the EPYC VM of 2026-11-25: 2 goroutines, 10.2-10.4 KB of
// stack and 19.1-19.9 KB of live heap (six runs; the test logs its
// figures); with a 4 KB buffer more per stream, 22.6 KB. On the 2-core VM
// of 2026-12-01 the heap read 18.8-21.1 KB before the request core (8
// runs) and 19.9-22.9 KB with it (8 runs: the spread is the VM's, the same
// code moves by 3 KB between runs), hence 24 KB. They guard the
// 10,000-stream RSS goal without timing anything: a goroutine more per
// stream, a stack grown to 16 KB or a 4 KB buffer more held per stream
// fails here before a bench run would show it.
const (
	streamGoroutinesBudget = 2
	streamStackBudget      = 12 << 10
	streamHeapBudget       = 24 << 10
)

// TestOpenStreamMemoryBudget holds streams open through the gateway and
// checks what each costs it in goroutines, stack and heap: with the
// engine's model name as the public one, and with a name to rewrite in
// every event (the usual setup: "qwen3-omni-30b" in front of
// "Qwen/Qwen3-Omni-30B-A3B-Instruct").
func TestOpenStreamMemoryBudget(t *testing.T) {
	up := start(t, "bench", "upstream", "--chunks", "1000", "--chunk-interval", "1s")
	// The upstream batches without limit: max_num_seqs and an admission
	// limit past the streams held keep admission from queueing them.
	for _, tc := range []struct{ name, deployment string }{
		{"same name", `{name: up, kind: openai, url: "%s/v1", max_num_seqs: 100000}`},
		{"renamed", `{name: up, kind: openai, url: "%s/v1", upstream_model: bench-model, max_num_seqs: 100000}`},
		// Recorded for continuation: the request and the text delivered.
		{"continuable", `{name: up, kind: openai, url: "%s/v1", dialect: vllm, max_num_seqs: 100000}`},
	} {
		t.Run(tc.name, func(t *testing.T) { streamMemory(t, fmt.Sprintf(tc.deployment, up.URL)) })
	}
}

// streamMemory runs TestOpenStreamMemoryBudget against one deployment.
func streamMemory(t *testing.T, deployment string) {
	const streams = 500
	cfg := writeConfig(t, fmt.Sprintf(`
server: {addr: "127.0.0.1:0"}
models:
  - name: m
    admission: {limit: {initial: 100000}}
    deployments: [%s]
`, deployment))
	debug := freeAddr(t)
	gw := start(t, "serve", "--config", cfg, "--debug-addr", debug)

	// measure forces two collections (pprof's heap?gc=1; the second frees
	// what sync.Pools kept through the first) and reads the gauges.
	measure := func() loadtest.GoStats {
		t.Helper()
		st := goStats(t, gw, debug)
		if st.StackBytes == 0 {
			t.Fatalf("the gateway's /metrics lacks the stack gauge: %+v", st)
		}
		return st
	}

	// Warm up the pools and the connection paths with a few streams first.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	open := func(n int) []io.Closer {
		t.Helper()
		bodies := make([]io.Closer, n)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+"/v1/chat/completions",
					strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				bodies[i] = resp.Body
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
				if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
					errs <- err // the first chunk: the stream is relayed
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return bodies
	}
	closeAll := func(bodies []io.Closer) {
		for _, b := range bodies {
			if b != nil {
				b.Close()
			}
		}
	}
	closeAll(open(20))

	before := measure()
	held := open(streams)
	defer closeAll(held)
	// The least of five readings: between them a stream may hold a read
	// buffer for a moment (an event in flight), which is not what it costs
	// at rest; a cost every stream pays shows in all five.
	after := measure()
	for range 4 {
		time.Sleep(50 * time.Millisecond)
		if m := measure(); m.HeapBytes < after.HeapBytes {
			after = m
		}
	}
	per := func(a, b int64) float64 { return float64(b-a) / streams }
	g1, g0 := after.Goroutines, before.Goroutines
	g := per(int64(g0), int64(g1))
	s, h := per(before.StackBytes, after.StackBytes), per(before.HeapBytes, after.HeapBytes)
	t.Logf("per open stream: %.2f goroutines, %.0f B stack, %.0f B heap (%d streams)", g, s, h, streams)
	if g1-g0 > streams*streamGoroutinesBudget+2 { // +2: a transient one, as the pprof handler's
		t.Errorf("%.2f goroutines per stream, budget %d", g, streamGoroutinesBudget)
	}
	if s > streamStackBudget {
		t.Errorf("%.0f B of stack per stream, budget %d", s, streamStackBudget)
	}
	if h > streamHeapBudget {
		t.Errorf("%.0f B of heap per stream, budget %d", h, streamHeapBudget)
	}
}
