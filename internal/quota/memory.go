package quota

import (
	"context"
	"sync"
	"time"
)

// counters are one subject's: the theoretical arrival times of its minute
// limits (unix nanoseconds) and its budgets' windows and use.
type counters struct {
	requests, tokens int64
	day, month       int64 // window ids
	dayUsed, monUsed int64
}

// Memory is the Store of one process. The zero value is not ready: use
// NewMemory.
type Memory struct {
	mu    sync.Mutex
	m     map[Subject]*counters
	sweep time.Time // when idle subjects are forgotten next
}

// NewMemory returns an empty in-process store.
func NewMemory() *Memory { return &Memory{m: map[Subject]*counters{}} }

// sweepEvery is how often Memory forgets the subjects with nothing spent.
const sweepEvery = time.Minute

// Take implements Store.
func (s *Memory) Take(_ context.Context, now time.Time, asks []Ask, tokens int64) (Verdict, error) {
	w := WindowsAt(now)
	t := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.After(s.sweep) {
		s.forget(t, w)
		s.sweep = now.Add(sweepEvery)
	}
	var v Verdict
	var next [MaxAsks]counters
	for i := range asks {
		c := s.m[asks[i].Subject]
		if c == nil {
			c = &counters{}
		}
		next[i] = *c
		if dim, retry := charge(&next[i], asks[i], t, w, 1, tokens); dim != 0 && v.Denied == 0 {
			v.Denied, v.Ask, v.RetryAfter = dim, i, retry
		}
	}
	for i := range asks {
		if v.Denied == 0 {
			c := s.m[asks[i].Subject]
			if c == nil {
				c = &counters{}
				s.m[asks[i].Subject] = c
			}
			*c = next[i]
			v.Levels[i] = level(c, t, w)
		} else if c := s.m[asks[i].Subject]; c != nil {
			v.Levels[i] = level(c, t, w)
		}
	}
	return v, nil
}

// Adjust implements Store.
func (s *Memory) Adjust(_ context.Context, now time.Time, asks []Ask, delta int64) error {
	if delta == 0 {
		return nil
	}
	w := WindowsAt(now)
	t := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range asks {
		if c := s.m[asks[i].Subject]; c != nil {
			adjust(c, asks[i], t, w, delta)
		}
	}
	return nil
}

// forget drops the subjects with nothing left to remember at t.
func (s *Memory) forget(t int64, w Windows) {
	for k, c := range s.m {
		if c.requests <= t && c.tokens <= t && (c.day != w.Day || c.dayUsed == 0) && (c.month != w.Month || c.monUsed == 0) {
			delete(s.m, k)
		}
	}
}

// charge spends n requests and tokens of a's limits on c at t (unix
// nanoseconds) in windows w, unless a limit refuses: then it returns the
// dimension and how long until the charge would pass (0: never), and c is
// left as it was. The Redis script does the same.
func charge(c *counters, a Ask, t int64, w Windows, n, tokens int64) (int, time.Duration) {
	l := a.Limits
	rollWindows(c, w)
	var req, tok int64
	if l.RequestsPerMinute > 0 {
		at, retry, ok := gcra(c.requests, t, n, l.RequestsPerMinute)
		if !ok {
			return Requests, retry
		}
		req = at
	}
	if l.TokensPerMinute > 0 {
		at, retry, ok := gcra(c.tokens, t, tokens, l.TokensPerMinute)
		if !ok {
			return Tokens, retry
		}
		tok = at
	}
	if l.TokensPerDay > 0 && (c.dayUsed >= l.TokensPerDay || c.dayUsed+tokens > l.TokensPerDay) {
		return Day, never(tokens > l.TokensPerDay, w.DayEnd.UnixNano()-t)
	}
	if l.TokensPerMonth > 0 && (c.monUsed >= l.TokensPerMonth || c.monUsed+tokens > l.TokensPerMonth) {
		return Month, never(tokens > l.TokensPerMonth, w.MonthEnd.UnixNano()-t)
	}
	if l.RequestsPerMinute > 0 {
		c.requests = req
	}
	if l.TokensPerMinute > 0 {
		c.tokens = tok
	}
	c.dayUsed += tokens
	c.monUsed += tokens
	return 0, 0
}

// adjust adds delta tokens to c's token counters (a refund never takes
// them below nothing spent).
func adjust(c *counters, a Ask, t int64, w Windows, delta int64) {
	rollWindows(c, w)
	if l := a.Limits.TokensPerMinute; l > 0 {
		c.tokens = max(max(c.tokens, t)+int64(float64(delta)*interval(l)), t)
	}
	c.dayUsed = max(c.dayUsed+delta, 0)
	c.monUsed = max(c.monUsed+delta, 0)
}

// rollWindows starts c's budgets again when their windows have passed.
func rollWindows(c *counters, w Windows) {
	if c.day != w.Day {
		c.day, c.dayUsed = w.Day, 0
	}
	if c.month != w.Month {
		c.month, c.monUsed = w.Month, 0
	}
}

// gcra charges cost units of a limit of n per minute whose theoretical
// arrival time is tat, at t: the new arrival time when it fits in the
// minute, else how long until it would (0: it never will: cost > n).
func gcra(tat, t, cost, n int64) (int64, time.Duration, bool) {
	next := max(tat, t) + int64(float64(cost)*interval(n))
	if over := next - t - int64(Minute); over > 0 {
		return 0, never(cost > n, over), false
	}
	return next, 0, true
}

// never returns 0 when the request can never pass, else d.
func never(impossible bool, d int64) time.Duration {
	if impossible {
		return 0
	}
	return time.Duration(d)
}

// level is c as seen at t.
func level(c *counters, t int64, w Windows) Level {
	var l Level
	l.RequestsAhead = time.Duration(max(c.requests-t, 0))
	l.TokensAhead = time.Duration(max(c.tokens-t, 0))
	if c.day == w.Day {
		l.DayUsed = c.dayUsed
	}
	if c.month == w.Month {
		l.MonthUsed = c.monUsed
	}
	return l
}
