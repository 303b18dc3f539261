package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

// Errors of a Directory's changes, beside a Store's.
var (
	// ErrConfigKey: the key is the config file's, which only the file
	// changes.
	ErrConfigKey = errors.New("the key is in the config file")
	// ErrNoStore: there is no key store (auth.store.kind none).
	ErrNoStore = errors.New("no key store")
)

// DirectoryOptions configure a Directory.
type DirectoryOptions struct {
	// Store holds the keys made at run time; nil: the config file's only.
	Store Store
	Log   *slog.Logger
	// Errors counts the store reads that failed; nil: not counted.
	Errors interface{ Inc() }
	// Timeout bounds one store read or change; default 5s.
	Timeout time.Duration
}

// Directory is the key set in force: live state that outlives config
// reloads, merging the config file's keys (as of the last reload) with a
// store's (as of its last read). Every change compiles a new Keys and
// swaps it in, so Authenticate costs one atomic load over a lookup. A
// nil *Directory lets everyone in.
type Directory struct {
	cur atomic.Pointer[Keys] // never nil
	opt DirectoryOptions

	refreshMu sync.Mutex // one store read at a time, applied in order
	mu        sync.Mutex // guards what follows
	conf      []config.APIKey
	cat       *catalog.Catalog
	isAuto    func(string) bool
	stored    []Record
	entries   []Entry
	failing   bool // the last store read failed
}

// NewDirectory returns a directory of no keys: it refuses everyone until
// SetConfig or Refresh gives it some.
func NewDirectory(opt DirectoryOptions) *Directory {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	d := &Directory{opt: opt, isAuto: func(string) bool { return false }}
	d.cur.Store(&Keys{})
	return d
}

// Close closes the store.
func (d *Directory) Close() error {
	if d.opt.Store == nil {
		return nil
	}
	return d.opt.Store.Close()
}

// Stored reports whether d has a key store.
func (d *Directory) Stored() bool { return d.opt.Store != nil }

// SetConfig sets the config file's keys, compiled over cat (a reload's).
func (d *Directory) SetConfig(keys []config.APIKey, cat *catalog.Catalog, isAuto func(string) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conf, d.cat, d.isAuto = keys, cat, isAuto
	d.compileLocked()
}

// Refresh reads the store again and swaps in what it holds. A failed read
// keeps the keys read last, counts in Errors and is logged once per
// streak of failures.
func (d *Directory) Refresh(ctx context.Context) error {
	if d.opt.Store == nil {
		return nil
	}
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	recs, err := d.opt.Store.List(rctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil && ctx.Err() != nil {
		return ctx.Err() // the caller gave up (the gateway is closing): not the store's failure
	}
	if err != nil {
		if d.opt.Errors != nil {
			d.opt.Errors.Inc()
		}
		if !d.failing {
			d.opt.Log.Warn("key store read failed; the keys read last stay in force", "err", err)
		}
		d.failing = true
		return fmt.Errorf("reading the key store: %w", err)
	}
	if d.failing {
		d.opt.Log.Info("key store read again", "keys", len(recs))
		d.failing = false
	}
	if !reflect.DeepEqual(recs, d.stored) { // unchanged: the same *Key values stay
		d.stored = recs
		d.compileLocked()
	}
	return nil
}

// Watch reads the store again after each change it tells of, until ctx
// ends; it returns at once for a store that tells of none (Watcher).
func (d *Directory) Watch(ctx context.Context) {
	if w, ok := d.opt.Store.(Watcher); ok {
		w.Watch(ctx, func() { d.Refresh(ctx) })
	}
}

// Run refreshes d every interval until ctx ends.
func (d *Directory) Run(ctx context.Context, every time.Duration, clk clock.Clock) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-clk.After(every):
		}
		d.Refresh(ctx) // a failure is logged and counted there
	}
}

func (d *Directory) compileLocked() {
	before := map[string]string{}
	for _, e := range d.entries {
		if e.Ignored != "" {
			before[e.Source+"/"+e.Name] = e.Ignored
		}
	}
	d.entries = merge(d.conf, d.stored)
	for _, e := range d.entries {
		if e.Ignored != "" && before[e.Source+"/"+e.Name] != e.Ignored {
			d.opt.Log.Warn("API key not in force", "key", e.Name, "source", e.Source, "reason", e.Ignored)
		}
	}
	if d.cat != nil { // else compiled once SetConfig gives the catalog
		d.cur.Store(compile(d.entries, d.cat, d.isAuto))
	}
}

// Authenticate is Keys.Authenticate over the keys in force.
func (d *Directory) Authenticate(h http.Header, now time.Time) (*Key, error) {
	if d == nil {
		return nil, nil
	}
	return d.cur.Load().Authenticate(h, now)
}

// Named returns the key in force named name, or nil.
func (d *Directory) Named(name string) *Key {
	if d == nil {
		return nil
	}
	return d.cur.Load().Named(name)
}

// Entries lists every key, in force or not, by name (a config key first).
func (d *Directory) Entries() []Entry {
	d.mu.Lock()
	out := append([]Entry(nil), d.entries...)
	d.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Entry returns the key named name: the one in force, else the first
// listed.
func (d *Directory) Entry(name string) (Entry, bool) {
	var found *Entry
	for _, e := range d.Entries() {
		if e.Name == name && (found == nil || found.Ignored != "" && e.Ignored == "") {
			found = &e
		}
	}
	if found == nil {
		return Entry{}, false
	}
	return *found, true
}

// Create adds k to the store and reads the store again: ErrNoStore,
// ErrConfigKey when the config file has its name, ErrExists when the
// store has its name or either has its hash.
func (d *Directory) Create(ctx context.Context, k config.APIKey) (Entry, error) {
	if d.opt.Store == nil {
		return Entry{}, ErrNoStore
	}
	sum, _ := hashBytes(k.Hash)
	for _, e := range d.Entries() {
		switch {
		case e.Source == SourceConfig && e.Name == k.Name:
			return Entry{}, ErrConfigKey
		case e.sum == sum:
			return Entry{}, ErrExists
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	r, err := d.opt.Store.Create(ctx, k)
	if err != nil {
		return Entry{}, err
	}
	d.changed(ctx, "created", k.Name)
	return Entry{Record: r, Source: SourceStore, sum: sum}, nil
}

// Revoke ends the store's key named name and reads the store again:
// ErrConfigKey for a config file's key, ErrNotFound when neither has one.
func (d *Directory) Revoke(ctx context.Context, name string) error {
	if err := d.mutable(name); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	if err := d.opt.Store.Revoke(ctx, name); err != nil {
		return err
	}
	d.changed(ctx, "revoked", name)
	return nil
}

// Rotate gives the store's key named name the secret of hash, as Revoke.
func (d *Directory) Rotate(ctx context.Context, name, hash string) (Entry, error) {
	if err := d.mutable(name); err != nil {
		return Entry{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	r, err := d.opt.Store.Rotate(ctx, name, hash)
	if err != nil {
		return Entry{}, err
	}
	d.changed(ctx, "rotated", name)
	sum, _ := hashBytes(r.Hash)
	return Entry{Record: r, Source: SourceStore, sum: sum}, nil
}

// mutable says whether the key named name is the store's to change.
func (d *Directory) mutable(name string) error {
	if e, ok := d.Entry(name); ok && e.Source == SourceConfig {
		return ErrConfigKey
	}
	if d.opt.Store == nil {
		return ErrNotFound
	}
	return nil
}

// changed logs a change made through d and reads the store again, so it
// takes effect here at once; on the other replicas it does when the store
// tells them (Watcher), or at their next refresh. A failed read is
// logged: the change is made all the same.
func (d *Directory) changed(ctx context.Context, what, name string) {
	d.opt.Log.Info("API key "+what, "key", name)
	d.Refresh(context.WithoutCancel(ctx))
}
