package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/auth/pgstore"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// keyStoreTimeout bounds connecting to the key store at start, and each
// read and change after.
const keyStoreTimeout = 5 * time.Second

// openKeys returns the gateway's key directory, on the store auth.store
// names (none: the config file's keys only). A store whose connection
// string is missing, or which cannot be reached, stops the gateway: it
// would refuse every key it holds.
func openKeys(sc config.KeyStore, getenv func(string) string, m *telemetry.Metrics, log *slog.Logger) (*auth.Directory, error) {
	opt := auth.DirectoryOptions{Log: log, Errors: m.KeyStoreErrors(), Timeout: keyStoreTimeout}
	switch sc.Kind {
	case config.KeyStorePostgres:
		pc := sc.Postgres
		dsn := getenv(pc.DSNEnv)
		if dsn == "" {
			return nil, fmt.Errorf("auth.store.postgres.dsn_env names %s, which is empty or unset: key store postgres needs the database's connection string there", pc.DSNEnv)
		}
		ctx, cancel := context.WithTimeout(context.Background(), keyStoreTimeout)
		defer cancel()
		st, err := pgstore.Open(ctx, dsn, pc.Table)
		if err != nil {
			return nil, fmt.Errorf("auth.store: key store postgres (table %s, connection string in %s): %w", pc.Table, pc.DSNEnv, err)
		}
		opt.Store = st
	}
	return auth.NewDirectory(opt), nil
}

// startKeys reads the key store for the first time, then after each
// change the store tells of and every auth.store.postgres.refresh, until
// the gateway closes.
func (g *Gateway) startKeys(sc config.KeyStore) error {
	if !g.keys.Stored() {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := g.keys.Refresh(ctx); err != nil {
		cancel()
		return fmt.Errorf("auth.store: key store %s: %w", sc.Kind, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { g.keys.Run(ctx, sc.Postgres.Refresh.D(), clock.Real{}) })
	wg.Go(func() { g.keys.Watch(ctx) })
	g.stopKeys = func() { cancel(); wg.Wait(); g.keys.Close() }
	return nil
}
