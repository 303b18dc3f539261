package store

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/omnigate/omnigate/internal/jobs"
)

// A rig is one store under test: its backend, and (for the shared
// stores) a way to open another gateway's backend on the same store.
type rig struct {
	b *jobs.Backend
	// other opens another backend on the same store, closed at the test's
	// end; nil for the embedded store, which one process holds.
	other func() *jobs.Backend
}

// kinds are the backends every conformance test runs against: each opens
// a store of the test's own, removed afterwards.
var kinds = []struct {
	name string
	open func(t *testing.T, lease time.Duration) rig
}{
	{"embedded", embeddedRig},
	{"redis", redisRig},
	{"nats", natsRig},
}

func embeddedRig(t *testing.T, lease time.Duration) rig {
	b, err := OpenEmbedded(t.TempDir(), lease)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return rig{b: b}
}

// needServer skips the test when the server at addr is absent, or fails
// it when CI is set: CI starts both servers (.ci/run).
func needServer(t *testing.T, what, addr string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("no %s at %s: %v", what, addr, err)
	}
	t.Skipf("no %s at %s: %v", what, addr, err)
}

func redisAddr() string {
	if a := os.Getenv("OMNIGATE_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func natsURL() string {
	if u := os.Getenv("OMNIGATE_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

var prefixes atomic.Int64

// testPrefix is a prefix of the test's own, valid as a Redis key prefix
// and a NATS stream name.
func testPrefix(t *testing.T) string {
	return fmt.Sprintf("omnigate_test_%d_%d", time.Now().UnixNano(), prefixes.Add(1))
}

func redisRig(t *testing.T, lease time.Duration) rig {
	prefix := testPrefix(t)
	return redisRigOn(t, prefix, lease)
}

func redisRigOn(t *testing.T, prefix string, lease time.Duration) rig {
	t.Helper()
	cleanRedis(t, prefix)
	open := func() *jobs.Backend {
		b, err := OpenRedis(context.Background(), RedisOptions{Addr: redisAddr(), Prefix: prefix}, lease)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	return rig{b: open(), other: open}
}

// cleanRedis skips the test without a Redis server, and removes the
// prefix's keys when it ends.
func cleanRedis(t *testing.T, prefix string) {
	t.Helper()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: redisAddr(), DialTimeout: time.Second})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		needServer(t, "Redis", redisAddr(), err)
	}
	t.Cleanup(func() {
		// After the backends close (cleanups run last first).
		keys, _ := c.Keys(ctx, prefix+":*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
		c.Close()
	})
}

func natsRig(t *testing.T, lease time.Duration) rig {
	prefix := testPrefix(t)
	return natsRigOn(t, prefix, lease)
}

func natsRigOn(t *testing.T, prefix string, lease time.Duration) rig {
	t.Helper()
	cleanNATS(t, prefix)
	open := func() *jobs.Backend {
		b, err := OpenNATS(context.Background(), NATSOptions{URL: natsURL(), Prefix: prefix}, lease)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	return rig{b: open(), other: open}
}

// cleanNATS skips the test without a NATS server, and removes the
// prefix's stream, bucket and object store when it ends.
func cleanNATS(t *testing.T, prefix string) {
	t.Helper()
	ctx := context.Background()
	nc, err := nats.Connect(natsURL(), nats.Timeout(time.Second))
	if err != nil {
		needServer(t, "NATS", natsURL(), err)
	}
	t.Cleanup(func() {
		if js, err := jetstream.New(nc); err == nil {
			js.DeleteStream(ctx, prefix)
			js.DeleteKeyValue(ctx, prefix)
			js.DeleteObjectStore(ctx, prefix)
		}
		nc.Close()
	})
}
