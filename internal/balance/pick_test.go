package balance

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

func pool(n int) []*Deployment {
	var ps []*Deployment
	for i := range n {
		ps = append(ps, NewDeployment(config.Deployment{Name: fmt.Sprintf("d%d", i), Weight: 1, MaxNumSeqs: 64}, nil, new(State)))
	}
	return ps
}

func choose(p *Picker, c Choice, ps []*Deployment) *Deployment {
	i := p.Pick(&c, ps)
	if i < 0 {
		return nil
	}
	return ps[i]
}

func TestPrefixHashesChain(t *testing.T) {
	sys := bytes.Repeat([]byte("You are a careful assistant. "), 40) // 1160 bytes
	a := PrefixHashes(nil, append(append([]byte{}, sys...), "first user"...), 256)
	b := PrefixHashes(nil, append(append([]byte{}, sys...), "another user entirely"...), 256)
	if len(a) != 4 || len(b) != 4 {
		t.Fatalf("blocks: %d and %d, want 4 full blocks of 256", len(a), len(b))
	}
	for k := range a {
		if a[k] != b[k] {
			t.Errorf("block %d differs though both prompts share it", k)
		}
	}
	other := PrefixHashes(nil, append([]byte("x"), sys...), 256)
	for k := range other {
		if other[k] == a[k] {
			t.Errorf("block %d of a prompt differing in its first byte matches", k)
		}
	}
	// A block is identified by everything before it: the same 256 bytes
	// after different openings hash differently.
	if PrefixHashes(nil, sys[:256], 256)[0] == PrefixHashes(nil, sys[1:1+256], 256)[0] {
		t.Error("different first blocks hash the same")
	}
	if n := len(PrefixHashes(nil, make([]byte, 300*MaxPrefixBlocks), 256)); n != MaxPrefixBlocks {
		t.Errorf("a long prompt gave %d blocks, want the cap %d", n, MaxPrefixBlocks)
	}
}

func TestPrefixIndexMatch(t *testing.T) {
	x := NewPrefixIndex(1024)
	blocks := []uint64{11, 22, 33, 44}
	x.Insert(blocks[:2], 0) // d0 has the first two
	x.Insert(blocks, 2)     // d2 has all four
	var m [64]uint16
	best := x.Match(blocks, 3, &m)
	if best != 4 || m[0] != 2 || m[1] != 0 || m[2] != 4 {
		t.Errorf("matched %v (best %d), want d0 2, d1 0, d2 4", m[:3], best)
	}
	x.Forget(2)
	if best := x.Match(blocks, 3, &m); best != 2 || m[2] != 0 {
		t.Errorf("after Forget: matched %v, best %d", m[:3], best)
	}
	// A colliding block replaces the older entry: bounded memory.
	y := NewPrefixIndex(64)
	y.Insert([]uint64{5}, 1)
	y.Insert([]uint64{5 + 64}, 3)
	if y.slots(5) != 0 || y.slots(5+64) != 1<<3 {
		t.Error("a colliding insert did not replace the entry")
	}
}

// TestPickPrefixAffinity: requests sharing a long prefix go where it was
// sent before, while that deployment is not much busier than the rest.
func TestPickPrefixAffinity(t *testing.T) {
	now := time.Unix(100, 0)
	ps := pool(4)
	p := NewPicker(defaultBalance())
	prefix := PrefixHashes(nil, bytes.Repeat([]byte("system prompt "), 100), 256)
	first := choose(p, Choice{Now: now, Prefix: prefix}, ps)
	for i := range 20 {
		if got := choose(p, Choice{Now: now, Prefix: prefix}, ps); got != first {
			t.Fatalf("pick %d with the same prefix went to %s, not %s", i, got.Config.Name, first.Config.Name)
		}
	}
	// Busier than the bound (1.2 × mean): load wins, and the prefix
	// spreads to a second deployment.
	for range 6 {
		first.Acquire(0)
	}
	if got := choose(p, Choice{Now: now, Prefix: prefix}, ps); got == first {
		t.Error("affinity piled a request on a deployment 6 requests busier than the others")
	}
}

// TestPickForgetsRestarted: a deployment that went out of rotation is
// forgotten by the prefix index, its engine's cache likely gone.
func TestPickForgetsRestarted(t *testing.T) {
	now := time.Unix(100, 0)
	ps := pool(2)
	p := NewPicker(defaultBalance())
	prefix := PrefixHashes(nil, bytes.Repeat([]byte("system prompt "), 100), 256)
	first := choose(p, Choice{Now: now, Prefix: prefix}, ps)
	i := slices.Index(ps, first)
	var m [64]uint16
	if p.Prefix.Match(prefix, 2, &m); int(m[i]) != len(prefix) {
		t.Fatalf("after the first pick: %v matched", m[:2])
	}
	first.SetHealth(Down)
	first.SetHealth(Up)
	other := PrefixHashes(nil, bytes.Repeat([]byte("another prompt "), 100), 256)
	choose(p, Choice{Now: now, Prefix: other}, ps) // any pick sees the new epoch
	if p.Prefix.Match(prefix, 2, &m); m[i] != 0 || first.Epoch() != 1 {
		t.Errorf("after it went out of rotation: %v matched, epoch %d; want it forgotten", m[:2], first.Epoch())
	}
	// Forgotten once per epoch, not on every pick.
	p.Prefix.Insert(prefix, i)
	choose(p, Choice{Now: now, Prefix: other}, ps)
	if p.Prefix.Match(prefix, 2, &m); int(m[i]) != len(prefix) {
		t.Error("the index forgot a deployment again in the same epoch")
	}
}

// TestPickSticky: a sticky key sticks to one deployment, the same for any
// picker (rendezvous hashing), while load allows.
func TestPickSticky(t *testing.T) {
	now := time.Unix(100, 0)
	ps := pool(8)
	seen := map[string]bool{}
	for s := range uint64(64) {
		key := s*0x9E3779B97F4A7C15 | 1
		a := choose(NewPicker(defaultBalance()), Choice{Now: now, Sticky: key}, ps)
		b := choose(NewPicker(defaultBalance()), Choice{Now: now, Sticky: key}, ps)
		if a != b {
			t.Fatalf("key %d: two pickers disagree (%s, %s)", s, a.Config.Name, b.Config.Name)
		}
		seen[a.Config.Name] = true
	}
	if len(seen) < 6 {
		t.Errorf("64 keys landed on %d of 8 deployments", len(seen))
	}
}

// TestPickExternalLoad: a deployment whose engine runs requests the
// gateway did not send (another gateway, a batch job) gets less.
func TestPickExternalLoad(t *testing.T) {
	now := time.Unix(100, 0)
	ps := pool(2)
	ps[0].Engine.Store(&EngineMetrics{At: now, Running: 20, Local: 0})
	if got := ps[0].Load(now); got != 20 {
		t.Errorf("load %v, want 20 (the engine's, none of them the gateway's)", got)
	}
	p := NewPicker(defaultBalance())
	counts := map[*Deployment]int{}
	for range 30 {
		d := choose(p, Choice{Now: now}, ps)
		d.Acquire(0)
		counts[d]++
	}
	if counts[ps[0]] > 8 {
		t.Errorf("the externally loaded deployment got %d of 30", counts[ps[0]])
	}
	// Stale data stops counting.
	later := now.Add(10 * time.Second)
	if got := ps[0].Load(later); got != float64(ps[0].InFlight()) {
		t.Errorf("stale scrape still counts: load %v, in flight %d", got, ps[0].InFlight())
	}
}

// TestPickSaturated: a deployment with as many in flight as its engine
// batches is left out while another is not.
func TestPickSaturated(t *testing.T) {
	now := time.Unix(100, 0)
	ps := pool(2)
	ps[0].Config.MaxNumSeqs, ps[1].Config.MaxNumSeqs = 2, 100
	ps[0].Acquire(0)
	ps[0].Acquire(0)
	for range 5 {
		ps[1].Acquire(0)
	}
	p := &Picker{Weights: Weights{Latency: 1}} // only latency: load would not tell them apart
	for range 20 {
		if got := choose(p, Choice{Now: now}, ps); got != ps[1] {
			t.Fatal("picked the saturated deployment")
		}
	}
	// All saturated: still one is picked (admission decides about overload).
	ps[1].Config.MaxNumSeqs = 5
	if choose(p, Choice{Now: now}, ps) == nil {
		t.Error("no pick when every deployment is saturated")
	}
}

func TestPickLatency(t *testing.T) {
	now := time.Unix(100, 0)
	ps := pool(2)
	for range 30 {
		ps[0].ObservePerToken(30 * time.Millisecond)
		ps[1].ObservePerToken(10 * time.Millisecond)
	}
	if _, per := ps[0].Latencies(); per < 0.029 || per > 0.031 {
		t.Errorf("per-token average %v, want 0.03", per)
	}
	p := &Picker{Weights: Weights{Latency: 1}}
	for range 20 {
		if got := choose(p, Choice{Now: now}, ps); got != ps[1] {
			t.Fatal("picked the slower deployment")
		}
	}
}

func TestPickKVHeadroom(t *testing.T) {
	now := time.Unix(100, 0)
	ps := pool(2)
	ps[0].Engine.Store(&EngineMetrics{At: now, KVUsage: 0.9, HasKV: true})
	ps[1].Engine.Store(&EngineMetrics{At: now, KVUsage: 0.2, HasKV: true})
	p := &Picker{Weights: Weights{KV: 1}}
	if got := choose(p, Choice{Now: now}, ps); got != ps[1] {
		t.Error("picked the deployment with less KV cache free")
	}
}

func TestPickStrategies(t *testing.T) {
	now := time.Unix(100, 0)
	ps := pool(3)
	rr := &Picker{Strategy: RoundRobin}
	var got []string
	for range 6 {
		got = append(got, choose(rr, Choice{Now: now}, ps).Config.Name)
	}
	if fmt.Sprint(got) != "[d0 d1 d2 d0 d1 d2]" {
		t.Errorf("round robin: %v", got)
	}
	ps[0].Acquire(0)
	ps[0].Acquire(0)
	li := &Picker{Strategy: LeastInflight, Rand: func(n int) int { return 0 }}
	if d := choose(li, Choice{Now: now}, ps); d == ps[0] {
		t.Error("least_inflight picked the busiest")
	}
	audio := pool(2)
	audio[1].Config.AudioOutput = true
	if d := choose(&Picker{}, Choice{Now: now, Audio: true}, audio); d != audio[1] {
		t.Error("an audio request went to a deployment without audio output")
	}
}

func TestDecisionsSampled(t *testing.T) {
	now := time.Unix(100, 0)
	ps := pool(3)
	p := NewPicker(defaultBalance())
	for i := range 100 {
		choose(p, Choice{Now: now.Add(time.Duration(i) * 10 * time.Millisecond)}, ps)
	}
	got := p.Recent()
	if len(got) != 4 { // 1 s of picks, one kept every 250 ms
		t.Fatalf("%d decisions kept, want 4", len(got))
	}
	if len(got[0].Candidates) != 3 || got[0].Chosen == "" || !got[0].At.After(got[1].At) {
		t.Errorf("decision %+v", got[0])
	}
}

func defaultBalance() config.Balance {
	cfg := config.Default()
	return cfg.Models[0].Balance
}

// BenchmarkPick64 is one pick among 64 deployments with the default
// pipeline and a 2 KiB shared prefix.
func BenchmarkPick64(b *testing.B) {
	now := time.Unix(100, 0)
	ps := pool(64)
	for i, d := range ps {
		d.Engine.Store(&EngineMetrics{At: now, Running: i % 7, Waiting: i % 3, KVUsage: 0.3, HasKV: true})
		d.ObservePerToken(time.Duration(10+i%5) * time.Millisecond)
	}
	p := NewPicker(defaultBalance())
	prefix := PrefixHashes(nil, bytes.Repeat([]byte("shared system prompt "), 100), 256)
	b.ReportAllocs()
	for b.Loop() {
		var tried Tried
		p.Pick(&Choice{Now: now, Tried: &tried, Prefix: prefix, Sticky: 12345}, ps)
	}
}
