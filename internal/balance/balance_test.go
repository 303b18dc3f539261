package balance

import (
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

func dep(name string, weight int) *Deployment {
	return &Deployment{Config: config.Deployment{Name: name, Weight: weight}, State: new(State)}
}

func pick(p *Picker, now time.Time, pool []*Deployment, tried *Tried) *Deployment {
	if tried == nil {
		tried = &Tried{}
	}
	i := p.Pick(&Choice{Now: now, Tried: tried}, pool)
	if i < 0 {
		return nil
	}
	return pool[i]
}

func TestPickPrefersLessLoaded(t *testing.T) {
	now := time.Unix(100, 0)
	a, b := dep("a", 1), dep("b", 1)
	for range 5 {
		a.Acquire(0)
	}
	pool := []*Deployment{a, b}
	for i := range 50 {
		if got := pick(&Picker{}, now, pool, nil); got != b {
			t.Fatalf("pick %d: got %s, want the idle deployment b", i, got.Config.Name)
		}
	}
}

func TestPickRespectsWeight(t *testing.T) {
	now := time.Unix(100, 0)
	heavy, light := dep("heavy", 4), dep("light", 1)
	pool := []*Deployment{heavy, light}
	// Hand out 100 requests without releasing: load per weight stays level,
	// so the weight-4 deployment ends with about four times as many.
	for range 100 {
		pick(&Picker{}, now, pool, nil).Acquire(0)
	}
	if h, l := heavy.InFlight(), light.InFlight(); h < 3*l || h+l != 100 {
		t.Errorf("in flight: heavy %d, light %d; want about 4:1", h, l)
	}
}

func TestPickSpreadsAcrossMany(t *testing.T) {
	now := time.Unix(100, 0)
	var pool []*Deployment
	for _, n := range []string{"a", "b", "c", "d"} {
		pool = append(pool, dep(n, 1))
	}
	for range 400 {
		pick(&Picker{}, now, pool, nil).Acquire(0)
	}
	for _, d := range pool {
		if n := d.InFlight(); n < 80 || n > 120 {
			t.Errorf("%s has %d of 400; want about 100", d.Config.Name, n)
		}
	}
}

func TestPickExcludesTried(t *testing.T) {
	now := time.Unix(100, 0)
	a, b := dep("a", 1), dep("b", 1)
	pool := []*Deployment{a, b}
	var tried Tried
	tried.Add(0)
	if got := pick(&Picker{}, now, pool, &tried); got != b {
		t.Errorf("got %v, want b", got)
	}
	tried.Add(1)
	if got := pick(&Picker{}, now, pool, &tried); got != nil {
		t.Errorf("got %v, want nil once all were tried", got)
	}
	var one Tried
	if pick(&Picker{}, now, pool[:1], &one) != a {
		t.Error("single-deployment pool: not picked")
	}
	one.Add(0)
	if pick(&Picker{}, now, pool[:1], &one) != nil {
		t.Error("single-deployment pool ignores tried")
	}
	var big Tried
	big.Add(70)
	if !big.Has(70) || big.Has(6) || big.Has(71) {
		t.Error("Tried beyond 64 indices")
	}
}

// TestPickFilters: a custom filter drops, the scorers rank the rest.
func TestPickFilters(t *testing.T) {
	now := time.Unix(100, 0)
	a, b, c := dep("a", 1), dep("b", 1), dep("c", 1)
	pool := []*Deployment{a, b, c}
	b.Acquire(0)
	p := &Picker{Filters: []Filter{func(d *Deployment, _ time.Time) bool { return d != c }}}
	for range 50 {
		if got := pick(p, now, pool, nil); got != a {
			t.Fatalf("got %s, want a (c filtered, b busier)", got.Config.Name)
		}
	}
}

// TestBreaker walks the state machine on an injected time line.
func TestBreaker(t *testing.T) {
	t0 := time.Unix(100, 0)
	var b Breaker
	fail := func(at time.Time) (from, to BreakerState) {
		t.Helper()
		tk := b.Begin(at)
		if !tk.OK() {
			t.Fatalf("Begin refused at %v", at.Sub(t0))
		}
		return b.End(tk, Failure, at)
	}
	for range FailuresToOpen - 1 {
		fail(t0)
	}
	if st, _ := b.State(t0); st != Closed {
		t.Fatalf("state %v before %d failures", st, FailuresToOpen)
	}
	if from, to := fail(t0); from != Closed || to != Open {
		t.Fatalf("transition %v → %v, want closed → open", from, to)
	}
	if b.Ready(t0.Add(Cooldown-time.Millisecond)) || b.Begin(t0.Add(Cooldown-time.Millisecond)).OK() {
		t.Fatal("admits a request while open")
	}
	if st, wait := b.State(t0.Add(time.Second)); st != Open || wait != Cooldown-time.Second {
		t.Fatalf("State = %v, %v; want open, %v", st, wait, Cooldown-time.Second)
	}

	// Half-open: exactly one probe.
	t1 := t0.Add(Cooldown)
	if !b.Ready(t1) {
		t.Fatal("not ready after the cool-down")
	}
	probe := b.Begin(t1)
	if !probe.OK() {
		t.Fatal("no probe admitted after the cool-down")
	}
	if b.Ready(t1) || b.Begin(t1).OK() {
		t.Fatal("a second request admitted while the probe is in flight")
	}
	// A failed probe re-opens with twice the cool-down.
	if from, to := b.End(probe, Failure, t1); from != HalfOpen || to != Open {
		t.Fatalf("failed probe: %v → %v", from, to)
	}
	if b.Begin(t1.Add(2*Cooldown - time.Millisecond)).OK() {
		t.Fatal("re-opened breaker did not double its cool-down")
	}
	t2 := t1.Add(2 * Cooldown)
	probe = b.Begin(t2)
	if !probe.OK() {
		t.Fatal("no probe after the doubled cool-down")
	}
	// A neutral end (the client left) frees the probe slot, changes nothing.
	if _, to := b.End(probe, Neutral, t2); to != HalfOpen {
		t.Fatalf("neutral probe end: state %v", to)
	}
	probe = b.Begin(t2)
	if !probe.OK() {
		t.Fatal("probe slot not freed by a neutral end")
	}
	if from, to := b.End(probe, Success, t2); from != HalfOpen || to != Closed {
		t.Fatalf("successful probe: %v → %v", from, to)
	}
	// Closed again with the count and cool-down reset.
	for range FailuresToOpen - 1 {
		fail(t2)
	}
	if st, _ := b.State(t2); st != Closed {
		t.Fatal("failure count not reset by the successful probe")
	}
	fail(t2)
	if !b.Begin(t2.Add(Cooldown)).OK() {
		t.Fatal("cool-down not reset to the default after closing")
	}
}

// TestBreakerLateAnswers: requests admitted before the breaker opened
// neither close it nor take the probe's place when they end.
func TestBreakerLateAnswers(t *testing.T) {
	now := time.Unix(0, 0)
	var b Breaker
	late := b.Begin(now)
	for range FailuresToOpen {
		b.End(b.Begin(now), Failure, now)
	}
	now = now.Add(Cooldown)
	probe := b.Begin(now)
	if !probe.OK() {
		t.Fatal("no probe")
	}
	if _, to := b.End(late, Success, now); to != HalfOpen {
		t.Fatalf("a late success moved the breaker to %v", to)
	}
	if b.Begin(now).OK() {
		t.Fatal("a late answer freed the probe slot")
	}
	if _, to := b.End(probe, Success, now); to != Closed {
		t.Fatalf("probe success: %v", to)
	}
}

func TestBreakerCooldownCapped(t *testing.T) {
	now := time.Unix(0, 0)
	var b Breaker
	for range FailuresToOpen {
		b.End(b.Begin(now), Failure, now)
	}
	for range 10 {
		_, wait := b.State(now)
		now = now.Add(wait)
		tk := b.Begin(now)
		if !tk.OK() {
			t.Fatal("no probe after the cool-down")
		}
		b.End(tk, Failure, now)
	}
	if _, wait := b.State(now); wait != MaxCooldown {
		t.Errorf("cool-down %v after many failed probes, want the cap %v", wait, MaxCooldown)
	}
}

func TestUsableAndUpAgain(t *testing.T) {
	now := time.Unix(100, 0)
	a, b := dep("a", 1), dep("b", 1)
	pool := []*Deployment{a, b}
	open := func(d *Deployment, at time.Time) {
		for range FailuresToOpen {
			d.Breaker.End(d.Breaker.Begin(at), Failure, at)
		}
	}
	open(a, now)
	if !Usable(pool, now) || UpAgain(pool, now) != 0 {
		t.Error("pool with one closed deployment: not usable")
	}
	for range 20 {
		if pick(&Picker{}, now, pool, nil) != b {
			t.Fatal("picked a deployment whose breaker is open")
		}
	}
	open(b, now.Add(time.Second))
	if Usable(pool, now.Add(time.Second)) || pick(&Picker{}, now.Add(time.Second), pool, nil) != nil {
		t.Error("pool with every breaker open still usable")
	}
	if got := UpAgain(pool, now.Add(2*time.Second)); got != Cooldown-2*time.Second {
		t.Errorf("UpAgain = %v, want %v (a, opened first, is probed first)", got, Cooldown-2*time.Second)
	}
	if !Usable(pool, now.Add(Cooldown)) {
		t.Error("not usable once a's cool-down ended")
	}
}

func TestRegistryOutlivesSnapshots(t *testing.T) {
	var r Registry
	s := r.State(Key("m", "a"))
	s.Acquire(0)
	if r.State(Key("m", "a")) != s {
		t.Fatal("same identity, new state")
	}
	if r.State(Key("m", "b")) == s {
		t.Fatal("different identity, same state")
	}
	r.Retain(map[string]bool{Key("m", "b"): true})
	if r.State(Key("m", "a")).InFlight() != 0 {
		t.Error("Retain kept a removed deployment")
	}
}

func BenchmarkPick(b *testing.B) {
	now := time.Unix(100, 0)
	for _, n := range []int{1, 4} {
		var pool []*Deployment
		for i := range n {
			pool = append(pool, dep(string(rune('a'+i)), 1))
		}
		b.Run(string(rune('0'+n))+"-deployments", func(b *testing.B) {
			var p Picker
			b.ReportAllocs()
			for b.Loop() {
				var tried Tried
				d := pool[p.Pick(&Choice{Now: now, Tried: &tried}, pool)]
				tk := d.Breaker.Begin(now)
				d.Acquire(0)
				d.Release(0)
				d.Breaker.End(tk, Success, now)
			}
		})
	}
}

func TestBusy(t *testing.T) {
	now := time.Unix(100, 0)
	d := &Deployment{State: &State{}}
	if !NotBusy(d, now) || d.BusyFor(now) != 0 {
		t.Fatal("a new deployment is busy")
	}
	d.Busy(now.Add(2 * time.Second))
	d.Busy(now.Add(time.Second)) // an earlier time does not shorten it
	if NotBusy(d, now) || d.BusyFor(now) != 2*time.Second {
		t.Errorf("busy for %v, want 2s", d.BusyFor(now))
	}
	if got := UpAgain([]*Deployment{d}, now); got != 2*time.Second {
		t.Errorf("UpAgain %v, want 2s", got)
	}
	if !NotBusy(d, now.Add(2*time.Second)) {
		t.Error("still busy after its Retry-After")
	}
}
