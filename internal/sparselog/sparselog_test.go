package sparselog

import (
	"testing"
	"time"
)

// TestAllow: one line per interval, and the count of those held back
// with the next one let through.
func TestAllow(t *testing.T) {
	now := time.Unix(1000, 0)
	l := Limiter{Every: 10 * time.Second, Now: func() time.Time { return now }}
	steps := []struct {
		after   time.Duration
		ok      bool
		dropped int
	}{
		{0, true, 0}, {time.Second, false, 0}, {8 * time.Second, false, 0}, {time.Second, true, 2},
		{9 * time.Second, false, 0}, {time.Minute, true, 1},
	}
	for i, s := range steps {
		now = now.Add(s.after)
		if ok, n := l.Allow(); ok != s.ok || n != s.dropped {
			t.Errorf("step %d: %v, %d; want %v, %d", i, ok, n, s.ok, s.dropped)
		}
	}
}
