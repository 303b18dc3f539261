package health

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

// scripted answers probes from a script and reports each probe on a channel.
type scripted struct {
	mu     sync.Mutex
	script []error
	probed chan int
	n      int
}

func (s *scripted) Probe(ctx context.Context) error {
	s.mu.Lock()
	err := s.script[min(s.n, len(s.script)-1)]
	s.n++
	n := s.n
	s.mu.Unlock()
	select {
	case s.probed <- n:
	case <-ctx.Done(): // the test is over
	}
	return err
}

var down = errors.New("connection refused")

func TestChecker(t *testing.T) {
	tests := []struct {
		name   string
		check  config.HealthCheck
		script []error
		want   []balance.Health // after each probe
	}{
		{"up at once", config.HealthCheck{Failures: 1, Successes: 1}, []error{nil, nil}, []balance.Health{balance.Up, balance.Up}},
		{"down at once, back on the first success", config.HealthCheck{Failures: 3, Successes: 1},
			[]error{down, down, nil}, []balance.Health{balance.Down, balance.Down, balance.Up}},
		{"needs failures in a row", config.HealthCheck{Failures: 2, Successes: 1},
			[]error{nil, down, nil, down, down, nil}, []balance.Health{balance.Up, balance.Up, balance.Up, balance.Up, balance.Down, balance.Up}},
		{"needs successes in a row", config.HealthCheck{Failures: 1, Successes: 2},
			[]error{down, nil, down, nil, nil}, []balance.Health{balance.Down, balance.Down, balance.Down, balance.Down, balance.Up}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(time.Unix(0, 0))
			tt.check.Interval, tt.check.Timeout = config.Duration(time.Second), config.Duration(time.Second)
			p := &scripted{script: tt.script, probed: make(chan int)}
			st := new(balance.State)
			c := Start([]Target{{Model: "m", Deployment: "d", Prober: p, State: st, Check: tt.check}}, clk,
				slog.New(slog.NewTextHandler(io.Discard, nil)))
			defer c.Stop()
			for i, want := range tt.want {
				<-p.probed // probe i+1 ran; wait until its verdict is in and the next wait is set
				for clk.Waiters() == 0 {
					time.Sleep(time.Millisecond)
				}
				if got := st.Health(); got != want {
					t.Fatalf("after probe %d: %v, want %v", i+1, got, want)
				}
				if st.InRotation() != (want != balance.Down) {
					t.Fatalf("after probe %d: in rotation %v with health %v", i+1, st.InRotation(), want)
				}
				clk.Advance(time.Second)
			}
		})
	}
}

// TestCheckerStops: Stop ends the checks, and a probe in flight with them.
func TestCheckerStops(t *testing.T) {
	hang := proberFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	c := Start([]Target{{Prober: hang, State: new(balance.State),
		Check: config.HealthCheck{Interval: config.Duration(time.Hour), Timeout: config.Duration(time.Hour), Failures: 1, Successes: 1}}},
		clock.Real{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { c.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not end a probe in flight")
	}
}

type proberFunc func(ctx context.Context) error

func (f proberFunc) Probe(ctx context.Context) error { return f(ctx) }

// TestBackEndsTheBreakersWait: a deployment whose health check answers
// again gets its open breaker probed at once, not after its cool-down.
func TestBackEndsTheBreakersWait(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	st := new(balance.State)
	for range balance.FailuresToOpen { // requests failed on it: open
		st.Breaker.End(st.Breaker.Begin(clk.Now()), balance.Failure, clk.Now())
	}
	if st.Breaker.Ready(clk.Now()) {
		t.Fatal("the breaker did not open")
	}
	p := &scripted{script: []error{down, nil}, probed: make(chan int)}
	c := Start([]Target{{Model: "m", Deployment: "d", Prober: p, State: st,
		Check: config.HealthCheck{Failures: 1, Successes: 1, Interval: config.Duration(time.Second), Timeout: config.Duration(time.Second)}}},
		clk, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer c.Stop()
	for i := range 2 {
		<-p.probed
		for clk.Waiters() == 0 {
			time.Sleep(time.Millisecond)
		}
		if i == 0 {
			clk.Advance(time.Second) // down; the next check answers
		}
	}
	if st.Health() != balance.Up || !st.Breaker.Ready(clk.Now()) {
		t.Errorf("health %v, breaker ready %v: want up and a probe allowed at once (1 s into a 5 s cool-down)",
			st.Health(), st.Breaker.Ready(clk.Now()))
	}
}
