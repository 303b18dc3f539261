package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

// Cache is the gateway's answer cache: the stores every model's policy
// picks from, and the flights that coalesce identical requests. It is
// live state, kept across config reloads.
type Cache struct {
	Flights Flights

	memory *Memory
	redis  *Redis // nil: no Redis configured
	clock  clock.Clock
	log    *slog.Logger

	// Store failures are counted, and logged once a minute at most.
	errors   atomic.Uint64
	loggedAt atomic.Int64

	// The semantic cache's indexes and embeddings failures, and the
	// follower of what other replicas store (semantic_redis.go).
	semantic      semanticState
	embedErrors   atomic.Uint64
	embedLoggedAt atomic.Int64
	origin        string
	followMu      sync.Mutex
	stop, stopped chan struct{} // the follower's; nil: none running
}

// New returns a cache on the stores of sc; password is the Redis
// password (read from sc.Redis.PasswordEnv by the caller).
func New(sc config.CacheStores, password string, clk clock.Clock, log *slog.Logger) *Cache {
	if clk == nil {
		clk = clock.Real{}
	}
	c := &Cache{memory: NewMemory(sc.Memory.MaxEntries, sc.Memory.MaxBytes, clk), clock: clk, log: log, origin: newOrigin()}
	if sc.Redis.Addr != "" {
		c.redis = NewRedis(RedisOptions{Addr: sc.Redis.Addr, Password: password, DB: sc.Redis.DB,
			Prefix: sc.Redis.Prefix, Timeout: sc.Redis.Timeout.D()})
	}
	return c
}

// Close stops the semantic follower and closes the Redis connections.
func (c *Cache) Close() {
	c.followMu.Lock()
	if c.stop != nil {
		close(c.stop)
		<-c.stopped
		c.stop, c.stopped = nil, nil
	}
	c.followMu.Unlock()
	if c.redis != nil {
		c.redis.Close()
	}
}

// Ping checks the Redis store; nil when there is none.
func (c *Cache) Ping(ctx context.Context) error {
	if c.redis == nil {
		return nil
	}
	return c.redis.Ping(ctx)
}

// Memory returns the in-process store, for its statistics.
func (c *Cache) Memory() *Memory { return c.memory }

// Errors counts the store failures so far.
func (c *Cache) Errors() uint64 { return c.errors.Load() }

// Get looks ref up in the stores of policy p: memory, then Redis (a Redis
// hit is copied into memory when both are used). A failing store is a
// miss, counted and logged.
func (c *Cache) Get(ctx context.Context, p *config.Cache, ref Ref) *Entry {
	e, _ := c.lookup(ctx, p, ref)
	return e
}

// lookup is Get, with the failure of a store (counted already) returned:
// a miss then does not say the entry is gone.
func (c *Cache) lookup(ctx context.Context, p *config.Cache, ref Ref) (*Entry, error) {
	if p.Store != config.StoreRedis {
		if e, _ := c.memory.Get(ctx, ref); e != nil {
			return e, nil
		}
	}
	if p.Store == config.StoreMemory || c.redis == nil {
		return nil, nil
	}
	e, err := c.redis.Get(ctx, ref)
	if err != nil {
		c.failed("get", err)
		return nil, err
	}
	if e != nil && p.Store == config.StoreBoth {
		c.memory.Set(ctx, ref, e)
	}
	return e, nil
}

// Put stores e under ref in the stores of policy p.
func (c *Cache) Put(ctx context.Context, p *config.Cache, ref Ref, e *Entry) {
	if p.Store != config.StoreRedis {
		c.memory.Set(ctx, ref, e)
	}
	if p.Store != config.StoreMemory && c.redis != nil {
		if err := c.redis.Set(ctx, ref, e); err != nil {
			c.failed("set", err)
		}
	}
}

// Purge drops the entries of model ("" all) in scope ("" all) from every
// store, and returns how many it dropped.
func (c *Cache) Purge(ctx context.Context, model, scope string) (int, error) {
	n, _ := c.memory.Purge(ctx, model, scope)
	c.semantic.purge(model, scope)
	if c.redis == nil {
		return n, nil
	}
	m, err := c.redis.Purge(ctx, model, scope)
	return n + m, err
}

// NewEntry is an entry for model and scope, stored now and expiring after
// p's TTL.
func (c *Cache) NewEntry(p *config.Cache, model, scope string, answer []byte, finish string) *Entry {
	now := c.clock.Now()
	e := &Entry{Model: model, Scope: scope, Answer: answer, FinishReason: finish, Stored: now}
	if ttl := p.TTL.D(); ttl > 0 {
		e.Expires = now.Add(ttl)
	}
	return e
}

// failed counts a store failure and logs it, once a minute at most: a
// Redis that is down must not flood the log, nor fail a request.
func (c *Cache) failed(op string, err error) {
	n := c.errors.Add(1)
	if errors.Is(err, ErrUnavailable) || c.log == nil {
		return
	}
	now := c.clock.Now().UnixNano()
	last := c.loggedAt.Load()
	if now-last < int64(time.Minute) || !c.loggedAt.CompareAndSwap(last, now) {
		return
	}
	c.log.Warn("cache store failing; requests go upstream", "store", "redis", "op", op, "errors", n, "err", err)
}
