package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnigate/omnigate/internal/jobs"
)

// NATSOptions say which NATS server (JetStream on) and names a NATS store
// uses.
type NATSOptions struct {
	URL string // nats://host:port
	// Prefix names the queue's stream and consumer, the key-value bucket
	// of records and counters, and the object store of files; gateways
	// that share jobs name the same one.
	Prefix string
	// Credentials is the path of a credentials file; "" for none.
	Credentials string
	// FilesDir, when set, keeps file contents in that directory (one every
	// gateway mounts) instead of in an object store.
	FilesDir string
}

// natsName is what a prefix may be: it names streams, buckets and a
// subject token.
var natsName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// OpenNATS opens the NATS store o names, with leases of lease, creating
// (or updating to lease) its stream, consumer, bucket and object store.
func OpenNATS(ctx context.Context, o NATSOptions, lease time.Duration) (*jobs.Backend, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("jobs: nats store: lease must be positive, got %s", lease)
	}
	if !natsName.MatchString(o.Prefix) {
		return nil, fmt.Errorf("jobs: nats store: prefix %q is not [A-Za-z0-9_-]+", o.Prefix)
	}
	opts := []nats.Option{nats.Name("omnigate jobs"), nats.MaxReconnects(-1)}
	if o.Credentials != "" {
		opts = append(opts, nats.UserCredentials(o.Credentials))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("jobs: nats store at %s: %w", o.URL, err)
	}
	b, err := openNATS(ctx, nc, o, lease)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jobs: nats store at %s: %w", o.URL, err)
	}
	return b, nil
}

func openNATS(ctx context.Context, nc *nats.Conn, o NATSOptions, lease time.Duration) (*jobs.Backend, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	q, err := openNATSQueue(ctx, nc, js, o.Prefix, lease)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: o.Prefix, History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", o.Prefix, err)
	}
	kvStream, err := js.Stream(ctx, "KV_"+o.Prefix)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", o.Prefix, err)
	}
	b := &jobs.Backend{
		Records: &natsRecords{kv: kv, stream: kvStream, subject: "$KV." + o.Prefix + "."},
		Queue:   q,
		Close:   func() error { nc.Close(); return nil },
	}
	if o.FilesDir != "" {
		if b.Files, err = OpenDir(o.FilesDir); err != nil {
			return nil, err
		}
		return b, nil
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: o.Prefix, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", o.Prefix, err)
	}
	objStream, err := js.Stream(ctx, "OBJ_"+o.Prefix)
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", o.Prefix, err)
	}
	b.Files = &natsFiles{obs: obs, stream: objStream, bucket: o.Prefix}
	return b, nil
}

// natsRecords keeps records and counters in one key-value bucket (history
// 1), whose revisions are the versions: records under "r.KIND.ID",
// counters under "c.…" (encodeKey). A revision is a stream sequence, so
// it is never given twice.
type natsRecords struct {
	kv jetstream.KeyValue
	// stream and subject are the bucket's own: Delete purges a key's
	// subject from the stream, where a key-value delete would leave a
	// marker behind for every key ever deleted, for List to walk past.
	stream  jetstream.Stream
	subject string
}

func (r *natsRecords) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := r.kv.Get(ctx, encodeKey("r", key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		err = jobs.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

func (r *natsRecords) Put(ctx context.Context, key string, val []byte, ver uint64) (uint64, error) {
	k := encodeKey("r", key)
	var nv uint64
	var err error
	if ver == 0 {
		nv, err = r.kv.Create(ctx, k, val)
	} else {
		nv, err = r.kv.Update(ctx, k, val, ver)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		err = jobs.ErrConflict
	}
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	return nv, nil
}

// createConcurrency is how many creations Create keeps in flight: one at a
// time, a batch of 50,000 lines would be 50,000 round trips in a row.
const createConcurrency = 32

func (r *natsRecords) Create(ctx context.Context, recs []jobs.Record) error {
	errs := make([]error, len(recs))
	sem := make(chan struct{}, createConcurrency)
	done := make(chan struct{})
	for i, rec := range recs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			_, err := r.kv.Create(ctx, encodeKey("r", rec.Key), rec.Val)
			if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
				errs[i] = fmt.Errorf("%s: %w", rec.Key, err)
			}
		}()
	}
	for range recs {
		<-done
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

func (r *natsRecords) Delete(ctx context.Context, key string) error {
	err := r.stream.Purge(ctx, jetstream.WithPurgeSubject(r.subject+encodeKey("r", key)))
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Add is a compare-and-swap loop on the counter's entry: the server has
// no increment (before 2.12's counters).
func (r *natsRecords) Add(ctx context.Context, key string, delta int64) (int64, error) {
	k := encodeKey("c", key)
	for {
		e, err := r.kv.Get(ctx, k)
		var n int64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			n = delta
			_, err = r.kv.Create(ctx, k, fmt.Appendf(nil, "%d", n))
		case err == nil:
			if _, err := fmt.Sscan(string(e.Value()), &n); err != nil {
				return 0, fmt.Errorf("add %s: counter %q: %w", key, e.Value(), err)
			}
			n += delta
			_, err = r.kv.Update(ctx, k, fmt.Appendf(nil, "%d", n), e.Revision())
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // another Add came first
		}
		if err != nil {
			return 0, fmt.Errorf("add %s: %w", key, err)
		}
		return n, nil
	}
}

// List lists the kind's keys (headers only) and sorts them: the bucket has
// no order of its own, so a page costs a walk over every key of the kind.
func (r *natsRecords) List(ctx context.Context, kind, below string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kl, err := r.kv.ListKeysFiltered(lctx, encodeKey("r", kind)+".>")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	defer kl.Stop()
	var keys []string
	for k := range kl.Keys() {
		key, ok := decodeKey(k)
		if ok && (below == "" || key < below) {
			keys = append(keys, key)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	return newestFirst(keys, limit), nil
}

var _ jobs.Records = (*natsRecords)(nil)
