package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/jobs"
)

// The embedded store's buckets. Records hold an 8-byte version followed by
// the value; counters an 8-byte two's-complement integer; ready the tasks
// never delivered, under their push sequence; leased the delivered ones,
// under the same sequence (see boltQueue).
var (
	bucketRecords  = []byte("records")
	bucketCounters = []byte("counters")
	bucketReady    = []byte("ready")
	bucketLeased   = []byte("leased")
)

// lockWait bounds how long opening waits for the file lock another process
// holds: a second gateway on the same directory fails at once, clearly,
// instead of hanging.
const lockWait = time.Second

// OpenEmbedded opens (creating it and dir, 0o700) the embedded store in
// dir/jobs.db, its file contents under dir/files, with leases of lease.
// One process at a time: bbolt locks the file, and a second opener fails
// within a second with an error naming it.
func OpenEmbedded(dir string, lease time.Duration) (*jobs.Backend, error) {
	return openEmbedded(dir, lease, time.Now)
}

func openEmbedded(dir string, lease time.Duration, now func() time.Time) (*jobs.Backend, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("jobs: embedded store: lease must be positive, got %s", lease)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("jobs: embedded store: %w", err)
	}
	path := filepath.Join(dir, config.EmbeddedJobsFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("jobs: embedded store %s is locked by another process (one gateway per jobs.dir; share jobs with store redis or nats): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: embedded store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketCounters, bucketReady, bucketLeased} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("jobs: embedded store %s: %w", path, err)
	}
	files, err := OpenDir(filepath.Join(dir, "files"))
	if err != nil {
		db.Close()
		return nil, err
	}
	q := &boltQueue{db: db, lease: lease, now: now, poll: boltPoll, pushed: make(chan struct{})}
	return &jobs.Backend{
		Records: &boltRecords{db: db},
		Queue:   q,
		Files:   files,
		Close:   db.Close,
	}, nil
}

// boltRecords keeps records and counters in the embedded store. A new
// version comes from the records bucket's sequence, so a version is never
// given twice, even to a key deleted and created again.
type boltRecords struct {
	db *bolt.DB
}

func (r *boltRecords) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	var val []byte
	var ver uint64
	err := r.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRecords).Get([]byte(key))
		if v == nil {
			return jobs.ErrNotFound
		}
		ver = binary.BigEndian.Uint64(v)
		val = bytes.Clone(v[8:]) // v lives only as long as tx
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	return val, ver, nil
}

func (r *boltRecords) Put(ctx context.Context, key string, val []byte, ver uint64) (uint64, error) {
	var nv uint64
	err := r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		cur := b.Get([]byte(key))
		if (cur == nil && ver != 0) || (cur != nil && binary.BigEndian.Uint64(cur) != ver) {
			return jobs.ErrConflict
		}
		var err error
		nv, err = putRecord(b, key, val)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	return nv, nil
}

func (r *boltRecords) Create(ctx context.Context, recs []jobs.Record) error {
	err := r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for _, rec := range recs {
			if b.Get([]byte(rec.Key)) != nil {
				continue
			}
			if _, err := putRecord(b, rec.Key, rec.Val); err != nil {
				return fmt.Errorf("%s: %w", rec.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

// putRecord stores val under key with the next version, and returns it.
func putRecord(b *bolt.Bucket, key string, val []byte) (uint64, error) {
	nv, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	v := make([]byte, 8+len(val))
	binary.BigEndian.PutUint64(v, nv)
	copy(v[8:], val)
	return nv, b.Put([]byte(key), v)
}

func (r *boltRecords) Delete(ctx context.Context, key string) error {
	err := r.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

func (r *boltRecords) Add(ctx context.Context, key string, delta int64) (int64, error) {
	var n int64
	err := r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		if v := b.Get([]byte(key)); v != nil {
			n = int64(binary.BigEndian.Uint64(v))
		}
		n += delta
		return b.Put([]byte(key), binary.BigEndian.AppendUint64(nil, uint64(n)))
	})
	if err != nil {
		return 0, fmt.Errorf("add %s: %w", key, err)
	}
	return n, nil
}

func (r *boltRecords) List(ctx context.Context, kind, below string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	prefix := []byte(kind + "/")
	// Start at the first key past the kind ('0' follows '/'), or at below
	// when that comes first, and walk back.
	start := []byte(kind + "0")
	if below != "" && below < string(start) {
		start = []byte(below)
	}
	var keys []string
	err := r.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		k, _ := c.Seek(start)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(keys) < limit; k, _ = c.Prev() {
			keys = append(keys, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	return keys, nil
}

var _ jobs.Records = (*boltRecords)(nil)
