package resilience

import (
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	now := time.Unix(100, 0)
	b := NewBudget(0.2, 2)
	// The floor: 2 retries with no requests at all.
	if !b.Retry(now) || !b.Retry(now) || b.Retry(now) {
		t.Fatal("the floor of 2 retries is not what is allowed")
	}
	// 100 requests allow 20 retries in the window, the 2 spent included.
	for range 100 {
		b.Request(now)
	}
	n := 2
	for b.Retry(now) {
		n++
	}
	if n != 20 {
		t.Fatalf("%d retries for 100 requests, want 20", n)
	}
	// Half a window later the counts are still there; a whole window
	// later they have aged out.
	if b.Retry(now.Add(Window / 2)) {
		t.Error("retries came back after half a window")
	}
	later := now.Add(Window + time.Second)
	if !b.Retry(later) {
		t.Error("no retry a window later")
	}
}

func TestBackoff(t *testing.T) {
	base, cap := 25*time.Millisecond, time.Second
	for n, bound := range map[int]time.Duration{1: 25 * time.Millisecond, 2: 50 * time.Millisecond, 3: 100 * time.Millisecond, 10: time.Second, 40: time.Second} {
		for range 200 {
			if d := Backoff(n, base, cap); d < 0 || d >= bound {
				t.Fatalf("Backoff(%d) = %v, want in [0, %v)", n, d, bound)
			}
		}
	}
	if Backoff(1, 0, cap) != 0 || Backoff(0, base, cap) != 0 {
		t.Error("no base or no round should mean no wait")
	}
}

func TestClass(t *testing.T) {
	for _, name := range ClassNames() {
		c := ParseClass(name)
		if c == 0 || c.String() != name || !AnyClass.Has(c) {
			t.Errorf("class %q: parsed %v, %q", name, c, c.String())
		}
	}
	if ParseClass("nope") != 0 {
		t.Error("an unknown name parsed")
	}
	if (Unavailable | Timeout).Has(Overloaded) || !(Unavailable | Timeout).Has(Timeout) || AnyClass.Has(0) {
		t.Error("Has")
	}
	if got := (Timeout | ContextLength).String(); got != "timeout+context_length" {
		t.Errorf("String = %q", got)
	}
}

func TestLatencies(t *testing.T) {
	var l Latencies
	if _, ok := l.Percentile(95); ok {
		t.Error("a percentile of no samples")
	}
	for i := 1; i <= 100; i++ {
		l.Observe(time.Duration(i) * time.Millisecond)
	}
	for _, tt := range []struct {
		p    int
		want time.Duration
	}{{50, 51 * time.Millisecond}, {95, 96 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got, ok := l.Percentile(tt.p); !ok || got != tt.want {
			t.Errorf("p%d = %v, want %v", tt.p, got, tt.want)
		}
	}
	for range 2 * latencySamples { // old samples age out
		l.Observe(time.Second)
	}
	if got, _ := l.Percentile(50); got != time.Second {
		t.Errorf("p50 after the window moved on = %v", got)
	}
}
