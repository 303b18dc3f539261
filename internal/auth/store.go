package auth

import (
	"context"
	"errors"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

// Store holds the keys managed at run time, beside the config file's
// (auth.store): every replica reads them, the admin API changes them.
// Keys are kept in their config form: a name, the secret's hash, never
// the secret.
type Store interface {
	// List returns the keys in force (not revoked).
	List(ctx context.Context) ([]Record, error)
	// Create adds k; ErrExists when its name (a revoked key's too) or
	// its hash is taken.
	Create(ctx context.Context, k config.APIKey) (Record, error)
	// Revoke ends the key named name; ErrNotFound when none is in force.
	Revoke(ctx context.Context, name string) error
	// Rotate gives the key named name the secret whose hash is hash; the
	// old secret stops working. ErrNotFound when none is in force.
	Rotate(ctx context.Context, name, hash string) (Record, error)
	Close() error
}

// Watcher is a Store that tells of the changes made to it, by any
// replica, as they are made: its readers need not wait for their next
// refresh.
type Watcher interface {
	// Watch calls changed after each change to the store until ctx ends,
	// and once after each time it could not listen (a change may have
	// gone by); it keeps trying while the store is unreachable.
	Watch(ctx context.Context, changed func())
}

// Record is one key of a store: its config form and its history.
type Record struct {
	config.APIKey
	// Created is when the key was made; zero for a config file's key.
	Created time.Time
	// Rotated is when its secret last changed; zero: never.
	Rotated time.Time
}

// Errors of a Store.
var (
	ErrExists   = errors.New("a key has that name")
	ErrNotFound = errors.New("no such key")
)
