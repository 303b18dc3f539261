package poll

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/clock"
)

func TestLoops(t *testing.T) {
	clk := clock.NewFake(time.Unix(100, 0))
	l := New(clk)
	var steps atomic.Int32
	stopped := make(chan error, 1)
	l.Go(time.Second, func(ctx context.Context) {
		steps.Add(1)
		go func() { <-ctx.Done(); stopped <- ctx.Err() }()
	})
	waitFor(t, func() bool { return steps.Load() == 1 && clk.Waiters() == 1 }) // at once, then waits
	clk.Advance(999 * time.Millisecond)
	time.Sleep(10 * time.Millisecond)
	if n := steps.Load(); n != 1 {
		t.Fatalf("%d steps before the interval passed", n)
	}
	clk.Advance(time.Millisecond)
	waitFor(t, func() bool { return steps.Load() == 2 && clk.Waiters() == 1 })
	l.Stop()
	if err := <-stopped; err != context.Canceled {
		t.Errorf("a step's context after Stop: %v", err)
	}
	clk.Advance(time.Hour)
	time.Sleep(10 * time.Millisecond)
	if n := steps.Load(); n != 2 {
		t.Errorf("%d steps after Stop, want 2", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
	}
}
