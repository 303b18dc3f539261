package pgstore

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/auth/pgstore/pgtest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/config"
)

func testDSN(t *testing.T) string { return pgtest.DSN(t) }

func testTable(t *testing.T, dsn string) string { return pgtest.Table(t, dsn) }

func open(t *testing.T) (*Store, string, string) {
	dsn := testDSN(t)
	table := testTable(t, dsn)
	s, err := Open(context.Background(), dsn, table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn, table
}

func TestStore(t *testing.T) {
	s, dsn, table := open(t)
	ctx := context.Background()
	if recs, err := s.List(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("a new table: %v, %v", recs, err)
	}
	start := time.Now()
	full := config.APIKey{Name: "ci", Hash: auth.Hash("sk-ci"), Models: []string{"small", "auto"}, Priority: "batch", Expires: "2031-01-31T00:00:00Z",
		Limits: config.KeyLimits{RequestsPerMinute: 60, TokensPerDay: 1e6}, UserLimits: config.KeyLimits{TokensPerMinute: 1000, TokensPerMonth: 5e6}}
	plain := config.APIKey{Name: "plain", Hash: auth.Hash("sk-plain"), Expires: "2031-02-01"}
	for _, k := range []config.APIKey{plain, full} {
		r, err := s.Create(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if r.Created.Before(start.Add(-time.Minute)) || !r.Rotated.IsZero() {
			t.Errorf("created %v, rotated %v", r.Created, r.Rotated)
		}
	}
	plain.Priority, plain.Expires = "interactive", "2031-02-01T00:00:00Z" // as the store spells them
	recs, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ignoreTimes := cmpopts.IgnoreFields(auth.Record{}, "Created", "Rotated")
	if d := cmp.Diff([]auth.Record{{APIKey: full}, {APIKey: plain}}, recs, ignoreTimes); d != "" {
		t.Errorf("List (-want +got):\n%s", d)
	}

	for _, tc := range []struct {
		name string
		k    config.APIKey
	}{
		{"a name taken", config.APIKey{Name: "ci", Hash: auth.Hash("sk-other")}},
		{"a hash taken", config.APIKey{Name: "other", Hash: auth.Hash("sk-ci")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Create(ctx, tc.k); !errors.Is(err, auth.ErrExists) {
				t.Errorf("Create: %v, want ErrExists", err)
			}
		})
	}

	r, err := s.Rotate(ctx, "ci", auth.Hash("sk-ci-2"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Hash != auth.Hash("sk-ci-2") || r.Rotated.IsZero() || r.Priority != "batch" {
		t.Errorf("rotated: %+v", r)
	}
	if _, err := s.Rotate(ctx, "nope", auth.Hash("x")); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Rotate an unknown key: %v", err)
	}
	if _, err := s.Rotate(ctx, "ci", auth.Hash("sk-plain")); !errors.Is(err, auth.ErrExists) {
		t.Errorf("Rotate to another key's hash: %v", err)
	}

	if err := s.Revoke(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"revoke again", s.Revoke(ctx, "ci"), auth.ErrNotFound},
		{"revoke unknown", s.Revoke(ctx, "nope"), auth.ErrNotFound},
		{"rotate revoked", second(s.Rotate(ctx, "ci", auth.Hash("sk-ci-3"))), auth.ErrNotFound},
		{"a revoked key's name", second(s.Create(ctx, config.APIKey{Name: "ci", Hash: auth.Hash("sk-ci-4")})), auth.ErrExists},
		{"a revoked key's hash", second(s.Create(ctx, config.APIKey{Name: "ci-again", Hash: auth.Hash("sk-ci-2")})), auth.ErrExists},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	recs, _ = s.List(ctx)
	if len(recs) != 1 || recs[0].Name != "plain" {
		t.Errorf("after the revocation: %+v", recs)
	}
	// The revoked key's row stays, for audit.
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var revoked int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE name = 'ci' AND revoked_at IS NOT NULL AND rotated_at IS NOT NULL`).Scan(&revoked); err != nil || revoked != 1 {
		t.Errorf("the revoked row: %d, %v", revoked, err)
	}
}

func second[T any](_ T, err error) error { return err }

// TestOpenTogether: replicas starting at once on a new table all open it.
func TestOpenTogether(t *testing.T) {
	dsn := testDSN(t)
	table := testTable(t, dsn)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(context.Background(), dsn, table)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Open(ctx, "postgres://postgres@"+addr+"/postgres", "keys"); err == nil {
		t.Fatal("opened a store where no server listens")
	}
	if _, err := Open(ctx, "postgres://[::1", "keys"); err == nil {
		t.Fatal("opened a malformed connection string")
	}
}

// TestWatch: a store listening hears of every change another replica
// makes, and of what went by while its connection was cut.
func TestWatch(t *testing.T) {
	a, dsn, table := open(t)
	b, err := Open(context.Background(), dsn, table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan struct{}, 16)
	done := make(chan struct{})
	go func() { defer close(done); b.Watch(ctx, func() { changes <- struct{}{} }) }()
	t.Cleanup(func() { cancel(); <-done })
	heard := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(10 * time.Second):
			t.Fatalf("no change heard after %s", what)
		}
	}
	for end := time.Now().Add(10 * time.Second); pgtest.Listeners(t, dsn, table, false) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("b never listened")
		}
	}
	ck := config.APIKey{Name: "w", Hash: auth.Hash("sk-w")}
	if _, err := a.Create(ctx, ck); err != nil {
		t.Fatal(err)
	}
	heard("a create")
	if _, err := a.Rotate(ctx, "w", auth.Hash("sk-w2")); err != nil {
		t.Fatal(err)
	}
	heard("a rotation")
	if err := a.Revoke(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	heard("a revocation")
	select {
	case <-changes:
		t.Fatal("a change heard twice")
	case <-time.After(200 * time.Millisecond):
	}

	// The listening connection cut: b listens again and says so.
	if pgtest.Listeners(t, dsn, table, true) != 1 {
		t.Fatal("no listening connection to cut")
	}
	heard("listening again")
	if _, err := a.Create(ctx, config.APIKey{Name: "w3", Hash: auth.Hash("sk-w3")}); err != nil {
		t.Fatal(err)
	}
	heard("a create after the cut")
}
