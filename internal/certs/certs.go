// Package certs keeps TLS certificates current without a restart. A Server
// is a listener's certificate (and, for mutual TLS, the CA its clients'
// certificates must chain to); a Client is what the gateway presents to an
// upstream and trusts of it. Both load their PEM files at once, and again
// when the files change: at most once per CheckEvery, a handshake looks at
// the files' modification times and sizes (a stat each, no read), and
// loads them when either moved. Files that do not load (half written, a key
// that is not the certificate's) are logged once per change and the
// previous certificate stays in use; the next change is tried again.
//
// Checking on handshakes needs no goroutine to start or stop, and a
// certificate nobody connects with is not worth a poll. The price is that a
// broken file is reported at the first handshake after it was written, not
// at once.
package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CheckEvery is the least time between two looks at the files.
const CheckEvery = time.Second

// Options are what a Server or a Client reports to, and its clock.
type Options struct {
	// Name says which certificate this is in the logs: its config key
	// (server.tls, server.grpc_tls, …).
	Name string
	// Log gets a line per reload, and per change that did not load; nil:
	// none.
	Log *slog.Logger
	// Reloaded, when set, is called after each load that follows a
	// change, with its error (nil: the new files are in use). Not called
	// for the first load.
	Reloaded func(err error)
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// stamp is what a stat of one file says about its content.
type stamp struct {
	mod     time.Time
	size    int64
	missing bool
}

func (s stamp) same(o stamp) bool {
	return s.missing == o.missing && s.size == o.size && s.mod.Equal(o.mod)
}

// watch holds the value loaded from paths and loads it again when they
// change.
type watch[T any] struct {
	paths []string
	load  func() (*T, error)
	// leaf is the certificate to describe in the reload's log line; nil:
	// none.
	leaf func(*T) *x509.Certificate
	opt  Options

	cur  atomic.Pointer[T]
	next atomic.Int64 // Unix nanoseconds before which current does not look

	mu     sync.Mutex // one look at a time
	stamps []stamp    // of the files last loaded, or last tried
}

// newWatch loads the value a first time; an error is the files'.
func newWatch[T any](paths []string, load func() (*T, error), leaf func(*T) *x509.Certificate, opt Options) (*watch[T], error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	w := &watch[T]{paths: paths, load: load, leaf: leaf, opt: opt}
	w.stamps = w.stat()
	v, err := load()
	if err != nil {
		return nil, err
	}
	w.cur.Store(v)
	w.next.Store(opt.Now().Add(CheckEvery).UnixNano())
	return w, nil
}

// current returns the value in use, having looked at the files first when
// the last look is CheckEvery old. A handshake that finds another look
// under way does not wait for it.
func (w *watch[T]) current() *T {
	now := w.opt.Now()
	if now.UnixNano() >= w.next.Load() && w.mu.TryLock() {
		if now.UnixNano() >= w.next.Load() {
			w.next.Store(now.Add(CheckEvery).UnixNano())
			w.checkLocked()
		}
		w.mu.Unlock()
	}
	return w.cur.Load()
}

// Check looks at the files now and loads them if they changed since the
// last look. The error is the new files', which are not in use then; nil
// when they loaded or did not change.
func (w *watch[T]) Check() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checkLocked()
}

func (w *watch[T]) checkLocked() error {
	st := w.stat()
	if slices.EqualFunc(st, w.stamps, stamp.same) {
		return nil
	}
	// Remembered whether they load or not: files that failed are not
	// read again until they change again, so they are logged once.
	w.stamps = st
	v, err := w.load()
	if err != nil {
		if w.opt.Log != nil {
			w.opt.Log.Error("certificate files changed but do not load; the previous certificate stays in use",
				"config", w.opt.Name, "err", err)
		}
		if w.opt.Reloaded != nil {
			w.opt.Reloaded(err)
		}
		return err
	}
	w.cur.Store(v)
	if w.opt.Log != nil {
		attrs := []any{"config", w.opt.Name, "files", w.paths}
		if c := w.leafOf(v); c != nil {
			attrs = append(attrs, "subject", c.Subject.String(), "serial", c.SerialNumber.String(), "not_after", c.NotAfter)
		}
		w.opt.Log.Info("certificate reloaded", attrs...)
	}
	if w.opt.Reloaded != nil {
		w.opt.Reloaded(nil)
	}
	return nil
}

func (w *watch[T]) leafOf(v *T) *x509.Certificate {
	if w.leaf == nil {
		return nil
	}
	return w.leaf(v)
}

// stat stamps every file; one that cannot be stat'ed is missing (being
// replaced, most likely), which is a change of its own.
func (w *watch[T]) stat() []stamp {
	st := make([]stamp, len(w.paths))
	for i, p := range w.paths {
		fi, err := os.Stat(p)
		if err != nil {
			st[i] = stamp{missing: true}
			continue
		}
		st[i] = stamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return st
}

// readFile reads a PEM file, saying which one failed (the os error names
// the path already).
func readFile(what, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s %s does not exist", what, path)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}
