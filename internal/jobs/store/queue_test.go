package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/jobs"
)

var queueCases = []suiteCase{
	{name: "queue/Order", run: testOrder},
	{name: "queue/Lapse", run: testLapse},
	{name: "queue/Extend", run: testExtend},
	{name: "queue/Concurrent", lease: 10 * time.Second, run: testConcurrentTakers},
	{name: "queue/Wait", run: testWait},
	{name: "queue/Cancel", run: testCancel},
}

// take takes a task within wait, failing the test when none comes.
func take(t *testing.T, q jobs.Queue, wait time.Duration) jobs.Delivery {
	t.Helper()
	d, err := q.Take(context.Background(), wait)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	if d == nil {
		t.Fatalf("Take: nothing within %s", wait)
	}
	return d
}

// none checks that no task comes within wait.
func none(t *testing.T, q jobs.Queue, wait time.Duration) {
	t.Helper()
	d, err := q.Take(context.Background(), wait)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	if d != nil {
		t.Fatalf("Take: got %q (attempt %d), want nothing", d.Task(), d.Attempt())
	}
}

type delivered struct {
	Task    string
	Attempt int
}

func ack(t *testing.T, d jobs.Delivery) {
	t.Helper()
	if err := d.Ack(context.Background()); err != nil {
		t.Fatalf("Ack %s: %v", d.Task(), err)
	}
}

func testOrder(t *testing.T, r rig) {
	ctx := context.Background()
	q := r.b.Queue
	none(t, q, 0)
	if err := q.Push(ctx, "job/a", "job/b", "job/c"); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(ctx, "job/d"); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(ctx); err != nil {
		t.Fatalf("Push of nothing: %v", err)
	}
	var got []delivered
	for range 4 {
		d := take(t, q, time.Second)
		got = append(got, delivered{d.Task(), d.Attempt()})
		ack(t, d)
	}
	want := []delivered{{"job/a", 1}, {"job/b", 1}, {"job/c", 1}, {"job/d", 1}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("deliveries (-want +got):\n%s", d)
	}
	none(t, q, 0)
}

// testLapse leaves a lease to lapse: the task comes again, before newer
// ones, as attempt 2, and the first delivery has lost it.
func testLapse(t *testing.T, r rig) {
	ctx := context.Background()
	q := r.b.Queue
	if err := q.Push(ctx, "job/x"); err != nil {
		t.Fatal(err)
	}
	first := take(t, q, time.Second)
	taken := time.Now()
	if err := q.Push(ctx, "job/y"); err != nil {
		t.Fatal(err)
	}
	// Redelivery is by the server's clock: real time, a lease's worth.
	time.Sleep(1300 * time.Millisecond)
	again := take(t, q, 2*time.Second)
	got := []delivered{{first.Task(), first.Attempt()}, {again.Task(), again.Attempt()}}
	want := []delivered{{"job/x", 1}, {"job/x", 2}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("deliveries (-want +got):\n%s", d)
	}
	if since := time.Since(taken); since < 900*time.Millisecond {
		t.Errorf("taken again after %s, before its lease of 1s lapsed", since)
	}
	if err := first.Extend(ctx); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Errorf("Extend by the first taker after the task went again: %v, want ErrLeaseLost", err)
	}
	if err := again.Extend(ctx); err != nil {
		t.Errorf("Extend by the second taker: %v", err)
	}
	y := take(t, q, time.Second)
	if y.Task() != "job/y" || y.Attempt() != 1 {
		t.Errorf("then %q attempt %d, want job/y attempt 1", y.Task(), y.Attempt())
	}
	ack(t, again)
	ack(t, y)
	if err := again.Extend(ctx); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Errorf("Extend after Ack: %v, want ErrLeaseLost", err)
	}
	none(t, q, 0)
}

// testExtend holds a task for almost twice its lease by extending it every
// third of one, while another gateway waits for tasks and gets none.
func testExtend(t *testing.T, r rig) {
	ctx := context.Background()
	q := r.b.Queue
	other := q
	if r.other != nil {
		other = r.other().Queue
	}
	if err := q.Push(ctx, "job/held"); err != nil {
		t.Fatal(err)
	}
	d := take(t, q, time.Second)
	start := time.Now()
	for time.Since(start) < 1800*time.Millisecond {
		none(t, other, 333*time.Millisecond) // also the pause between extensions
		if err := d.Extend(ctx); err != nil {
			t.Fatalf("Extend after %s: %v", time.Since(start).Round(time.Millisecond), err)
		}
	}
	ack(t, d)
	none(t, other, 1200*time.Millisecond)
}

// testConcurrentTakers has takers on two gateways (where the store is
// shared) share tasks: each is delivered once and acked once.
func testConcurrentTakers(t *testing.T, r rig) {
	ctx := context.Background()
	queues := []jobs.Queue{r.b.Queue, r.b.Queue}
	if r.other != nil {
		queues[1] = r.other().Queue
	}
	const tasks, takers = 60, 8
	var all []string
	for i := range tasks {
		all = append(all, fmt.Sprintf("job/%03d", i))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := range takers {
		wg.Go(func() {
			q := queues[i%2]
			for {
				d, err := q.Take(ctx, 300*time.Millisecond)
				if err != nil {
					t.Error(err)
					return
				}
				if d == nil {
					return // all taken
				}
				mu.Lock()
				seen[d.Task()]++
				mu.Unlock()
				if err := d.Ack(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	// Pushed while the takers wait, in two gateways' pushes.
	if err := queues[0].Push(ctx, all[:tasks/2]...); err != nil {
		t.Fatal(err)
	}
	if err := queues[1].Push(ctx, all[tasks/2:]...); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	want := map[string]int{}
	for _, k := range all {
		want[k] = 1
	}
	if d := cmp.Diff(want, seen); d != "" {
		t.Errorf("deliveries per task (-want +got):\n%s", d)
	}
	none(t, queues[0], 0)
}

// testWait: an empty queue answers nothing after the wait, not before,
// and a Push wakes a waiting Take.
func testWait(t *testing.T, r rig) {
	ctx := context.Background()
	q := r.b.Queue
	start := time.Now()
	none(t, q, 300*time.Millisecond)
	if e := time.Since(start); e < 250*time.Millisecond || e > 1500*time.Millisecond {
		t.Errorf("an empty Take of 300ms took %s", e)
	}
	got := make(chan jobs.Delivery, 1)
	go func() {
		d, err := q.Take(ctx, 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- d
	}()
	time.Sleep(100 * time.Millisecond) // let the Take start waiting
	pushed := time.Now()
	if err := q.Push(ctx, "job/late"); err != nil {
		t.Fatal(err)
	}
	d := <-got
	if d == nil || d.Task() != "job/late" {
		t.Fatalf("waiting Take got %v", d)
	}
	if e := time.Since(pushed); e > time.Second {
		t.Errorf("a waiting Take got the task %s after the Push", e)
	}
	ack(t, d)
}

// testCancel: a Take ends with its context, long before its wait.
func testCancel(t *testing.T, r rig) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	d, err := r.b.Queue.Take(ctx, 10*time.Second)
	if !errors.Is(err, context.Canceled) || d != nil {
		t.Errorf("Take = %v, %v; want context.Canceled", d, err)
	}
	if e := time.Since(start); e > 1500*time.Millisecond {
		t.Errorf("cancelled Take returned after %s", e)
	}
	// Already cancelled: no wait at all.
	if d, err := r.b.Queue.Take(ctx, 10*time.Second); !errors.Is(err, context.Canceled) || d != nil {
		t.Errorf("Take on a done context = %v, %v", d, err)
	}
}
