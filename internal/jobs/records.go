package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Keys of the records, by kind.
const (
	kindJob   = "job"
	kindBatch = "batch"
	kindFile  = "file"
)

func key(kind, id string) string { return kind + "/" + id }

// load reads the record under k into v and returns its version.
func load(ctx context.Context, r Records, k string, v any) (uint64, error) {
	b, ver, err := r.Get(ctx, k)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return 0, fmt.Errorf("jobs: record %s: %w", k, err)
	}
	return ver, nil
}

// store writes v under k if its version is still ver (0: new).
func store(ctx context.Context, r Records, k string, v any, ver uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	return r.Put(ctx, k, b, ver)
}

// errUnchanged, returned by an update's change function, leaves the
// record as it is.
var errUnchanged = errors.New("unchanged")

// update applies change to the record under k until it is stored without
// a conflict, and returns the record as stored (or as it was, when change
// returned errUnchanged). change sees a fresh copy each time.
func update[T any](ctx context.Context, r Records, k string, change func(*T) error) (*T, error) {
	for {
		v := new(T)
		ver, err := load(ctx, r, k, v)
		if err != nil {
			return nil, err
		}
		if err := change(v); err != nil {
			if err == errUnchanged {
				return v, nil
			}
			return v, err
		}
		if _, err := store(ctx, r, k, v, ver); err == nil {
			return v, nil
		} else if !errors.Is(err, ErrConflict) {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}
