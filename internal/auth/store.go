package auth

import (
	"context"
	"errors"

	"github.com/omnigate/omnigate/internal/config"
)

// Store holds the keys managed at run time, beside the config file's
// (auth.store): every replica reads them, the admin API changes them.
// Keys are kept in their config form: a name, the secret's hash, never
// the secret.
type Store interface {
	// List returns the keys in force (not revoked).
	List(ctx context.Context) ([]config.APIKey, error)
	// Create adds k; ErrExists when its name is taken.
	Create(ctx context.Context, k config.APIKey) error
	// Revoke ends the key named name; ErrNotFound when there is none.
	Revoke(ctx context.Context, name string) error
	// Rotate gives the key named name the secret whose hash is hash; the
	// old secret stops working. ErrNotFound when there is none.
	Rotate(ctx context.Context, name, hash string) error
	Close() error
}

// Errors of a Store.
var (
	ErrExists   = errors.New("a key has that name")
	ErrNotFound = errors.New("no such key")
)
