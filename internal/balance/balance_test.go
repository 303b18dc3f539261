package balance

import (
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

func ep(name string, weight int) *Endpoint {
	return NewEndpoint(config.Deployment{Name: name, Weight: weight}, nil)
}

func TestPickPrefersLessLoaded(t *testing.T) {
	now := time.Unix(100, 0)
	a, b := ep("a", 1), ep("b", 1)
	for range 5 {
		a.Acquire()
	}
	p := &Pool{Endpoints: []*Endpoint{a, b}}
	for i := range 50 {
		if got := p.Pick(now, nil); got != b {
			t.Fatalf("pick %d: got %s, want the idle endpoint b", i, got.Config.Name)
		}
	}
}

func TestPickRespectsWeight(t *testing.T) {
	now := time.Unix(100, 0)
	heavy, light := ep("heavy", 4), ep("light", 1)
	p := &Pool{Endpoints: []*Endpoint{heavy, light}}
	// Hand out 100 requests without releasing: load per weight stays level,
	// so the weight-4 endpoint ends with about four times as many.
	for range 100 {
		p.Pick(now, nil).Acquire()
	}
	if h, l := heavy.InFlight(), light.InFlight(); h < 3*l || h+l != 100 {
		t.Errorf("in flight: heavy %d, light %d; want about 4:1", h, l)
	}
}

func TestPickSpreadsAcrossMany(t *testing.T) {
	now := time.Unix(100, 0)
	var eps []*Endpoint
	for _, n := range []string{"a", "b", "c", "d"} {
		eps = append(eps, ep(n, 1))
	}
	p := &Pool{Endpoints: eps}
	for range 400 {
		p.Pick(now, nil).Acquire()
	}
	for _, e := range eps {
		if n := e.InFlight(); n < 80 || n > 120 {
			t.Errorf("%s has %d of 400; want about 100", e.Config.Name, n)
		}
	}
}

func TestPassiveHealth(t *testing.T) {
	now := time.Unix(100, 0)
	a, b := ep("a", 1), ep("b", 1)
	p := &Pool{Endpoints: []*Endpoint{a, b}}
	for range FailuresToDown - 1 {
		a.Record(false, now)
	}
	if !a.Available(now) {
		t.Fatal("down before FailuresToDown consecutive failures")
	}
	a.Record(false, now)
	if a.Available(now) {
		t.Fatal("still available after FailuresToDown failures")
	}
	for range 20 {
		if p.Pick(now, nil) != b {
			t.Fatal("picked a down endpoint")
		}
	}
	if !p.Usable(now) {
		t.Error("pool with one healthy endpoint is not usable")
	}
	if got := p.UpAgain(now); got != 0 {
		t.Errorf("UpAgain = %v with b up, want 0", got)
	}
	b.Record(false, now.Add(time.Second))
	b.Record(false, now.Add(time.Second))
	b.Record(false, now.Add(time.Second))
	if p.Usable(now) || p.Pick(now, nil) != nil {
		t.Error("pool with every endpoint down still usable")
	}
	if got := p.UpAgain(now.Add(2 * time.Second)); got != DownFor-2*time.Second {
		t.Errorf("UpAgain = %v, want %v (a, down first, comes back first)", got, DownFor-2*time.Second)
	}
	later := now.Add(DownFor)
	if !a.Available(later) {
		t.Error("not available again after DownFor")
	}
	a.Record(true, later)
	a.Record(false, later)
	if !a.Available(later) {
		t.Error("one failure after a success marked it down: the count was not reset")
	}
}

func TestPickExcludes(t *testing.T) {
	now := time.Unix(100, 0)
	a, b := ep("a", 1), ep("b", 1)
	p := &Pool{Endpoints: []*Endpoint{a, b}}
	if got := p.Pick(now, []*Endpoint{a}); got != b {
		t.Errorf("got %v, want b", got)
	}
	if got := p.Pick(now, []*Endpoint{a, b}); got != nil {
		t.Errorf("got %v, want nil once all were tried", got)
	}
	single := &Pool{Endpoints: []*Endpoint{a}}
	if single.Pick(now, []*Endpoint{a}) != nil || single.Pick(now, nil) != a {
		t.Error("single-endpoint pool ignores exclude")
	}
}

func BenchmarkPick(b *testing.B) {
	now := time.Unix(100, 0)
	for _, n := range []int{1, 4} {
		p := &Pool{}
		for i := range n {
			p.Endpoints = append(p.Endpoints, ep(string(rune('a'+i)), 1))
		}
		b.Run(string(rune('0'+n))+"-endpoints", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e := p.Pick(now, nil)
				e.Acquire()
				e.Release()
			}
		})
	}
}
