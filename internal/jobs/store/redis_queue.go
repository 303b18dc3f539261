package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/omnigate/omnigate/internal/jobs"
)

// redisQueue is a Redis stream (PREFIX:queue) read through one consumer
// group. Every process reads as a consumer of its own name, so a lease is
// a pending entry owned by that consumer, timed by the entry's idle time:
// Take claims an entry idle longer than the lease from whoever holds it
// (its delivery count, the attempt, goes up) before it reads new ones,
// and Extend resets the idle time after checking the entry is still this
// delivery's.
type redisQueue struct {
	c        *redis.Client
	stream   string
	group    string
	consumer string
	lease    time.Duration
	// block bounds one blocking read: a waiting Take looks for lapsed
	// leases and at its context between reads (a blocked Redis command
	// cannot be cancelled).
	block time.Duration
}

func (q *redisQueue) createGroup(ctx context.Context) error {
	err := q.c.XGroupCreateMkStream(ctx, q.stream, q.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("creating the queue's consumer group: %w", err)
	}
	return nil
}

func (q *redisQueue) Push(ctx context.Context, tasks ...string) error {
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, t := range tasks {
			p.XAdd(ctx, &redis.XAddArgs{Stream: q.stream, Values: []string{"task", t}})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	return nil
}

func (q *redisQueue) Take(ctx context.Context, wait time.Duration) (jobs.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		d, err := q.claimLapsed(ctx)
		if err != nil {
			return nil, err
		}
		if d != nil {
			return d, nil
		}
		left := time.Until(deadline)
		block := time.Duration(-1) // no BLOCK: only what is there
		if left >= time.Millisecond {
			block = min(left, q.block)
		}
		d, err = q.readNew(ctx, block)
		if err != nil {
			return nil, err
		}
		if d != nil {
			return d, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if time.Until(deadline) <= 0 {
			return nil, nil
		}
	}
}

// claimScript claims for consumer ARGV[2] the oldest entry of stream
// KEYS[1] in group ARGV[1] that has been idle ARGV[3] ms or more, and
// returns {id, fields, delivery count}, or nil. An entry deleted while
// pending is dropped from the group (Redis 7 does it in XCLAIM; 6.2 gives
// a nil entry, acked here) and the next is tried.
var claimScript = redis.NewScript(`
for _ = 1, 16 do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', 1)
  if #p == 0 then return false end
  local id = p[1][1]
  local e = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], id)
  if #e > 0 and e[1] then
    local c = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    return {id, e[1][2], c[1][4]}
  end
  redis.call('XACK', KEYS[1], ARGV[1], id)
end
return false
`)

func (q *redisQueue) claimLapsed(ctx context.Context) (*redisDelivery, error) {
	res, err := claimScript.Run(ctx, q.c, []string{q.stream}, q.group, q.consumer, q.lease.Milliseconds()).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("take: %w", q.noGroup(ctx, err))
	}
	id, _ := res[0].(string)
	fields, _ := res[1].([]any)
	count, _ := res[2].(int64)
	return &redisDelivery{q: q, id: id, task: field(fields, "task"), attempt: int(count)}, nil
}

func (q *redisQueue) readNew(ctx context.Context, block time.Duration) (*redisDelivery, error) {
	streams, err := q.c.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: q.group, Consumer: q.consumer, Streams: []string{q.stream, ">"}, Count: 1, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("take: %w", q.noGroup(ctx, err))
	}
	for _, s := range streams {
		for _, m := range s.Messages {
			task, _ := m.Values["task"].(string)
			return &redisDelivery{q: q, id: m.ID, task: task, attempt: 1}, nil
		}
	}
	return nil, nil
}

// noGroup recreates the consumer group when err says it is gone (the
// server was flushed or restarted without persistence), so the next Take
// works again; it returns err either way.
func (q *redisQueue) noGroup(ctx context.Context, err error) error {
	if strings.HasPrefix(err.Error(), "NOGROUP") {
		q.createGroup(ctx)
	}
	return err
}

// field returns the value after name in a flat field list.
func field(fields []any, name string) string {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == name {
			s, _ := fields[i+1].(string)
			return s
		}
	}
	return ""
}

// leaveScript removes consumer ARGV[2] from group ARGV[1] if it holds
// nothing: removing a consumer drops its pending entries for good, so one
// with leases in hand stays for another to claim them.
var leaveScript = redis.NewScript(`
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return 0
`)

// leave removes this process's consumer from the group when it closes,
// so that restarts do not pile up empty consumers.
func (q *redisQueue) leave(ctx context.Context) {
	leaveScript.Run(ctx, q.c, []string{q.stream}, q.group, q.consumer)
}

// redisDelivery is one delivery of a stream entry; attempt is its
// delivery count, which tells this delivery from a later one by the same
// consumer.
type redisDelivery struct {
	q       *redisQueue
	id      string
	task    string
	attempt int
}

func (d *redisDelivery) Task() string { return d.task }
func (d *redisDelivery) Attempt() int { return d.attempt }

// extendScript resets the idle time of entry ARGV[3] if consumer ARGV[2]
// still holds it at delivery count ARGV[4] (XCLAIM JUSTID leaves the count
// alone); 0 when the entry was acked or claimed by another delivery.
var extendScript = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] or tostring(p[1][4]) ~= ARGV[4] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
`)

func (d *redisDelivery) Extend(ctx context.Context) error {
	q := d.q
	ok, err := extendScript.Run(ctx, q.c, []string{q.stream}, q.group, q.consumer, d.id, d.attempt).Int()
	if err != nil {
		return fmt.Errorf("extend %s: %w", d.task, err)
	}
	if ok == 0 {
		return fmt.Errorf("extend %s: %w", d.task, jobs.ErrLeaseLost)
	}
	return nil
}

var ackScript = redis.NewScript(`
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 0
`)

func (d *redisDelivery) Ack(ctx context.Context) error {
	if err := ackScript.Run(ctx, d.q.c, []string{d.q.stream}, d.q.group, d.id).Err(); err != nil {
		return fmt.Errorf("ack %s: %w", d.task, err)
	}
	return nil
}

var (
	_ jobs.Queue    = (*redisQueue)(nil)
	_ jobs.Delivery = (*redisDelivery)(nil)
)
