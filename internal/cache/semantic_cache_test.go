package cache

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

func semanticPolicy(store string) *config.Cache {
	return &config.Cache{Mode: config.CacheSemantic, Store: store, TTL: config.Duration(time.Hour),
		Semantic: config.SemanticCache{Embeddings: "embed", Threshold: 0.95}}
}

// vec is a 4-dimensional vector; similar ones have a small angle.
func vec(x ...float32) []float32 { return x }

// TestSimilar: a stored prompt's entry is found by a vector close enough
// to its own, within its semantic scope only, and not once it is gone.
func TestSimilar(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	c := New(config.CacheStores{}, "", clk, nil)
	p := semanticPolicy(config.StoreMemory)
	scope := k("scope-1").Key
	ref := Ref{Model: "m", Key: k("answer-1").Key}
	e := c.NewEntry(p, "m", "", []byte(`{"id":"1"}`), "stop")
	e.Vector = vec(1, 0, 0, 0)
	c.PutSimilar(ctx, p, ref, scope, e)

	tests := []struct {
		name   string
		scope  Key
		v      []float32
		hit    bool
		minSim float32
	}{
		{"the same prompt", scope, vec(2, 0, 0, 0), true, 0.999},
		{"close enough", scope, vec(1, 0.2, 0, 0), true, 0.95}, // cos = 0.981
		{"too far", scope, vec(1, 0.4, 0, 0), false, 0.9},      // cos = 0.928
		{"another semantic scope", k("scope-2").Key, vec(1, 0, 0, 0), false, 0},
		{"another dimension", scope, vec(1, 0, 0), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, sim := c.Similar(ctx, p, "m", "", tt.scope, "q", tt.v)
			if (got != nil) != tt.hit || sim < tt.minSim {
				t.Errorf("hit %v, similarity %.4f; want hit %v, similarity >= %.2f", got != nil, sim, tt.hit, tt.minSim)
			}
			if got != nil && string(got.Answer) != `{"id":"1"}` {
				t.Errorf("answer %s", got.Answer)
			}
		})
	}
	if e.Vector[0] != 1 {
		t.Errorf("the entry's vector was changed: %v", e.Vector)
	}

	t.Run("gone from the store: dropped from the index", func(t *testing.T) {
		c.Memory().Purge(ctx, "m", "") // the store only, as an eviction would
		if got, _ := c.Similar(ctx, p, "m", "", scope, "q", vec(1, 0, 0, 0)); got != nil {
			t.Fatal("a hit on a purged entry")
		}
		if n := c.SemanticLen("m", "embed"); n != 0 {
			t.Errorf("%d vectors left in the index, want 0", n)
		}
	})
	t.Run("expired: swept from the index", func(t *testing.T) {
		c.PutSimilar(ctx, p, ref, scope, e)
		if n := c.SemanticLen("m", "embed"); n != 1 {
			t.Fatalf("%d vectors, want 1", n)
		}
		clk.Advance(2 * time.Hour)
		if got, _ := c.Similar(ctx, p, "m", "", scope, "q", vec(1, 0, 0, 0)); got != nil {
			t.Fatal("a hit on an expired entry")
		}
		if n := c.SemanticLen("m", "embed"); n != 0 {
			t.Errorf("%d vectors left after expiry, want 0", n)
		}
	})
	t.Run("a purge of the model drops its index", func(t *testing.T) {
		c.PutSimilar(ctx, p, ref, scope, c.NewEntry(p, "m", "", []byte(`{}`), "stop"))
		e2 := c.NewEntry(p, "m", "", []byte(`{}`), "stop")
		e2.Vector = vec(0, 1, 0, 0)
		c.PutSimilar(ctx, p, ref, scope, e2)
		c.Purge(ctx, "m", "")
		if n := c.SemanticLen("m", "embed"); n != 0 {
			t.Errorf("%d vectors after a purge, want 0", n)
		}
	})
	t.Run("the closest differs in a number: the next is served", func(t *testing.T) {
		for i, q := range []string{"What is 12 times 13?", "What is 12 times 14?"} {
			e := c.NewEntry(p, "m", "", []byte(q), "stop")
			e.Vector, e.Prompt = vec(0, 0, 1, float32(i)/10), q
			c.PutSimilar(ctx, p, Ref{Model: "m", Key: k(q).Key}, scope, e)
		}
		got, sim := c.Similar(ctx, p, "m", "", scope, "What's 12 times 14?", vec(0, 0, 1, 0))
		if got == nil || string(got.Answer) != "What is 12 times 14?" || sim > 0.999 {
			t.Errorf("served %v at %.4f, want the answer to 12 times 14, not the closest", got, sim)
		}
		if got, _ := c.Similar(ctx, p, "m", "", scope, "What's 12 times 15?", vec(0, 0, 1, 0)); got != nil {
			t.Errorf("served %s for 12 times 15", got.Answer)
		}
	})
}

// TestSimilarAcrossReplicas: two caches on one Redis: what one stores
// semantically, the other finds once its follower has read the stream,
// even when it starts after the entry was stored.
func TestSimilarAcrossReplicas(t *testing.T) {
	r := testRedis(t)
	ctx := context.Background()
	stores := config.CacheStores{Redis: config.RedisStore{Addr: r.client.Options().Addr, Prefix: r.prefix, Timeout: config.Duration(time.Second)}}
	p := semanticPolicy(config.StoreRedis)
	a := New(stores, "", nil, nil)
	defer a.Close()
	a.FollowSemantic()
	scope := k("scope").Key
	put := func(name string, v []float32) {
		e := a.NewEntry(p, "m", "tenant", []byte(`{"id":"`+name+`"}`), "stop")
		e.Vector = v
		a.PutSimilar(ctx, p, Ref{Model: "m", Scope: "tenant", Key: k(name).Key}, scope, e)
	}
	put("before", vec(1, 0, 0, 0))

	b := New(stores, "", nil, nil)
	defer b.Close()
	b.FollowSemantic()
	put("after", vec(0, 1, 0, 0))

	found := func(v []float32) string {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if e, _ := b.Similar(ctx, p, "m", "tenant", scope, "q", v); e != nil {
				return string(e.Answer)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return ""
	}
	got := []string{found(vec(1, 0.1, 0, 0)), found(vec(0.1, 1, 0, 0))}
	if d := cmp.Diff([]string{`{"id":"before"}`, `{"id":"after"}`}, got); d != "" {
		t.Errorf("the other replica's semantic hits (-want +got):\n%s", d)
	}
	if e, _ := b.Similar(ctx, p, "m", "another tenant", scope, "q", vec(1, 0, 0, 0)); e != nil {
		t.Error("a hit in another scope's store key")
	}
	if n := a.SemanticLen("m", "embed"); n != 2 {
		t.Errorf("the storing replica indexes %d vectors, want 2 (its own, once)", n)
	}
}

// TestFollowerRedisDown: with Redis gone the follower backs off quietly
// and Close still returns at once.
func TestFollowerRedisDown(t *testing.T) {
	c := New(config.CacheStores{Redis: config.RedisStore{Addr: "127.0.0.1:1", Timeout: config.Duration(50 * time.Millisecond)}}, "", nil, nil)
	c.FollowSemantic()
	time.Sleep(300 * time.Millisecond)
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not stop the follower")
	}
}
