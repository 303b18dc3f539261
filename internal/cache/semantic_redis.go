package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// How the replicas share semantic entries: each semantic Put appends the
// entry's names to one Redis Stream (PREFIX:semantic, capped at about
// streamMaxLen), and every replica reads what is new every followEvery,
// fetches those entries for their vectors and indexes them. A replica
// reads the stream from its start when it starts.
const (
	streamMaxLen = 100_000
	followEvery  = 500 * time.Millisecond
	followBatch  = 200
	// followTimeout bounds one read of the follower: a batch of entries,
	// answers included, takes longer than a request's lookup may.
	followTimeout = 2 * time.Second
	maxFollowWait = 15 * time.Second
)

// announcement names a semantic entry: its model, the embeddings model of
// its vector, its scope (hashed, as in the entry's Redis key), its
// semantic scope and its key.
type announcement struct {
	model, embedder, scope string
	scopeKey, key          Key
}

func (r *Redis) streamKey() string { return r.prefix + ":semantic" }

// announce appends a to the stream; origin names the replica, which skips
// its own announcements.
func (r *Redis) announce(ctx context.Context, origin string, a announcement) error {
	if !r.up() {
		return ErrUnavailable
	}
	return r.failed(r.client.XAdd(ctx, &redis.XAddArgs{Stream: r.streamKey(), MaxLen: streamMaxLen, Approx: true,
		Values: []any{"o", origin, "m", a.model, "e", a.embedder, "s", a.scope, "q", a.scopeKey.String(), "k", a.key.String()}}).Err())
}

// announced is an announcement read back with its entry.
type announced struct {
	announcement
	vector  []float32
	expires time.Time
}

// readAnnounced returns up to count announcements after stream id after,
// other than origin's, whose entries are still stored (with their
// vectors), and the id to read on from.
func (r *Redis) readAnnounced(ctx context.Context, client *redis.Client, origin, after string, count int64) ([]announced, string, int, error) {
	res, err := client.XRead(ctx, &redis.XReadArgs{Streams: []string{r.streamKey(), after}, Count: count, Block: -1}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, after, 0, nil
	}
	if err != nil || len(res) == 0 {
		return nil, after, 0, err
	}
	msgs := res[0].Messages
	if len(msgs) == 0 {
		return nil, after, 0, nil
	}
	var as []announced
	var gets []*redis.StringCmd
	pipe := client.Pipeline()
	for _, m := range msgs {
		a, ok := parseAnnouncement(m.Values)
		if !ok || m.Values["o"] == origin {
			continue
		}
		as = append(as, announced{announcement: a})
		gets = append(gets, pipe.Get(ctx, r.prefix+":"+a.model+":"+a.scope+":"+a.key.String()))
	}
	last := msgs[len(msgs)-1].ID
	if len(gets) == 0 {
		return nil, last, len(msgs), nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, after, 0, err
	}
	out := as[:0]
	for i, g := range gets {
		b, err := g.Bytes()
		if err != nil {
			continue // expired or purged since
		}
		var re redisEntry
		if json.Unmarshal(b, &re) != nil {
			continue
		}
		a := as[i]
		if a.vector = decodeVector(re.Vector); a.vector != nil {
			a.expires = re.Expires
			out = append(out, a)
		}
	}
	return out, last, len(msgs), nil
}

func parseAnnouncement(v map[string]any) (announcement, bool) {
	str := func(k string) string { s, _ := v[k].(string); return s }
	a := announcement{model: str("m"), embedder: str("e"), scope: str("s")}
	if a.model == "" || a.scope == "" || !parseKey(str("q"), &a.scopeKey) || !parseKey(str("k"), &a.key) {
		return a, false
	}
	return a, true
}

func parseKey(s string, k *Key) bool {
	if len(s) != 2*len(k) {
		return false
	}
	_, err := hex.Decode(k[:], []byte(s))
	return err == nil
}

// FollowSemantic starts indexing the semantic entries other replicas store
// in Redis (read from the stream's start first), until Close; once, and
// only when a Redis store is configured. A failing Redis is asked again
// after a growing wait, quietly: the requests count its failures.
func (c *Cache) FollowSemantic() {
	if c == nil || c.redis == nil {
		return
	}
	c.followMu.Lock()
	defer c.followMu.Unlock()
	if c.stop == nil {
		c.stop, c.stopped = make(chan struct{}), make(chan struct{})
		go c.follow(c.stop, c.stopped)
	}
}

func (c *Cache) follow(stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	client := redis.NewClient(c.redis.slowOptions(followTimeout))
	defer client.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-stop; cancel() }()
	last := "0"
	wait := time.Duration(0)
	for {
		if wait > 0 {
			select {
			case <-stop:
				return
			case <-c.clock.After(wait):
			}
		} else {
			select {
			case <-stop:
				return
			default:
			}
		}
		as, next, n, err := c.redis.readAnnounced(ctx, client, c.origin, last, followBatch)
		switch {
		case err != nil:
			wait = min(max(2*wait, followEvery), maxFollowWait)
			continue
		case n == followBatch:
			wait = 0 // more to read
		default:
			wait = followEvery
		}
		last = next
		now := c.clock.Now()
		for _, a := range as {
			if si := c.semantic.index(a.model, a.embedder, len(a.vector), true); si != nil {
				si.add(a.scopeKey, a.key, a.vector, a.expires, now)
			}
		}
	}
}

// slowOptions are the store's client options with a longer timeout, for
// the follower's batches, on a connection of its own.
func (r *Redis) slowOptions(timeout time.Duration) *redis.Options {
	o := r.opts
	return &redis.Options{Addr: o.Addr, Password: o.Password, DB: o.DB, DialTimeout: o.Timeout,
		ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout, PoolSize: 1, MaxRetries: -1}
}

// newOrigin names this replica in the stream.
func newOrigin() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
