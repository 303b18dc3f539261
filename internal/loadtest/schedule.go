package loadtest

import (
	"context"
	"time"
)

// Clock is the time source of the open-loop scheduler; tests inject a fake.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at or after t, or with ctx's error.
	SleepUntil(ctx context.Context, t time.Time) error
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var _ Clock = realClock{}

// Schedule is an open-loop arrival plan: request i is due at Start + i/Rate,
// whatever happened to the requests before it.
type Schedule struct {
	Start time.Time
	Rate  float64       // requests per second, > 0
	For   time.Duration // no request is due at or after Start+For
	Max   int           // at most this many requests; 0 means no cap
}

// Due returns the intended send time of request i.
func (s Schedule) Due(i int) time.Time {
	return s.Start.Add(time.Duration(float64(i) / s.Rate * float64(time.Second)))
}

// Run calls fire(i, due) for every request of the plan, in order, each no
// earlier than its due time. A late scheduler does not shift the plan: it
// fires the overdue requests at once with their original due times, so
// latency measured from due includes the wait (no coordinated omission).
// fire must not block; it returns the number of requests fired.
func (s Schedule) Run(ctx context.Context, clk Clock, fire func(i int, due time.Time)) int {
	end := s.Start.Add(s.For)
	for i := 0; s.Max == 0 || i < s.Max; i++ {
		due := s.Due(i)
		if !due.Before(end) {
			return i
		}
		if clk.Now().Before(due) {
			if err := clk.SleepUntil(ctx, due); err != nil {
				return i
			}
		} else if ctx.Err() != nil {
			return i
		}
		fire(i, due)
	}
	return s.Max
}
