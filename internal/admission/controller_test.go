package admission

import (
	"testing"
	"time"
)

// feed runs windows of the controller with every sample at latency and
// demand (saturated: demand = the limit's places).
func feed(g *gradient, windows int, latency time.Duration, saturated bool) {
	for range windows {
		for {
			d := g.places()
			if !saturated {
				d = g.places() / 4
			}
			if g.sample(latency, d, true) {
				break
			}
		}
	}
}

func TestGradient(t *testing.T) {
	const floor = 100 * time.Millisecond
	tests := []struct {
		name       string
		initial    int
		min, max   int
		warm       int // windows at the floor, saturated, first
		latency    time.Duration
		saturated  bool
		windows    int
		check      func(before, after float64) bool
		wantInWord string
	}{
		{"grows at its floor when every place is used", 16, 1, 256, 5, floor, true, 20,
			func(b, a float64) bool { return a > b+10 }, "grown by more than 10"},
		{"a limit nobody uses does not grow", 16, 1, 256, 0, floor, false, 20,
			func(b, a float64) bool { return a == b }, "unchanged"},
		{"stays at its max", 16, 1, 20, 5, floor, true, 50,
			func(b, a float64) bool { return a == 20 }, "20 (the max)"},
		{"tolerates latency within 1.5× the floor", 32, 1, 256, 5, floor * 14 / 10, true, 10,
			func(b, a float64) bool { return a > b }, "grown"},
		{"shrinks when latency doubles", 64, 1, 256, 5, 2 * floor, true, 10,
			func(b, a float64) bool { return a < b-5 }, "shrunk by more than 5"},
		{"shrinks when latency doubles, even with spare places", 64, 1, 256, 5, 2 * floor, false, 10,
			func(b, a float64) bool { return a < b-5 }, "shrunk by more than 5"},
		{"a doubled latency that stays is learned as the floor, and growth resumes", 64, 1, 256, 5, 2 * floor, true, 80,
			func(b, a float64) bool { return a > b }, "grown back"},
		{"stays at its min under overload", 64, 8, 256, 5, 10 * floor, true, 100,
			func(b, a float64) bool { return a == 8 }, "8 (the min)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGradient(tt.initial, tt.min, tt.max)
			feed(&g, 1, floor, false) // learn the floor without moving the limit
			if g.limit != float64(tt.initial) || g.floor != float64(floor) {
				t.Fatalf("after the first window: limit %v, floor %v", g.limit, time.Duration(g.floor))
			}
			feed(&g, tt.warm, floor, true)
			before := g.limit
			feed(&g, tt.windows, tt.latency, tt.saturated)
			if !tt.check(before, g.limit) {
				t.Errorf("limit %.2f → %.2f, want %s", before, g.limit, tt.wantInWord)
			}
			if g.limit < float64(tt.min) || g.limit > float64(tt.max) {
				t.Errorf("limit %.2f out of [%d, %d]", g.limit, tt.min, tt.max)
			}
		})
	}
}

// A window holds max(10, limit) samples, and the floor falls fast to a
// lower latency, slowly to a higher one.
func TestGradientWindowAndFloor(t *testing.T) {
	g := newGradient(40, 1, 100)
	for i := 1; i < 40; i++ {
		if g.sample(time.Second, 40, true) {
			t.Fatalf("the window closed after %d samples, want 40", i)
		}
	}
	if !g.sample(time.Second, 40, true) {
		t.Fatal("the window did not close at 40 samples")
	}
	if g.short != float64(time.Second) || g.floor != float64(time.Second) {
		t.Fatalf("short %v floor %v, want 1s", time.Duration(g.short), time.Duration(g.floor))
	}
	g.update(float64(500*time.Millisecond), 0, true)
	if want := 875 * time.Millisecond; time.Duration(g.floor) != want {
		t.Errorf("floor after a lower window %v, want %v", time.Duration(g.floor), want)
	}
	f := g.floor
	g.update(float64(2*time.Second), 0, true)
	if d := g.floor - f; d <= 0 || d > float64(30*time.Millisecond) {
		t.Errorf("floor rose by %v after a higher window, want a little", time.Duration(d))
	}
}

func TestGradientSetBounds(t *testing.T) {
	g := newGradient(32, 1, 64)
	g.setBounds(40, 80)
	if g.limit != 40 {
		t.Errorf("limit %v after raising the min to 40", g.limit)
	}
	g.setBounds(1, 10)
	if g.limit != 10 {
		t.Errorf("limit %v after lowering the max to 10", g.limit)
	}
}

// TestGradientWithoutEngineQueue: a slower window whose engines reported
// nothing waiting is a bigger batch, not a queue: no cut, and the probe
// up goes on while every place is used.
func TestGradientWithoutEngineQueue(t *testing.T) {
	g := newGradient(32, 1, 64)
	g.update(float64(20*time.Millisecond), 32, true) // the floor
	before := g.limit
	g.update(float64(60*time.Millisecond), 64, false)
	if g.limit <= before {
		t.Errorf("3× the floor, no engine queue: limit %v → %v, want grown", before, g.limit)
	}
	before = g.limit
	g.update(float64(60*time.Millisecond), 64, true)
	if g.limit >= before {
		t.Errorf("3× the floor with an engine queue: limit %v → %v, want cut", before, g.limit)
	}
}
