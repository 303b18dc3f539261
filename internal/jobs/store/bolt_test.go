package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/jobs"
)

// TestEmbeddedLeases runs the embedded queue's leases on a fake clock:
// every step of a lease's life, without waiting for one.
func TestEmbeddedLeases(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	b, err := openEmbedded(t.TempDir(), 30*time.Second, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q := b.Queue
	if err := q.Push(ctx, "job/a", "job/b"); err != nil {
		t.Fatal(err)
	}
	a1 := take(t, q, 0)
	b1 := take(t, q, 0)
	none(t, q, 0)

	clk.Advance(20 * time.Second)
	if err := a1.Extend(ctx); err != nil { // a's lease now ends at 50s
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second) // 30s: b's lease lapsed, a's holds
	b2 := take(t, q, 0)
	none(t, q, 0)
	clk.Advance(25 * time.Second) // 55s: a's lapsed too, but nobody took it
	if err := a1.Extend(ctx); err != nil {
		t.Errorf("Extend of a lapsed lease nobody took: %v", err)
	}
	none(t, q, 0)
	if err := b1.Extend(ctx); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Errorf("Extend of a lease taken again: %v, want ErrLeaseLost", err)
	}
	clk.Advance(31 * time.Second)
	a2 := take(t, q, 0)
	got := []delivered{{a1.Task(), a1.Attempt()}, {b1.Task(), b1.Attempt()}, {b2.Task(), b2.Attempt()}, {a2.Task(), a2.Attempt()}}
	want := []delivered{{"job/a", 1}, {"job/b", 1}, {"job/b", 2}, {"job/a", 2}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("deliveries (-want +got):\n%s", d)
	}
	// b2 lapsed as well by now: lapsed tasks go in push order.
	b3 := take(t, q, 0)
	if b3.Task() != "job/b" || b3.Attempt() != 3 {
		t.Errorf("then %s attempt %d, want job/b attempt 3", b3.Task(), b3.Attempt())
	}
	ack(t, a2)
	ack(t, b3)
	if err := b1.Ack(ctx); err != nil {
		t.Errorf("Ack of a task acked already: %v", err)
	}
	clk.Advance(time.Hour)
	none(t, q, 0)
}

// TestEmbeddedLock: bbolt locks the file, so a second opener in this
// process fails as one in another would (TestCrash has the real process),
// within about a second, naming the file.
func TestEmbeddedLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created by the store
	b, err := OpenEmbedded(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = OpenEmbedded(dir, time.Second)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "jobs.db")) {
		t.Errorf("second open: %v", err)
	}
	if e := time.Since(start); e > 2*time.Second {
		t.Errorf("second open waited %s", e)
	}
	b.Close()
	b, err = OpenEmbedded(dir, time.Second)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	b.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v, %v", fi.Mode(), err)
	}
}

// TestEmbeddedReopen: what the store holds outlives the process's handle
// on it (the gateway-restart case, without a crash).
func TestEmbeddedReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := OpenEmbedded(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v, err := b.Records.Put(ctx, "job/a", []byte("a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	b.Records.Add(ctx, "n", 3)
	b.Queue.Push(ctx, "job/a")
	b.Files.Put(ctx, "file-a", strings.NewReader("contents"))
	b.Close()

	b, err = OpenEmbedded(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if val, ver, _ := get(t, b.Records, "job/a"); val != "a" || ver != v {
		t.Errorf("record: %q v%d", val, ver)
	}
	if n, _ := b.Records.Add(ctx, "n", 0); n != 3 {
		t.Errorf("counter: %d", n)
	}
	if d := take(t, b.Queue, 0); d.Task() != "job/a" {
		t.Errorf("task: %q", d.Task())
	}
	if got, err := read(t, b.Files, "file-a"); got != "contents" || err != nil {
		t.Errorf("file: %q, %v", got, err)
	}
}

// TestDirStaleTemp: a temporary file a crash left a day ago is removed on
// open; a fresh one, perhaps another gateway's, stays.
func TestDirStaleTemp(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, tempPrefix+"file-a-1")
	fresh := filepath.Join(dir, tempPrefix+"file-b-2")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("part"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTemp)
	os.Chtimes(stale, old, old)
	if _, err := OpenDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary file: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file: %v", err)
	}
}
