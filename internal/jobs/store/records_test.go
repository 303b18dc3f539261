package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/jobs"
)

// A suiteCase is one test of the conformance suite, run on a fresh store
// of every backend with leases of lease (default a second).
type suiteCase struct {
	name  string
	lease time.Duration
	run   func(t *testing.T, r rig)
}

// TestConformance runs the same suite against every backend: the job
// logic is written once on the documented semantics, so every backend
// must keep them alike.
func TestConformance(t *testing.T) {
	cases := slices.Concat(recordCases, queueCases, fileCases)
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					lease := c.lease
					if lease == 0 {
						lease = time.Second
					}
					c.run(t, k.open(t, lease))
				})
			}
		})
	}
}

var recordCases = []suiteCase{
	{name: "records/CAS", run: testCAS},
	{name: "records/Create", run: testCreate},
	{name: "records/Add", run: testAdd},
	{name: "records/List", run: testList},
}

// get reads key, failing the test on any error but ErrNotFound.
func get(t *testing.T, rs jobs.Records, key string) (string, uint64, bool) {
	t.Helper()
	val, ver, err := rs.Get(context.Background(), key)
	if errors.Is(err, jobs.ErrNotFound) {
		return "", 0, false
	}
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	return string(val), ver, true
}

func testCAS(t *testing.T, r rig) {
	ctx := context.Background()
	rs := r.b.Records
	if _, _, ok := get(t, rs, "job/a"); ok {
		t.Fatal("found before any Put")
	}
	if _, err := rs.Put(ctx, "job/a", []byte("v1"), 7); !errors.Is(err, jobs.ErrConflict) {
		t.Errorf("Put at a version of a record that is not there: %v, want ErrConflict", err)
	}
	v1, err := rs.Put(ctx, "job/a", []byte("v1"), 0)
	if err != nil || v1 == 0 {
		t.Fatalf("Put new: %d, %v", v1, err)
	}
	if _, err := rs.Put(ctx, "job/a", []byte("again"), 0); !errors.Is(err, jobs.ErrConflict) {
		t.Errorf("Put new over an existing record: %v, want ErrConflict", err)
	}
	v2, err := rs.Put(ctx, "job/a", []byte("v2"), v1)
	if err != nil || v2 == v1 || v2 == 0 {
		t.Fatalf("Put at v%d: v%d, %v", v1, v2, err)
	}
	if _, err := rs.Put(ctx, "job/a", []byte("stale"), v1); !errors.Is(err, jobs.ErrConflict) {
		t.Errorf("Put at a stale version: %v, want ErrConflict", err)
	}
	if val, ver, _ := get(t, rs, "job/a"); val != "v2" || ver != v2 {
		t.Errorf("Get = %q v%d, want %q v%d", val, ver, "v2", v2)
	}

	// Empty values and binary ones come back as they went.
	bin := string([]byte{0, 1, 0xff, '\n'})
	if _, err := rs.Put(ctx, "job/bin", []byte(bin), 0); err != nil {
		t.Fatal(err)
	}
	if val, _, _ := get(t, rs, "job/bin"); val != bin {
		t.Errorf("binary value: got %q", val)
	}

	if err := rs.Delete(ctx, "job/a"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := get(t, rs, "job/a"); ok {
		t.Error("found after Delete")
	}
	if err := rs.Delete(ctx, "job/a"); err != nil {
		t.Errorf("Delete of nothing: %v", err)
	}
	if _, err := rs.Put(ctx, "job/a", []byte("v3"), v2); !errors.Is(err, jobs.ErrConflict) {
		t.Errorf("Put at the deleted record's version: %v, want ErrConflict", err)
	}
	v3, err := rs.Put(ctx, "job/a", []byte("v3"), 0)
	if err != nil {
		t.Fatalf("Put new after Delete: %v", err)
	}
	if v3 == v1 || v3 == v2 {
		t.Errorf("version %d given again after Delete", v3)
	}
}

func testCreate(t *testing.T, r rig) {
	ctx := context.Background()
	rs := r.b.Records
	va, err := rs.Put(ctx, "job/a", []byte("first"), 0)
	if err != nil {
		t.Fatal(err)
	}
	recs := []jobs.Record{
		{Key: "job/a", Val: []byte("second")},
		{Key: "job/b", Val: []byte("b")},
		{Key: "job/c", Val: []byte("c")},
	}
	if err := rs.Create(ctx, recs); err != nil {
		t.Fatal(err)
	}
	read := func() map[string]string {
		m := map[string]string{}
		for _, k := range []string{"job/a", "job/b", "job/c"} {
			val, _, _ := get(t, rs, k)
			m[k] = val
		}
		return m
	}
	want := map[string]string{"job/a": "first", "job/b": "b", "job/c": "c"}
	if d := cmp.Diff(want, read()); d != "" {
		t.Errorf("after Create (-want +got):\n%s", d)
	}
	if _, ver, _ := get(t, rs, "job/a"); ver != va {
		t.Errorf("existing record's version moved: %d, want %d", ver, va)
	}
	_, vb, _ := get(t, rs, "job/b")
	// Created again, as after a crash: nothing changes.
	recs[1].Val = []byte("b again")
	if err := rs.Create(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, read()); d != "" {
		t.Errorf("after a second Create (-want +got):\n%s", d)
	}
	if _, ver, _ := get(t, rs, "job/b"); ver != vb {
		t.Errorf("created record's version moved: %d, want %d", ver, vb)
	}
	// A created record moves on by CAS like any other.
	if _, err := rs.Put(ctx, "job/b", []byte("b2"), vb); err != nil {
		t.Errorf("Put at the created version: %v", err)
	}
	// Many at once, more than one step of any backend.
	var many []jobs.Record
	for i := range 600 {
		many = append(many, jobs.Record{Key: fmt.Sprintf("line/%04d", i), Val: []byte{byte(i)}})
	}
	if err := rs.Create(ctx, many); err != nil {
		t.Fatal(err)
	}
	keys, err := rs.List(ctx, "line", "", 1000)
	if err != nil || len(keys) != 600 {
		t.Errorf("List after creating 600: %d keys, %v", len(keys), err)
	}
	if err := rs.Create(ctx, nil); err != nil {
		t.Errorf("Create of nothing: %v", err)
	}
}

func testAdd(t *testing.T, r rig) {
	ctx := context.Background()
	rs := r.b.Records
	if n, err := rs.Add(ctx, "batch/x/failed", -5); err != nil || n != -5 {
		t.Errorf("Add to a new counter: %d, %v; want -5", n, err)
	}
	if n, err := rs.Add(ctx, "batch/x/failed", 0); err != nil || n != -5 {
		t.Errorf("Add 0: %d, %v; want -5", n, err)
	}
	// Many gateways at once (a second backend where the store is shared).
	others := []jobs.Records{rs, rs}
	if r.other != nil {
		others[1] = r.other().Records
	}
	const goroutines, each = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				if _, err := others[g%2].Add(ctx, "batch/x/done", 1); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, err := rs.Add(ctx, "batch/x/done", 0); err != nil || n != goroutines*each {
		t.Errorf("after %d concurrent adds: %d, %v", goroutines*each, n, err)
	}
	// Counters are apart from records.
	if _, _, ok := get(t, rs, "batch/x/done"); ok {
		t.Error("a counter reads as a record")
	}
	if keys, _ := rs.List(ctx, "batch", "", 10); len(keys) != 0 {
		t.Errorf("counters listed as records: %q", keys)
	}
}

func testList(t *testing.T, r rig) {
	ctx := context.Background()
	rs := r.b.Records
	var want []string
	for i := 1; i <= 12; i++ {
		k := fmt.Sprintf("batch/%02d", i)
		want = append(want, k)
		if _, err := rs.Put(ctx, k, []byte("{}"), 0); err != nil {
			t.Fatal(err)
		}
	}
	slices.Reverse(want)
	// Neighbours of other kinds, before and after "batch/" in key order.
	for _, k := range []string{"bat/1", "batch", "batch0/1", "batchx/1", "job/1", "a/1", "z/1"} {
		if _, err := rs.Put(ctx, k, []byte("{}"), 0); err != nil {
			t.Fatal(err)
		}
	}
	list := func(below string, limit int) []string {
		t.Helper()
		keys, err := rs.List(ctx, "batch", below, limit)
		if err != nil {
			t.Fatalf("List below %q: %v", below, err)
		}
		return keys
	}
	if d := cmp.Diff(want, list("", 100)); d != "" {
		t.Errorf("List all (-want +got):\n%s", d)
	}
	// Paging: each page strictly below the last key of the one before.
	var pages [][]string
	for below := ""; ; {
		p := list(below, 5)
		if len(p) == 0 {
			break
		}
		pages = append(pages, p)
		below = p[len(p)-1]
	}
	wantPages := [][]string{want[:5], want[5:10], want[10:]}
	if d := cmp.Diff(wantPages, pages); d != "" {
		t.Errorf("pages (-want +got):\n%s", d)
	}
	tests := []struct {
		name  string
		below string
		limit int
		want  []string
	}{
		{"below a key that is not there", "batch/05x", 3, []string{"batch/05", "batch/04", "batch/03"}},
		{"below the first", "batch/01", 3, nil},
		{"below every key of the kind", "batch/", 3, nil},
		{"below a greater kind", "c", 2, []string{"batch/12", "batch/11"}},
		{"limit 0", "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, list(tt.below, tt.limit)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	if err := rs.Delete(ctx, "batch/12"); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want[1:4], list("", 3)); d != "" {
		t.Errorf("after deleting the newest (-want +got):\n%s", d)
	}
	if keys, err := rs.List(ctx, "nothing", "", 10); err != nil || len(keys) != 0 {
		t.Errorf("List of an empty kind: %q, %v", keys, err)
	}
}
