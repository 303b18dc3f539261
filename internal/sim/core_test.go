package sim

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// arrival is one sequence entering the engine at a virtual time.
type arrival struct {
	at             time.Duration
	prompt, target int
}

// outcome is when a simulated sequence got its first and last token.
type outcome struct {
	first, done time.Duration
}

// simulate drives the core in virtual time, as the scheduler goroutine does
// in real time, and returns each sequence's outcome and the step plans.
func simulate(t *testing.T, c *core, arr []arrival) ([]outcome, []step) {
	t.Helper()
	return simulateHashed(t, c, arr, nil, nil)
}

// simulateHashed is simulate with each sequence's prompt block hashes
// (hashes[i], if any) and a check run after each step is planned.
func simulateHashed(t *testing.T, c *core, arr []arrival, hashes [][]uint64, check func(step)) ([]outcome, []step) {
	t.Helper()
	seqs := make([]*seq, len(arr))
	res := make([]outcome, len(arr))
	var steps []step
	now, next, left := time.Duration(0), 0, len(arr)
	for left > 0 {
		for next < len(arr) && arr[next].at <= now {
			seqs[next] = &seq{prompt: arr[next].prompt, target: arr[next].target, idx: next}
			if next < len(hashes) {
				seqs[next].hashes = hashes[next]
			}
			c.add(seqs[next])
			next++
		}
		if c.idle() {
			now = arr[next].at
			continue
		}
		st := c.plan()
		if len(st.work) == 0 {
			t.Fatalf("at %v: nothing can run (waiting %d, running %d)", now, len(c.waiting), len(c.running))
		}
		if check != nil {
			check(st)
		}
		steps = append(steps, st)
		now += st.dur
		for _, q := range c.complete(st) {
			if q.generated == 1 && res[q.idx].first == 0 {
				res[q.idx].first = now
			}
			if q.generated == q.target {
				c.remove(q)
				res[q.idx].done = now
				left--
			}
		}
		if len(steps) > 1e6 {
			t.Fatal("simulation does not converge")
		}
	}
	return res, steps
}

func mustProfile(t testing.TB, name string) Profile {
	t.Helper()
	p, err := LoadProfile(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// shortPrompt is a one-line user question under the chat template.
var shortPrompt = tokensPerMessage + tokensForAssistant + countTokens("What is the capital of France? Answer in one sentence.")

func TestShortPromptLatency(t *testing.T) {
	for _, tc := range []struct {
		profile  string
		min, max time.Duration
	}{
		{"qwen3-omni-7b", 0, 500 * time.Millisecond},
		{"qwen3-omni-30b", 2 * time.Second, 3 * time.Second},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			p := mustProfile(t, tc.profile)
			// Both ends of the answer-length range must land in the window.
			for _, target := range []int{p.AnswerTokens[0], p.AnswerTokens[1]} {
				res, _ := simulate(t, newCore(p), []arrival{{prompt: shortPrompt, target: target}})
				if d := res[0].done; d <= tc.min || d >= tc.max {
					t.Errorf("%d tokens took %v, want within (%v, %v)", target, d, tc.min, tc.max)
				}
				if res[0].first <= 0 || res[0].first >= res[0].done {
					t.Errorf("first token at %v, done at %v", res[0].first, res[0].done)
				}
			}
		})
	}
}

// At 64 concurrent requests the 30B tier must deliver more tokens per second
// in aggregate than the 7B tier, although each of its requests is slower.
func TestThroughputUnderLoad(t *testing.T) {
	tput := map[string]float64{}
	for _, name := range []string{"qwen3-omni-7b", "qwen3-omni-30b"} {
		p := mustProfile(t, name)
		var arr []arrival
		tokens := 0
		for i := range 64 {
			target := p.AnswerTokens[0] + i%(p.AnswerTokens[1]-p.AnswerTokens[0]+1)
			arr = append(arr, arrival{prompt: shortPrompt + i, target: target})
			tokens += target
		}
		res, _ := simulate(t, newCore(p), arr)
		var end time.Duration
		for _, r := range res {
			end = max(end, r.done)
		}
		tput[name] = float64(tokens) / end.Seconds()
	}
	if tput["qwen3-omni-30b"] <= tput["qwen3-omni-7b"] {
		t.Errorf("aggregate tokens/s at 64 concurrent: 30b %.0f, 7b %.0f; want 30b higher", tput["qwen3-omni-30b"], tput["qwen3-omni-7b"])
	}
	t.Logf("aggregate tokens/s at 64 concurrent: %v", tput)
}

func testProfile() Profile {
	p := Profile{Name: "test", MaxModelLen: 4096, MaxNumSeqs: 4, KVCacheTokens: 1024, BlockSize: 16,
		PrefillPerToken: time.Microsecond, DecodeBase: 10 * time.Millisecond, DecodePerSeq: time.Millisecond, AnswerTokens: [2]int{4, 8}}
	p.applyDefaults()
	return p
}

func TestStepTimeGrowsWithBatch(t *testing.T) {
	p := testProfile()
	for _, tc := range []struct {
		seqs int
		want time.Duration // a decode step with seqs running
	}{
		{1, 11 * time.Millisecond},
		{2, 12 * time.Millisecond},
		{4, 14 * time.Millisecond},
	} {
		t.Run("", func(t *testing.T) {
			c := newCore(p)
			for range tc.seqs {
				c.add(&seq{prompt: 10, target: 5})
			}
			first := c.plan() // the prefill step
			if want := 11*time.Millisecond + time.Duration(tc.seqs-1)*time.Millisecond + time.Duration(10*tc.seqs)*time.Microsecond; first.dur != want {
				t.Errorf("prefill step %v, want %v", first.dur, want)
			}
			c.complete(first)
			if got := c.plan(); got.dur != tc.want || got.decodes != tc.seqs {
				t.Errorf("decode step %v with %d decodes, want %v with %d", got.dur, got.decodes, tc.want, tc.seqs)
			}
		})
	}
}

func TestBatchingAndWaitingQueue(t *testing.T) {
	p := testProfile() // max_num_seqs 4
	c := newCore(p)
	var arr []arrival
	for range 6 {
		arr = append(arr, arrival{prompt: 8, target: 3})
	}
	res, steps := simulate(t, c, arr)
	if got := len(steps[0].work); got != 4 {
		t.Errorf("first step ran %d sequences, want max_num_seqs 4", got)
	}
	// The first four finish together; the last two wait, FIFO, and finish later.
	for i := 1; i < 4; i++ {
		if res[i] != res[0] {
			t.Errorf("seq %d %v, seq 0 %v: want the same batch", i, res[i], res[0])
		}
	}
	if !(res[4].first > res[0].first && res[4].first >= res[0].done && res[4] == res[5]) {
		t.Errorf("queued sequences: %v %v, first batch done at %v", res[4], res[5], res[0].done)
	}
}

func TestContinuousBatchingAdmitsMidFlight(t *testing.T) {
	p := testProfile()
	c := newCore(p)
	res, _ := simulate(t, c, []arrival{{0, 8, 20}, {25 * time.Millisecond, 8, 2}})
	// The late arrival joins the running batch and finishes long before the
	// first sequence: no waiting for the batch to drain.
	if !(res[1].done < res[0].done) {
		t.Errorf("late short request done at %v, long one at %v", res[1].done, res[0].done)
	}
}

func TestPreemptionUnderKVPressure(t *testing.T) {
	p := testProfile()
	p.KVCacheTokens = 128 // 8 blocks of 16
	c := newCore(p)
	// Three sequences of 30 prompt tokens (2 blocks each) growing to 60 (4
	// blocks): they cannot all keep growing in 8 blocks.
	arr := []arrival{{0, 30, 30}, {0, 30, 30}, {0, 30, 30}}
	res, _ := simulate(t, c, arr)
	if c.preemptions == 0 {
		t.Fatal("no preemption under KV pressure")
	}
	if c.usedBlocks != 0 || !c.idle() {
		t.Errorf("after the run: %d blocks used, idle %v", c.usedBlocks, c.idle())
	}
	// The newest was preempted, so the oldest finishes first.
	if !(res[0].done <= res[1].done && res[1].done <= res[2].done) {
		t.Errorf("finish order %v", res)
	}
}

func TestPreemptNewestBackToFront(t *testing.T) {
	p := testProfile()
	p.KVCacheTokens = 64 // 4 blocks
	c := newCore(p)
	a, b := &seq{prompt: 16, target: 40}, &seq{prompt: 16, target: 40}
	c.add(a)
	c.add(b)
	w := &seq{prompt: 8, target: 2}
	for c.preemptions == 0 {
		st := c.plan()
		if len(st.work) == 0 {
			t.Fatal("stalled")
		}
		c.complete(st)
		if len(c.waiting) == 0 && w.state == stateNew {
			c.add(w)
		}
	}
	if diff := cmp.Diff([]*seq{b, w}, c.waiting, cmp.Comparer(func(x, y *seq) bool { return x == y })); diff != "" {
		t.Errorf("waiting queue after preemption (-want +got):\n%s", diff)
	}
	if b.blocks != 0 || b.computed != 0 {
		t.Errorf("preempted sequence kept %d blocks, %d computed tokens", b.blocks, b.computed)
	}
}

func TestChunkedPrefill(t *testing.T) {
	p := testProfile()
	p.MaxNumBatchedTokens = 100
	p.MaxModelLen = 10000
	p.KVCacheTokens = 10000
	c := newCore(p)
	res, steps := simulate(t, c, []arrival{{0, 250, 1}})
	if len(steps) != 3 {
		t.Errorf("a 250-token prompt with a 100-token budget took %d steps, want 3", len(steps))
	}
	if res[0].first != res[0].done {
		t.Errorf("outcome %v", res[0])
	}
}

func TestAbortFreesKV(t *testing.T) {
	c := newCore(testProfile())
	s := &seq{prompt: 100, target: 10}
	c.add(s)
	c.complete(c.plan())
	if c.usedBlocks == 0 {
		t.Fatal("running sequence holds no KV")
	}
	if !c.remove(s) || c.usedBlocks != 0 || !c.idle() {
		t.Errorf("after abort: %d blocks used, idle %v", c.usedBlocks, c.idle())
	}
	if c.remove(s) {
		t.Error("second remove reported true")
	}
}
