package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/jobs"
)

// dirFiles keeps file contents as files in one directory: the embedded
// store's, or one every gateway mounts (files dir with store redis or
// nats). A file is written to a temporary file beside it, fsynced and
// renamed over the old one, so a reader sees the old contents or the new,
// never a part, and a crash leaves at most a temporary file.
type dirFiles struct {
	dir string
}

// tempPrefix starts the names of files being written. A file name never
// starts with a dot (validName), so none can be taken for another.
const tempPrefix = ".put-"

// staleTemp is the age past which a temporary file left by a crash is
// removed when the directory is opened. It is long, as another gateway
// sharing the directory may be writing one right now.
const staleTemp = 24 * time.Hour

// OpenDir opens (creating it, 0o700) the directory dir as a file store.
func OpenDir(dir string) (jobs.Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("jobs: files: %w", err)
	}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if info, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), tempPrefix) && time.Since(info.ModTime()) > staleTemp {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	return &dirFiles{dir: dir}, nil
}

// validName reports whether name is one of the opaque names Files takes
// ([A-Za-z0-9_.-], not starting with a dot): a name can never step out of
// the directory or meet a temporary file.
func validName(name string) bool {
	if name == "" || name[0] == '.' {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

var errBadName = errors.New("jobs: a file name is [A-Za-z0-9_.-], not starting with a dot")

func (f *dirFiles) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if !validName(name) {
		return 0, fmt.Errorf("put %q: %w", name, errBadName)
	}
	tmp, err := os.CreateTemp(f.dir, tempPrefix+name+"-*")
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", name, err)
	}
	n, err := io.Copy(tmp, ctxReader{ctx, r})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(f.dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return 0, fmt.Errorf("put %s: %w", name, err)
	}
	syncDir(f.dir) // the rename itself survives a power cut
	return n, nil
}

func (f *dirFiles) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if !validName(name) {
		return nil, fmt.Errorf("open %q: %w", name, errBadName)
	}
	file, err := os.Open(filepath.Join(f.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", name, jobs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return file, nil
}

func (f *dirFiles) Delete(ctx context.Context, name string) error {
	if !validName(name) {
		return fmt.Errorf("delete %q: %w", name, errBadName)
	}
	if err := os.Remove(filepath.Join(f.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

var _ jobs.Files = (*dirFiles)(nil)
