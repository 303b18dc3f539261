package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock advances only when told; SleepUntil jumps straight to its target.
type fakeClock struct {
	now    time.Time
	sleeps int
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.sleeps++
	if t.After(c.now) {
		c.now = t
	}
	return ctx.Err()
}

var _ Clock = (*fakeClock)(nil)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func offsets(dues []time.Time) []time.Duration {
	out := make([]time.Duration, len(dues))
	for i, d := range dues {
		out[i] = d.Sub(t0)
	}
	return out
}

func TestScheduleOnTime(t *testing.T) {
	clk := &fakeClock{now: t0}
	s := Schedule{Start: t0, Rate: 1000, For: 5 * time.Millisecond}
	var dues, fired []time.Time
	n := s.Run(context.Background(), clk, func(i int, due time.Time) {
		dues = append(dues, due)
		fired = append(fired, clk.Now())
	})
	want := []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 4 * time.Millisecond}
	if d := cmp.Diff(want, offsets(dues)); d != "" {
		t.Errorf("due times (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, offsets(fired)); d != "" {
		t.Errorf("fire times (-want +got):\n%s", d)
	}
	if n != 5 {
		t.Errorf("fired %d, want 5", n)
	}
}

// A scheduler that falls behind keeps the plan: overdue requests go out at
// once, stamped with their original due times, and none are skipped.
func TestScheduleLateKeepsPlan(t *testing.T) {
	clk := &fakeClock{now: t0}
	s := Schedule{Start: t0, Rate: 100, For: 100 * time.Millisecond} // every 10 ms
	var dues []time.Time
	n := s.Run(context.Background(), clk, func(i int, due time.Time) {
		dues = append(dues, due)
		if i == 2 {
			clk.now = clk.now.Add(35 * time.Millisecond) // a stall: due 3, 4, 5 are now overdue
		}
	})
	if n != 10 || len(dues) != 10 {
		t.Fatalf("fired %d (%d dues), want 10", n, len(dues))
	}
	for i, d := range dues {
		if want := time.Duration(i) * 10 * time.Millisecond; d.Sub(t0) != want {
			t.Errorf("request %d due at %v, want %v", i, d.Sub(t0), want)
		}
	}
	// Requests 0..2 and 6..9 needed a sleep; 3, 4, 5 were overdue and fired at once.
	// (Request 0 is due at the start: no sleep either.)
	if clk.sleeps != 6 {
		t.Errorf("slept %d times, want 6", clk.sleeps)
	}
}

func TestScheduleCapAndCancel(t *testing.T) {
	t.Run("cap", func(t *testing.T) {
		clk := &fakeClock{now: t0}
		n := Schedule{Start: t0, Rate: 1000, For: time.Second, Max: 7}.Run(context.Background(), clk, func(int, time.Time) {})
		if n != 7 {
			t.Errorf("fired %d, want the cap 7", n)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		clk := &fakeClock{now: t0}
		ctx, cancel := context.WithCancel(context.Background())
		count := 0
		n := Schedule{Start: t0, Rate: 1000, For: time.Second}.Run(ctx, clk, func(i int, _ time.Time) {
			count++
			if i == 3 {
				cancel()
			}
		})
		if n != 4 || count != 4 {
			t.Errorf("fired %d (count %d) after cancel at 3, want 4", n, count)
		}
	})
	t.Run("fractional rate", func(t *testing.T) {
		s := Schedule{Start: t0, Rate: 3}
		if got, want := s.Due(2).Sub(t0), 666666666*time.Nanosecond; got != want {
			t.Errorf("Due(2) = %v, want %v", got, want)
		}
	})
}
