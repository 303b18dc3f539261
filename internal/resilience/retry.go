// Package resilience holds the policies that decide how hard the gateway
// tries: the retry budget that keeps retries to a share of a model's
// requests, and the backoff between rounds of attempts.
package resilience

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Window is how far back a Budget counts.
const Window = 10 * time.Second

// Budget bounds a model's retries to Ratio of its requests over the last
// Window (counted in two halves that age out in turn), and at least Min,
// so a tier that fails every request gets about 1+Ratio times the clients'
// requests, not Attempts times. It is live state: one per model, kept
// across config reloads. Safe for concurrent use.
type Budget struct {
	mu             sync.Mutex
	start          time.Time // of the current half
	reqs, rets     [2]int    // [current, previous] half
	Ratio          float64
	Min            int
	halfWindowNano int64
}

// NewBudget returns a budget allowing ratio retries per request, and min
// per window whatever the share.
func NewBudget(ratio float64, min int) *Budget {
	return &Budget{Ratio: ratio, Min: min, halfWindowNano: int64(Window / 2)}
}

// Set changes the policy (a reload), keeping the counts.
func (b *Budget) Set(ratio float64, min int) {
	b.mu.Lock()
	b.Ratio, b.Min = ratio, min
	b.mu.Unlock()
}

// Request counts one request of the model at now.
func (b *Budget) Request(now time.Time) {
	b.mu.Lock()
	b.roll(now)
	b.reqs[0]++
	b.mu.Unlock()
}

// Retry reports whether one more retry fits at now, and counts it if so.
func (b *Budget) Retry(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(now)
	reqs, rets := b.reqs[0]+b.reqs[1], b.rets[0]+b.rets[1]
	if float64(rets) >= max(b.Ratio*float64(reqs), float64(b.Min)) {
		return false
	}
	b.rets[0]++
	return true
}

func (b *Budget) roll(now time.Time) {
	switch d := now.Sub(b.start).Nanoseconds(); {
	case b.start.IsZero() || d >= 2*b.halfWindowNano:
		b.reqs, b.rets = [2]int{}, [2]int{}
		b.start = now
	case d >= b.halfWindowNano:
		b.reqs[1], b.rets[1] = b.reqs[0], b.rets[0]
		b.reqs[0], b.rets[0] = 0, 0
		b.start = b.start.Add(time.Duration(b.halfWindowNano))
	}
}

// Backoff is the wait before round n (1, 2, …) of attempts: full jitter,
// a uniform draw in [0, min(max, base·2^(n-1))).
func Backoff(n int, base, cap time.Duration) time.Duration {
	if base <= 0 || n < 1 {
		return 0
	}
	d := base << min(n-1, 30)
	if d <= 0 || d > cap {
		d = cap
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}

// Latencies keeps a model's recent times to first byte and their
// percentiles, for a hedge that waits "about as long as it usually
// takes". The zero value is ready; safe for concurrent use.
type Latencies struct {
	mu      sync.Mutex
	samples [latencySamples]time.Duration
	n, next int // samples held, and where the next goes
	since   int // samples recorded since the cache was computed
	cache   [101]time.Duration
	cached  bool
}

// latencySamples is how many recent samples Latencies keeps.
const latencySamples = 256

// Observe records one latency.
func (l *Latencies) Observe(d time.Duration) {
	l.mu.Lock()
	l.samples[l.next] = d
	l.next = (l.next + 1) % latencySamples
	l.n = min(l.n+1, latencySamples)
	l.since++
	l.mu.Unlock()
}

// Percentile returns the p-th percentile (0–100) of the recent samples,
// and false with fewer than minLatencySamples. It sorts at most once per
// 32 new samples.
func (l *Latencies) Percentile(p int) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n < minLatencySamples {
		return 0, false
	}
	if !l.cached || l.since >= 32 {
		s := slices.Clone(l.samples[:l.n])
		slices.Sort(s)
		for q := range l.cache {
			l.cache[q] = s[min(q*len(s)/100, len(s)-1)]
		}
		l.cached, l.since = true, 0
	}
	return l.cache[min(max(p, 0), 100)], true
}

// minLatencySamples is how many samples a percentile needs.
const minLatencySamples = 20
