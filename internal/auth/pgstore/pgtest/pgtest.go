// Package pgtest finds the PostgreSQL server tests of the key store use
// and gives each test a table of its own.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DSN is the PostgreSQL server the tests use: OMNIGATE_POSTGRES, else the
// one at 127.0.0.1:5432. Without one the test is skipped, unless CI is set
// (CI starts one: .ci/run).
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("OMNIGATE_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=5"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no PostgreSQL at %s: %v", dsn, err)
		}
		t.Skipf("no PostgreSQL at %s: %v", dsn, err)
	}
	c.Close(ctx)
	return dsn
}

var tables atomic.Int64

// Table is a table name of the test's own on the server at dsn, dropped
// at the test's end.
func Table(t testing.TB, dsn string) string {
	name := fmt.Sprintf("omnigate_test_keys_%d_%d", time.Now().UnixNano(), tables.Add(1))
	t.Cleanup(func() {
		ctx := context.Background()
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			c.Exec(ctx, `DROP TABLE IF EXISTS `+name)
			c.Close(ctx)
		}
	})
	return name
}

// Listeners acts on the server's connections listening for table's
// changes (the store's LISTEN): it counts them, or with kill, ends them
// and counts those it ended.
func Listeners(t testing.TB, dsn, table string, kill bool) int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	what := "count(*)"
	if kill {
		what = "count(pg_terminate_backend(pid))"
	}
	var n int
	if err := c.QueryRow(ctx, `SELECT `+what+` FROM pg_stat_activity WHERE query = $1`,
		`LISTEN `+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
