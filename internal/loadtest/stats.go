package loadtest

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Samples collects durations for exact percentiles. Up to its capacity it
// keeps every observation; past it, a uniform reservoir (Algorithm R), so a
// long run stays bounded in memory without biasing the percentiles. Count,
// mean and max always cover every observation.
type Samples struct {
	mu   sync.Mutex
	cap  int
	n    int64
	sum  time.Duration
	max  time.Duration
	vals []time.Duration
	rng  uint64
}

// NewSamples returns an empty collector keeping at most capacity samples.
func NewSamples(capacity int) *Samples {
	if capacity < 1 {
		capacity = 1
	}
	return &Samples{cap: capacity, vals: make([]time.Duration, 0, min(capacity, 1<<16)), rng: 0x9e3779b97f4a7c15}
}

// Add records one observation.
func (s *Samples) Add(d time.Duration) {
	s.mu.Lock()
	s.n++
	s.sum += d
	s.max = max(s.max, d)
	if len(s.vals) < s.cap {
		s.vals = append(s.vals, d)
	} else if j := s.next() % uint64(s.n); j < uint64(s.cap) {
		s.vals[j] = d
	}
	s.mu.Unlock()
}

// next is xorshift64: cheap, deterministic, good enough for reservoir slots.
func (s *Samples) next() uint64 {
	x := s.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	s.rng = x
	return x
}

// Summarize returns the percentiles of what has been recorded so far.
func (s *Samples) Summarize() Summary {
	s.mu.Lock()
	sorted := slices.Clone(s.vals)
	n, sum, mx := s.n, s.sum, s.max
	s.mu.Unlock()
	slices.Sort(sorted)
	if n == 0 {
		return Summary{}
	}
	return Summary{
		Count:  n,
		MeanUS: us(sum / time.Duration(n)),
		P50US:  us(Percentile(sorted, 50)),
		P90US:  us(Percentile(sorted, 90)),
		P99US:  us(Percentile(sorted, 99)),
		MaxUS:  us(mx),
	}
}

// Summary is a latency distribution in microseconds.
type Summary struct {
	Count  int64   `json:"count"`
	MeanUS float64 `json:"mean_us"`
	P50US  float64 `json:"p50_us"`
	P90US  float64 `json:"p90_us"`
	P99US  float64 `json:"p99_us"`
	MaxUS  float64 `json:"max_us"`
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of an
// ascending slice: the smallest value with at least p% of samples at or below it.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// median returns the median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
