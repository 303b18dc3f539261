package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/omnigate/omnigate/internal/jobs"
)

// redisFiles keeps file contents in Redis, in chunks of fileChunk bytes:
// a file is a string PREFIX:file:NAME = "GEN CHUNKS SIZE" naming a list
// PREFIX:fdata:GEN of its chunks. Put writes a new generation's list
// (expiring, until it is complete, so a writer that dies leaves nothing
// for long) and then points the name at it in one script. The old
// generation is kept for fileGrace, so a reader that started before a
// replacement or a deletion still reads the contents it opened.
//
// Sizes: no bound of the store's own (a chunk is far below Redis's 512 MiB
// string limit), but every byte lives in the server's memory: with files
// of up to jobs.max_file_bytes (200 MiB by default) and many batches,
// size the server's maxmemory for them or use files dir.
type redisFiles struct {
	c      *redis.Client
	prefix string
}

const (
	// fileChunk is the size of one chunk: large enough that a 200 MiB file
	// is 200 round trips, small enough not to stall the server.
	fileChunk = 1 << 20
	// fileGrace is how long a replaced or deleted file's contents stay
	// readable by those who opened it before.
	fileGrace = time.Minute
	// fileWriting is how long a generation being written lives without a
	// new chunk.
	fileWriting = time.Hour
)

func (f *redisFiles) meta(name string) string { return f.prefix + ":file:" + name }
func (f *redisFiles) data(gen string) string  { return f.prefix + ":fdata:" + gen }

// commitScript points KEYS[1] at generation ARGV[1] ("GEN CHUNKS SIZE"),
// keeps its list KEYS[2] for good and lets the old generation's list
// (ARGV[2] .. its GEN) expire in ARGV[3] seconds.
var commitScript = redis.NewScript(`
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PERSIST', KEYS[2])
if old then redis.call('EXPIRE', ARGV[2] .. string.match(old, '^%S+'), ARGV[3]) end
return 0
`)

func (f *redisFiles) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if !validName(name) {
		return 0, fmt.Errorf("put %q: %w", name, errBadName)
	}
	var g [12]byte
	rand.Read(g[:])
	gen := hex.EncodeToString(g[:])
	data := f.data(gen)
	buf := make([]byte, fileChunk)
	var size int64
	var chunks int
	fail := func(err error) (int64, error) {
		f.c.Del(context.WithoutCancel(ctx), data)
		return 0, fmt.Errorf("put %s: %w", name, err)
	}
	for {
		n, err := io.ReadFull(ctxReader{ctx, r}, buf)
		if n > 0 {
			_, perr := f.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.RPush(ctx, data, buf[:n])
				p.Expire(ctx, data, fileWriting)
				return nil
			})
			if perr != nil {
				return fail(perr)
			}
			size += int64(n)
			chunks++
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
	}
	meta := fmt.Sprintf("%s %d %d", gen, chunks, size)
	grace := int(fileGrace / time.Second)
	if err := commitScript.Run(ctx, f.c, []string{f.meta(name), data}, meta, f.data(""), grace).Err(); err != nil {
		return fail(err)
	}
	return size, nil
}

func (f *redisFiles) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if !validName(name) {
		return nil, fmt.Errorf("open %q: %w", name, errBadName)
	}
	meta, err := f.c.Get(ctx, f.meta(name)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("open %s: %w", name, jobs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	parts := strings.Fields(meta)
	if len(parts) != 3 {
		return nil, fmt.Errorf("open %s: bad file record %q", name, meta)
	}
	chunks, err := strconv.Atoi(parts[1])
	if err != nil {
		return nil, fmt.Errorf("open %s: bad file record %q: %w", name, meta, err)
	}
	return &redisFile{ctx: ctx, f: f, name: name, data: f.data(parts[0]), chunks: chunks}, nil
}

// deleteFileScript removes the name KEYS[1] and lets its contents (list
// ARGV[1] .. GEN) expire in ARGV[2] seconds.
var deleteFileScript = redis.NewScript(`
local old = redis.call('GET', KEYS[1])
if old then
  redis.call('DEL', KEYS[1])
  redis.call('EXPIRE', ARGV[1] .. string.match(old, '^%S+'), ARGV[2])
end
return 0
`)

func (f *redisFiles) Delete(ctx context.Context, name string) error {
	if !validName(name) {
		return fmt.Errorf("delete %q: %w", name, errBadName)
	}
	grace := int(fileGrace / time.Second)
	if err := deleteFileScript.Run(ctx, f.c, []string{f.meta(name)}, f.data(""), grace).Err(); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// redisFile reads one generation's chunks in turn, with the context Open
// was given.
type redisFile struct {
	ctx    context.Context
	f      *redisFiles
	name   string
	data   string
	chunks int
	next   int    // the next chunk to fetch
	buf    []byte // what is left of the current chunk
}

func (r *redisFile) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.next == r.chunks {
			return 0, io.EOF
		}
		b, err := r.f.c.LIndex(r.ctx, r.data, int64(r.next)).Bytes()
		if errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("read %s: its contents expired while being read (replaced or deleted over %s ago)", r.name, fileGrace)
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", r.name, err)
		}
		r.buf = b
		r.next++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *redisFile) Close() error { return nil }

var _ jobs.Files = (*redisFiles)(nil)
