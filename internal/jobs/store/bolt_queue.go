package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/omnigate/omnigate/internal/jobs"
)

// boltPoll is how often a waiting Take looks for lapsed leases; a Push in
// this process wakes it at once.
const boltPoll = 100 * time.Millisecond

// boltQueue is the embedded store's queue. A pushed task waits in the
// ready bucket under its push sequence; Take moves it to the leased
// bucket, under the same sequence, with its lease's end and its attempt:
// value = 8-byte until (Unix nanoseconds) + 4-byte attempt + task. A
// lapsed lease is taken again (attempt + 1) before any ready task. The
// attempt also names the delivery: Extend by an older one sees another
// attempt there.
type boltQueue struct {
	db    *bolt.DB
	lease time.Duration
	now   func() time.Time
	poll  time.Duration

	mu     sync.Mutex
	pushed chan struct{} // closed by Push to wake the waiting Takes
}

func (q *boltQueue) Push(ctx context.Context, tasks ...string) error {
	err := q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReady)
		for _, t := range tasks {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), []byte(t)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	q.mu.Lock()
	close(q.pushed)
	q.pushed = make(chan struct{})
	q.mu.Unlock()
	return nil
}

func (q *boltQueue) Take(ctx context.Context, wait time.Duration) (jobs.Delivery, error) {
	deadline := time.Now().Add(wait)
	var timer *time.Timer
	for {
		q.mu.Lock()
		pushed := q.pushed // before looking, so a Push meanwhile wakes us
		q.mu.Unlock()
		d, err := q.takeOnce()
		if err != nil {
			return nil, err
		}
		if d != nil {
			return d, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		if timer == nil {
			timer = time.NewTimer(min(left, q.poll))
			defer timer.Stop()
		} else {
			timer.Reset(min(left, q.poll))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-pushed:
		case <-timer.C:
		}
	}
}

// takeOnce leases the first lapsed task or else the first ready one; nil
// when there is neither. It looks in a read transaction first, so that
// idle polling never writes (and fsyncs) the file.
func (q *boltQueue) takeOnce() (*boltDelivery, error) {
	now := q.now().UnixNano()
	var found bool
	err := q.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketReady).Cursor().First()
		found = k != nil || lapsed(tx, now) != nil
		return nil
	})
	if err != nil || !found {
		return nil, err
	}
	var d *boltDelivery
	err = q.db.Update(func(tx *bolt.Tx) error {
		leased := tx.Bucket(bucketLeased)
		until := q.now().Add(q.lease).UnixNano()
		if k := lapsed(tx, now); k != nil {
			v := leased.Get(k)
			d = &boltDelivery{q: q, seq: bytes.Clone(k), attempt: int(binary.BigEndian.Uint32(v[8:12])) + 1, task: string(v[12:])}
		} else {
			k, v := tx.Bucket(bucketReady).Cursor().First()
			if k == nil {
				return nil
			}
			d = &boltDelivery{q: q, seq: bytes.Clone(k), attempt: 1, task: string(v)}
			if err := tx.Bucket(bucketReady).Delete(k); err != nil {
				return err
			}
		}
		return leased.Put(d.seq, leaseValue(until, d.attempt, d.task))
	})
	if err != nil {
		return nil, fmt.Errorf("take: %w", err)
	}
	return d, nil
}

// lapsed returns the key of the first leased task whose lease ended by
// now, or nil. Leased tasks are the ones in hand, few: a scan is cheap.
func lapsed(tx *bolt.Tx, now int64) []byte {
	c := tx.Bucket(bucketLeased).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if int64(binary.BigEndian.Uint64(v)) <= now {
			return k
		}
	}
	return nil
}

func leaseValue(until int64, attempt int, task string) []byte {
	v := make([]byte, 12, 12+len(task))
	binary.BigEndian.PutUint64(v, uint64(until))
	binary.BigEndian.PutUint32(v[8:], uint32(attempt))
	return append(v, task...)
}

// boltDelivery is one lease of a task in the embedded store.
type boltDelivery struct {
	q       *boltQueue
	seq     []byte
	attempt int
	task    string
}

func (d *boltDelivery) Task() string { return d.task }
func (d *boltDelivery) Attempt() int { return d.attempt }

func (d *boltDelivery) Extend(ctx context.Context) error {
	err := d.q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLeased)
		v := b.Get(d.seq)
		if v == nil || int(binary.BigEndian.Uint32(v[8:12])) != d.attempt {
			return jobs.ErrLeaseLost // acked, or taken again
		}
		return b.Put(d.seq, leaseValue(d.q.now().Add(d.q.lease).UnixNano(), d.attempt, d.task))
	})
	if err != nil {
		return fmt.Errorf("extend %s: %w", d.task, err)
	}
	return nil
}

func (d *boltDelivery) Ack(ctx context.Context) error {
	err := d.q.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLeased).Delete(d.seq)
	})
	if err != nil {
		return fmt.Errorf("ack %s: %w", d.task, err)
	}
	return nil
}

var (
	_ jobs.Queue    = (*boltQueue)(nil)
	_ jobs.Delivery = (*boltDelivery)(nil)
)
