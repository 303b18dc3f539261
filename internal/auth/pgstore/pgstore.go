// Package pgstore is the API key store in a PostgreSQL table
// (auth.store.kind postgres), which every replica reads and the admin API
// changes.
//
// The table holds a row per key ever made: a revoked key keeps its row
// (revoked_at set), for audit, and so keeps its name and hash, which no
// new key may take: the metrics and the logs count by name, and a name
// used twice would mix two keys' traffic.
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/config"
)

// Store is the keys in one table.
type Store struct {
	pool    *pgxpool.Pool
	table   string // quoted
	channel string // the table's name: the channel its changes are told on
}

// Open connects to the database at dsn and creates the table when it is
// missing. table must be a plain identifier (config validates it).
func Open(ctx context.Context, dsn, table string) (*Store, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	pc.MaxConns = 4 // a refresh now and then, and the admin API's changes (the listening one is its own)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	s := &Store{pool: pool, table: pgx.Identifier{table}.Sanitize(), channel: table}
	if err := s.create(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// create makes the table when it is missing, under a lock so that
// replicas starting together do not race to make it.
func (s *Store) create(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, s.table); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
	name       text PRIMARY KEY,
	hash       text NOT NULL UNIQUE,
	models     text[] NOT NULL DEFAULT '{}',
	priority   text NOT NULL DEFAULT 'interactive',
	expires_at timestamptz,
	limits     jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now(),
	rotated_at timestamptz,
	revoked_at timestamptz
)`)
		return err
	})
}

// limits is the limits column: the key's and each user's.
type limits struct {
	Key  keyLimits `json:"key"`
	User keyLimits `json:"user"`
}

// keyLimits is config.KeyLimits as the column spells it.
type keyLimits struct {
	RequestsPerMinute int64 `json:"requests_per_minute,omitempty"`
	TokensPerMinute   int64 `json:"tokens_per_minute,omitempty"`
	TokensPerDay      int64 `json:"tokens_per_day,omitempty"`
	TokensPerMonth    int64 `json:"tokens_per_month,omitempty"`
}

func fromConfig(l config.KeyLimits) keyLimits { return keyLimits(l) }

func (l keyLimits) config() config.KeyLimits { return config.KeyLimits(l) }

const columns = `name, hash, models, priority, expires_at, limits, created_at, rotated_at`

// List returns the keys not revoked, by name.
func (s *Store) List(ctx context.Context) ([]auth.Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM `+s.table+` WHERE revoked_at IS NULL ORDER BY name`)
	if err != nil {
		return nil, err
	}
	recs, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, err
	}
	return recs, nil
}

func scan(row pgx.CollectableRow) (auth.Record, error) {
	var r auth.Record
	var expires, rotated *time.Time
	var l []byte
	if err := row.Scan(&r.Name, &r.Hash, &r.Models, &r.Priority, &expires, &l, &r.Created, &rotated); err != nil {
		return r, err
	}
	var lim limits
	if err := json.Unmarshal(l, &lim); err != nil {
		return r, fmt.Errorf("key %s: limits: %w", r.Name, err)
	}
	r.Limits, r.UserLimits = lim.Key.config(), lim.User.config()
	if len(r.Models) == 0 {
		r.Models = nil
	}
	if expires != nil {
		r.Expires = expires.UTC().Format(time.RFC3339)
	}
	if rotated != nil {
		r.Rotated = *rotated
	}
	return r, nil
}

// Create adds k: auth.ErrExists when a key, revoked or not, has its name
// or its hash.
func (s *Store) Create(ctx context.Context, k config.APIKey) (auth.Record, error) {
	var expires *time.Time
	if t := k.ExpiresAt(); !t.IsZero() {
		expires = &t
	}
	priority := k.Priority
	if priority == "" {
		priority = "interactive"
	}
	l, _ := json.Marshal(limits{Key: fromConfig(k.Limits), User: fromConfig(k.UserLimits)})
	models := k.Models
	if models == nil {
		models = []string{}
	}
	rows, err := s.pool.Query(ctx, `INSERT INTO `+s.table+` (name, hash, models, priority, expires_at, limits)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+columns, k.Name, k.Hash, models, priority, expires, l)
	if err != nil {
		return auth.Record{}, err
	}
	r, err := pgx.CollectExactlyOneRow(rows, scan)
	if err == nil {
		s.notify(ctx, r.Name)
	}
	return r, taken(err)
}

// Revoke marks the key named name revoked: auth.ErrNotFound when none is
// in force.
func (s *Store) Revoke(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL`, name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return auth.ErrNotFound
	}
	s.notify(ctx, name)
	return nil
}

// Rotate gives the key named name the hash of its new secret:
// auth.ErrNotFound when none is in force, auth.ErrExists when a key has
// that hash.
func (s *Store) Rotate(ctx context.Context, name, hash string) (auth.Record, error) {
	rows, err := s.pool.Query(ctx, `UPDATE `+s.table+` SET hash = $2, rotated_at = now()
WHERE name = $1 AND revoked_at IS NULL RETURNING `+columns, name, hash)
	if err != nil {
		return auth.Record{}, err
	}
	r, err := pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.Record{}, auth.ErrNotFound
	}
	if err == nil {
		s.notify(ctx, name)
	}
	return r, taken(err)
}

// notify tells the replicas listening that the key named name changed.
// A notification lost is found at their next refresh.
func (s *Store) notify(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, name)
}

// Watch listens on the table's channel (LISTEN) on a connection of its
// own and calls changed for each notification, until ctx ends. A lost
// connection is opened again a second later, and changed called once
// then for what went by meanwhile.
func (s *Store) Watch(ctx context.Context, changed func()) {
	for again := false; ; again = true {
		s.listen(ctx, changed, again)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listen(ctx context.Context, changed func(), again bool) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	c := pc.Hijack() // listening: no other use may have it
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	if again {
		changed()
	}
	for {
		if _, err := c.WaitForNotification(ctx); err != nil {
			return err
		}
		changed()
	}
}

// taken turns a unique violation into auth.ErrExists.
func taken(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w (%s)", auth.ErrExists, pe.ConstraintName)
	}
	return err
}

// Close closes the connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

var (
	_ auth.Store   = (*Store)(nil)
	_ auth.Watcher = (*Store)(nil)
)
