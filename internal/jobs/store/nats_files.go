package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnigate/omnigate/internal/jobs"
)

// natsFiles keeps file contents in a JetStream object store (bucket
// PREFIX), which chunks them (128 KiB) and replaces an object only once
// the new one is whole; a Put whose reader fails purges its chunks and
// leaves the old object. No size bound of its own beyond the stream's
// limits and the server's disk.
type natsFiles struct {
	obs jetstream.ObjectStore
}

func (f *natsFiles) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if !validName(name) {
		return 0, fmt.Errorf("put %q: %w", name, errBadName)
	}
	info, err := f.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, ctxReader{ctx, r})
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", name, err)
	}
	return int64(info.Size), nil
}

func (f *natsFiles) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if !validName(name) {
		return nil, fmt.Errorf("open %q: %w", name, errBadName)
	}
	res, err := f.obs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		err = jobs.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return res, nil
}

func (f *natsFiles) Delete(ctx context.Context, name string) error {
	if !validName(name) {
		return fmt.Errorf("delete %q: %w", name, errBadName)
	}
	if err := f.obs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

var _ jobs.Files = (*natsFiles)(nil)
