package sim

import (
	"slices"
	"time"
)

// core is the continuous-batching model with no goroutines and no clock:
// it decides what one engine step does and how long it takes, and applies
// the step's results. The scheduler goroutine drives it in real (or fake)
// time; tests drive it directly in virtual time.
//
// The model follows vLLM V1: every step has a token budget
// (max_num_batched_tokens); each running sequence that has finished its
// prefill decodes one token; the rest of the budget goes to prefills, chunked
// if long. A sequence's first token comes out of the step that completes its
// prefill. KV-cache memory is counted in blocks of block_size tokens; when a
// running sequence needs a new block and none is free, the newest running
// sequence is preempted back to the head of the waiting queue and its KV
// dropped (recompute preemption: on readmission it prefills its prompt and
// the tokens it had generated again). With prefix caching (prefixcache.go)
// an admitted sequence starts past the leading blocks of its prompt that
// are still cached.
type core struct {
	p           Profile
	totalBlocks int    // 0: unlimited
	usedBlocks  int    // blocks held by running sequences; a shared block counts once
	waiting     []*seq // FIFO; preempted sequences go back to the front
	running     []*seq // in admission order; the last is the newest
	preemptions int
	cache       prefixCache
	slowdown    float64 // step-time factor; 0 means 1

	// Prefix-cache lookups at first admission, as vLLM counts them: prompt
	// tokens looked up, and those found cached.
	queries, hits int
}

// seq is one sequence (one choice of one request) inside the engine.
type seq struct {
	prompt int      // prompt tokens
	target int      // tokens to generate
	hashes []uint64 // the prompt's full blocks (blockHasher); nil: not cached

	// Owned by the core.
	generated int            // tokens produced so far
	computed  int            // tokens whose KV is in the cache
	blocks    int            // KV blocks held
	refs      []*cachedBlock // the first len(refs) blocks: cached ones, nil for private
	queried   bool           // looked up in the prefix cache at a first admission
	state     int8           // stateNew, stateWaiting, stateRunning, stateDone

	// Owned by the scheduler goroutine and the handler, see scheduler.go.
	out *stream
	idx int
}

const (
	stateNew int8 = iota
	stateWaiting
	stateRunning
	stateDone
)

// step is one planned engine iteration.
type step struct {
	dur     time.Duration
	work    []stepWork
	prefill int // prompt tokens computed in this step
	decodes int
}

// stepWork is what one sequence does in a step.
type stepWork struct {
	s      *seq
	tokens int  // tokens whose KV the step computes for s
	emits  bool // s produces a token at the end of the step
	decode bool // a plain decode (one token), not a prefill chunk
}

func newCore(p Profile) *core {
	c := &core{p: p}
	c.cache.init(p.prefixCaching())
	if p.KVCacheTokens > 0 {
		c.totalBlocks = p.KVCacheTokens / p.BlockSize
	}
	return c
}

func (c *core) blocksFor(tokens int) int {
	return (tokens + c.p.BlockSize - 1) / c.p.BlockSize
}

// fits reports whether a sequence of n tokens can ever be held in the cache.
func (c *core) fits(n int) bool {
	return c.totalBlocks == 0 || c.blocksFor(n) <= c.totalBlocks
}

func (c *core) freeBlocks() int {
	if c.totalBlocks == 0 {
		return int(^uint(0) >> 1)
	}
	return c.totalBlocks - c.usedBlocks
}

// usage is the fraction of KV blocks in use, 0..1.
func (c *core) usage() float64 {
	if c.totalBlocks == 0 {
		return 0
	}
	return float64(c.usedBlocks) / float64(c.totalBlocks)
}

// add queues a new sequence.
func (c *core) add(s *seq) {
	s.state = stateWaiting
	c.waiting = append(c.waiting, s)
}

// remove takes s out of the engine (finished or aborted), releasing its KV.
// It reports whether s was still there.
func (c *core) remove(s *seq) bool {
	switch s.state {
	case stateWaiting:
		c.waiting = slices.DeleteFunc(c.waiting, func(x *seq) bool { return x == s })
	case stateRunning:
		c.running = slices.DeleteFunc(c.running, func(x *seq) bool { return x == s })
	default:
		return false
	}
	c.release(s)
	s.state = stateDone
	return true
}

// idle reports whether there is nothing to do.
func (c *core) idle() bool { return len(c.running) == 0 && len(c.waiting) == 0 }

// grow makes s hold blocks for n tokens, preempting the newest running
// sequences (other than s) if needed. It reports false when s itself had to
// be preempted.
func (c *core) grow(s *seq, n int) bool {
	need := c.blocksFor(n) - s.blocks
	for need > c.freeBlocks() {
		victim := c.running[len(c.running)-1]
		c.preempt(victim)
		if victim == s {
			return false
		}
	}
	if need > 0 {
		c.allocate(s, need)
	}
	return true
}

func (c *core) preempt(s *seq) {
	c.running = c.running[:len(c.running)-1]
	c.release(s)
	s.computed = 0
	s.state = stateWaiting
	c.waiting = slices.Insert(c.waiting, 0, s)
	c.preemptions++
}

// plan decides the next step: make room for this step's tokens (preempting
// under KV pressure), admit waiting sequences that fit, split the token
// budget. It returns a step with no work when nothing can run.
func (c *core) plan() step {
	budget := c.p.MaxNumBatchedTokens
	preemptedBefore := c.preemptions
	var st step
	// Running sequences first, oldest first, so that under pressure the
	// newest is preempted.
	for i := 0; i < len(c.running) && budget > 0; i++ {
		s := c.running[i]
		w := c.work(s, budget)
		if !c.grow(s, s.computed+w.tokens) {
			break // s was the newest left and got preempted
		}
		budget -= w.tokens
		st.work = append(st.work, w)
	}
	// Admit from the waiting queue in FIFO order while the batch and the
	// cache have room; like vLLM, admit nothing in a step that preempted.
	for len(c.waiting) > 0 && len(c.running) < c.p.MaxNumSeqs && budget > 0 && c.preemptions == preemptedBefore {
		s := c.waiting[0]
		hit, revive := c.lookup(s)
		s.computed = hit * c.p.BlockSize
		w := c.work(s, budget)
		need := c.blocksFor(s.computed+w.tokens) - hit
		if revive+need > c.freeBlocks() {
			s.computed = 0
			break
		}
		c.waiting = c.waiting[1:]
		s.state = stateRunning
		c.running = append(c.running, s)
		c.acquire(s, hit)
		c.allocate(s, need)
		if c.cache.on && !s.queried {
			s.queried = true
			c.queries += s.prompt
			c.hits += s.computed
		}
		budget -= w.tokens
		st.work = append(st.work, w)
	}
	for _, w := range st.work {
		if w.decode {
			st.decodes++
		} else {
			st.prefill += w.tokens
		}
	}
	if len(st.work) > 0 {
		st.dur = c.p.DecodeBase + time.Duration(len(st.work))*c.p.DecodePerSeq + time.Duration(st.prefill)*c.p.PrefillPerToken
		if c.slowdown > 0 && c.slowdown != 1 {
			st.dur = time.Duration(float64(st.dur) * c.slowdown)
		}
	}
	return st
}

// work is what s can do this step within budget: compute the KV of its
// pending tokens (the prompt, a recompute after preemption, or just the last
// generated token when decoding) and, if that completes, emit a token.
func (c *core) work(s *seq, budget int) stepWork {
	pending := s.prompt + s.generated - s.computed
	chunk := min(pending, budget)
	return stepWork{s: s, tokens: chunk, emits: chunk == pending, decode: pending == 1 && s.generated > 0}
}

// complete applies a finished step: prefill progress, one token for each
// sequence that emits. It returns the sequences that produced a token, in
// batch order; the caller delivers them and removes finished ones.
func (c *core) complete(st step) []*seq {
	var out []*seq
	for _, w := range st.work {
		s := w.s
		if s.state != stateRunning {
			continue // aborted or preempted while the step ran
		}
		s.computed += w.tokens
		if len(s.refs) < len(s.hashes) && c.cache.on {
			c.register(s)
		}
		if w.emits {
			s.generated++
			out = append(out, s)
		}
	}
	return out
}
