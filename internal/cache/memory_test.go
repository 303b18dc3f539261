package cache

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/clock"
)

func k(s string) Ref {
	var k Key
	copy(k[:], s)
	return Ref{Model: "m", Key: k}
}

func entry(model, answer string, expires time.Time) *Entry {
	return &Entry{Model: model, Answer: []byte(answer), Expires: expires}
}

// keys lists the store's keys from the hottest.
func keys(m *Memory) []string {
	var out []string
	for el := m.lru.Front(); el != nil; el = el.Next() {
		k := el.Value.(*node).key
		out = append(out, strings.TrimRight(string(k[:]), "\x00"))
	}
	return out
}

func TestMemoryLRU(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(3, 0, nil)
	for _, s := range []string{"a", "b", "c"} {
		m.Set(ctx, k(s), entry("m", s, time.Time{}))
	}
	if e, _ := m.Get(ctx, k("a")); e == nil || string(e.Answer) != "a" {
		t.Fatalf("Get(a) = %v", e)
	}
	m.Set(ctx, k("d"), entry("m", "d", time.Time{})) // b is the coldest
	if d := cmp.Diff([]string{"d", "a", "c"}, keys(m)); d != "" {
		t.Errorf("order (-want +got):\n%s", d)
	}
	if e, _ := m.Get(ctx, k("b")); e != nil {
		t.Error("b survived its eviction")
	}
	if s := m.Stats(); s.Entries != 3 || s.Evictions != 1 {
		t.Errorf("stats %+v", s)
	}
	m.Set(ctx, k("a"), entry("m", "a2", time.Time{})) // replaces, no eviction
	if e, _ := m.Get(ctx, k("a")); string(e.Answer) != "a2" || m.Stats().Entries != 3 {
		t.Errorf("replace: %s, %+v", e.Answer, m.Stats())
	}
}

func TestMemoryBytes(t *testing.T) {
	ctx := context.Background()
	one := entry("m", strings.Repeat("x", 100), time.Time{}).size()
	m := NewMemory(0, 2*one, nil)
	m.Set(ctx, k("a"), entry("m", strings.Repeat("x", 100), time.Time{}))
	m.Set(ctx, k("b"), entry("m", strings.Repeat("x", 100), time.Time{}))
	m.Set(ctx, k("c"), entry("m", strings.Repeat("x", 100), time.Time{}))
	if s := m.Stats(); s.Entries != 2 || s.Bytes != 2*one || s.Evictions != 1 {
		t.Errorf("stats %+v, want 2 entries of %d bytes", s, one)
	}
	m.Set(ctx, k("huge"), entry("m", strings.Repeat("x", 1000), time.Time{}))
	if e, _ := m.Get(ctx, k("huge")); e != nil || m.Stats().Entries != 2 {
		t.Error("an entry larger than the store was stored")
	}
}

func TestMemoryExpiry(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Unix(1000, 0))
	m := NewMemory(10, 0, clk)
	m.Set(ctx, k("a"), entry("m", "a", clk.Now().Add(time.Minute)))
	clk.Advance(59 * time.Second)
	if e, _ := m.Get(ctx, k("a")); e == nil {
		t.Fatal("expired early")
	}
	clk.Advance(time.Second)
	if e, _ := m.Get(ctx, k("a")); e != nil {
		t.Fatal("served past its expiry")
	}
	if s := m.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Errorf("an expired entry still counts: %+v", s)
	}
}

func TestMemoryPurge(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(10, 0, nil)
	m.Set(ctx, k("a"), &Entry{Model: "m1", Scope: "s1"})
	m.Set(ctx, k("b"), &Entry{Model: "m1", Scope: "s2"})
	m.Set(ctx, k("c"), &Entry{Model: "m2", Scope: "s1"})
	if n, _ := m.Purge(ctx, "m1", "s1"); n != 1 {
		t.Errorf("purge m1/s1: %d", n)
	}
	if n, _ := m.Purge(ctx, "", "s1"); n != 1 {
		t.Errorf("purge */s1: %d", n)
	}
	if n, _ := m.Purge(ctx, "", ""); n != 1 || m.Stats().Bytes != 0 {
		t.Errorf("purge all: %d, %+v", n, m.Stats())
	}
}
