package admission

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

func admission(limit, maxQueue int, timeout time.Duration) config.Admission {
	return config.Admission{
		Limit:        config.LimitBounds{Initial: limit, Min: limit, Max: limit},
		MaxQueue:     maxQueue,
		QueueTimeout: config.Duration(timeout),
	}
}

// newQueue returns a queue on a Fake clock that reads the wall clock's
// now, so contexts with real deadlines agree with it.
func newQueue(cfg config.Admission) (*Queue, *clock.Fake) {
	clk := clock.NewFake(time.Now())
	return New(cfg, clk), clk
}

type result struct {
	name string
	p    Permit
	err  error
}

// start runs an Acquire in a goroutine and waits until it is queued (or
// has returned), so the order of calls is the order of arrival.
func start(t *testing.T, q *Queue, ctx context.Context, p Priority, tenant, name string) <-chan result {
	t.Helper()
	before := q.Status()
	ch := make(chan result, 1)
	go func() {
		pm, err := q.Acquire(ctx, p, tenant)
		ch <- result{name, pm, err}
	}()
	waitFor(t, func() bool {
		s := q.Status()
		return queued(s) > queued(before) || s.Counts != before.Counts
	})
	return ch
}

func queued(s Status) int { return s.Queued[Interactive] + s.Queued[Batch] }

// waitFor yields until cond holds: goroutines parking on a channel, not
// time passing.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i > 1e6 {
			t.Fatal("condition never held")
		}
		runtime.Gosched()
	}
}

func hold(t *testing.T, q *Queue, n int) []Permit {
	t.Helper()
	ps := make([]Permit, n)
	for i := range ps {
		p, err := q.Acquire(context.Background(), Interactive, "holder")
		if err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
		ps[i] = p
	}
	return ps
}

func wantAPIError(t *testing.T, err error, status int, code string) *apierror.Error {
	t.Helper()
	var e *apierror.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("error %v, want %d %s", err, status, code)
	}
	if e.RetryAfter < time.Second || e.RetryAfter%time.Second != 0 {
		t.Errorf("RetryAfter %v, want whole seconds, at least 1s", e.RetryAfter)
	}
	return e
}

// order releases one place at a time, starting with first's, and returns
// who got each.
func order(t *testing.T, first Permit, chans ...<-chan result) []string {
	t.Helper()
	any := make(chan result, len(chans))
	for _, c := range chans {
		go func() { any <- <-c }()
	}
	var got []string
	held := first
	for range chans {
		held.Release(0, false)
		var r result
		select {
		case r = <-any:
		case <-time.After(5 * time.Second):
			t.Fatal("no waiter got the freed place")
		}
		if r.err != nil {
			t.Fatalf("%s: %v", r.name, r.err)
		}
		got = append(got, r.name)
		held = r.p
	}
	held.Release(0, false)
	return got
}

// An unresolved config still makes a working queue: one place, a queue
// of 8, the default timeout.
func TestNewUnresolved(t *testing.T) {
	q, _ := newQueue(config.Admission{})
	if s := q.Status(); s.Limit != 1 || s.Min != 1 || s.Max != 1 || s.MaxQueue != 8 {
		t.Errorf("status %+v", s)
	}
	if q.cfg.QueueTimeout != config.TierQueueTimeouts[""] {
		t.Errorf("queue timeout %v", q.cfg.QueueTimeout)
	}
}

func TestFastPath(t *testing.T) {
	q, _ := newQueue(admission(2, 10, time.Second))
	ps := hold(t, q, 2)
	s := q.Status()
	if s.InFlight != 2 || s.Limit != 2 || s.Admitted != 2 {
		t.Fatalf("status %+v", s)
	}
	for _, p := range ps {
		p.Release(time.Millisecond, true)
	}
	Permit{}.Release(0, true) // the zero permit is a no-op
	if s := q.Status(); s.InFlight != 0 || s.Completed != 2 {
		t.Fatalf("status after release %+v", s)
	}
}

// TestTryAcquire: a free place is taken without waiting; a full queue,
// or one with waiters, says no and takes nothing.
func TestTryAcquire(t *testing.T) {
	q, _ := newQueue(admission(1, 10, time.Second))
	p, ok := q.TryAcquire()
	if !ok {
		t.Fatal("no place in an empty queue")
	}
	if _, ok := q.TryAcquire(); ok {
		t.Fatal("a place past the limit")
	}
	if s := q.Status(); s.InFlight != 1 || s.Admitted != 1 {
		t.Fatalf("status %+v", s)
	}
	p.Release(time.Millisecond, true)
	if _, ok := q.TryAcquire(); !ok {
		t.Fatal("no place after the release")
	}
}

func TestPriorities(t *testing.T) {
	q, _ := newQueue(admission(1, 10, time.Minute))
	ctx := context.Background()
	p := hold(t, q, 1)[0]
	chans := []<-chan result{
		start(t, q, ctx, Batch, "a", "batch 1"),
		start(t, q, ctx, Batch, "b", "batch 2"),
		start(t, q, ctx, Interactive, "a", "interactive 1"),
		start(t, q, ctx, Interactive, "c", "interactive 2"),
	}
	want := []string{"interactive 1", "interactive 2", "batch 1", "batch 2"}
	if diff := cmp.Diff(want, order(t, p, chans...)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestRoundRobin(t *testing.T) {
	ctx := context.Background()
	t.Run("tenants take turns", func(t *testing.T) {
		q, _ := newQueue(admission(1, 100, time.Minute))
		p := hold(t, q, 1)[0]
		var chans []<-chan result
		for _, tn := range []string{"a", "a", "a", "b", "b", "", "", ""} {
			chans = append(chans, start(t, q, ctx, Interactive, tn, tn))
		}
		want := []string{"a", "b", "", "a", "b", "", "a", ""}
		if diff := cmp.Diff(want, order(t, p, chans...)); diff != "" {
			t.Errorf("order (-want +got):\n%s", diff)
		}
	})
	t.Run("a newcomer goes before the tenant just served", func(t *testing.T) {
		q, _ := newQueue(admission(1, 1000, time.Minute))
		p := hold(t, q, 1)[0]
		var as []<-chan result
		for i := range 100 {
			as = append(as, start(t, q, ctx, Interactive, "a", fmt.Sprint("a", i)))
		}
		// a has had its turn; b arrives with one request.
		p.Release(0, false)
		r := <-as[0]
		b := start(t, q, ctx, Interactive, "b", "b")
		r.p.Release(0, false)
		select {
		case r := <-b:
			if r.err != nil {
				t.Fatal(r.err)
			}
			r.p.Release(0, false)
		case <-time.After(5 * time.Second):
			t.Fatal("b did not get the next place")
		}
		// Then a again, in its own order.
		got := order(t, (<-as[1]).p, as[2:]...)
		for i, name := range got {
			if want := fmt.Sprint("a", i+2); name != want {
				t.Fatalf("place %d went to %s, want %s", i, name, want)
			}
		}
	})
	t.Run("a tenant arriving before any turn is served after the first", func(t *testing.T) {
		q, _ := newQueue(admission(1, 1000, time.Minute))
		p := hold(t, q, 1)[0]
		chans := []<-chan result{
			start(t, q, ctx, Interactive, "a", "a0"),
			start(t, q, ctx, Interactive, "a", "a1"),
			start(t, q, ctx, Interactive, "a", "a2"),
			start(t, q, ctx, Interactive, "b", "b"),
		}
		want := []string{"a0", "b", "a1", "a2"}
		if diff := cmp.Diff(want, order(t, p, chans...)); diff != "" {
			t.Errorf("order (-want +got):\n%s", diff)
		}
	})
}

func TestFairShare(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, _ := newQueue(admission(1, 10, time.Minute))
	p := hold(t, q, 1)[0]
	var waiting []<-chan result
	for range 5 {
		waiting = append(waiting, start(t, q, ctx, Interactive, "a", "a"))
	}
	waiting = append(waiting, start(t, q, ctx, Interactive, "b", "b"))
	// Two tenants waiting: a's share is 10/2 = 5, and it has 5.
	_, err := q.Acquire(ctx, Interactive, "a")
	wantAPIError(t, err, 429, CodeRateLimited)
	// b is under its share.
	waiting = append(waiting, start(t, q, ctx, Batch, "b", "b"))
	if s := q.Status(); s.RateLimited != 1 || queued(s) != 7 {
		t.Fatalf("status %+v", s)
	}
	cancel()
	for _, c := range waiting {
		if r := <-c; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("%s: %v, want canceled", r.name, r.err)
		}
	}
	p.Release(0, false)
	if s := q.Status(); s.InFlight != 0 || queued(s) != 0 || s.Tenants != 0 {
		t.Fatalf("status after %+v", s)
	}
}

func TestFullQueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, _ := newQueue(admission(1, 4, time.Minute))
	p := hold(t, q, 1)[0]
	a := make([]<-chan result, 4)
	for i := range a {
		a[i] = start(t, q, ctx, Interactive, "a", fmt.Sprint("a", i))
	}
	// Alone, a may fill the queue; past it, 503.
	_, err := q.Acquire(ctx, Interactive, "a")
	wantAPIError(t, err, 503, CodeOverloaded)
	// b is under its share (4/2): it takes the place of a's newest.
	b := start(t, q, ctx, Interactive, "b", "b")
	r := <-a[3]
	wantAPIError(t, r.err, 429, CodeRateLimited)
	if s := q.Status(); s.Full != 1 || s.RateLimited != 1 || queued(s) != 4 || s.Tenants != 2 {
		t.Fatalf("status %+v", s)
	}
	if diff := cmp.Diff([]string{"a0", "b", "a1", "a2"}, order(t, p, a[0], a[1], a[2], b)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestQueueTimeout(t *testing.T) {
	q, clk := newQueue(admission(1, 10, 2*time.Second))
	p := hold(t, q, 1)[0]
	w := start(t, q, context.Background(), Interactive, "", "w")
	clk.Advance(2*time.Second - time.Nanosecond)
	select {
	case r := <-w:
		t.Fatalf("returned before the timeout: %v", r.err)
	default:
	}
	clk.Advance(time.Nanosecond)
	r := <-w
	wantAPIError(t, r.err, 503, CodeOverloaded)
	if s := q.Status(); s.Timeout != 1 || queued(s) != 0 || s.Tenants != 0 {
		t.Fatalf("status %+v", s)
	}
	p.Release(0, false)
	if s := q.Status(); s.InFlight != 0 {
		t.Fatalf("in flight %d", s.InFlight)
	}
}

// knownRate gives q one completion a second: a waiter queued at the
// start makes the first mark, and gets the place freed a second later.
func knownRate(t *testing.T, q *Queue, clk *clock.Fake, p Permit) Permit {
	t.Helper()
	w := start(t, q, context.Background(), Interactive, "", "w")
	clk.Advance(time.Second)
	p.Release(0, false)
	r := <-w
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.p
}

func TestDeadline(t *testing.T) {
	t.Run("refused at once when the expected wait is past it", func(t *testing.T) {
		q, clk := newQueue(admission(1, 10, 10*time.Second))
		p := knownRate(t, q, clk, hold(t, q, 1)[0])
		// Two ahead at one a second: about 3s to wait.
		bg := context.Background()
		ctx, cancel := context.WithCancel(bg)
		defer cancel()
		w1, w2 := start(t, q, ctx, Interactive, "a", "1"), start(t, q, ctx, Batch, "b", "2")
		short, cancelShort := context.WithDeadline(bg, clk.Now().Add(2500*time.Millisecond))
		defer cancelShort()
		_, err := q.Acquire(short, Batch, "c")
		e := wantAPIError(t, err, 503, CodeOverloaded)
		if e.RetryAfter != 3*time.Second {
			t.Errorf("RetryAfter %v, want 3s", e.RetryAfter)
		}
		// An Interactive request has one ahead: 2s fits.
		ok := start(t, q, short, Interactive, "c", "3")
		if s := q.Status(); s.Deadline != 1 || queued(s) != 3 {
			t.Fatalf("status %+v", s)
		}
		cancel()
		cancelShort()
		for _, c := range []<-chan result{w1, w2, ok} {
			if r := <-c; !errors.Is(r.err, context.Canceled) {
				t.Fatalf("%s: %v", r.name, r.err)
			}
		}
		p.Release(0, false)
	})
	t.Run("the wait ends at the deadline, before the queue timeout", func(t *testing.T) {
		q, clk := newQueue(admission(1, 10, 10*time.Second))
		p := hold(t, q, 1)[0]
		ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(time.Second))
		defer cancel()
		w := start(t, q, ctx, Interactive, "", "w")
		clk.Advance(time.Second)
		if r := <-w; !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want deadline exceeded", r.err)
		}
		if s := q.Status(); s.Cancelled != 1 || s.Timeout != 0 || queued(s) != 0 {
			t.Fatalf("status %+v", s)
		}
		p.Release(0, false)
	})
	t.Run("a deadline already passed", func(t *testing.T) {
		q, clk := newQueue(admission(1, 10, 10*time.Second))
		p := hold(t, q, 1)[0]
		ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(-time.Second))
		defer cancel()
		if _, err := q.Acquire(ctx, Interactive, ""); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v", err)
		}
		p.Release(0, false)
	})
}

func TestCancel(t *testing.T) {
	q, _ := newQueue(admission(1, 10, time.Minute))
	p := hold(t, q, 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	gone := start(t, q, ctx, Interactive, "a", "gone")
	stays := start(t, q, context.Background(), Interactive, "b", "stays")
	cancel()
	if r := <-gone; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("err %v", r.err)
	}
	if s := q.Status(); queued(s) != 1 || s.Tenants != 1 || s.Cancelled != 1 {
		t.Fatalf("status %+v", s)
	}
	// The freed place goes to the one still waiting, not to the ghost.
	p.Release(0, false)
	r := <-stays
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.p.Release(0, false)
	if s := q.Status(); s.InFlight != 0 || queued(s) != 0 || s.Tenants != 0 {
		t.Fatalf("status %+v", s)
	}
}

func TestSetConfig(t *testing.T) {
	q, _ := newQueue(admission(1, 10, time.Minute))
	p := hold(t, q, 1)[0]
	a := start(t, q, context.Background(), Interactive, "a", "a")
	b := start(t, q, context.Background(), Batch, "b", "b")
	q.SetConfig(config.Admission{Limit: config.LimitBounds{Min: 3, Max: 8}, MaxQueue: 20, QueueTimeout: config.Duration(time.Minute)})
	for _, c := range []<-chan result{a, b} {
		r := <-c
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.p.Release(0, false)
	}
	p.Release(0, false)
	s := q.Status()
	if diff := cmp.Diff(Status{Limit: 3, LimitEstimate: 3, Min: 3, Max: 8, MaxQueue: 20, Completed: 3,
		Counts: Counts{Admitted: 3}}, s); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

// The limit follows the latency the permits report.
func TestLimitAdapts(t *testing.T) {
	q, _ := newQueue(config.Admission{Limit: config.LimitBounds{Initial: 8, Min: 2, Max: 64}, MaxQueue: 100, QueueTimeout: config.Duration(time.Second)})
	round := func(latency time.Duration) {
		ps := hold(t, q, q.Status().Limit) // every place taken
		for _, p := range ps {
			p.Release(latency, true)
		}
	}
	for range 40 {
		round(100 * time.Millisecond)
	}
	grown := q.Status()
	if grown.Limit <= 16 || grown.Limit > 64 || grown.Floor != 100*time.Millisecond {
		t.Fatalf("at the floor, saturated: %+v", grown)
	}
	for range 40 {
		round(250 * time.Millisecond)
	}
	if s := q.Status(); s.Limit >= grown.Limit/2 || s.Limit < 2 {
		t.Fatalf("limit %d at 2.5× the floor, was %d", s.Limit, grown.Limit)
	}
	// A failure teaches nothing.
	before := q.Status().LimitEstimate
	for range 200 {
		p := hold(t, q, 1)[0]
		p.Release(time.Hour, false)
	}
	if after := q.Status().LimitEstimate; after != before {
		t.Errorf("failures moved the limit from %v to %v", before, after)
	}
}

// TestObserveWhileHeld: places held open (long streams) still teach the
// controller, by their time to first token, and the limit grows to let
// waiters in.
func TestObserveWhileHeld(t *testing.T) {
	q, _ := newQueue(config.Admission{Limit: config.LimitBounds{Initial: 8, Min: 2, Max: 64}, MaxQueue: 100, QueueTimeout: config.Duration(time.Minute)})
	held := hold(t, q, 8)
	waiting := make([]<-chan result, 0, 4)
	for i := range 4 {
		waiting = append(waiting, start(t, q, context.Background(), Interactive, "", fmt.Sprint(i)))
	}
	for _, p := range held[:8] {
		p.Observe(100*time.Millisecond, true) // a window of 10 samples is not full yet
	}
	if s := q.Status(); s.Limit != 8 || queued(s) != 4 {
		t.Fatalf("before a window closed: %+v", s)
	}
	for _, p := range held[:2] {
		p.Observe(100*time.Millisecond, true)
	}
	for _, w := range waiting[:2] { // 8 + √8: two more places
		r := <-w
		if r.err != nil {
			t.Fatal(r.err)
		}
		held = append(held, r.p)
	}
	if s := q.Status(); s.Limit != 10 || s.InFlight != 10 {
		t.Errorf("after one window at the floor: %+v, want limit 10 with 10 in flight", s)
	}
	for _, p := range held {
		p.Release(0, false)
	}
	for _, w := range waiting[2:] {
		if r := <-w; r.err == nil {
			r.p.Release(0, false)
		}
	}
}

func TestParsePriority(t *testing.T) {
	for s, want := range map[string]Priority{"": Interactive, "interactive": Interactive, "HIGH": Interactive, "batch": Batch, "Low": Batch} {
		if p, ok := ParsePriority(s); !ok || p != want {
			t.Errorf("ParsePriority(%q) = %v, %v", s, p, ok)
		}
		if p, _ := ParsePriority(want.String()); p != want {
			t.Errorf("%v does not parse back", want)
		}
	}
	if _, ok := ParsePriority("urgent"); ok {
		t.Error("an unknown priority parsed")
	}
}

func TestRetryAfter(t *testing.T) {
	for wait, want := range map[time.Duration]time.Duration{0: time.Second, 1100 * time.Millisecond: 2 * time.Second, time.Hour: time.Minute} {
		if got := retryAfter(wait); got != want {
			t.Errorf("retryAfter(%v) = %v, want %v", wait, got, want)
		}
	}
	var r rateMeter
	now := time.Unix(100, 0)
	if r.perSecond(now, 0) != 0 || r.perSecond(now.Add(500*time.Millisecond), 5) != 0 {
		t.Error("a rate before a second of history")
	}
	if got := r.perSecond(now.Add(2*time.Second), 10); got != 5 {
		t.Errorf("rate %v, want 5/s", got)
	}
	if got := r.perSecond(now.Add(10*time.Second), 11); got != 0 {
		t.Errorf("rate %v from stale marks, want unknown", got)
	}
}

// Many clients, random priorities, tenants, cancels and deadlines on the
// wall clock: no place is lost and no waiter is left.
func TestStress(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := config.Admission{Limit: config.LimitBounds{Initial: 4, Min: 2, Max: 8}, MaxQueue: 20, QueueTimeout: config.Duration(5 * time.Millisecond)}
	q := New(cfg, clock.Real{})
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range 300 {
				if i == 150 && g == 0 {
					q.SetConfig(config.Admission{Limit: config.LimitBounds{Min: 1, Max: 6}, MaxQueue: 10, QueueTimeout: config.Duration(3 * time.Millisecond)})
				}
				var ctx context.Context
				var cancel context.CancelFunc
				switch rng.IntN(4) {
				case 0:
					ctx, cancel = context.WithCancel(context.Background())
					go func() { runtime.Gosched(); cancel() }()
				case 1:
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rng.IntN(2000))*time.Microsecond)
				default:
					ctx, cancel = context.WithCancel(context.Background())
				}
				p, err := q.Acquire(ctx, Priority(rng.IntN(2)), fmt.Sprint(rng.IntN(5)))
				if err == nil {
					n := held.Add(1)
					for {
						m := peak.Load()
						if n <= m || peak.CompareAndSwap(m, n) {
							break
						}
					}
					if rng.IntN(2) == 0 {
						runtime.Gosched()
					}
					held.Add(-1)
					p.Release(time.Duration(1+rng.IntN(3))*time.Millisecond, rng.IntN(3) > 0)
				} else if _, ok := errors.AsType[*apierror.Error](err); !ok && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("unexpected error %v", err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	s := q.Status()
	if s.InFlight != 0 || queued(s) != 0 || s.Tenants != 0 {
		t.Fatalf("left over: %+v", s)
	}
	if peak.Load() > 8 {
		t.Errorf("%d permits held at once, over the max of 8", peak.Load())
	}
	total := s.Admitted + s.Full + s.Timeout + s.Deadline + s.RateLimited + s.Cancelled
	if s.Admitted != s.Completed || total != 32*300 {
		t.Errorf("counts %+v: admitted %d, completed %d, outcomes %d of %d", s.Counts, s.Admitted, s.Completed, total, 32*300)
	}
	t.Logf("%+v", s)
}

func BenchmarkAcquireRelease(b *testing.B) {
	q := New(admission(64, 512, time.Second), clock.Real{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := q.Acquire(ctx, Interactive, "k")
		if err != nil {
			b.Fatal(err)
		}
		p.Release(time.Millisecond, true)
	}
}

func BenchmarkAcquireReleaseParallel(b *testing.B) {
	q := New(admission(1024, 8192, time.Second), clock.Real{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := q.Acquire(ctx, Interactive, "k")
			if err != nil {
				b.Fatal(err)
			}
			p.Release(time.Millisecond, true)
		}
	})
}

// Contended: more clients than places, so most wait in the queue.
func BenchmarkAcquireReleaseQueued(b *testing.B) {
	q := New(admission(4, 1<<16, time.Minute), clock.Real{})
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(8)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		tenant := fmt.Sprint(n.Add(1) % 4)
		for pb.Next() {
			p, err := q.Acquire(ctx, Interactive, tenant)
			if err != nil {
				b.Fatal(err)
			}
			p.Release(time.Millisecond, true)
		}
	})
}
