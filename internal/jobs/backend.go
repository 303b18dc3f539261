package jobs

import (
	"context"
	"errors"
	"io"
	"time"
)

// The three things a job backend provides. Every backend (the embedded
// single-file store, Redis, NATS JetStream) implements all three, and the
// job logic (jobs.go, batch.go, worker.go) is written once on top of them.

// Records keeps the job, batch and file records: small JSON documents
// under keys "kind/id" (job/…, batch/…, file/…), each with a version for
// compare-and-swap, so that two gateways never both move one job on. A
// version is never 0 and never given twice, not even to a key deleted and
// created again.
type Records interface {
	// Get returns the record under key and its version; ErrNotFound
	// when there is none.
	Get(ctx context.Context, key string) (val []byte, ver uint64, err error)
	// Put stores val under key if the record's version is still ver (0:
	// there is no record yet) and returns the new version; ErrConflict
	// when the record moved on (or exists, for ver 0).
	Put(ctx context.Context, key string, val []byte, ver uint64) (uint64, error)
	// Create stores each record that does not exist yet, as Put with
	// version 0 would, and skips the keys that exist: a batch's items,
	// created again after a crash, are not duplicated.
	Create(ctx context.Context, recs []Record) error
	// Delete removes the record under key, whatever its version; no
	// error when there is none.
	Delete(ctx context.Context, key string) error
	// Add adds delta to the counter under key (counters are apart from
	// records) and returns its new value; a new counter starts at 0.
	Add(ctx context.Context, key string, delta int64) (int64, error)
	// List returns up to limit record keys of kind ("batch" lists
	// "batch/…"), in descending key order, strictly below the key below
	// ("" starts from the greatest). Ids sort by creation time, so this
	// is newest first. below is a whole key, as List returns them (the
	// last key of one page starts the next); a limit below 1 lists none.
	List(ctx context.Context, kind, below string, limit int) ([]string, error)
}

// Record is a key and its value, for Records.Create.
type Record struct {
	Key string
	Val []byte
}

// Queue hands tasks (short strings: a job's key) to workers, each under
// a lease: a task whose lease lapses before it is acked (its worker died)
// is delivered again, to this or another gateway, so every task runs at
// least once. The lease length is the backend's, set when it is opened.
type Queue interface {
	// Push enqueues tasks, in order.
	Push(ctx context.Context, tasks ...string) error
	// Take waits up to wait for a task and leases it to the caller;
	// (nil, nil) when none came in time (wait 0: only a task there now),
	// ctx's error when ctx ends first. Tasks whose lease lapsed are taken
	// before new ones.
	Take(ctx context.Context, wait time.Duration) (Delivery, error)
}

// Delivery is one task taken from a Queue.
type Delivery interface {
	// Task is the task as pushed.
	Task() string
	// Attempt is 1 the first time the task is delivered, and one more
	// each time it is delivered again after a lapsed lease.
	Attempt() int
	// Extend renews the lease for another lease period; a worker extends
	// well before the lease ends (every third of it). ErrLeaseLost when
	// the lease lapsed and the task went to another worker meanwhile, or
	// was acked. A backend that cannot tell whether a lapsed task went
	// elsewhere (NATS) reports ErrLeaseLost once the lease lapsed: the
	// task is then delivered again.
	Extend(ctx context.Context) error
	// Ack removes the task for good, even when its lease lapsed and
	// another worker holds it now (whose Extend then reports
	// ErrLeaseLost).
	Ack(ctx context.Context) error
}

// Files keeps file contents: uploaded batch input, batch output and
// error files, large job results. Names are opaque ([A-Za-z0-9_.-], not
// starting with a dot).
type Files interface {
	// Put stores r's bytes under name, replacing any, and returns how
	// many; a reader's error leaves no new file, and any old one as it
	// was.
	Put(ctx context.Context, name string, r io.Reader) (int64, error)
	// Open reads the file under name; ErrNotFound when there is none.
	// It reads the contents as they were when opened, or fails if they
	// are replaced or deleted meanwhile: never a mix of old and new.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Delete removes the file under name; no error when there is none.
	Delete(ctx context.Context, name string) error
}

// Backend is a job backend: its records, its queue and its files, and
// what to close when the gateway stops.
type Backend struct {
	Records Records
	Queue   Queue
	Files   Files
	// Close releases the backend's connections and files; nil: nothing.
	Close func() error
}

// Errors the backends return.
var (
	ErrNotFound  = errors.New("jobs: not found")
	ErrConflict  = errors.New("jobs: the record changed meanwhile")
	ErrLeaseLost = errors.New("jobs: the task's lease lapsed")
)
