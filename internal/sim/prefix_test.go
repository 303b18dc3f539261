package sim

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/clock"
)

// System prompts of 40 × 13 = 520, 520 and 40 × 11 = 440 tokens.
var (
	systemA = strings.Repeat("You are a careful assistant; answer briefly. ", 40)
	systemB = strings.Repeat("You are a pirate captain; answer in rhyme. ", 40)
	systemC = strings.Repeat("You are a terse librarian; cite the shelf. ", 40)
)

// chatWith renders a chat request: a system prompt (if any), then user
// messages, each a string or a list of content parts.
func chatWith(system string, users ...any) string {
	var msgs []map[string]any
	if system != "" {
		msgs = append(msgs, map[string]any{"role": "system", "content": system})
	}
	for _, u := range users {
		msgs = append(msgs, map[string]any{"role": "user", "content": u})
	}
	b, _ := json.Marshal(map[string]any{"messages": msgs})
	return string(b)
}

func image(url string) []map[string]any {
	return []map[string]any{{"type": "image_url", "image_url": map[string]string{"url": url}}}
}

// promptOf parses a chat or completion body on p and returns its prompt.
func promptOf(t testing.TB, p Profile, body string) promptInfo {
	t.Helper()
	var (
		r   *genRequest
		err error
	)
	if strings.Contains(body, `"prompt"`) {
		r, err = parseCompletion([]byte(body), &p)
	} else {
		r, err = parseChat([]byte(body), &p)
	}
	if err != nil {
		t.Fatal(err)
	}
	return r.prompts[0]
}

// sharedBlocks counts the leading block hashes a and b have in common.
func sharedBlocks(a, b []uint64) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func TestPromptBlockHashes(t *testing.T) {
	p := mustProfile(t, "qwen3-omni-7b") // block size 16, an image is 576 tokens
	// Everything before the user's text: the system turn (3 + 520 + 2
	// template tokens), then the user turn's 3 opening tokens.
	beforeUser := 3 + countTokens(systemA) + 2 + 3
	ids := func(from, n int) string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprint(from+i))
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	for _, tc := range []struct {
		name   string
		a, b   string
		shared int // leading blocks in common
	}{
		{"identical", chatWith(systemA, "What is the capital of France?"), chatWith(systemA, "What is the capital of France?"), -1},
		{"same system prompt", chatWith(systemA, "What is the capital of France?"), chatWith(systemA, "Name three rivers."), beforeUser / 16},
		{"different system prompt", chatWith(systemA, "What is the capital of France?"), chatWith(systemB, "What is the capital of France?"), 0},
		{"earlier turns shared", chatWith(systemA, "Hello there.", "What next?"), chatWith(systemA, "Hello there.", "Why?"), (beforeUser + countTokens("Hello there.") + 2 + 3) / 16},
		{"same image", chatWith(systemA, image("https://example.com/cat.png"), "What is it?"), chatWith(systemA, image("https://example.com/cat.png"), "Who drew it?"), (beforeUser + 576 + 2 + 3) / 16},
		{"different image", chatWith(systemA, image("https://example.com/cat.png")), chatWith(systemA, image("https://example.com/dog.png")), beforeUser / 16},
		{"token ids", `{"prompt":` + ids(0, 40) + `}`, `{"prompt":` + strings.TrimSuffix(ids(0, 39), "]") + `,999]}`, 39 / 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := promptOf(t, p, tc.a), promptOf(t, p, tc.b)
			for _, pi := range []promptInfo{a, b} {
				if len(pi.blocks) != pi.tokens/16 {
					t.Errorf("%d block hashes for %d prompt tokens, want %d", len(pi.blocks), pi.tokens, pi.tokens/16)
				}
			}
			want := tc.shared
			if want < 0 {
				want = len(a.blocks)
			}
			if got := sharedBlocks(a.blocks, b.blocks); got != want {
				t.Errorf("%d leading blocks shared, want %d", got, want)
			}
		})
	}
}

// The rendering cuts text into exactly as many tokens as the prompt counts,
// whatever the template adds: tools, continuations, no generation prompt.
func TestPromptBlocksCountAllTokens(t *testing.T) {
	p := mustProfile(t, "qwen3-omni-7b")
	p.BlockSize = 1 // one hash per token: the counts must agree exactly
	tools := `,"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}]`
	for _, body := range []string{
		chatWith(systemA, "What is the capital of France? 東京 naïve café ✓"),
		`{"messages":[{"role":"user","content":"hi"}]` + tools + `}`,
		`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Once upon"}],"continue_final_message":true,"add_generation_prompt":false}`,
		`{"messages":[{"role":"user","content":"hi"}],"add_generation_prompt":false}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}},{"type":"video","video":["a.jpg","b.jpg"]}]}]}`,
		`{"prompt":"Once upon a time, in a land far away"}`,
	} {
		pi := promptOf(t, p, body)
		if len(pi.blocks) != pi.tokens {
			t.Errorf("%s: %d tokens rendered, %d counted", body, len(pi.blocks), pi.tokens)
		}
	}
	off := false
	p.PrefixCaching = &off
	if pi := promptOf(t, p, chatWith(systemA, "hi")); pi.blocks != nil {
		t.Errorf("prefix caching off: %d block hashes", len(pi.blocks))
	}
}

// cacheProfile is testProfile with a cache big enough for several prompts.
func cacheProfile(kvTokens int) Profile {
	p := testProfile()
	p.KVCacheTokens = kvTokens
	return p
}

// prefillOf sums the prefill tokens each sequence computed over the steps.
func prefillOf(steps []step, n int) []int {
	out := make([]int, n)
	for _, st := range steps {
		for _, w := range st.work {
			if !w.decode {
				out[w.s.idx] += w.tokens
			}
		}
	}
	return out
}

// admittedAt records the tokens each sequence had computed when it was
// first planned: the cached tokens it was admitted with.
func admittedAt(n int) ([]int, func(step)) {
	got := make([]int, n)
	seen := make([]bool, n)
	return got, func(st step) {
		for _, w := range st.work {
			if i := w.s.idx; !seen[i] {
				seen[i], got[i] = true, w.s.computed
			}
		}
	}
}

func TestPrefixCacheSecondRequest(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name    string
		second  string
		caching bool
		hit     bool
	}{
		{"same system prompt", systemA, true, true},
		{"different system prompt", systemB, true, false},
		{"prefix caching off", systemA, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := cacheProfile(16384)
			if !tc.caching {
				p.PrefixCaching = &off
			}
			a := promptOf(t, p, chatWith(systemA, "What is the capital of France?"))
			b := promptOf(t, p, chatWith(tc.second, "What is the capital of Norway?"))
			c := newCore(p)
			arr := []arrival{{0, a.tokens, 4}, {time.Second, b.tokens, 4}}
			cached, check := admittedAt(2)
			res, steps := simulateHashed(t, c, arr, [][]uint64{a.blocks, b.blocks}, check)
			prefill := prefillOf(steps, 2)
			wantHit := 0
			if tc.hit {
				wantHit = sharedBlocks(a.blocks, b.blocks) * p.BlockSize
			}
			if cached[1] != wantHit || prefill[1] != b.tokens-wantHit || prefill[0] != a.tokens {
				t.Errorf("second request admitted with %d tokens cached, prefilled %d of %d (first %d of %d); want %d cached",
					cached[1], prefill[1], b.tokens, prefill[0], a.tokens, wantHit)
			}
			ttftA, ttftB := res[0].first, res[1].first-time.Second
			if want := ttftA - time.Duration(wantHit)*p.PrefillPerToken; ttftB != want {
				t.Errorf("first token after %v, then %v; want %v", ttftA, ttftB, want)
			}
			wantQueries := a.tokens + b.tokens
			if !tc.caching {
				wantQueries = 0
			}
			if diff := cmp.Diff([2]int{wantQueries, wantHit}, [2]int{c.queries, c.hits}); diff != "" {
				t.Errorf("queries, hits (-want +got):\n%s", diff)
			}
			if c.usedBlocks != 0 || c.usage() != 0 {
				t.Errorf("after the run: %d blocks in use, usage %v", c.usedBlocks, c.usage())
			}
		})
	}
}

// Under KV pressure the least recently freed blocks go first, and cached
// blocks never stand in the way of an admission.
func TestPrefixCacheEvictsLeastRecentlyUsed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kvTokens int
		evicted  bool
	}{
		{"room for all", 16384, false},
		{"64 blocks", 1024, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := cacheProfile(tc.kvTokens)
			p.MaxModelLen = 4096
			short := func(s string) string { return s[:len(s)*3/4] } // 390 tokens: 25 blocks
			first := promptOf(t, p, chatWith(short(systemA), "one"))
			second := promptOf(t, p, chatWith(short(systemB), "two"))
			big := promptOf(t, p, chatWith(systemC+systemC[:len(systemC)/2], "three")) // 42 blocks
			againSecond := promptOf(t, p, chatWith(short(systemB), "four"))
			againFirst := promptOf(t, p, chatWith(short(systemA), "five"))
			prompts := []promptInfo{first, second, big, againSecond, againFirst}
			var arr []arrival
			var hashes [][]uint64
			for i, pi := range prompts {
				arr = append(arr, arrival{time.Duration(i) * time.Second, pi.tokens, 4})
				hashes = append(hashes, pi.blocks)
			}
			c := newCore(p)
			cached, check := admittedAt(len(arr))
			simulateHashed(t, c, arr, hashes, check)
			full := []int{0, 0, 0, sharedBlocks(second.blocks, againSecond.blocks) * 16, sharedBlocks(first.blocks, againFirst.blocks) * 16}
			if !tc.evicted {
				if diff := cmp.Diff(full, cached); diff != "" {
					t.Errorf("tokens cached at admission (-want +got):\n%s", diff)
				}
				return
			}
			// The big prompt evicted all of the first prompt's blocks (freed
			// first) and the tail of the second's; the second's beginning is
			// still there, and the first is computed afresh.
			if cached[2] != 0 || cached[3] == 0 || cached[3] >= full[3] || cached[4] != 0 {
				t.Errorf("tokens cached at admission %v; without eviction %v", cached, full)
			}
			if c.preemptions != 0 {
				t.Errorf("%d preemptions: cached blocks must give way, not running sequences", c.preemptions)
			}
		})
	}
}

// checkCache verifies the block accounting: blocks held by running
// sequences are in the cache and never evictable, the reference counts are
// the holders, and in-use plus evictable blocks fit the cache.
func checkCache(t *testing.T, c *core) {
	t.Helper()
	holders := map[*cachedBlock]int{}
	used := 0
	for _, s := range c.running {
		private := s.blocks
		for _, b := range s.refs {
			if b == nil {
				continue
			}
			private--
			if c.cache.byHash[b.hash] != b || b.prev != nil {
				t.Fatalf("a block held by a running sequence was evicted or is evictable")
			}
			if holders[b] == 0 {
				used++
			}
			holders[b]++
		}
		used += private
	}
	for b, n := range holders {
		if b.refs != n {
			t.Fatalf("block with %d references held by %d sequences", b.refs, n)
		}
	}
	evictable := 0
	for b := c.cache.lru.next; b != &c.cache.lru; b = b.next {
		if b.refs != 0 || c.cache.byHash[b.hash] != b {
			t.Fatalf("evictable block with %d references", b.refs)
		}
		evictable++
	}
	if used != c.usedBlocks || evictable != c.cache.evictable || len(c.cache.byHash) != evictable+len(holders) {
		t.Fatalf("counted %d in use, %d evictable, %d cached; core says %d, %d, %d",
			used, evictable, len(holders)+evictable, c.usedBlocks, c.cache.evictable, len(c.cache.byHash))
	}
	if c.usedBlocks+c.cache.evictable > c.totalBlocks {
		t.Fatalf("%d blocks in use and %d evictable in a cache of %d", c.usedBlocks, c.cache.evictable, c.totalBlocks)
	}
}

// Many requests on three system prompts in a small cache: preemptions,
// evictions and hits together, and the accounting holds after every step.
func TestPrefixCacheAccountingUnderPressure(t *testing.T) {
	p := cacheProfile(2048) // 128 blocks; each prompt is about 34, shared; each answer up to 16 more
	p.MaxNumSeqs = 8
	var arr []arrival
	var hashes [][]uint64
	for i := range 24 {
		pi := promptOf(t, p, chatWith([]string{systemA, systemB, systemC}[i%3], fmt.Sprintf("question %d", i)))
		arr = append(arr, arrival{time.Duration(i) * 5 * time.Millisecond, pi.tokens, 150 + i%3*50})
		hashes = append(hashes, pi.blocks)
	}
	c := newCore(p)
	simulateHashed(t, c, arr, hashes, func(step) { checkCache(t, c) })
	checkCache(t, c)
	t.Logf("%d preemptions, %d of %d prompt tokens hit", c.preemptions, c.hits, c.queries)
	if c.preemptions == 0 || c.hits == 0 {
		t.Errorf("%d preemptions, %d tokens hit: want pressure and hits", c.preemptions, c.hits)
	}
	if c.usedBlocks != 0 || c.cache.evictable == 0 {
		t.Errorf("after the run: %d blocks in use, %d evictable", c.usedBlocks, c.cache.evictable)
	}
}

// A preempted sequence's prompt blocks stay cached: readmitted, it starts
// past those not evicted meanwhile.
func TestPreemptedSequenceReHitsItsBlocks(t *testing.T) {
	p := testProfile()
	p.KVCacheTokens = 160 // 10 blocks; two 64-token prompts growing by 60 need 16
	arr := []arrival{{0, 64, 60}, {0, 64, 60}}
	hashes := [][]uint64{{1, 2, 3, 4}, {11, 12, 13, 14}}
	readmitted := -1
	var c *core
	check := func(st step) {
		for _, w := range st.work {
			if w.s.idx == 1 && c.preemptions > 0 && readmitted < 0 {
				readmitted = w.s.computed
			}
		}
	}
	c = newCore(p)
	_, steps := simulateHashed(t, c, arr, hashes, check)
	if c.preemptions != 1 {
		t.Fatalf("%d preemptions, want 1", c.preemptions)
	}
	t.Logf("readmitted with %d tokens cached", readmitted)
	if readmitted <= 0 || readmitted%16 != 0 {
		t.Errorf("readmitted with %d tokens cached, want some whole blocks of its prompt", readmitted)
	}
	withCache := prefillOf(steps, 2)[1]

	off := false
	p.PrefixCaching = &off
	_, steps = simulate(t, newCore(p), arr)
	if without := prefillOf(steps, 2)[1]; withCache != without-readmitted {
		t.Errorf("preempted sequence prefilled %d tokens, %d without prefix caching; want %d fewer", withCache, without, readmitted)
	}
}

// The second of two requests sharing a system prompt answers sooner by
// the prefill it skips, and /metrics counts the lookups.
func TestPrefixCacheOverHTTP(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name    string
		caching *bool
	}{
		{"on", nil},
		{"off", &off},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustProfile(t, "qwen3-omni-7b")
			p.PrefixCaching = tc.caching
			p.AnswerTokens = [2]int{8, 8}
			clk := clock.NewFake(time.Unix(0, 0))
			_, srv := startEngine(t, p, Options{Clock: clk})
			done := make(chan struct{})
			defer close(done)
			go drive(clk, done)
			var took []time.Duration
			var prompts []promptInfo
			for _, body := range []string{chatWith(systemA, "What is the capital of France?"), chatWith(systemA, "What is the capital of Norway?")} {
				start := clk.Now()
				bodyOf(t, srv, body)
				took = append(took, clk.Now().Sub(start))
				prompts = append(prompts, promptOf(t, p, body))
			}
			queries, hits := prompts[0].tokens+prompts[1].tokens, sharedBlocks(prompts[0].blocks, prompts[1].blocks)*16
			if tc.caching != nil {
				queries, hits = 0, 0
			}
			if want := took[0] - time.Duration(hits)*p.PrefillPerToken; took[1] != want {
				t.Errorf("second request took %v, first %v; want %v", took[1], took[0], want)
			}
			m := get(t, srv, "/metrics")
			for _, want := range []string{
				fmt.Sprintf(`vllm:prefix_cache_queries_total{model_name="qwen3-omni-7b"} %d`, queries),
				fmt.Sprintf(`vllm:prefix_cache_hits_total{model_name="qwen3-omni-7b"} %d`, hits),
				`vllm:kv_cache_usage_perc{model_name="qwen3-omni-7b"} 0`,
			} {
				if !strings.Contains(m, want+"\n") {
					t.Errorf("/metrics lacks %s:\n%s", want, grepLines(m, "prefix_cache"))
				}
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
