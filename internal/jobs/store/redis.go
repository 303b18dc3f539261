package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/omnigate/omnigate/internal/jobs"
)

// RedisOptions say which Redis server and keys a Redis store uses.
type RedisOptions struct {
	Addr     string // host:port
	Password string
	DB       int
	// Prefix starts every key the store writes (PREFIX:rec:…, PREFIX:queue,
	// …); gateways that share jobs name the same one.
	Prefix string
	// FilesDir, when set, keeps file contents in that directory (one every
	// gateway mounts) instead of in Redis.
	FilesDir string
}

// OpenRedis opens the Redis store o names, with leases of lease, and
// checks the server answers. A standalone server (or a primary with
// replicas) is meant: the scripts touch keys of several hash slots, so
// Redis Cluster is not supported.
func OpenRedis(ctx context.Context, o RedisOptions, lease time.Duration) (*jobs.Backend, error) {
	if lease < time.Millisecond {
		return nil, fmt.Errorf("jobs: redis store: lease must be at least 1ms, got %s", lease)
	}
	if o.Prefix == "" {
		return nil, errors.New("jobs: redis store: a key prefix is needed")
	}
	c := redis.NewClient(&redis.Options{
		Addr: o.Addr, Password: o.Password, DB: o.DB,
		// Every waiting Take holds a connection for its blocking read, so
		// the pool must outnumber the workers (connections open lazily).
		PoolSize: 128,
	})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("jobs: redis store at %s: %w", o.Addr, err)
	}
	q := &redisQueue{
		c:        c,
		stream:   o.Prefix + ":queue",
		group:    "workers",
		consumer: consumerName(),
		lease:    lease,
		block:    min(max(lease/10, 50*time.Millisecond), 500*time.Millisecond),
	}
	if err := q.createGroup(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("jobs: redis store at %s: %w", o.Addr, err)
	}
	b := &jobs.Backend{
		Records: &redisRecords{c: c, prefix: o.Prefix},
		Queue:   q,
		Files:   &redisFiles{c: c, prefix: o.Prefix},
		Close: func() error {
			// Bounded: a gateway stopping with its server gone still stops.
			lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			q.leave(lctx)
			cancel()
			return c.Close()
		},
	}
	if o.FilesDir != "" {
		f, err := OpenDir(o.FilesDir)
		if err != nil {
			c.Close()
			return nil, err
		}
		b.Files = f
	}
	return b, nil
}

// consumerName names this process in the queue's consumer group: host,
// process id and a random part, so that two gateways (or a gateway and
// its restart) never share a name and so never share leases.
func consumerName() string {
	host, _ := os.Hostname()
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// redisRecords keeps records as hashes PREFIX:rec:KEY {ver, val}, with a
// sorted set per kind (PREFIX:idx:KIND/, every score 0, so ordered by key)
// for List, kept by the same scripts that create and delete records.
// Versions come from one counter, PREFIX:ver, so a version is never given
// twice. Counters are strings PREFIX:ctr:KEY.
type redisRecords struct {
	c      *redis.Client
	prefix string
}

func (r *redisRecords) rec(key string) string { return r.prefix + ":rec:" + key }

// idx is the index of key's kind: PREFIX:idx:KIND/ (the slash kept, so
// that a key without one is in no kind's index).
func (r *redisRecords) idx(key string) string {
	kind, _, ok := strings.Cut(key, "/")
	if ok {
		kind += "/"
	}
	return r.prefix + ":idx:" + kind
}

func (r *redisRecords) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	vals, err := r.c.HMGet(ctx, r.rec(key), "ver", "val").Result()
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	ver, _ := vals[0].(string)
	val, _ := vals[1].(string)
	if ver == "" {
		return nil, 0, fmt.Errorf("get %s: %w", key, jobs.ErrNotFound)
	}
	n, err := strconv.ParseUint(ver, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: version %q: %w", key, ver, err)
	}
	return []byte(val), n, nil
}

// putScript stores ARGV[2] under KEYS[1] if its version is ARGV[1] ("0":
// none) and returns the new version, or -1. KEYS[2] is the kind's index,
// KEYS[3] the version counter, ARGV[3] the record's key.
var putScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'ver')
if (cur or '0') ~= ARGV[1] then return -1 end
local v = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'ver', v, 'val', ARGV[2])
if not cur then redis.call('ZADD', KEYS[2], 0, ARGV[3]) end
return v
`)

func (r *redisRecords) Put(ctx context.Context, key string, val []byte, ver uint64) (uint64, error) {
	keys := []string{r.rec(key), r.idx(key), r.prefix + ":ver"}
	n, err := putScript.Run(ctx, r.c, keys, strconv.FormatUint(ver, 10), val, key).Int64()
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("put %s: %w", key, jobs.ErrConflict)
	}
	return uint64(n), nil
}

// createScript stores each record (KEYS[3i-2] its hash, KEYS[3i-1] its
// kind's index; ARGV[2i-1] its key, ARGV[2i] its value) that does not
// exist yet. KEYS[#KEYS] is the version counter.
var createScript = redis.NewScript(`
local seq = KEYS[#KEYS]
for i = 1, (#KEYS - 1) / 2 do
  local h = KEYS[2*i-1]
  if redis.call('EXISTS', h) == 0 then
    redis.call('HSET', h, 'ver', redis.call('INCR', seq), 'val', ARGV[2*i])
    redis.call('ZADD', KEYS[2*i], 0, ARGV[2*i-1])
  end
end
return 0
`)

// createChunk bounds the records one script creates: Redis runs nothing
// else meanwhile, so a batch of 50,000 lines goes in many short steps.
// Each step skips what exists, so a Create cut short is finished by
// calling it again.
const createChunk = 256

func (r *redisRecords) Create(ctx context.Context, recs []jobs.Record) error {
	for len(recs) > 0 {
		n := min(len(recs), createChunk)
		keys := make([]string, 0, 2*n+1)
		args := make([]any, 0, 2*n)
		for _, rec := range recs[:n] {
			keys = append(keys, r.rec(rec.Key), r.idx(rec.Key))
			args = append(args, rec.Key, rec.Val)
		}
		keys = append(keys, r.prefix+":ver")
		if err := createScript.Run(ctx, r.c, keys, args...).Err(); err != nil {
			return fmt.Errorf("create %s…: %w", recs[0].Key, err)
		}
		recs = recs[n:]
	}
	return nil
}

var deleteScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
`)

func (r *redisRecords) Delete(ctx context.Context, key string) error {
	if err := deleteScript.Run(ctx, r.c, []string{r.rec(key), r.idx(key)}, key).Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

func (r *redisRecords) Add(ctx context.Context, key string, delta int64) (int64, error) {
	n, err := r.c.IncrBy(ctx, r.prefix+":ctr:"+key, delta).Result()
	if err != nil {
		return 0, fmt.Errorf("add %s: %w", key, err)
	}
	return n, nil
}

func (r *redisRecords) List(ctx context.Context, kind, below string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	hi := "+"
	if below != "" {
		hi = "(" + below
	}
	keys, err := r.c.ZRevRangeByLex(ctx, r.prefix+":idx:"+kind+"/", &redis.ZRangeBy{Max: hi, Min: "-", Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return keys, nil
}

var _ jobs.Records = (*redisRecords)(nil)
