package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnigate/omnigate/internal/jobs"
)

// natsQueue is a work-queue stream (named PREFIX, subject PREFIX.tasks)
// with one durable pull consumer ("workers") that every gateway fetches
// from: explicit acks, AckWait the lease, no bound on redeliveries. The
// server keeps the leases: a task not acked or marked in progress within
// AckWait is delivered again (NumDelivered, the attempt, goes up), and
// redeliveries go before new tasks. The lease is the consumer's: the
// gateway that opened the store last set it for all, so gateways sharing
// a store should agree on jobs.lease.
type natsQueue struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	cons    jetstream.Consumer
	subject string
	lease   time.Duration
}

func openNATSQueue(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, prefix string, lease time.Duration) (*natsQueue, error) {
	subject := prefix + ".tasks"
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      prefix,
		Subjects:  []string{subject},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", prefix, err)
	}
	c, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       "workers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       lease,
		MaxDeliver:    -1,
		MaxAckPending: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: consumer: %w", prefix, err)
	}
	return &natsQueue{nc: nc, js: js, stream: s, cons: c, subject: subject, lease: lease}, nil
}

// pushWindow bounds the publishes Push has in flight.
const pushWindow = 1024

// Push publishes asynchronously, a window at a time, and waits for every
// ack: one connection keeps them in order. A failure part way leaves the
// tasks before it queued; pushing them again runs them twice, which the
// queue allows (at least once).
func (q *natsQueue) Push(ctx context.Context, tasks ...string) error {
	for len(tasks) > 0 {
		n := min(len(tasks), pushWindow)
		acks := make([]jetstream.PubAckFuture, 0, n)
		for _, t := range tasks[:n] {
			a, err := q.js.PublishAsync(q.subject, []byte(t))
			if err != nil {
				return fmt.Errorf("push: %w", err)
			}
			acks = append(acks, a)
		}
		for _, a := range acks {
			select {
			case <-a.Ok():
			case err := <-a.Err():
				return fmt.Errorf("push: %w", err)
			case <-ctx.Done():
				return fmt.Errorf("push: %w", ctx.Err())
			}
		}
		tasks = tasks[n:]
	}
	return nil
}

// Take fetches one task. A Take whose context ends while the server is
// sending a task leaves that task delivered to no one: it comes again
// after the lease, like one whose worker died.
func (q *natsQueue) Take(ctx context.Context, wait time.Duration) (jobs.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var batch jetstream.MessageBatch
	var err error
	if wait <= 0 {
		batch, err = q.cons.FetchNoWait(1)
	} else {
		fctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		batch, err = q.cons.Fetch(1, jetstream.FetchContext(fctx))
	}
	if err != nil {
		return nil, fmt.Errorf("take: %w", err)
	}
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("take: %w", err)
		}
		// The server started the lease when it sent the task, a moment
		// before now: the local lease ends a margin early to make up.
		until := time.Now().Add(q.lease - leaseMargin(q.lease))
		return &natsDelivery{q: q, msg: m, seq: meta.Sequence.Stream, attempt: int(meta.NumDelivered), until: until}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("take: %w", err)
	}
	return nil, nil
}

// leaseMargin is how much sooner than the server a delivery takes its
// lease for lost: the time a task or an Extend spends on the wire.
func leaseMargin(lease time.Duration) time.Duration { return min(lease/10, time.Second) }

// natsDelivery is one delivery of a JetStream message.
//
// What Extend can tell: the server takes "in progress" for the message's
// stream sequence whoever holds the current delivery, and says nothing
// when the lease had lapsed (the task then goes out again all the same).
// So Extend keeps a local copy of the lease, renewed from the moment each
// confirmed Extend was sent, and reports ErrLeaseLost once that lapsed,
// whether or not another worker took the task yet; and it reports
// ErrLeaseLost when the task is gone from the stream (another worker
// acked it). What it cannot tell: an Extend sent in time, within the
// margin, that reaches the server after the lease ended.
type natsDelivery struct {
	q       *natsQueue
	msg     jetstream.Msg
	seq     uint64 // the stream sequence
	attempt int

	mu    sync.Mutex
	until time.Time // the lease's end, by the local clock, less a margin
}

func (d *natsDelivery) Task() string { return string(d.msg.Data()) }
func (d *natsDelivery) Attempt() int { return d.attempt }

func (d *natsDelivery) Extend(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	sent := time.Now()
	if !sent.Before(d.until) {
		return fmt.Errorf("extend %s: %w", d.Task(), jobs.ErrLeaseLost)
	}
	// A request, not InProgress's bare publish: the reply confirms that
	// the server has the renewal.
	if _, err := d.q.nc.RequestWithContext(ctx, d.msg.Reply(), []byte("+WPI")); err != nil {
		return fmt.Errorf("extend %s: %w", d.Task(), err)
	}
	if _, err := d.q.stream.GetMsg(ctx, d.seq); errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("extend %s: %w", d.Task(), jobs.ErrLeaseLost)
	} else if err != nil {
		return fmt.Errorf("extend %s: %w", d.Task(), err)
	}
	d.until = sent.Add(d.q.lease - leaseMargin(d.q.lease))
	return nil
}

func (d *natsDelivery) Ack(ctx context.Context) error {
	if err := d.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("ack %s: %w", d.Task(), err)
	}
	return nil
}

var (
	_ jobs.Queue    = (*natsQueue)(nil)
	_ jobs.Delivery = (*natsDelivery)(nil)
)
