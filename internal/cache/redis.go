package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/omnigate/omnigate/internal/redisclient"
)

// Redis is a store in Redis, shared by every gateway replica that points
// at the same server and prefix. An entry is one string key,
// PREFIX:MODEL:SCOPE:KEY (scope hashed), whose value is the entry as JSON,
// with Redis's own expiry. A failing server costs a request at most its
// timeout once per second: after a failure the store answers misses at
// once (ErrUnavailable) until the second is over.
type Redis struct {
	client *redis.Client
	opts   RedisOptions
	prefix string
	// downUntil is when to try the server again after a failure (unix
	// nanoseconds; 0: up).
	downUntil atomic.Int64
	now       func() time.Time
}

// ErrUnavailable is the error of a Redis store that failed within the
// last second and is not asked again yet.
var ErrUnavailable = errors.New("cache: redis unavailable")

// RedisOptions configure a Redis store.
type RedisOptions struct {
	Addr     string // host:port
	Password string
	DB       int
	Prefix   string        // key prefix; default "omnigate:cache"
	Timeout  time.Duration // per command; default 100ms
}

// NewRedis returns a store on the server at o.Addr. It does not connect
// until first used.
func NewRedis(o RedisOptions) *Redis {
	if o.Prefix == "" {
		o.Prefix = "omnigate:cache"
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	c := redisclient.New(o.Addr, o.Password, o.DB, o.Timeout) // a failure is a miss: no retry on the request path
	return &Redis{client: c, opts: o, prefix: o.Prefix, now: time.Now}
}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// Ping checks the server.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

func (r *Redis) key(ref Ref) string {
	return r.prefix + ":" + ref.Model + ":" + scopeHash(ref.Scope) + ":" + ref.Key.String()
}

// scopeHash keeps a scope (an API key, perhaps) out of Redis's key space
// and its logs.
func scopeHash(scope string) string {
	if scope == "" {
		return "-"
	}
	s := sha256.Sum256([]byte(scope))
	return hex.EncodeToString(s[:8])
}

// up reports whether the server may be asked now.
func (r *Redis) up() bool {
	d := r.downUntil.Load()
	return d == 0 || r.now().UnixNano() >= d
}

// failed notes a failure of the server (not a miss).
func (r *Redis) failed(err error) error {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return err
	}
	r.downUntil.Store(r.now().Add(time.Second).UnixNano())
	return err
}

// redisEntry is an entry as stored.
type redisEntry struct {
	Model        string    `json:"model"`
	Scope        string    `json:"scope"`
	Answer       []byte    `json:"answer"` // base64: the bytes as the client got them (a RawMessage would be compacted)
	FinishReason string    `json:"finish_reason"`
	Stored       time.Time `json:"stored"`
	Expires      time.Time `json:"expires"`
	Vector       []byte    `json:"vector,omitempty"` // float32 little endian
	Prompt       string    `json:"prompt,omitempty"`
}

// Get returns the entry of ref; nil, nil on a miss.
func (r *Redis) Get(ctx context.Context, ref Ref) (*Entry, error) {
	if !r.up() {
		return nil, ErrUnavailable
	}
	b, err := r.client.Get(ctx, r.key(ref)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, r.failed(err)
	}
	var re redisEntry
	if err := json.Unmarshal(b, &re); err != nil {
		return nil, nil // another program's value under our prefix: a miss
	}
	return re.entry(), nil
}

func (re *redisEntry) entry() *Entry {
	return &Entry{Model: re.Model, Scope: re.Scope, Answer: re.Answer, FinishReason: re.FinishReason,
		Stored: re.Stored, Expires: re.Expires, Vector: decodeVector(re.Vector), Prompt: re.Prompt}
}

// Set stores e under ref, expiring with it.
func (r *Redis) Set(ctx context.Context, ref Ref, e *Entry) error {
	if !r.up() {
		return ErrUnavailable
	}
	ttl := time.Duration(0)
	if !e.Expires.IsZero() {
		if ttl = e.Expires.Sub(r.now()); ttl <= 0 {
			return nil
		}
	}
	b, err := json.Marshal(redisEntry{Model: e.Model, Scope: e.Scope, Answer: e.Answer, FinishReason: e.FinishReason,
		Stored: e.Stored, Expires: e.Expires, Vector: encodeVector(e.Vector), Prompt: e.Prompt})
	if err != nil {
		return err
	}
	return r.failed(r.client.Set(ctx, r.key(ref), b, ttl).Err())
}

// Purge drops the entries of model ("" all) in scope ("" all) with SCAN
// and UNLINK, a batch at a time.
func (r *Redis) Purge(ctx context.Context, model, scope string) (int, error) {
	m, s := model, scopeHash(scope)
	if model == "" {
		m = "*"
	}
	if scope == "" {
		s = "*"
	}
	pattern := r.prefix + ":" + m + ":" + s + ":*"
	n := 0
	var cursor uint64
	for {
		keys, next, err := r.client.Scan(ctx, cursor, pattern, 500).Result()
		if err != nil {
			return n, r.failed(err)
		}
		if len(keys) > 0 {
			if err := r.client.Unlink(ctx, keys...).Err(); err != nil {
				return n, r.failed(err)
			}
			n += len(keys)
		}
		if cursor = next; cursor == 0 {
			if model == "" && scope == "" { // the semantic stream names only what was purged
				r.client.Unlink(ctx, r.streamKey())
			}
			return n, nil
		}
	}
}

// Each calls fn for every entry of model under the prefix, for a semantic
// index to load what other replicas stored.
func (r *Redis) Each(ctx context.Context, model string, fn func(Key, *Entry)) error {
	pattern := r.prefix + ":" + model + ":*"
	var cursor uint64
	for {
		keys, next, err := r.client.Scan(ctx, cursor, pattern, 500).Result()
		if err != nil {
			return r.failed(err)
		}
		for _, key := range keys {
			var k Key
			if len(key) < 2*len(k) {
				continue
			}
			if _, err := hex.Decode(k[:], []byte(key[len(key)-2*len(k):])); err != nil {
				continue
			}
			b, err := r.client.Get(ctx, key).Bytes()
			if err != nil {
				continue // expired meanwhile
			}
			var re redisEntry
			if json.Unmarshal(b, &re) != nil {
				continue
			}
			fn(k, re.entry())
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

func encodeVector(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decodeVector(b []byte) []float32 {
	if len(b) == 0 || len(b)%4 != 0 {
		return nil
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

var _ Store = (*Redis)(nil)
