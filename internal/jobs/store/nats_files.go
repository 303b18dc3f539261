package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnigate/omnigate/internal/jobs"
)

// natsFiles keeps file contents in a JetStream object store (bucket
// PREFIX), which chunks them (128 KiB) and replaces an object only once
// the new one is whole; a Put whose reader fails purges its chunks and
// leaves the old object. No size bound of its own beyond the stream's
// limits and the server's disk.
//
// Reading is done here, a chunk per Read from the object's stream: the
// object store's own reader gives up after the JetStream timeout (5s)
// unless the context has a deadline, and pushes chunks at a reader that
// may be slow for hours (a batch reads its input as its lines run). A
// file replaced or deleted while being read fails the reader (the store
// purges the old chunks at once): it never reads a mix.
type natsFiles struct {
	obs    jetstream.ObjectStore
	stream jetstream.Stream // the object store's, OBJ_PREFIX
	bucket string
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
	info, err := f.obs.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		err = jobs.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if info.Opts != nil && info.Opts.Link != nil {
		return nil, fmt.Errorf("open %s: a link, which this store never writes", name)
	}
	return &natsFile{
		ctx: ctx, f: f, name: name, info: info,
		subject: "$O." + f.bucket + ".C." + info.NUID,
		seq:     1, digest: sha256.New(),
	}, nil
}

// natsFile reads one object's chunks in turn, each the first message on
// the object's chunk subject past the one before, and checks the digest
// at the end.
type natsFile struct {
	ctx     context.Context
	f       *natsFiles
	name    string
	info    *jetstream.ObjectInfo
	subject string
	seq     uint64 // where the next chunk is looked for
	chunks  uint32 // chunks read
	digest  hash.Hash
	buf     []byte
}

func (r *natsFile) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.chunks == r.info.Chunks {
			return 0, r.check()
		}
		m, err := r.f.stream.GetMsg(r.ctx, r.seq, jetstream.WithGetMsgSubject(r.subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, fmt.Errorf("read %s: its contents went while being read (replaced or deleted)", r.name)
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", r.name, err)
		}
		r.seq = m.Sequence + 1
		r.chunks++
		r.digest.Write(m.Data)
		r.buf = m.Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// check compares the contents read with the object's digest.
func (r *natsFile) check() error {
	want, err := jetstream.DecodeObjectDigest(r.info.Digest)
	if err != nil {
		return fmt.Errorf("read %s: %w", r.name, err)
	}
	if !bytes.Equal(r.digest.Sum(nil), want) {
		return fmt.Errorf("read %s: contents do not match their digest", r.name)
	}
	return io.EOF
}

func (r *natsFile) Close() error { return nil }

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
