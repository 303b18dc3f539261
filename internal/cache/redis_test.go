package cache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testRedis returns a store on the Redis at 127.0.0.1:6379 (OMNIGATE_REDIS
// overrides) under a prefix of the test's own, purged afterwards. Without
// a server the test is skipped, unless CI is set.
func testRedis(t *testing.T) *Redis {
	t.Helper()
	addr := os.Getenv("OMNIGATE_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	r := NewRedis(RedisOptions{Addr: addr, Prefix: fmt.Sprintf("omnigate-test:%s:%d", t.Name(), time.Now().UnixNano()), Timeout: time.Second})
	if err := r.Ping(context.Background()); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Redis at %s: %v", addr, err)
		}
		t.Skipf("no Redis at %s: %v", addr, err)
	}
	t.Cleanup(func() { r.Purge(context.Background(), "", ""); r.Close() })
	return r
}

func TestRedisStore(t *testing.T) {
	r := testRedis(t)
	ctx := context.Background()
	ref := Ref{Model: "m", Scope: "tenant-a", Key: k("a").Key}
	if e, err := r.Get(ctx, ref); e != nil || err != nil {
		t.Fatalf("empty store: %v, %v", e, err)
	}
	now := time.Now().Truncate(time.Millisecond)
	in := &Entry{Model: "m", Scope: "tenant-a", Answer: []byte(`{"id":"x"}`), FinishReason: "stop",
		Stored: now, Expires: now.Add(time.Hour), Vector: []float32{0.5, -1, 3.25}}
	if err := r.Set(ctx, ref, in); err != nil {
		t.Fatal(err)
	}
	out, err := r.Get(ctx, ref)
	if err != nil || out == nil {
		t.Fatalf("Get: %v, %v", out, err)
	}
	if d := cmp.Diff(in, out, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); d != "" {
		t.Errorf("round trip (-in +out):\n%s", d)
	}
	if e, _ := r.Get(ctx, Ref{Model: "m", Scope: "tenant-b", Key: ref.Key}); e != nil {
		t.Error("found in another scope")
	}
	var seen int
	if err := r.Each(ctx, "m", func(key Key, e *Entry) {
		if key == ref.Key && string(e.Answer) == `{"id":"x"}` {
			seen++
		}
	}); err != nil || seen != 1 {
		t.Errorf("Each: %d seen, %v", seen, err)
	}
}

func TestRedisExpiry(t *testing.T) {
	r := testRedis(t)
	ctx := context.Background()
	ref := Ref{Model: "m", Key: k("a").Key}
	r.Set(ctx, ref, &Entry{Model: "m", Answer: []byte(`{}`), Expires: time.Now().Add(200 * time.Millisecond)})
	if e, _ := r.Get(ctx, ref); e == nil {
		t.Fatal("gone before its expiry")
	}
	time.Sleep(400 * time.Millisecond) // Redis expires it on its own clock
	if e, _ := r.Get(ctx, ref); e != nil {
		t.Error("served past its expiry")
	}
	if err := r.Set(ctx, ref, &Entry{Model: "m", Expires: time.Now().Add(-time.Second)}); err != nil {
		t.Errorf("an expired entry: %v", err)
	}
	if e, _ := r.Get(ctx, ref); e != nil {
		t.Error("an entry already expired was stored")
	}
}

func TestRedisPurge(t *testing.T) {
	r := testRedis(t)
	ctx := context.Background()
	put := func(model, scope, key string) {
		if err := r.Set(ctx, Ref{Model: model, Scope: scope, Key: k(key).Key}, &Entry{Model: model, Scope: scope, Answer: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	put("m1", "s1", "a")
	put("m1", "s2", "b")
	put("m2", "s1", "c")
	put("m2", "", "d")
	if n, err := r.Purge(ctx, "m1", "s1"); n != 1 || err != nil {
		t.Errorf("purge m1/s1: %d, %v", n, err)
	}
	if n, _ := r.Purge(ctx, "m2", ""); n != 2 {
		t.Errorf("purge m2: %d", n)
	}
	if n, _ := r.Purge(ctx, "", ""); n != 1 {
		t.Errorf("purge all: %d", n)
	}
}

// TestRedisDown: a server that is not there fails the first call fast and
// answers ErrUnavailable for a second without trying again.
func TestRedisDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	r := NewRedis(RedisOptions{Addr: addr})
	defer r.Close()
	clock := time.Now()
	r.now = func() time.Time { return clock }
	ctx := context.Background()
	ref := Ref{Model: "m", Key: k("a").Key}
	if _, err := r.Get(ctx, ref); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("first Get against no server: %v", err)
	}
	if _, err := r.Get(ctx, ref); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second Get: %v, want ErrUnavailable", err)
	}
	if err := r.Set(ctx, ref, &Entry{Model: "m"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Set while down: %v", err)
	}
	clock = clock.Add(time.Second)
	if _, err := r.Get(ctx, ref); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("a second later the server is asked again: %v", err)
	}
}
