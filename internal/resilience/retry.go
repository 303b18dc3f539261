// Package resilience holds the policies that decide how hard the gateway
// tries: the retry budget that keeps retries to a share of a model's
// requests, and the backoff between rounds of attempts.
package resilience

import (
	"math/rand/v2"
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
